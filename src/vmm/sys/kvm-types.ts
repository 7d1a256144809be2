/**
 * Plain-data mirrors of the KVM structures that cross the FFI boundary (linux/kvm.h, asm/kvm.h).
 * Field names keep the header spelling. 64-bit register values are bigint: this is the FFI boundary.
 */

/** struct kvm_regs */
export interface KvmRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

export const KVM_REGS_FIELDS = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const satisfies readonly (keyof KvmRegs)[];

export function zeroRegs(): KvmRegs {
  const r = {} as Record<(typeof KVM_REGS_FIELDS)[number], bigint>;
  for (const f of KVM_REGS_FIELDS) r[f] = 0n;
  return r;
}

/** struct kvm_segment */
export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** struct kvm_dtable */
export interface KvmDtable {
  base: bigint;
  limit: number;
}

/** struct kvm_sregs (interrupt_bitmap kept opaque: it is zero for a fresh vCPU). */
export interface KvmSregs {
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment;
  gs: KvmSegment; ss: KvmSegment; tr: KvmSegment; ldt: KvmSegment;
  gdt: KvmDtable; idt: KvmDtable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint; apic_base: bigint;
  interrupt_bitmap: [bigint, bigint, bigint, bigint];
}

export const KVM_SREGS_SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export const KVM_SREGS_CONTROL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apic_base'] as const;

/** The parts of struct kvm_fpu that boot sets (the register files start zeroed). */
export interface KvmFpu {
  fcw: number;
  fsw: number;
  ftwx: number;
  last_opcode: number;
  last_ip: bigint;
  last_dp: bigint;
  mxcsr: number;
}

/** struct kvm_cpuid_entry2 */
export interface KvmCpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** KVM_CPUID_FLAG_* */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/** struct kvm_msr_entry */
export interface KvmMsrEntry {
  index: number;
  data: bigint;
}
