/**
 * The boot GDT and IDT and their conversion to KVM segment registers. Entries use the conventional
 * descriptor layout (arch/x86/include/asm/desc_defs.h): `flags` packs the access byte (low 8 bits) and the
 * G/DB/L/AVL nibble (bits 12-15).
 */
import type { KvmSegment } from '../../sys/kvm-types.ts';

/** A GDT entry from access/flags, base and 20-bit limit. */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit >>> 0);
  const f = BigInt(flags & 0xf0ff);
  return ((b & 0xff00_0000n) << 32n) | (f << 40n) | ((l & 0x000f_0000n) << 32n) | ((b & 0x00ff_ffffn) << 16n) | (l & 0xffffn);
}

export const GDT_CODE64_FLAGS = 0xa09b;
export const GDT_CODE32_FLAGS = 0xc09b;
export const GDT_DATA_FLAGS = 0xc093;
export const GDT_TSS64_FLAGS = 0x808b;
export const GDT_TSS32_FLAGS = 0x008b;
export const GDT_FLAT_LIMIT = 0xfffff;
export const PVH_TSS_LIMIT = 0x67;

/** Table indexes; the selector is index * 8. */
export const GDT_CODE_INDEX = 1;
export const GDT_DATA_INDEX = 2;
export const GDT_TSS_INDEX = 3;

/** [null, 64-bit code, data, 64-bit TSS]. */
export function linuxGdt(): bigint[] {
  return [
    gdtEntry(0, 0, 0),
    gdtEntry(GDT_CODE64_FLAGS, 0, GDT_FLAT_LIMIT),
    gdtEntry(GDT_DATA_FLAGS, 0, GDT_FLAT_LIMIT),
    gdtEntry(GDT_TSS64_FLAGS, 0, GDT_FLAT_LIMIT),
  ];
}

/** [null, flat 32-bit code, data, 32-bit TSS with limit 0x67]. */
export function pvhGdt(): bigint[] {
  return [
    gdtEntry(0, 0, 0),
    gdtEntry(GDT_CODE32_FLAGS, 0, GDT_FLAT_LIMIT),
    gdtEntry(GDT_DATA_FLAGS, 0, GDT_FLAT_LIMIT),
    gdtEntry(GDT_TSS32_FLAGS, 0, PVH_TSS_LIMIT),
  ];
}

function bits(entry: bigint, shift: bigint, mask: bigint): number {
  return Number((entry >> shift) & mask);
}

/** The KVM segment register loaded from `entry` at GDT slot `tableIndex` (the limit scaled when G is set). */
export function segmentFromGdtEntry(entry: bigint, tableIndex: number): KvmSegment {
  const base = ((entry >> 32n) & 0xff00_0000n) | ((entry >> 16n) & 0x00ff_ffffn);
  const rawLimit = bits(entry, 32n, 0xf_0000n) | bits(entry, 0n, 0xffffn);
  const g = bits(entry, 55n, 1n);
  const present = bits(entry, 47n, 1n);
  return {
    base,
    limit: g ? ((rawLimit * 0x1000) + 0xfff) >>> 0 : rawLimit,
    selector: tableIndex * 8,
    type: bits(entry, 40n, 0xfn),
    present,
    dpl: bits(entry, 45n, 3n),
    db: bits(entry, 54n, 1n),
    s: bits(entry, 44n, 1n),
    l: bits(entry, 53n, 1n),
    g,
    avl: bits(entry, 52n, 1n),
    unusable: present ? 0 : 1,
  };
}
