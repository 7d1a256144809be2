/**
 * The guest-physical memory map of an x86_64 matchlock VM: every layout constant lives here.
 * It follows Firecracker >= 1.13 so that guests and tools that know that layout work unchanged.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Boot GDT: 4 entries of 8 bytes. */
export const BOOT_GDT_START = 0x500;
export const BOOT_GDT_MAX_ENTRIES = 4;
/** Boot IDT: one zero quadword. */
export const BOOT_IDT_START = 0x520;
/** PVH `hvm_start_info` and its module list. */
export const PVH_INFO_START = 0x6000;
export const PVH_MODLIST_START = 0x6040;
/** Linux zero page (`boot_params`); the PVH memory map shares the address (the two boot modes exclusive). */
export const ZERO_PAGE_START = 0x7000;
export const PVH_MEMMAP_START = 0x7000;
/** Initial stack pointer for the 64-bit Linux entry. */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Identity page tables: PML4, PDPT, then page directories (one per GiB mapped). */
export const PML4_START = 0x9000;
export const PDPTE_START = 0xa000;
export const PDE_START = 0xb000;
/** Kernel command line and its maximum size including the terminating NUL. */
export const CMDLINE_START = 0x20000;
export const CMDLINE_MAX_SIZE = 2048;
/** Reserved system data (MP table first). */
export const SYSTEM_DATA_START = 0x9fc00;
export const MPTABLE_START = 0x9fc00;
export const SYSTEM_DATA_END = 0xe0000;
/** The kernel is loaded at or above 1 MiB. */
export const HIMEM_START = 0x100000;
/** Lowest usable RAM and the EBDA start reported in e820 (`[0, 0x9fc00)`). */
export const EBDA_START = 0x9fc00;

/** The 32-bit MMIO gap: guest RAM below 4 GiB stops at 3 GiB. */
export const MMIO32_START = 0xc000_0000;
export const MMIO32_SIZE = 1 * GiB;
export const FIRST_ADDR_PAST_32BITS = 4 * GiB;
/** virtio-mmio devices: 4 KiB each from here, IRQs 5-23. */
export const MMIO_DEVICES_START = 0xc000_1000;
export const MMIO_DEVICE_SIZE = 0x1000;
export const IRQ_BASE = 5;
export const IRQ_MAX = 23;
/** PCIe MMCONFIG window, reserved in e820 even with PCI off. */
export const PCI_MMCONFIG_START = 0xeec0_0000;
export const PCI_MMCONFIG_SIZE = 256 * MiB;
export const IOAPIC_ADDR = 0xfec0_0000;
export const APIC_ADDR = 0xfee0_0000;
/** Address given to KVM_SET_TSS_ADDR (3 pages). */
export const KVM_TSS_ADDRESS = 0xfffb_d000;

/** Largest guest we accept, in MiB (a sanity bound; the host's memory is checked too). */
export const MAX_MEM_MIB = 1024 * 1024;
export const MAX_VCPUS = 32;

/** e820 entry types. */
export const E820_RAM = 1;
export const E820_RESERVED = 2;

/** A guest RAM region: `[gpa, gpa + size)`. */
export interface RamRegion {
  readonly gpa: number;
  readonly size: number;
}

/**
 * RAM regions for a guest of `memBytes`: everything below the 32-bit MMIO gap first, the rest from 4 GiB.
 */
export function ramRegions(memBytes: number): RamRegion[] {
  if (!Number.isSafeInteger(memBytes) || memBytes <= 0) throw new RangeError(`memory size ${memBytes} is not a positive integer`);
  if (memBytes <= MMIO32_START) return [{ gpa: 0, size: memBytes }];
  return [
    { gpa: 0, size: MMIO32_START },
    { gpa: FIRST_ADDR_PAST_32BITS, size: memBytes - MMIO32_START },
  ];
}
