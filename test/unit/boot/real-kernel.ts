/**
 * Checks against a real distribution kernel, registered by kernel.test.ts only when
 * MATCHLOCK_TEST_KERNEL=/path/to/vmlinuz is set. The ELF vmlinux inside the bzImage is unpacked with
 * zlib (gzip) or the xz/zstd/lz4/lzma/bzip2/lzop command that matches its magic.
 */
import type { TestFn } from 'ava';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { loadBzImage, loadElf, loadKernel } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';

const hex = (n: number): string => `0x${n.toString(16)}`;

const COMPRESSORS: readonly { readonly magic: readonly number[]; readonly command: readonly string[] | null }[] = [
  { magic: [0x1f, 0x8b], command: null },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], command: ['xz', '-dc'] },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], command: ['zstd', '-dc'] },
  { magic: [0x02, 0x21, 0x4c, 0x18], command: ['lz4', '-dc'] },
  { magic: [0x5d, 0x00, 0x00], command: ['xz', '--format=lzma', '-dc'] },
  { magic: [0x42, 0x5a, 0x68], command: ['bzip2', '-dc'] },
  { magic: [0x89, 0x4c, 0x5a, 0x4f], command: ['lzop', '-dc'] },
];

/** The ELF vmlinux compressed inside a bzImage (payload_offset/payload_length of the setup header). */
export function extractVmlinux(image: Uint8Array): Uint8Array {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const setupSects = view.getUint8(0x1f1) || 4;
  const start = (setupSects + 1) * 512 + view.getUint32(0x248, true);
  const payload = image.subarray(start, start + view.getUint32(0x24c, true));
  const c = COMPRESSORS.find(({ magic }) => magic.every((b, i) => payload[i] === b));
  if (!c) throw new Error(`unknown compression, payload starts ${Buffer.from(payload.subarray(0, 8)).toString('hex')}`);
  if (c.command === null) return gunzipSync(payload);
  // All but gzip have the decompressed size appended as 4 bytes.
  const [cmd, ...args] = c.command;
  const r = spawnSync(cmd!, args, { input: payload.subarray(0, payload.length - 4), maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`cannot run ${cmd} to unpack the kernel (install it): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${c.command.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

export function registerRealKernelTests(test: TestFn, path: string): void {
  const ramSize = 512 * MiB;

  test(`real kernel ${path}: the bzImage loads through its 64-bit entry`, (t) => {
    const mem = GuestMemory.fromLayout(ramRegions(ramSize));
    const k = loadKernel(mem, path);
    if (k.kind !== 'bzimage') return t.fail(`expected a bzImage, got ${k.kind}`);
    const file = readFileSync(path);
    const setupSize = ((file[0x1f1] || 4) + 1) * 512;
    t.true(k.protocolVersion >= 0x020c);
    t.is(file.readUInt16LE(0x236) & 1, 1, 'XLF_KERNEL_64');
    t.is(k.entry64, 0x100200);
    t.is(k.payloadSize, file.length - setupSize);
    t.deepEqual(mem.read(0x100000, 4096), new Uint8Array(file.subarray(setupSize, setupSize + 4096)));
    t.is(Buffer.from(k.setupHeader.subarray(0x202 - 0x1f1, 0x206 - 0x1f1)).toString('latin1'), 'HdrS');
    t.true(k.loadEnd >= k.prefAddress + k.initSize);
    t.log(
      `protocol ${(k.protocolVersion >> 8)}.${k.protocolVersion & 0xff}, xloadflags ${hex(file.readUInt16LE(0x236))}, ` +
        `payload ${k.payloadSize} bytes, init_size ${hex(k.initSize)}, pref_address ${hex(k.prefAddress)}, ` +
        `kernel_alignment ${hex(k.kernelAlignment)}, cmdline_size ${k.cmdlineSize}, initrd_addr_max ${hex(k.initrdAddrMax)}, boot footprint ends ${hex(k.loadEnd)}`,
    );
  });

  test(`real kernel ${path}: its ELF vmlinux loads and agrees with the bzImage header`, (t) => {
    const image = readFileSync(path);
    const bz = loadBzImage(GuestMemory.fromLayout(ramRegions(ramSize)), image, path);
    const vmlinux = extractVmlinux(image);
    const mem = GuestMemory.fromLayout(ramRegions(ramSize));
    const k = loadElf(mem, vmlinux, `${path} (unpacked)`);
    t.is(k.entry64, bz.prefAddress, 'startup_64 sits at LOAD_PHYSICAL_ADDR');
    t.true(k.loadStart >= bz.prefAddress);
    t.true(k.loadEnd - bz.prefAddress <= bz.initSize, 'the decompressed kernel fits in init_size');
    if (k.pvhEntry !== null) t.true(k.pvhEntry >= k.loadStart && k.pvhEntry < k.loadEnd);
    t.not(mem.readU32(k.entry64), 0, 'code at the entry point');
    t.log(
      `vmlinux ${vmlinux.length} bytes: entry64 ${hex(k.entry64)}, PVH entry ${k.pvhEntry === null ? 'none' : hex(k.pvhEntry)}, ` +
        `loads ${hex(k.loadStart)}-${hex(k.loadEnd)} (${((k.loadEnd - k.loadStart) / MiB).toFixed(1)} MiB)`,
    );
  });
}
