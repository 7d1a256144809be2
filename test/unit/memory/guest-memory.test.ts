import test from 'ava';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { ramRegions, GiB, MiB } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';

test('accessors are little-endian and round-trip', (t) => {
  const m = GuestMemory.fromLayout([{ gpa: 0x1000, size: 0x2000 }]);
  m.writeU64(0x1000, 0x1122334455667788n);
  t.is(m.readU8(0x1000), 0x88);
  t.is(m.readU16(0x1000), 0x7788);
  t.is(m.readU32(0x1004), 0x11223344);
  t.is(m.readU64(0x1000), 0x1122334455667788n);
  m.writeU32(0x2ffc, 0xdeadbeef);
  t.is(m.readU32(0x2ffc), 0xdeadbeef);
});

test('an access outside RAM or across a region end throws with the address', (t) => {
  const m = GuestMemory.fromLayout([{ gpa: 0, size: 0x1000 }, { gpa: 0x3000, size: 0x1000 }]);
  for (const [gpa, len] of [[0xfff, 2], [0x1000, 1], [0x2fff, 1], [0x3ffd, 4], [-1, 1]] as const) {
    const e = t.throws(() => m.read(gpa, len));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_GUEST_MEMORY'), String(e));
  }
  const e = t.throws(() => m.readU32(0x3ffe));
  t.regex(e.message, /0x3ffe/);
  t.true(m.contains(0x3000, 0x1000));
  t.false(m.contains(0x3000, 0x1001));
});

test('ramRegions splits around the 32-bit MMIO gap', (t) => {
  t.deepEqual(ramRegions(128 * MiB), [{ gpa: 0, size: 128 * MiB }]);
  t.deepEqual(ramRegions(3.5 * GiB), [{ gpa: 0, size: 3 * GiB }, { gpa: 4 * GiB, size: 0.5 * GiB }]);
  t.deepEqual(ramRegions(8 * GiB), [{ gpa: 0, size: 3 * GiB }, { gpa: 4 * GiB, size: 5 * GiB }]);
  t.deepEqual(ramRegions(3 * GiB), [{ gpa: 0, size: 3 * GiB }]);
});

test('readCString stops at NUL and refuses an unterminated string', (t) => {
  const m = GuestMemory.fromLayout([{ gpa: 0, size: 64 }]);
  m.write(8, new TextEncoder().encode('hello\0'));
  t.is(m.readCString(8, 16), 'hello');
  m.fill(0, 64, 0x41);
  t.throws(() => m.readCString(0, 16));
});
