import test from 'ava';
import { loadBzImage, parseBzImage, loadKernelImage } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';
import { buildBzImage, DEFAULT_PAYLOAD } from './bzimage-writer.ts';
import { pattern } from './elf-writer.ts';

const guest = (mib: number): GuestMemory => GuestMemory.fromLayout(ramRegions(mib * MiB));

test('a 2.15 bzImage loads its payload at 1 MiB with the 64-bit entry at +0x200', (t) => {
  const mem = guest(64);
  const img = buildBzImage({ version: 0x020f });
  const k = loadKernelImage(mem, img, '/boot/vmlinuz');
  if (k.kind !== 'bzimage') return t.fail(`kind ${k.kind}`);
  t.is(k.entry64, 0x100200);
  t.is(k.loadStart, 0x100000);
  t.is(k.protocolVersion, 0x020f);
  t.is(k.initSize, 0x800000);
  t.is(k.kernelAlignment, 0x200000);
  t.is(k.cmdlineSize, 0x7ff);
  t.is(k.initrdAddrMax, 0x7fffffff);
  t.is(k.payloadSize, DEFAULT_PAYLOAD.length);
  // The decompressor works from pref_address (16 MiB) for init_size bytes.
  t.is(k.loadEnd, 0x1000000 + 0x800000);
  t.deepEqual(mem.read(0x100000, DEFAULT_PAYLOAD.length), DEFAULT_PAYLOAD);
  t.is(mem.readU8(0x100000 + DEFAULT_PAYLOAD.length), 0, 'nothing past the payload');
  t.is(mem.readU8(0xfffff), 0, 'the setup code is not copied');
  // The header runs from 0x1f1 to 0x202 + the jump offset byte.
  t.is(k.setupHeader.length, 0x202 + 0x66 - 0x1f1);
  t.deepEqual(k.setupHeader, img.slice(0x1f1, 0x268));
  t.is(k.setupHeader[0x206 - 0x1f1], 0x0f);
});

test('the setup header is clamped to the zero page header area (0x290)', (t) => {
  const k = parseBzImage(buildBzImage({ jumpOffset: 0xff }), 'k');
  t.is(k.setupHeader.length, 0x290 - 0x1f1);
});

test('boot protocol 2.11 is rejected with its version', (t) => {
  const e = t.throws(() => loadBzImage(guest(64), buildBzImage({ version: 0x020b }), '/boot/old'));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_FORMAT'), String(e));
  t.regex(e.message, /^kernel \/boot\/old .*boot protocol 2\.11 is older than 2\.12/);
});

test('2.12 without XLF_KERNEL_64 is rejected; with it, accepted', (t) => {
  const e = t.throws(() => parseBzImage(buildBzImage({ version: 0x020c, xloadflags: 0x02 }), 'k'));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_FORMAT'), String(e));
  t.regex(e.message, /2\.12 .*XLF_KERNEL_64/);
  t.is(parseBzImage(buildBzImage({ version: 0x020c, xloadflags: 0x01 }), 'k').protocolVersion, 0x020c);
});

test('setup_sects 0 means 4', (t) => {
  const mem = guest(64);
  const payload = pattern(0x1000, 77);
  loadBzImage(mem, buildBzImage({ setupSects: 0, payload }), 'k');
  t.deepEqual(mem.read(0x100000, payload.length), payload);
  const mem2 = guest(64);
  loadBzImage(mem2, buildBzImage({ setupSects: 7, payload }), 'k');
  t.deepEqual(mem2.read(0x100000, payload.length), payload);
});

test('a kernel whose boot footprint exceeds a 64 MiB guest is KERNEL_TOO_BIG and writes nothing', (t) => {
  const mem = guest(64);
  const e = t.throws(() => loadBzImage(mem, buildBzImage({ initSize: 0x3378000 }), '/boot/big'));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_TOO_BIG'), String(e));
  t.regex(e.message, /^kernel \/boot\/big needs guest memory up to 0x4378000 .* ends at 0x4000000 \(64\.0 MiB\): give the VM more memory$/);
  t.is(mem.readU8(0x100000), 0);
  // The same kernel fits 128 MiB.
  t.is(loadBzImage(guest(128), buildBzImage({ initSize: 0x3378000 }), 'k').loadEnd, 0x4378000);
});

test('the boot footprint follows the relocation rules of the decompressor', (t) => {
  // Relocatable, pref_address below the aligned load address: base is 1 MiB rounded to the alignment.
  t.is(loadBzImage(guest(64), buildBzImage({ prefAddress: 0n, kernelAlignment: 0x400000, initSize: 0x100000 }), 'k').loadEnd, 0x500000);
  // Not relocatable: always pref_address.
  t.is(loadBzImage(guest(64), buildBzImage({ relocatable: false, prefAddress: 0x2000000n, initSize: 0x100000 }), 'k').loadEnd, 0x2100000);
  // A payload larger than the decompression buffer end counts too.
  const payload = pattern(0x200000);
  t.is(loadBzImage(guest(64), buildBzImage({ prefAddress: 0n, initSize: 0x1000, payload }), 'k').loadEnd, 0x300000);
});

function withByte(img: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = img.slice();
  copy[offset] = value;
  return copy;
}

const bad: [string, Uint8Array, RegExp][] = [
  ['zImage (LOADED_HIGH clear)', buildBzImage({ loadflags: 0 }), /zImage/],
  ['setup sectors past the file', withByte(buildBzImage(), 0x1f1, 200), /200 setup sectors reach past the end/],
  ['kernel_alignment not a power of two', buildBzImage({ kernelAlignment: 0x30000 }), /kernel_alignment 0x30000/],
  ['implausible pref_address', buildBzImage({ prefAddress: 1n << 60n }), /pref_address/],
  ['truncated header', buildBzImage().subarray(0, 0x210), /truncated/],
];
for (const [name, img, message] of bad) {
  test(`rejects a bad bzImage: ${name}`, (t) => {
    const mem = guest(64);
    const e = t.throws(() => loadBzImage(mem, img, 'k'));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_FORMAT'), String(e));
    t.regex(e.message, message);
    t.is(mem.readU8(0x100000), 0);
  });
}
