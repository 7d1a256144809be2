/** Boot MSR values (names as in Linux arch/x86/include/asm/msr-index.h), written with KVM_SET_MSRS. */
import type { KvmMsrEntry } from '../../sys/kvm-types.ts';

export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_MTRRdefType = 0x2ff;
export const MSR_STAR = 0xc000_0081;
export const MSR_LSTAR = 0xc000_0082;
export const MSR_CSTAR = 0xc000_0083;
export const MSR_SYSCALL_MASK = 0xc000_0084;
export const MSR_KERNEL_GS_BASE = 0xc000_0102;

export const MSR_IA32_MISC_ENABLE_FAST_STRING = 1n;
/** MTRRdefType: E (bit 11) enables MTRRs; type 6 = write-back default. */
export const MTRR_ENABLE = 0x800n;
export const MTRR_TYPE_WRBACK = 6n;

export function bootMsrs(): KvmMsrEntry[] {
  const zero = [
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_ESP,
    MSR_IA32_SYSENTER_EIP,
    MSR_STAR,
    MSR_CSTAR,
    MSR_KERNEL_GS_BASE,
    MSR_SYSCALL_MASK,
    MSR_LSTAR,
    MSR_IA32_TSC,
  ];
  return [
    ...zero.map((index) => ({ index, data: 0n })),
    { index: MSR_IA32_MISC_ENABLE, data: MSR_IA32_MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRRdefType, data: MTRR_ENABLE | MTRR_TYPE_WRBACK },
  ];
}
