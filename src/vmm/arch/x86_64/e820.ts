/**
 * The e820 memory map handed to the guest (zero page for Linux boot, hvm_memmap for PVH).
 * Same list as Firecracker: low RAM, the reserved system-data window, the PCIe MMCONFIG window, then RAM.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  E820_RAM,
  E820_RESERVED,
  EBDA_START,
  HIMEM_START,
  PCI_MMCONFIG_SIZE,
  PCI_MMCONFIG_START,
  SYSTEM_DATA_END,
} from './layout.ts';

/** One e820 entry: `[addr, addr + size)` of `type` (E820_RAM, E820_RESERVED, ...). */
export interface E820Entry {
  readonly addr: number;
  readonly size: number;
  readonly type: number;
}

/**
 * The guest's e820 map, sorted by address and non-overlapping. The first RAM region must start at 0 and reach
 * past HIMEM_START; its entry starts at HIMEM_START (so `[SYSTEM_DATA_END, HIMEM_START)` is left out).
 */
export function e820Entries(mem: GuestMemory): E820Entry[] {
  const regions = mem.regions;
  const first = regions[0];
  if (!first || first.gpa !== 0 || first.size <= HIMEM_START) {
    throw new MatchlockError(
      ErrorCodes.CONFIG,
      `guest RAM must start at 0 and extend past 0x${HIMEM_START.toString(16)} to build an e820 map; give the VM more memory`,
      { regions: regions.map((r) => ({ gpa: r.gpa, size: r.size })) },
    );
  }
  const entries: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: SYSTEM_DATA_END - EBDA_START, type: E820_RESERVED },
    { addr: PCI_MMCONFIG_START, size: PCI_MMCONFIG_SIZE, type: E820_RESERVED },
  ];
  for (const [i, r] of regions.entries()) {
    const addr = i === 0 ? HIMEM_START : r.gpa;
    entries.push({ addr, size: r.gpa + r.size - addr, type: E820_RAM });
  }
  entries.sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1]!;
    const cur = entries[i]!;
    if (prev.addr + prev.size > cur.addr) {
      throw new MatchlockError(
        ErrorCodes.CONFIG,
        `e820 entry at 0x${cur.addr.toString(16)} overlaps the one at 0x${prev.addr.toString(16)}; guest RAM collides with a reserved window`,
        { prev, cur },
      );
    }
  }
  return entries;
}
