/**
 * The Linux zero page (`struct boot_params`, Documentation/arch/x86/boot.rst and zero-page.rst) for the
 * 64-bit boot protocol. Offsets are absolute within the 4 KiB page.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { E820Entry } from './e820.ts';
import { ZERO_PAGE_START } from './layout.ts';

export const ZERO_PAGE_SIZE = 0x1000;
/** Offsets in `struct boot_params`. */
export const BP_EXT_RAMDISK_IMAGE = 0x0c0;
export const BP_EXT_RAMDISK_SIZE = 0x0c4;
export const BP_EXT_CMD_LINE_PTR = 0x0c8;
export const BP_E820_ENTRIES = 0x1e8;
export const BP_SETUP_HEADER = 0x1f1;
export const BP_BOOT_FLAG = 0x1fe;
export const BP_HEADER = 0x202;
export const BP_VERSION = 0x206;
export const BP_TYPE_OF_LOADER = 0x210;
export const BP_LOADFLAGS = 0x211;
export const BP_RAMDISK_IMAGE = 0x218;
export const BP_RAMDISK_SIZE = 0x21c;
export const BP_CMD_LINE_PTR = 0x228;
export const BP_KERNEL_ALIGNMENT = 0x230;
export const BP_CMDLINE_SIZE = 0x238;
/** First byte after the setup header area (`edd_mbr_sig_buffer`). */
export const BP_SETUP_HEADER_END = 0x290;
export const BP_E820_TABLE = 0x2d0;
export const E820_ENTRY_SIZE = 20;
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" */
export const SETUP_HEADER_MAGIC = 0x53726448;
/** Boot loader type 0xff: undefined/unregistered loader. */
export const LOADER_TYPE_UNDEFINED = 0xff;
export const LOADFLAG_LOADED_HIGH = 0x01;
export const KERNEL_ALIGNMENT_DEFAULT = 0x0100_0000;

export interface BootParamsOptions {
  readonly cmdlineGpa: number;
  /** Command line size including the terminating NUL. */
  readonly cmdlineSize: number;
  readonly initrd?: { readonly gpa: number; readonly size: number };
  /** bzImage setup header bytes starting at image offset 0x1f1 (up to `0x202 + image[0x201]`). */
  readonly setupHeader?: Uint8Array;
  readonly e820: readonly E820Entry[];
}

/** The fields matchlock sets, decoded back (for tests and diagnostics). */
export interface BootParams {
  typeOfLoader: number;
  bootFlag: number;
  header: number;
  version: number;
  loadflags: number;
  cmdLinePtr: number;
  cmdlineSize: number;
  ramdiskImage: number;
  ramdiskSize: number;
  kernelAlignment: number;
  e820: E820Entry[];
}

const U32_LIMIT = 2 ** 32;

function configError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, message, details);
}

function checkRange(mem: GuestMemory, what: string, gpa: number, size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || !mem.contains(gpa, size)) {
    throw configError(`${what} at 0x${gpa.toString(16)} of ${size} bytes is not inside guest RAM`, { gpa, size });
  }
}

function writeSplitU64(mem: GuestMemory, lowOff: number, highOff: number, value: number): void {
  mem.writeU32(ZERO_PAGE_START + lowOff, value % U32_LIMIT);
  mem.writeU32(ZERO_PAGE_START + highOff, Math.floor(value / U32_LIMIT));
}

/** Writes the e820 count and table, in the 20-byte packed `boot_e820_entry` layout. */
function writeE820(mem: GuestMemory, e820: readonly E820Entry[]): void {
  mem.writeU8(ZERO_PAGE_START + BP_E820_ENTRIES, e820.length);
  for (const [i, e] of e820.entries()) {
    const at = ZERO_PAGE_START + BP_E820_TABLE + i * E820_ENTRY_SIZE;
    mem.writeU64(at, e.addr);
    mem.writeU64(at + 8, e.size);
    mem.writeU32(at + 16, e.type);
  }
}

/** Writes `struct boot_params` at ZERO_PAGE_START (the page is cleared first). */
export function writeBootParams(mem: GuestMemory, opts: BootParamsOptions): void {
  checkRange(mem, 'the kernel command line', opts.cmdlineGpa, opts.cmdlineSize);
  if (opts.cmdlineGpa + opts.cmdlineSize > U32_LIMIT) {
    throw configError(`the kernel command line at 0x${opts.cmdlineGpa.toString(16)} must lie below 4 GiB`);
  }
  if (opts.initrd) checkRange(mem, 'the initrd', opts.initrd.gpa, opts.initrd.size);
  if (opts.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw configError(`the e820 map has ${opts.e820.length} entries; the zero page holds at most ${E820_MAX_ENTRIES_ZEROPAGE}`);
  }

  const base = ZERO_PAGE_START;
  mem.fill(base, ZERO_PAGE_SIZE, 0);
  const hdr = opts.setupHeader;
  if (hdr) {
    if (hdr.byteLength > BP_SETUP_HEADER_END - BP_SETUP_HEADER) {
      throw configError(`the kernel setup header is ${hdr.byteLength} bytes; at most ${BP_SETUP_HEADER_END - BP_SETUP_HEADER} fit in the zero page`);
    }
    mem.write(base + BP_SETUP_HEADER, hdr);
  } else {
    mem.writeU32(base + BP_KERNEL_ALIGNMENT, KERNEL_ALIGNMENT_DEFAULT);
  }
  mem.writeU8(base + BP_TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
  mem.writeU16(base + BP_BOOT_FLAG, BOOT_FLAG_MAGIC);
  mem.writeU32(base + BP_HEADER, SETUP_HEADER_MAGIC);
  mem.writeU8(base + BP_LOADFLAGS, mem.readU8(base + BP_LOADFLAGS) | LOADFLAG_LOADED_HIGH);
  writeSplitU64(mem, BP_CMD_LINE_PTR, BP_EXT_CMD_LINE_PTR, opts.cmdlineGpa);
  mem.writeU32(base + BP_CMDLINE_SIZE, opts.cmdlineSize);
  if (opts.initrd) {
    writeSplitU64(mem, BP_RAMDISK_IMAGE, BP_EXT_RAMDISK_IMAGE, opts.initrd.gpa);
    writeSplitU64(mem, BP_RAMDISK_SIZE, BP_EXT_RAMDISK_SIZE, opts.initrd.size);
  }
  writeE820(mem, opts.e820);
}

function readSplitU64(mem: GuestMemory, lowOff: number, highOff: number): number {
  return mem.readU32(ZERO_PAGE_START + highOff) * U32_LIMIT + mem.readU32(ZERO_PAGE_START + lowOff);
}

/** Decodes the zero page at ZERO_PAGE_START. */
export function readBootParams(mem: GuestMemory): BootParams {
  const base = ZERO_PAGE_START;
  const count = mem.readU8(base + BP_E820_ENTRIES);
  const e820: E820Entry[] = [];
  for (let i = 0; i < count; i++) {
    const at = base + BP_E820_TABLE + i * E820_ENTRY_SIZE;
    e820.push({ addr: Number(mem.readU64(at)), size: Number(mem.readU64(at + 8)), type: mem.readU32(at + 16) });
  }
  return {
    typeOfLoader: mem.readU8(base + BP_TYPE_OF_LOADER),
    bootFlag: mem.readU16(base + BP_BOOT_FLAG),
    header: mem.readU32(base + BP_HEADER),
    version: mem.readU16(base + BP_VERSION),
    loadflags: mem.readU8(base + BP_LOADFLAGS),
    cmdLinePtr: readSplitU64(mem, BP_CMD_LINE_PTR, BP_EXT_CMD_LINE_PTR),
    cmdlineSize: mem.readU32(base + BP_CMDLINE_SIZE),
    ramdiskImage: readSplitU64(mem, BP_RAMDISK_IMAGE, BP_EXT_RAMDISK_IMAGE),
    ramdiskSize: readSplitU64(mem, BP_RAMDISK_SIZE, BP_EXT_RAMDISK_SIZE),
    kernelAlignment: mem.readU32(base + BP_KERNEL_ALIGNMENT),
    e820,
  };
}
