import test from 'ava';
import { GuestMemory } from '../../../src/vmm/memory/guest-memory.ts';
import {
  e820Entries, readBootParams, readPvhStartInfo, ramRegions, writeBootParams, writePvhStartInfo,
  CMDLINE_START, MiB, GiB, ZERO_PAGE_START, PVH_INFO_START, PVH_MODLIST_START, PVH_MEMMAP_START,
} from '../../../src/vmm/arch/x86_64/index.ts';
import type { E820Entry } from '../../../src/vmm/arch/x86_64/index.ts';
import { isMatchlockError } from '../../../src/errors.ts';

test('zero page fields decode back (ELF kernel, no setup header)', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  const e820 = e820Entries(mem);
  mem.fill(ZERO_PAGE_START, 0x1000, 0xee); // stale data is cleared
  writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize: 42, initrd: { gpa: 0x7000000, size: 0x123456 }, e820 });
  const bp = readBootParams(mem);
  t.is(bp.typeOfLoader, 0xff);
  t.is(bp.bootFlag, 0xaa55);
  t.is(bp.header, 0x53726448);
  t.is(new TextDecoder().decode(mem.read(ZERO_PAGE_START + 0x202, 4)), 'HdrS');
  t.is(bp.cmdLinePtr, CMDLINE_START);
  t.is(bp.cmdlineSize, 42);
  t.is(bp.ramdiskImage, 0x7000000);
  t.is(bp.ramdiskSize, 0x123456);
  t.is(bp.kernelAlignment, 0x0100_0000);
  t.is(bp.loadflags & 1, 1);
  t.deepEqual(bp.e820, e820);
  t.is(mem.readU8(ZERO_PAGE_START + 0x1e8), e820.length);
  t.is(mem.readU32(ZERO_PAGE_START + 0xc0), 0);
  t.is(mem.readU8(ZERO_PAGE_START + 0x10), 0);
});

test('a bzImage setup header is copied and matchlock fields override it', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  const hdr = new Uint8Array(0x202 + 0x6a - 0x1f1).fill(0);
  const view = new DataView(hdr.buffer);
  view.setUint8(0, 0x1e); // setup_sects
  view.setUint16(0x206 - 0x1f1, 0x020f, true); // version
  view.setUint8(0x211 - 0x1f1, 0x80); // loadflags CAN_USE_HEAP
  view.setUint32(0x230 - 0x1f1, 0x20_0000, true); // kernel_alignment
  writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize: 5, setupHeader: hdr, e820: e820Entries(mem) });
  const bp = readBootParams(mem);
  t.is(mem.readU8(ZERO_PAGE_START + 0x1f1), 0x1e);
  t.is(bp.version, 0x020f);
  t.is(bp.loadflags, 0x81);
  t.is(bp.kernelAlignment, 0x20_0000);
  t.is(bp.header, 0x53726448);
  t.is(bp.ramdiskImage, 0);
});

test('an initrd above 4 GiB uses the ext_ramdisk fields', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(5 * GiB));
  writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize: 1, initrd: { gpa: 4 * GiB + 0x1000, size: 0x2000 }, e820: e820Entries(mem) });
  t.is(mem.readU32(ZERO_PAGE_START + 0x218), 0x1000);
  t.is(mem.readU32(ZERO_PAGE_START + 0xc0), 1);
  t.is(readBootParams(mem).ramdiskImage, 4 * GiB + 0x1000);
});

test('more than 128 e820 entries, or ranges outside RAM, are refused', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  const many: E820Entry[] = Array.from({ length: 129 }, (_, i) => ({ addr: i * 0x1000, size: 0x1000, type: 1 }));
  const e = t.throws(() => writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize: 1, e820: many }));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CONFIG'));
  t.regex(e.message, /129/);
  const e2 = t.throws(() =>
    writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize: 1, initrd: { gpa: 128 * MiB - 0x1000, size: 0x2000 }, e820: [] }));
  t.true(isMatchlockError(e2, 'MATCHLOCK_ERR_CONFIG'));
});

test('PVH start info with an initrd', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(3.5 * GiB));
  const e820 = e820Entries(mem);
  writePvhStartInfo(mem, { cmdlineGpa: CMDLINE_START, e820, initrd: { gpa: 0x8000000, size: 0x4000 } });
  const info = readPvhStartInfo(mem);
  t.is(mem.readU32(PVH_INFO_START), 0x336ec578);
  t.like(info, {
    magic: 0x336ec578, version: 1, flags: 0, nrModules: 1, modlistPaddr: PVH_MODLIST_START, cmdlinePaddr: CMDLINE_START,
    rsdpPaddr: 0, memmapPaddr: PVH_MEMMAP_START, memmapEntries: e820.length,
  });
  t.deepEqual(info.modules, [{ paddr: 0x8000000, size: 0x4000, cmdlinePaddr: 0 }]);
  t.deepEqual(info.memmap, e820);
  t.is(mem.readU32(PVH_MEMMAP_START + 24 + 16), e820[1]!.type); // 24-byte entries
});

test('PVH start info without an initrd has no modules', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  writePvhStartInfo(mem, { cmdlineGpa: CMDLINE_START, e820: e820Entries(mem) });
  const info = readPvhStartInfo(mem);
  t.is(info.nrModules, 0);
  t.is(info.modlistPaddr, 0);
  t.deepEqual(info.modules, []);
});
