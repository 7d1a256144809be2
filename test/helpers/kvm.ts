/**
 * Tests that need a working /dev/kvm. They FAIL when KVM is missing, unless the run declares that it has none
 * with MATCHLOCK_TEST_NO_KVM=1 (README, "Tests"): then they are not registered, each file says how many it left
 * out, and one test checks that the declaration is true (a KVM host cannot hide its KVM tests).
 */
import test, { type ExecutionContext } from 'ava';
import { closeSync, constants, openSync, statSync } from 'node:fs';
import { basename } from 'node:path';

export const KVM_DEVICE = process.env['MATCHLOCK_KVM_DEVICE'] ?? '/dev/kvm';
export const declaredNoKvm = process.env['MATCHLOCK_TEST_NO_KVM'] === '1';

/** True when the KVM device is a character device this process can open read-write. */
export function kvmUsable(): boolean {
  try {
    if (!statSync(KVM_DEVICE).isCharacterDevice()) return false;
    closeSync(openSync(KVM_DEVICE, constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
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
