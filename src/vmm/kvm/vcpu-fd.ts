import * as sys from '../sys/index.ts';
import type { KvmCpuidEntry, KvmFpu, KvmMsrEntry, KvmRegs, KvmSregs } from '../sys/index.ts';
import { ErrorCodes, MatchlockError } from '../../errors.ts';

/** One vCPU's register state. KVM_RUN itself happens on the vCPU's own thread (vcpu/vcpu-thread.ts). */
export class VcpuFd {
  readonly fd: number;
  readonly index: number;

  constructor(fd: number, index: number) {
    this.fd = fd;
    this.index = index;
  }

  setCpuid(entries: readonly KvmCpuidEntry[]): void {
    sys.ioctlBuf(this.fd, sys.KVM_SET_CPUID2, 'KVM_SET_CPUID2', sys.encodeCpuid(entries));
  }

  setMsrs(entries: readonly KvmMsrEntry[]): void {
    const n = sys.ioctlBuf(this.fd, sys.KVM_SET_MSRS, 'KVM_SET_MSRS', sys.encodeMsrs(entries));
    if (n !== entries.length) {
      const failed = entries[n];
      throw new MatchlockError(ErrorCodes.VCPU, `KVM refused MSR 0x${failed?.index.toString(16)} on vCPU ${this.index}`,
        { vcpu: this.index, msr: failed?.index });
    }
  }

  getRegs(): KvmRegs {
    const buf = new Uint8Array(sys.SIZEOF.kvm_regs);
    sys.ioctlBuf(this.fd, sys.KVM_GET_REGS, 'KVM_GET_REGS', buf);
    return sys.decodeRegs(buf);
  }

  setRegs(regs: KvmRegs): void {
    sys.ioctlBuf(this.fd, sys.KVM_SET_REGS, 'KVM_SET_REGS', sys.encodeRegs(regs));
  }

  getSregs(): KvmSregs {
    const buf = new Uint8Array(sys.SIZEOF.kvm_sregs);
    sys.ioctlBuf(this.fd, sys.KVM_GET_SREGS, 'KVM_GET_SREGS', buf);
    return sys.decodeSregs(buf);
  }

  setSregs(sregs: KvmSregs): void {
    sys.ioctlBuf(this.fd, sys.KVM_SET_SREGS, 'KVM_SET_SREGS', sys.encodeSregs(sregs));
  }

  setFpu(fpu: KvmFpu): void {
    sys.ioctlBuf(this.fd, sys.KVM_SET_FPU, 'KVM_SET_FPU', sys.encodeFpu(fpu));
  }

  /** LINT0 as ExtINT and LINT1 as NMI, as a PC's local APIC is wired. */
  setupLapicLints(): void {
    const lapic = new Uint8Array(sys.SIZEOF.kvm_lapic_state);
    sys.ioctlBuf(this.fd, sys.KVM_GET_LAPIC, 'KVM_GET_LAPIC', lapic);
    sys.setLapicLintModes(lapic);
    sys.ioctlBuf(this.fd, sys.KVM_SET_LAPIC, 'KVM_SET_LAPIC', lapic);
  }

  /** The TSC frequency KVM gives this vCPU, in kHz, or null when KVM cannot tell. */
  tscKhz(): number | null {
    try {
      return sys.ioctlInt(this.fd, sys.KVM_GET_TSC_KHZ, 'KVM_GET_TSC_KHZ') || null;
    } catch {
      return null;
    }
  }

  close(): void {
    sys.closeFd(this.fd);
  }
}
