/**
 * Tests that need root (TAP devices, network namespaces). Like the KVM tests they FAIL without it, unless the
 * run declares MATCHLOCK_TEST_NO_ROOT=1 (README, "Tests"); then they are not registered and the file says how many.
 */
import test, { type ExecutionContext } from 'ava';
import { basename } from 'node:path';

export const declaredNoRoot = process.env['MATCHLOCK_TEST_NO_ROOT'] === '1';
const isRoot = (): boolean => process.getuid?.() === 0;

export function rootSuite(fileUrl: string): { test: (title: string, impl: (t: ExecutionContext) => Promise<void> | void) => void } {
  const file = basename(new URL(fileUrl).pathname);
  let leftOut = 0;
  if (declaredNoRoot) {
    test(`${file}: the run declared no root, and this process is indeed not root`, (t) => {
      t.false(isRoot(), 'MATCHLOCK_TEST_NO_ROOT=1 but the tests run as root: unset it');
      t.log(`${leftOut} root test(s) in ${file} not run: declared by MATCHLOCK_TEST_NO_ROOT=1`);
    });
  } else {
    test.before(`${file}: running as root`, (t) => {
      t.true(isRoot(), 'these tests need root (TAP devices, network namespaces): run as root, or declare MATCHLOCK_TEST_NO_ROOT=1');
    });
  }
  return {
    test(title, impl) {
      if (declaredNoRoot) leftOut++;
      else test.serial(title, impl);
    },
  };
}
