/**
 * Initial vCPU register state for the 64-bit Linux boot protocol and for PVH (32-bit protected mode, paging off).
 * Plain objects; the FFI layer hands them to KVM_SET_REGS / KVM_SET_SREGS / KVM_SET_FPU.
 */
import type { KvmDtable, KvmFpu, KvmRegs, KvmSegment, KvmSregs } from '../../sys/kvm-types.ts';
import { zeroRegs } from '../../sys/kvm-types.ts';
import { GDT_CODE_INDEX, GDT_DATA_INDEX, GDT_TSS_INDEX, linuxGdt, pvhGdt, segmentFromGdtEntry } from './gdt.ts';
import { BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PML4_START, PVH_INFO_START, ZERO_PAGE_START } from './layout.ts';

export const X86_CR0_PE = 0x1n;
export const X86_CR0_ET = 0x10n;
export const X86_CR0_NE = 0x20n;
export const X86_CR0_PG = 0x8000_0000n;
export const X86_CR4_PAE = 0x20n;
export const EFER_LME = 0x100n;
export const EFER_LMA = 0x400n;
/** Bit 1 of RFLAGS is reserved and always set. */
export const RFLAGS_RESERVED = 0x2n;
export const FPU_FCW_DEFAULT = 0x37f;
export const MXCSR_DEFAULT = 0x1f80;

function toU64(entry: number | bigint): bigint {
  const v = BigInt(entry);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`entry point ${entry} is not a 64-bit address`);
  return v;
}

/** rip = entry, rsp = rbp = BOOT_STACK_POINTER, rsi = the zero page. */
export function linuxBootRegs(entry: number | bigint): KvmRegs {
  const regs = zeroRegs();
  regs.rip = toU64(entry);
  regs.rflags = RFLAGS_RESERVED;
  regs.rsp = BigInt(BOOT_STACK_POINTER);
  regs.rbp = BigInt(BOOT_STACK_POINTER);
  regs.rsi = BigInt(ZERO_PAGE_START);
  return regs;
}

/** rip = entry, rbx = the hvm_start_info address. */
export function pvhBootRegs(entry: number | bigint): KvmRegs {
  const regs = zeroRegs();
  regs.rip = toU64(entry);
  regs.rflags = RFLAGS_RESERVED;
  regs.rbx = BigInt(PVH_INFO_START);
  return regs;
}

function copySegment(s: KvmSegment): KvmSegment {
  return { ...s };
}

function withBootSegments(base: KvmSregs, gdt: readonly bigint[]): KvmSregs {
  const code = segmentFromGdtEntry(gdt[GDT_CODE_INDEX]!, GDT_CODE_INDEX);
  const data = segmentFromGdtEntry(gdt[GDT_DATA_INDEX]!, GDT_DATA_INDEX);
  const tss = segmentFromGdtEntry(gdt[GDT_TSS_INDEX]!, GDT_TSS_INDEX);
  const gdtTable: KvmDtable = { base: BigInt(BOOT_GDT_START), limit: gdt.length * 8 - 1 };
  const idtTable: KvmDtable = { base: BigInt(BOOT_IDT_START), limit: 8 - 1 };
  return {
    ...base,
    cs: code,
    ds: copySegment(data),
    es: copySegment(data),
    fs: copySegment(data),
    gs: copySegment(data),
    ss: copySegment(data),
    tr: tss,
    ldt: copySegment(base.ldt),
    gdt: gdtTable,
    idt: idtTable,
    interrupt_bitmap: [...base.interrupt_bitmap],
  };
}

/** 64-bit long mode: boot segments, paging on with the identity tables at PML4_START. `base` is not changed. */
export function linuxBootSregs(base: KvmSregs): KvmSregs {
  const sregs = withBootSegments(base, linuxGdt());
  sregs.cr0 = base.cr0 | X86_CR0_PE | X86_CR0_PG;
  sregs.cr3 = BigInt(PML4_START);
  sregs.cr4 = base.cr4 | X86_CR4_PAE;
  sregs.efer = base.efer | EFER_LME | EFER_LMA;
  return sregs;
}

/** 32-bit flat protected mode, paging off (the PVH entry state). `base` is not changed. */
export function pvhBootSregs(base: KvmSregs): KvmSregs {
  const sregs = withBootSegments(base, pvhGdt());
  sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
  sregs.cr4 = 0n;
  return sregs;
}

/** x87 control word and MXCSR at their reset defaults; everything else zero. */
export function bootFpu(): KvmFpu {
  return { fcw: FPU_FCW_DEFAULT, fsw: 0, ftwx: 0, last_opcode: 0, last_ip: 0n, last_dp: 0n, mxcsr: MXCSR_DEFAULT };
}
