import test from 'ava';
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectKernelFormat, loadKernel } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';
import { buildBzImage } from './bzimage-writer.ts';
import { buildElf, pattern } from './elf-writer.ts';
import { registerRealKernelTests } from './real-kernel.ts';

const dir = mkdtempSync(join(tmpdir(), 'matchlock-boot-kernel-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const elf = buildElf({ entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(0x100), memsz: 0x1000 }] });
const guest = (): GuestMemory => GuestMemory.fromLayout(ramRegions(64 * MiB));

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

test('detectKernelFormat tells ELF, bzImage and anything else apart', (t) => {
  t.is(detectKernelFormat(elf), 'elf');
  t.is(detectKernelFormat(buildBzImage()), 'bzimage');
  t.is(detectKernelFormat(new Uint8Array(0)), null);
  t.is(detectKernelFormat(new Uint8Array([0x7f, 0x45, 0x4c])), null);
  const noFlag = buildBzImage();
  noFlag[0x1fe] = 0;
  t.is(detectKernelFormat(noFlag), null, 'HdrS without the 0xaa55 boot flag');
  const noMagic = buildBzImage();
  noMagic[0x203] = 0x41;
  t.is(detectKernelFormat(noMagic), null, 'boot flag without HdrS');
});

test('loadKernel loads an ELF file and a bzImage file', (t) => {
  const mem = guest();
  const k1 = loadKernel(mem, file('vmlinux', elf));
  t.is(k1.kind, 'elf');
  t.is(k1.entry64, 0x100000);
  t.deepEqual(mem.read(0x100000, 0x100), pattern(0x100));
  const k2 = loadKernel(guest(), file('bzImage', buildBzImage()));
  t.is(k2.kind, 'bzimage');
  t.is(k2.entry64, 0x100200);
});

test('a missing kernel is KERNEL_NOT_FOUND naming the path and errno', (t) => {
  const p = join(dir, 'nope', 'vmlinux');
  const e = t.throws(() => loadKernel(guest(), p));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_NOT_FOUND'), String(e));
  t.is(e.message, `kernel ${p} not found (ENOENT): pass the path of a vmlinux or bzImage`);
});

test('a directory is KERNEL_UNREADABLE with EISDIR', (t) => {
  const e = t.throws(() => loadKernel(guest(), dir));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_UNREADABLE'), String(e));
  t.regex(e.message, new RegExp(`^kernel ${dir} cannot be read \\(EISDIR: it is a directory\\)`));
});

// Root reads files whatever their mode, so the permission case only exists for other users.
if (process.getuid?.() !== 0) {
  test('a file without read permission is KERNEL_UNREADABLE with EACCES', (t) => {
    const p = file('secret', elf);
    chmodSync(p, 0o000);
    const e = t.throws(() => loadKernel(guest(), p));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_UNREADABLE'), String(e));
    t.regex(e.message, /\(EACCES: permission denied\)/);
  });
}

test('an unknown format is KERNEL_FORMAT showing the first bytes', (t) => {
  const p = file('random', new Uint8Array([0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6]));
  const e = t.throws(() => loadKernel(guest(), p));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_FORMAT'), String(e));
  t.is(e.message, `kernel ${p} is neither an ELF vmlinux nor a bzImage (first bytes 1f 8b 08 00 01 02 03 04 ...): pass an uncompressed vmlinux or a bzImage`);
  const empty = file('empty', new Uint8Array(0));
  t.regex(t.throws(() => loadKernel(guest(), empty)).message, /\(the file is empty\)/);
});

test('a file larger than guest RAM is KERNEL_TOO_BIG before it is read', (t) => {
  const p = join(dir, 'huge');
  writeFileSync(p, elf);
  truncateSync(p, 64 * MiB + 1); // sparse: costs no disk
  const e = t.throws(() => loadKernel(guest(), p));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_TOO_BIG'), String(e));
  t.regex(e.message, /is 67108865 bytes, more than the guest's 67108864 bytes of RAM/);
});

// Checks against a real kernel exist only when MATCHLOCK_TEST_KERNEL names a bzImage (e.g. a distribution vmlinuz).
const realKernel = process.env['MATCHLOCK_TEST_KERNEL'];
if (realKernel) registerRealKernelTests(test, realKernel);
