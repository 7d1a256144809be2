/**
 * `matchlock kernel import`: synthetic ELF and bzImage files (headers written here, byte by byte) are accepted or
 * refused with a message naming the file and what was found; a refused or failed import leaves nothing in the
 * kernels directory; names collide unless --force. Then the real thing: the test guest and Debian's stock kernel
 * (both made by scripts/setup; their absence fails the test).
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ErrorCodes, isMatchlockError, type ErrorCode } from '../../../src/errors.ts';
import { importKernel, listKernels } from '../../../src/images/index.ts';
import { REPO, runCli, TEST_GUEST } from '../../helpers/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-kernels-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
let serial = 0;
/** A fresh kernels directory per test: tests run concurrently. */
const freshDir = (): string => join(scratch, `kernels-${++serial}`);

function file(name: string, bytes: Uint8Array | string): string {
  const dir = join(scratch, `in-${++serial}`);
  mkdirSync(dir);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

// --- ELF64: header at 0, one program header at 64, the segment's bytes at 0x1000 (loaded at 16 MiB).
interface ElfOpts {
  readonly elfClass?: number;
  readonly type?: number;
  readonly machine?: number;
  readonly entry?: bigint;
  readonly phType?: number;
  readonly segFileSize?: bigint;
  readonly banner?: string;
  /** Written before `banner`, as Linux 6.1+ has an early banner without the build number. */
  readonly earlyBanner?: string;
}

function elf(o: ElfOpts = {}): Buffer {
  const b = Buffer.alloc(0x3000);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = o.elfClass ?? 2; // ELFCLASS64
  b[5] = 1; // little-endian
  b[6] = 1; // EV_CURRENT
  b.writeUInt16LE(o.type ?? 2, 16); // ET_EXEC
  b.writeUInt16LE(o.machine ?? 62, 18); // EM_X86_64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(o.entry ?? 0x1000000n, 24);
  b.writeBigUInt64LE(64n, 32); // e_phoff
  b.writeUInt16LE(64, 52); // e_ehsize
  b.writeUInt16LE(56, 54); // e_phentsize
  b.writeUInt16LE(1, 56); // e_phnum
  b.writeUInt32LE(o.phType ?? 1, 64); // PT_LOAD
  b.writeUInt32LE(7, 68);
  b.writeBigUInt64LE(0x1000n, 72); // p_offset
  b.writeBigUInt64LE(0xffffffff81000000n, 80); // p_vaddr
  b.writeBigUInt64LE(0x1000000n, 88); // p_paddr
  b.writeBigUInt64LE(o.segFileSize ?? 0x2000n, 96); // p_filesz
  b.writeBigUInt64LE(0x4000n, 104); // p_memsz
  b.writeBigUInt64LE(0x1000n, 112); // p_align
  b.fill(0x90, 0x1000, 0x1100);
  if (o.earlyBanner !== undefined) b.write(o.earlyBanner, 0x1800, 'latin1');
  if (o.banner !== undefined) b.write(o.banner, 0x2000, 'latin1');
  return b;
}

// --- bzImage: boot sector + setup sectors, then the protected-mode kernel ("payload") of 0x4000 bytes.
interface BzOpts {
  readonly version?: number;
  readonly xloadflags?: number;
  readonly setupSects?: number;
  readonly syssize?: number;
  readonly payloadLength?: number;
  readonly kernelVersion?: string;
}

const PAYLOAD = 0x4000;

function bzImage(o: BzOpts = {}): Buffer {
  const sects = o.setupSects ?? 4;
  const setup = (sects + 1) * 512;
  const b = Buffer.alloc(setup + PAYLOAD);
  b[0x1f1] = sects;
  b.writeUInt32LE(o.syssize ?? PAYLOAD / 16, 0x1f4);
  b.writeUInt16LE(0xaa55, 0x1fe);
  b[0x200] = 0xeb; // jmp over the header
  b[0x201] = 0x66;
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(o.version ?? 0x020f, 0x206);
  if (o.kernelVersion !== undefined) {
    b.writeUInt16LE(0x300 - 0x200, 0x20e); // kernel_version: offset from 0x200
    b.write(`${o.kernelVersion}\0`, 0x300, 'latin1');
  }
  b[0x211] = 0x01; // LOADED_HIGH
  b.writeUInt32LE(0x100000, 0x214);
  b.writeUInt32LE(0x7fffffff, 0x22c);
  b.writeUInt32LE(0x200000, 0x230); // kernel_alignment
  b[0x234] = 1; // relocatable
  b.writeUInt16LE(o.xloadflags ?? 0x7f, 0x236);
  b.writeUInt32LE(2047, 0x238);
  b.writeUInt32LE(0x100, 0x248); // payload_offset
  b.writeUInt32LE(o.payloadLength ?? 0x3000, 0x24c); // payload_length
  b.writeBigUInt64LE(0x1000000n, 0x258);
  b.writeUInt32LE(0x800000, 0x260);
  b.fill(0xcc, setup, setup + PAYLOAD);
  return b;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const entries = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

async function refused(t: ExecutionContext, path: string, code: ErrorCode, message: RegExp): Promise<void> {
  const kernelsDir = freshDir();
  const e = await t.throwsAsync(importKernel({ file: path, kernelsDir }));
  t.true(isMatchlockError(e, code), `${e?.message ?? ''} should carry ${code}`);
  t.regex(e?.message ?? '', message);
  t.true(e?.message.includes(path), 'the message names the file');
  t.false(e?.message.includes('\n'), 'one line');
  t.deepEqual(entries(kernelsDir), [], 'nothing left in the kernels directory');
}

test('an ELF vmlinux with Linux banners is stored under its release, with its metadata and the fuller banner', async (t) => {
  const bytes = elf({ earlyBanner: 'Linux version 6.6.6-ml1 (me@host) (gcc 12) # SMP\n', banner: 'Linux version 6.6.6-ml1 (me@host) (gcc 12) #1 SMP Fri\nmore' });
  const kernelsDir = freshDir();
  const r = await importKernel({ file: file('vmlinux', bytes), kernelsDir });
  t.is(r.outcome, 'imported');
  t.is(r.path, join(kernelsDir, '6.6.6-ml1', 'kernel'));
  t.deepEqual(readFileSync(r.path), bytes);
  const meta = JSON.parse(readFileSync(join(kernelsDir, '6.6.6-ml1', 'kernel.json'), 'utf8')) as Record<string, unknown>;
  t.like(meta, { name: '6.6.6-ml1', format: 'elf', sha256: sha256(bytes), sizeBytes: bytes.length, version: '6.6.6-ml1 (me@host) (gcc 12) #1 SMP Fri' });
  t.true(Number.isFinite(Date.parse(String(meta['imported']))));
  t.deepEqual(entries(kernelsDir), ['6.6.6-ml1'], 'no temporary directory left');
  t.is(statSync(r.path).mode & 0o777, 0o644);
});

test('a bzImage is stored under the release in its kernel_version string', async (t) => {
  const bytes = bzImage({ kernelVersion: '6.1.0-99-test-amd64 (builder@example) #1 SMP PREEMPT_DYNAMIC' });
  const kernelsDir = freshDir();
  const r = await importKernel({ file: file('vmlinuz', bytes), kernelsDir });
  t.like(r.metadata, { name: '6.1.0-99-test-amd64', format: 'bzimage', version: '6.1.0-99-test-amd64 (builder@example) #1 SMP PREEMPT_DYNAMIC', sha256: sha256(bytes) });
});

test('without a version string the name comes from the file name; --name overrides both', async (t) => {
  const kernelsDir = freshDir();
  const r = await importKernel({ file: file('My Kernel.ELF', elf()), kernelsDir });
  t.like(r.metadata, { name: 'my-kernel.elf', version: null });
  const named = await importKernel({ file: file('vmlinux', elf({ banner: 'Linux version 6.2.0 x' })), kernelsDir, name: 'ours' });
  t.is(named.metadata.name, 'ours');
  t.deepEqual(listKernels(kernelsDir).kernels.map((k) => k.name), ['my-kernel.elf', 'ours']);
  const e = await t.throwsAsync(importKernel({ file: file('vmlinux', elf()), kernelsDir, name: '../evil' }));
  t.true(isMatchlockError(e, ErrorCodes.KERNEL));
  t.regex(e?.message ?? '', /kernel name "\.\.\/evil" must be/);
});

const REFUSALS: readonly { readonly what: string; readonly bytes: () => Uint8Array; readonly message: RegExp }[] = [
  { what: 'a 32-bit ELF', bytes: () => elf({ elfClass: 1 }), message: /ELF class 1 is not ELFCLASS64.*32-bit/ },
  { what: 'an ELF for another machine (aarch64)', bytes: () => elf({ machine: 183 }), message: /ELF machine 183 is not x86_64/ },
  { what: 'a shared-object or PIE ELF (ET_DYN)', bytes: () => elf({ type: 3 }), message: /ELF type 3 is not ET_EXEC/ },
  { what: 'an ELF without PT_LOAD', bytes: () => elf({ phType: 6 }), message: /no non-empty PT_LOAD segment/ },
  { what: 'an ELF whose entry is outside its segments', bytes: () => elf({ entry: 0x5000000n }), message: /entry point 0x5000000 is in no PT_LOAD segment/ },
  { what: 'an ELF whose segment runs past the file', bytes: () => elf({ segFileSize: 0x3000n }), message: /PT_LOAD segment 0 .* runs past the end of the 12288-byte file/ },
  { what: 'a bzImage of boot protocol 2.06', bytes: () => bzImage({ version: 0x0206 }), message: /boot protocol 2\.06 is older than 2\.12/ },
  { what: 'a bzImage without XLF_KERNEL_64', bytes: () => bzImage({ xloadflags: 0x7e }), message: /without XLF_KERNEL_64 has no 64-bit entry/ },
  { what: 'a bzImage with 70 setup sectors', bytes: () => bzImage({ setupSects: 70 }), message: /setup_sects 70 puts the real-mode setup past 32 KiB/ },
  { what: 'a truncated bzImage (syssize)', bytes: () => bzImage({ syssize: PAYLOAD / 16 + 1 }), message: /syssize says the protected-mode kernel is 16400 bytes but the file holds 16384/ },
  { what: 'a bzImage whose compressed payload leaves the file', bytes: () => bzImage({ payloadLength: PAYLOAD }), message: /compressed payload \(offset 256, 16384 bytes\) does not lie inside/ },
  { what: 'a text file', bytes: () => Buffer.from('hello, kernel\n'), message: /not an ELF vmlinux or a bzImage \(starts with 68 65 6c 6c 6f 2c 20 6b \.\.\.\)/ },
  { what: 'a gzip-compressed vmlinux', bytes: () => gzipSync(elf()), message: /starts with 1f 8b .*, a gzip file\)/ },
  { what: 'an empty file', bytes: () => new Uint8Array(0), message: /\(the file is empty\)/ },
];

for (const { what, bytes, message } of REFUSALS) {
  test(`refused: ${what}`, async (t) => {
    await refused(t, file('kernel', bytes()), ErrorCodes.KERNEL_FORMAT, message);
  });
}

test('refused: a missing file, and a directory', async (t) => {
  await refused(t, join(scratch, 'no-such-kernel'), ErrorCodes.KERNEL_NOT_FOUND, /not found \(ENOENT\)/);
  await refused(t, scratch, ErrorCodes.KERNEL_UNREADABLE, /cannot be read \(EISDIR: it is a directory\)/);
});

test('a taken name is refused and the stored kernel kept; --force replaces it; the same bytes again change nothing', async (t) => {
  const kernelsDir = freshDir();
  const first = elf({ banner: 'Linux version 6.6.0 (a)' });
  const second = elf({ banner: 'Linux version 6.6.0 (b)' });
  const a = await importKernel({ file: file('a', first), kernelsDir, name: 'k' });
  t.is(a.outcome, 'imported');
  const again = await importKernel({ file: file('a-copy', first), kernelsDir, name: 'k' });
  t.is(again.outcome, 'unchanged');
  t.is(again.metadata.imported, a.metadata.imported, 'the stored entry is not rewritten');

  const e = await t.throwsAsync(importKernel({ file: file('b', second), kernelsDir, name: 'k' }));
  t.true(isMatchlockError(e, ErrorCodes.KERNEL));
  t.regex(e?.message ?? '', /kernel name k is taken by another kernel \(elf 6\.6\.0, sha256 [0-9a-f]{12}\) in .*: pick another --name, or pass --force/);
  t.deepEqual(readFileSync(join(kernelsDir, 'k', 'kernel')), first, 'the stored kernel is untouched');
  t.deepEqual(entries(kernelsDir), ['k']);

  const b = await importKernel({ file: file('b', second), kernelsDir, name: 'k', force: true });
  t.is(b.outcome, 'replaced');
  t.deepEqual(readFileSync(join(kernelsDir, 'k', 'kernel')), second);
  t.is(listKernels(kernelsDir).kernels[0]?.sha256, sha256(second));
  t.deepEqual(entries(kernelsDir), ['k'], 'neither the new entry staging nor the old one left behind');
});

test('a broken entry under the name is reported by list and replaced only with --force', async (t) => {
  const kernelsDir = freshDir();
  mkdirSync(join(kernelsDir, 'k'), { recursive: true });
  mkdirSync(join(kernelsDir, '.import-k-interrupted')); // what a killed import leaves: hidden, not a kernel
  t.deepEqual(listKernels(kernelsDir), { kernels: [], broken: [{ name: 'k', reason: 'kernel.json cannot be read (ENOENT)' }] });
  const e = await t.throwsAsync(importKernel({ file: file('a', elf()), kernelsDir, name: 'k' }));
  t.regex(e?.message ?? '', /kernel name k is taken by a broken entry \(kernel\.json cannot be read \(ENOENT\)\)/);
  const r = await importKernel({ file: file('a', elf()), kernelsDir, name: 'k', force: true });
  t.is(r.outcome, 'replaced');
  t.is(listKernels(kernelsDir).kernels.length, 1);
});

test('a missing kernels directory lists no kernels', (t) => {
  t.deepEqual(listKernels(join(scratch, 'never-made')), { kernels: [], broken: [] });
});

test('an import that fails while writing (file size limit: EFBIG) exits 1 with one line and leaves nothing behind', async (t) => {
  const kernelsDir = freshDir();
  const big = Buffer.concat([elf(), Buffer.alloc(1 << 20)]);
  const r = await runCli(['kernel', 'import', file('big', big), '--kernels-dir', kernelsDir], { wrap: ['bash', '-c', 'ulimit -f 64; exec "$0" "$@"'] });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /^matchlock: kernel .*big cannot be stored in .* \(EFBIG: file too large\): check free space and permissions \[MATCHLOCK_ERR_KERNEL\]\n$/);
  t.deepEqual(entries(kernelsDir), [], 'no entry and no staging directory');
});

test('the command line: import, list as a table, a refusal as one line with its code, usage errors exit 2', async (t) => {
  const kernelsDir = freshDir();
  const ok = await runCli(['kernel', 'import', file('vmlinux', elf({ banner: 'Linux version 6.9.1-cli (x)' })), '--kernels-dir', kernelsDir]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stderr, /"msg":"kernel imported"/);
  const list = await runCli(['kernel', 'list', '--kernels-dir', kernelsDir]);
  t.is(list.code, 0, list.stderr);
  const [header, row, ...rest] = list.stdout.trimEnd().split('\n');
  t.regex(header ?? '', /^NAME\s+FORMAT\s+SIZE\s+SHA256\s+IMPORTED\s+VERSION$/);
  t.regex(row ?? '', /^6\.9\.1-cli\s+elf\s+12\.0 KiB\s+[0-9a-f]{12}\s+\S+Z\s+6\.9\.1-cli \(x\)$/);
  t.deepEqual(rest, []);
  const bad = await runCli(['kernel', 'import', file('x', 'nope'), '--kernels-dir', kernelsDir]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^matchlock: kernel .* is not an ELF vmlinux or a bzImage .*\[MATCHLOCK_ERR_KERNEL_FORMAT\]\n$/);
  t.is((await runCli(['kernel', 'import'])).code, 2);
  t.is((await runCli(['kernel', 'frobnicate'])).code, 2);
});

// --- Real kernels made by scripts/setup: they must be there (a missing one fails, it does not skip).

test('the test guest (test/guests/build/testguest.elf) imports as an ELF without a version string', async (t) => {
  t.true(existsSync(TEST_GUEST), `${TEST_GUEST} is missing: run scripts/setup (or make -C test/guests)`);
  const kernelsDir = freshDir();
  const r = await importKernel({ file: TEST_GUEST, kernelsDir });
  t.like(r.metadata, { name: 'testguest.elf', format: 'elf', version: null, sha256: sha256(readFileSync(TEST_GUEST)) });
});

const STOCK = process.env['MATCHLOCK_KERNEL_DIR'] ?? join(REPO, '.cache/kernels');

test("Debian's stock kernel (scripts/fetch-test-kernel): the bzImage and its vmlinux import with the same release", async (t) => {
  for (const f of ['vmlinuz', 'vmlinux']) t.true(existsSync(join(STOCK, f)), `${join(STOCK, f)} is missing: run scripts/setup (it runs scripts/fetch-test-kernel)`);
  const kernelsDir = freshDir();
  const bz = await importKernel({ file: join(STOCK, 'vmlinuz'), kernelsDir });
  t.is(bz.metadata.format, 'bzimage');
  t.regex(bz.metadata.name, /^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
  t.regex(bz.metadata.version ?? '', /^\d+\.\d+\.\d+-\S+ \(debian-kernel@lists\.debian\.org\) #/);
  const elfKernel = await importKernel({ file: join(STOCK, 'vmlinux'), kernelsDir, name: `${bz.metadata.name}.elf` });
  t.is(elfKernel.metadata.format, 'elf');
  t.is(elfKernel.metadata.version?.split(' ')[0], bz.metadata.name, 'the banner in the vmlinux names the same release');
  t.regex(elfKernel.metadata.version ?? '', / #\d+ SMP /, 'the final banner, with the build number');
  const e = await t.throwsAsync(importKernel({ file: join(STOCK, 'vmlinux'), kernelsDir }));
  t.regex(e?.message ?? '', /is taken by another kernel \(bzimage /, 'same release, other bytes: the default name collides');
  t.deepEqual(listKernels(kernelsDir).kernels.map((k) => k.format), ['bzimage', 'elf']);
  t.log(`${bz.metadata.name}: bzImage ${bz.metadata.sizeBytes} bytes, vmlinux ${elfKernel.metadata.sizeBytes} bytes`);
});
