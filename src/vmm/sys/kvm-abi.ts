/**
 * Byte layouts of the KVM structures (x86_64), with encoders and decoders between them and the plain objects of
 * kvm-types.ts. Offsets are checked against linux/kvm.h by a unit test that compiles a C program.
 */
import { SIZEOF } from './ioctl-numbers.ts';
import {
  KVM_REGS_FIELDS, KVM_SREGS_CONTROL, KVM_SREGS_SEGMENTS,
  type KvmCpuidEntry, type KvmDtable, type KvmFpu, type KvmMsrEntry, type KvmRegs, type KvmSegment, type KvmSregs,
} from './kvm-types.ts';

const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

export function encodeRegs(r: KvmRegs): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_regs);
  const v = dv(b);
  KVM_REGS_FIELDS.forEach((f, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, r[f]), true));
  return b;
}

export function decodeRegs(b: Uint8Array): KvmRegs {
  const v = dv(b);
  const r = {} as Record<(typeof KVM_REGS_FIELDS)[number], bigint>;
  KVM_REGS_FIELDS.forEach((f, i) => { r[f] = v.getBigUint64(i * 8, true); });
  return r;
}

export const SEGMENT_SIZE = 24;
export const DTABLE_SIZE = 16;
export const SREGS_DTABLES_OFFSET = 8 * SEGMENT_SIZE;
export const SREGS_CONTROL_OFFSET = SREGS_DTABLES_OFFSET + 2 * DTABLE_SIZE;
export const SREGS_BITMAP_OFFSET = SREGS_CONTROL_OFFSET + 7 * 8;

function encodeSegment(v: DataView, off: number, s: KvmSegment): void {
  v.setBigUint64(off, BigInt.asUintN(64, s.base), true);
  v.setUint32(off + 8, s.limit >>> 0, true);
  v.setUint16(off + 12, s.selector, true);
  const bytes = [s.type, s.present, s.dpl, s.db, s.s, s.l, s.g, s.avl, s.unusable];
  bytes.forEach((x, i) => v.setUint8(off + 14 + i, x));
}

function decodeSegment(v: DataView, off: number): KvmSegment {
  const u8 = (i: number): number => v.getUint8(off + 14 + i);
  return {
    base: v.getBigUint64(off, true), limit: v.getUint32(off + 8, true), selector: v.getUint16(off + 12, true),
    type: u8(0), present: u8(1), dpl: u8(2), db: u8(3), s: u8(4), l: u8(5), g: u8(6), avl: u8(7), unusable: u8(8),
  };
}

function encodeDtable(v: DataView, off: number, d: KvmDtable): void {
  v.setBigUint64(off, BigInt.asUintN(64, d.base), true);
  v.setUint16(off + 8, d.limit, true);
}

function decodeDtable(v: DataView, off: number): KvmDtable {
  return { base: v.getBigUint64(off, true), limit: v.getUint16(off + 8, true) };
}

export function encodeSregs(s: KvmSregs): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_sregs);
  const v = dv(b);
  KVM_SREGS_SEGMENTS.forEach((name, i) => encodeSegment(v, i * SEGMENT_SIZE, s[name]));
  encodeDtable(v, SREGS_DTABLES_OFFSET, s.gdt);
  encodeDtable(v, SREGS_DTABLES_OFFSET + DTABLE_SIZE, s.idt);
  KVM_SREGS_CONTROL.forEach((name, i) => v.setBigUint64(SREGS_CONTROL_OFFSET + i * 8, BigInt.asUintN(64, s[name]), true));
  s.interrupt_bitmap.forEach((w, i) => v.setBigUint64(SREGS_BITMAP_OFFSET + i * 8, w, true));
  return b;
}

export function decodeSregs(b: Uint8Array): KvmSregs {
  const v = dv(b);
  const seg = (i: number): KvmSegment => decodeSegment(v, i * SEGMENT_SIZE);
  const cr = (i: number): bigint => v.getBigUint64(SREGS_CONTROL_OFFSET + i * 8, true);
  const bm = (i: number): bigint => v.getBigUint64(SREGS_BITMAP_OFFSET + i * 8, true);
  return {
    cs: seg(0), ds: seg(1), es: seg(2), fs: seg(3), gs: seg(4), ss: seg(5), tr: seg(6), ldt: seg(7),
    gdt: decodeDtable(v, SREGS_DTABLES_OFFSET), idt: decodeDtable(v, SREGS_DTABLES_OFFSET + DTABLE_SIZE),
    cr0: cr(0), cr2: cr(1), cr3: cr(2), cr4: cr(3), cr8: cr(4), efer: cr(5), apic_base: cr(6),
    interrupt_bitmap: [bm(0), bm(1), bm(2), bm(3)],
  };
}

/** struct kvm_fpu: fpr[8][16] at 0, then fcw, fsw, ftwx, pad, last_opcode, last_ip, last_dp, xmm[16][16], mxcsr. */
export const FPU_OFFSETS = { fcw: 128, fsw: 130, ftwx: 132, last_opcode: 134, last_ip: 136, last_dp: 144, xmm: 152, mxcsr: 408 } as const;

export function encodeFpu(f: KvmFpu): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_fpu);
  const v = dv(b);
  v.setUint16(FPU_OFFSETS.fcw, f.fcw, true);
  v.setUint16(FPU_OFFSETS.fsw, f.fsw, true);
  v.setUint8(FPU_OFFSETS.ftwx, f.ftwx);
  v.setUint16(FPU_OFFSETS.last_opcode, f.last_opcode, true);
  v.setBigUint64(FPU_OFFSETS.last_ip, f.last_ip, true);
  v.setBigUint64(FPU_OFFSETS.last_dp, f.last_dp, true);
  v.setUint32(FPU_OFFSETS.mxcsr, f.mxcsr, true);
  return b;
}

export function decodeFpu(b: Uint8Array): KvmFpu {
  const v = dv(b);
  return {
    fcw: v.getUint16(FPU_OFFSETS.fcw, true), fsw: v.getUint16(FPU_OFFSETS.fsw, true), ftwx: v.getUint8(FPU_OFFSETS.ftwx),
    last_opcode: v.getUint16(FPU_OFFSETS.last_opcode, true), last_ip: v.getBigUint64(FPU_OFFSETS.last_ip, true),
    last_dp: v.getBigUint64(FPU_OFFSETS.last_dp, true), mxcsr: v.getUint32(FPU_OFFSETS.mxcsr, true),
  };
}

export const CPUID_ENTRY_SIZE = 40;
/** Room KVM_GET_SUPPORTED_CPUID may fill (KVM's own maximum is 256). */
export const MAX_CPUID_ENTRIES = 256;

/** A kvm_cpuid2 buffer. With `capacity` and no entries it is an empty buffer for KVM to fill. */
export function encodeCpuid(entries: readonly KvmCpuidEntry[], capacity = entries.length): Uint8Array {
  const n = Math.max(capacity, entries.length);
  const b = new Uint8Array(SIZEOF.kvm_cpuid2 + n * CPUID_ENTRY_SIZE);
  const v = dv(b);
  v.setUint32(0, entries.length > 0 ? entries.length : n, true);
  entries.forEach((e, i) => {
    const o = SIZEOF.kvm_cpuid2 + i * CPUID_ENTRY_SIZE;
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx].forEach((x, j) => v.setUint32(o + j * 4, x >>> 0, true));
  });
  return b;
}

export function decodeCpuid(b: Uint8Array): KvmCpuidEntry[] {
  const v = dv(b);
  const n = v.getUint32(0, true);
  const out: KvmCpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = SIZEOF.kvm_cpuid2 + i * CPUID_ENTRY_SIZE;
    const u = (j: number): number => v.getUint32(o + j * 4, true);
    out.push({ function: u(0), index: u(1), flags: u(2), eax: u(3), ebx: u(4), ecx: u(5), edx: u(6) });
  }
  return out;
}

export const MSR_ENTRY_SIZE = 16;

export function encodeMsrs(entries: readonly KvmMsrEntry[]): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_msrs + entries.length * MSR_ENTRY_SIZE);
  const v = dv(b);
  v.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = SIZEOF.kvm_msrs + i * MSR_ENTRY_SIZE;
    v.setUint32(o, e.index >>> 0, true);
    v.setBigUint64(o + 8, BigInt.asUintN(64, e.data), true);
  });
  return b;
}

export function decodeMsrs(b: Uint8Array): KvmMsrEntry[] {
  const v = dv(b);
  const n = v.getUint32(0, true);
  const out: KvmMsrEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = SIZEOF.kvm_msrs + i * MSR_ENTRY_SIZE;
    out.push({ index: v.getUint32(o, true), data: v.getBigUint64(o + 8, true) });
  }
  return out;
}

export interface UserMemoryRegion {
  slot: number;
  flags: number;
  guestPhysAddr: number;
  memorySize: number;
  userspaceAddr: bigint;
}

export function encodeUserMemoryRegion(r: UserMemoryRegion): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_userspace_memory_region);
  const v = dv(b);
  v.setUint32(0, r.slot, true);
  v.setUint32(4, r.flags, true);
  v.setBigUint64(8, BigInt(r.guestPhysAddr), true);
  v.setBigUint64(16, BigInt(r.memorySize), true);
  v.setBigUint64(24, r.userspaceAddr, true);
  return b;
}

export function encodePitConfig(flags: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_pit_config);
  dv(b).setUint32(0, flags, true);
  return b;
}

export function encodeIrqLevel(irq: number, level: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_irq_level);
  const v = dv(b);
  v.setUint32(0, irq, true);
  v.setUint32(4, level, true);
  return b;
}

export const KVM_IRQFD_FLAG_DEASSIGN = 1;
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

/** struct kvm_irqfd: an eventfd whose writes raise `gsi` on the in-kernel irqchip. */
export function encodeIrqfd(fd: number, gsi: number, flags = 0): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_irqfd);
  const v = dv(b);
  v.setUint32(0, fd, true);
  v.setUint32(4, gsi, true);
  v.setUint32(8, flags, true);
  return b;
}

export interface Ioeventfd {
  readonly addr: number;
  readonly len: number;
  readonly fd: number;
  /** Only writes of this value signal the eventfd (KVM_IOEVENTFD_FLAG_DATAMATCH), or null for any. */
  readonly datamatch: number | null;
  readonly deassign?: boolean;
}

/** struct kvm_ioeventfd: an MMIO write KVM turns into an eventfd signal, without an exit to user space. */
export function encodeIoeventfd(e: Ioeventfd): Uint8Array {
  const b = new Uint8Array(SIZEOF.kvm_ioeventfd);
  const v = dv(b);
  v.setBigUint64(0, BigInt(e.datamatch ?? 0), true);
  v.setBigUint64(8, BigInt(e.addr), true);
  v.setUint32(16, e.len, true);
  v.setInt32(20, e.fd, true);
  v.setUint32(24, (e.datamatch === null ? 0 : KVM_IOEVENTFD_FLAG_DATAMATCH) | (e.deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0), true);
  return b;
}

/** The LAPIC register page: 32-bit registers at their MMIO offsets. */
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;
export const APIC_MODE_NMI = 0x4;
export const APIC_MODE_EXTINT = 0x7;

export function setLapicLintModes(lapic: Uint8Array): void {
  const v = dv(lapic);
  const setMode = (reg: number, mode: number): void => {
    const old = v.getUint32(reg, true);
    v.setUint32(reg, (old & ~0x700) | (mode << 8), true);
  };
  setMode(APIC_LVT0, APIC_MODE_EXTINT);
  setMode(APIC_LVT1, APIC_MODE_NMI);
}
