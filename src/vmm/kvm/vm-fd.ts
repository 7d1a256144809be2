import * as sys from '../sys/index.ts';
import { VcpuFd } from './vcpu-fd.ts';

/** One VM: memory slots, the in-kernel interrupt controllers and PIT, and its vCPUs. */
export class VmFd {
  readonly fd: number;
  readonly vcpuMmapSize: number;

  constructor(fd: number, vcpuMmapSize: number) {
    this.fd = fd;
    this.vcpuMmapSize = vcpuMmapSize;
  }

  setTssAddr(addr: number): void {
    sys.ioctlInt(this.fd, sys.KVM_SET_TSS_ADDR, 'KVM_SET_TSS_ADDR', addr);
  }

  /** In-kernel PIC, IOAPIC and LAPICs. Must come before the vCPUs. */
  createIrqchip(): void {
    sys.ioctlInt(this.fd, sys.KVM_CREATE_IRQCHIP, 'KVM_CREATE_IRQCHIP', 0);
  }

  /** In-kernel PIT; port 0x61 writes stay in the kernel. */
  createPit2(): void {
    sys.ioctlBuf(this.fd, sys.KVM_CREATE_PIT2, 'KVM_CREATE_PIT2', sys.encodePitConfig(sys.KVM_PIT_SPEAKER_DUMMY));
  }

  setUserMemoryRegion(slot: number, gpa: number, size: number, hostAddress: bigint): void {
    const region = sys.encodeUserMemoryRegion({ slot, flags: 0, guestPhysAddr: gpa, memorySize: size, userspaceAddr: hostAddress });
    sys.ioctlBuf(this.fd, sys.KVM_SET_USER_MEMORY_REGION, 'KVM_SET_USER_MEMORY_REGION', region);
  }

  /** Turns 4-byte MMIO writes of `datamatch` at `addr` into signals on `fd`, without an exit to user space. */
  registerIoeventfd(addr: number, fd: number, datamatch: number): void {
    sys.ioctlBuf(this.fd, sys.KVM_IOEVENTFD, 'KVM_IOEVENTFD', sys.encodeIoeventfd({ addr, len: 4, fd, datamatch }));
  }

  /** Makes every signal on `fd` an edge on interrupt line `gsi`. */
  registerIrqfd(fd: number, gsi: number): void {
    sys.ioctlBuf(this.fd, sys.KVM_IRQFD, 'KVM_IRQFD', sys.encodeIrqfd(fd, gsi));
  }

  /** Sets an interrupt line of the in-kernel irqchip. */
  irqLine(irq: number, level: 0 | 1): void {
    sys.ioctlBuf(this.fd, sys.KVM_IRQ_LINE, 'KVM_IRQ_LINE', sys.encodeIrqLevel(irq, level));
  }

  /** Pulses an edge-triggered line (ISA devices such as the UART and the i8042). */
  pulseIrq(irq: number): void {
    this.irqLine(irq, 1);
    this.irqLine(irq, 0);
  }

  createVcpu(index: number): VcpuFd {
    const fd = sys.ioctlInt(this.fd, sys.KVM_CREATE_VCPU, 'KVM_CREATE_VCPU', index);
    return new VcpuFd(fd, index);
  }

  close(): void {
    sys.closeFd(this.fd);
  }
}
