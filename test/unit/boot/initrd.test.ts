import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInitrd, placeInitrd } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { GiB, MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';
import { pattern } from './elf-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'matchlock-boot-initrd-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

test('the initrd goes page-aligned at the top of RAM and its bytes land there', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  const data = pattern(1234567, 11);
  const r = loadInitrd(mem, file('initrd.cpio', data), 0x2000000);
  t.is(r.size, 1234567);
  t.is(r.gpa % 0x1000, 0);
  t.true(r.gpa + r.size <= 128 * MiB);
  t.true(r.gpa + r.size > 128 * MiB - 0x1000, 'as high as alignment allows');
  t.is(r.gpa, Math.floor((128 * MiB - 1234567) / 0x1000) * 0x1000);
  t.deepEqual(mem.read(r.gpa, r.size), data);
  t.is(mem.readU8(r.gpa - 1), 0);
});

test('an initrd that would overlap the kernel is an INITRD error with the sizes', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(16 * MiB));
  const p = file('big.cpio', new Uint8Array(5 * MiB));
  const e = t.throws(() => loadInitrd(mem, p, 12 * MiB));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_INITRD'), String(e));
  t.is(e.message, `initrd ${p} is 5242880 bytes but only 4194304 bytes are free between the kernel end 0xc00000 and 0x1000000: give the VM more memory or use a smaller initrd`);
  // Exactly the free space fits.
  t.is(placeInitrd(mem.regions, 4 * MiB, 12 * MiB), 12 * MiB);
  t.throws(() => placeInitrd(mem.regions, 4 * MiB + 1, 12 * MiB));
  // An unaligned kernel end rounds up to the next page.
  t.throws(() => placeInitrd(mem.regions, 4 * MiB, 12 * MiB + 1));
});

test('in a 3.5 GiB guest the initrd stays below the 3 GiB MMIO gap', (t) => {
  const regions = ramRegions(3.5 * GiB);
  t.is(placeInitrd(regions, 10 * MiB, 0x4000000, 0xffffffff), 3 * GiB - 10 * MiB);
  // With the default initrd_addr_max (2 GiB - 1) it ends at 2 GiB.
  t.is(placeInitrd(regions, 10 * MiB, 0x4000000), 2 * GiB - 10 * MiB);
  const mem = GuestMemory.fromLayout(regions);
  const data = pattern(3 * 4096 + 5);
  const r = loadInitrd(mem, file('small.cpio', data), 0x4000000, 0xffffffff);
  t.true(r.gpa + r.size <= 3 * GiB);
  t.is(r.gpa, 3 * GiB - 4 * 4096);
  t.deepEqual(mem.read(r.gpa, r.size), data);
});

test('initrd_addr_max bounds the end of the initrd', (t) => {
  const gpa = placeInitrd(ramRegions(128 * MiB), 0x1800, 0x1000000, 64 * MiB - 1);
  t.is(gpa, 64 * MiB - 0x2000);
});

test('a missing, empty or directory initrd is an INITRD error naming the path', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(16 * MiB));
  const missing = join(dir, 'missing.cpio');
  const e1 = t.throws(() => loadInitrd(mem, missing, 0x200000));
  t.true(isMatchlockError(e1, 'MATCHLOCK_ERR_INITRD'), String(e1));
  t.is(e1.message, `initrd ${missing} not found (ENOENT): pass the path of an initramfs cpio archive`);
  const e2 = t.throws(() => loadInitrd(mem, file('empty.cpio', new Uint8Array(0)), 0x200000));
  t.true(isMatchlockError(e2, 'MATCHLOCK_ERR_INITRD'), String(e2));
  t.regex(e2.message, /is empty/);
  const e3 = t.throws(() => loadInitrd(mem, dir, 0x200000));
  t.true(isMatchlockError(e3, 'MATCHLOCK_ERR_INITRD'), String(e3));
  t.regex(e3.message, /EISDIR/);
});
