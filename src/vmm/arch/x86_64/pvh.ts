/**
 * PVH boot data (xen/include/public/arch-x86/hvm/start_info.h): `hvm_start_info` at PVH_INFO_START, the
 * module list (the initrd) at PVH_MODLIST_START and the memory map at PVH_MEMMAP_START.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { E820Entry } from './e820.ts';
import { PVH_INFO_START, PVH_MEMMAP_START, PVH_MODLIST_START } from './layout.ts';

export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
export const HVM_START_INFO_VERSION = 1;
export const HVM_START_INFO_SIZE = 56;
export const HVM_MODLIST_ENTRY_SIZE = 32;
export const HVM_MEMMAP_ENTRY_SIZE = 24;
/** Same bound as the zero page's e820 table. */
export const PVH_MEMMAP_MAX_ENTRIES = 128;

export interface PvhStartInfoOptions {
  readonly cmdlineGpa: number;
  readonly e820: readonly E820Entry[];
  readonly initrd?: { readonly gpa: number; readonly size: number };
}

export interface PvhModule {
  paddr: number;
  size: number;
  cmdlinePaddr: number;
}

/** `hvm_start_info` decoded, with its module list and memory map. */
export interface PvhStartInfo {
  magic: number;
  version: number;
  flags: number;
  nrModules: number;
  modlistPaddr: number;
  cmdlinePaddr: number;
  rsdpPaddr: number;
  memmapPaddr: number;
  memmapEntries: number;
  modules: PvhModule[];
  memmap: E820Entry[];
}

/** Writes `hvm_start_info`, the module list (when there is an initrd) and the memory map. */
export function writePvhStartInfo(mem: GuestMemory, opts: PvhStartInfoOptions): void {
  if (opts.e820.length > PVH_MEMMAP_MAX_ENTRIES) {
    throw new MatchlockError(
      ErrorCodes.CONFIG,
      `the PVH memory map has ${opts.e820.length} entries; at most ${PVH_MEMMAP_MAX_ENTRIES} are supported`,
    );
  }
  const { initrd } = opts;
  if (initrd && (!Number.isSafeInteger(initrd.size) || initrd.size <= 0 || !mem.contains(initrd.gpa, initrd.size))) {
    throw new MatchlockError(ErrorCodes.CONFIG, `the initrd at 0x${initrd.gpa.toString(16)} of ${initrd.size} bytes is not inside guest RAM`);
  }
  if (!mem.contains(opts.cmdlineGpa, 1)) {
    throw new MatchlockError(ErrorCodes.CONFIG, `the kernel command line at 0x${opts.cmdlineGpa.toString(16)} is not inside guest RAM`);
  }

  const at = PVH_INFO_START;
  mem.fill(at, HVM_START_INFO_SIZE, 0);
  mem.writeU32(at, XEN_HVM_START_MAGIC_VALUE);
  mem.writeU32(at + 4, HVM_START_INFO_VERSION);
  mem.writeU32(at + 8, 0); // flags
  mem.writeU32(at + 12, initrd ? 1 : 0); // nr_modules
  mem.writeU64(at + 16, initrd ? PVH_MODLIST_START : 0); // modlist_paddr
  mem.writeU64(at + 24, opts.cmdlineGpa);
  mem.writeU64(at + 32, 0); // rsdp_paddr: no ACPI
  mem.writeU64(at + 40, PVH_MEMMAP_START);
  mem.writeU32(at + 48, opts.e820.length);

  if (initrd) {
    mem.fill(PVH_MODLIST_START, HVM_MODLIST_ENTRY_SIZE, 0);
    mem.writeU64(PVH_MODLIST_START, initrd.gpa);
    mem.writeU64(PVH_MODLIST_START + 8, initrd.size);
  }
  for (const [i, e] of opts.e820.entries()) {
    const p = PVH_MEMMAP_START + i * HVM_MEMMAP_ENTRY_SIZE;
    mem.writeU64(p, e.addr);
    mem.writeU64(p + 8, e.size);
    mem.writeU32(p + 16, e.type);
    mem.writeU32(p + 20, 0);
  }
}

/** Decodes the PVH start info written by writePvhStartInfo. */
export function readPvhStartInfo(mem: GuestMemory): PvhStartInfo {
  const at = PVH_INFO_START;
  const nrModules = mem.readU32(at + 12);
  const modlistPaddr = Number(mem.readU64(at + 16));
  const memmapPaddr = Number(mem.readU64(at + 40));
  const memmapEntries = mem.readU32(at + 48);
  const modules: PvhModule[] = [];
  for (let i = 0; i < nrModules; i++) {
    const p = modlistPaddr + i * HVM_MODLIST_ENTRY_SIZE;
    modules.push({ paddr: Number(mem.readU64(p)), size: Number(mem.readU64(p + 8)), cmdlinePaddr: Number(mem.readU64(p + 16)) });
  }
  const memmap: E820Entry[] = [];
  for (let i = 0; i < memmapEntries; i++) {
    const p = memmapPaddr + i * HVM_MEMMAP_ENTRY_SIZE;
    memmap.push({ addr: Number(mem.readU64(p)), size: Number(mem.readU64(p + 8)), type: mem.readU32(p + 16) });
  }
  return {
    magic: mem.readU32(at),
    version: mem.readU32(at + 4),
    flags: mem.readU32(at + 8),
    nrModules,
    modlistPaddr,
    cmdlinePaddr: Number(mem.readU64(at + 24)),
    rsdpPaddr: Number(mem.readU64(at + 32)),
    memmapPaddr,
    memmapEntries,
    modules,
    memmap,
  };
}
