/**
 * Tests that need a working /dev/kvm. They FAIL when KVM is missing, unless the run declares that it has none
 * with MATCHLOCK_TEST_NO_KVM=1 (README, "Tests"): then they are not registered, each file says how many it left
 * out, and one test checks that the declaration is true (a KVM host cannot hide its KVM tests).
 */
import test, { type ExecutionContext } from 'ava';
import { basename } from 'node:path';
import { kvmUnusableReason } from '../../src/vmm/kvm/index.ts';

export const KVM_DEVICE = process.env['MATCHLOCK_KVM_DEVICE'] ?? '/dev/kvm';
export const declaredNoKvm = process.env['MATCHLOCK_TEST_NO_KVM'] === '1';

export function kvmUsable(): boolean {
  return kvmUnusableReason(KVM_DEVICE) === null;
}

/** Call once per test file that uses kvmTest; registers the declaration check and reports what was left out. */
export function kvmSuite(fileUrl: string): { test: (title: string, impl: (t: ExecutionContext) => Promise<void> | void) => void } {
  const file = basename(new URL(fileUrl).pathname);
  let leftOut = 0;
  if (declaredNoKvm) {
    test(`${file}: the run declared no KVM, and this host indeed has no usable ${KVM_DEVICE}`, (t) => {
      t.false(kvmUsable(), `MATCHLOCK_TEST_NO_KVM=1 but ${KVM_DEVICE} works: unset it so the KVM tests run`);
      t.log(`${leftOut} KVM test(s) in ${file} not run: declared by MATCHLOCK_TEST_NO_KVM=1`);
    });
  } else {
    test.before(`${file}: ${KVM_DEVICE} is usable`, (t) => {
      t.true(kvmUsable(), `${KVM_DEVICE} cannot be opened: run on a KVM host, or declare MATCHLOCK_TEST_NO_KVM=1`);
    });
  }
  return {
    test(title, impl) {
      if (declaredNoKvm) leftOut++;
      else test.serial(title, impl);
    },
  };
}
