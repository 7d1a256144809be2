/**
 * Identity page tables for the 64-bit Linux entry: one PML4 entry, one PDPT entry and a page directory of 512
 * 2 MiB pages, mapping guest-physical [0, 1 GiB) at the same virtual addresses. Also writes the boot GDT/IDT.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { linuxGdt, pvhGdt } from './gdt.ts';
import { BOOT_GDT_MAX_ENTRIES, BOOT_GDT_START, BOOT_IDT_START, PDE_START, PDPTE_START, PML4_START } from './layout.ts';

export const PAGE_SIZE = 0x1000;
export const PTE_PRESENT = 0x1n;
export const PTE_WRITABLE = 0x2n;
export const PTE_PAGE_SIZE = 0x80n;
export const PD_ENTRIES = 512;
/** Bytes identity-mapped by writeIdentityPageTables. */
export const IDENTITY_MAPPED_BYTES = PD_ENTRIES * 0x20_0000;

export type BootMode = 'linux' | 'pvh';

/** Writes PML4, PDPT and PD at PML4_START / PDPTE_START / PDE_START. */
export function writeIdentityPageTables(mem: GuestMemory): void {
  mem.fill(PML4_START, PAGE_SIZE, 0);
  mem.fill(PDPTE_START, PAGE_SIZE, 0);
  mem.writeU64(PML4_START, BigInt(PDPTE_START) | PTE_PRESENT | PTE_WRITABLE);
  mem.writeU64(PDPTE_START, BigInt(PDE_START) | PTE_PRESENT | PTE_WRITABLE);
  for (let i = 0; i < PD_ENTRIES; i++) {
    mem.writeU64(PDE_START + i * 8, (BigInt(i) << 21n) | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE);
  }
}

/** Writes the boot GDT for `mode` and a zero IDT entry. */
export function writeBootGdt(mem: GuestMemory, mode: BootMode): void {
  const gdt = mode === 'linux' ? linuxGdt() : pvhGdt();
  if (gdt.length > BOOT_GDT_MAX_ENTRIES) throw new RangeError(`boot GDT has ${gdt.length} entries, max ${BOOT_GDT_MAX_ENTRIES}`);
  for (const [i, e] of gdt.entries()) mem.writeU64(BOOT_GDT_START + i * 8, e);
  mem.writeU64(BOOT_IDT_START, 0n);
}

/** The boot GDT and IDT, plus the identity page tables in 'linux' mode (PVH starts with paging off). */
export function writeBootGdtAndPageTables(mem: GuestMemory, mode: BootMode): void {
  writeBootGdt(mem, mode);
  if (mode === 'linux') writeIdentityPageTables(mem);
}
