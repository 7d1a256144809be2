/**
 * ioctl request numbers, computed like asm-generic/ioctl.h and checked against the C headers in a unit test.
 */
const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, type: number, nr: number, size: number): number {
  // Unsigned 32-bit result: the direction bits reach bit 31.
  return ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}
export const _IO = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, type, nr, size);

export const KVMIO = 0xae;

/** Struct sizes used in request numbers (x86_64). */
export const SIZEOF = {
  kvm_cpuid2: 8,
  kvm_msr_list: 4,
  kvm_msrs: 8,
  kvm_userspace_memory_region: 32,
  kvm_irq_level: 8,
  kvm_pit_config: 64,
  kvm_regs: 144,
  kvm_sregs: 312,
  kvm_fpu: 416,
  kvm_lapic_state: 1024,
  kvm_mp_state: 4,
  kvm_irqfd: 32,
  kvm_ioeventfd: 64,
} as const;

export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_GET_MSR_INDEX_LIST = _IOWR(KVMIO, 0x02, SIZEOF.kvm_msr_list);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, SIZEOF.kvm_cpuid2);
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, SIZEOF.kvm_userspace_memory_region);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, SIZEOF.kvm_irq_level);
export const KVM_IRQFD = _IOW(KVMIO, 0x76, SIZEOF.kvm_irqfd);
export const KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, SIZEOF.kvm_pit_config);
export const KVM_IOEVENTFD = _IOW(KVMIO, 0x79, SIZEOF.kvm_ioeventfd);
export const KVM_RUN = _IO(KVMIO, 0x80);
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, SIZEOF.kvm_regs);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, SIZEOF.kvm_regs);
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, SIZEOF.kvm_sregs);
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, SIZEOF.kvm_sregs);
export const KVM_GET_MSRS = _IOWR(KVMIO, 0x88, SIZEOF.kvm_msrs);
export const KVM_SET_MSRS = _IOW(KVMIO, 0x89, SIZEOF.kvm_msrs);
export const KVM_GET_FPU = _IOR(KVMIO, 0x8c, SIZEOF.kvm_fpu);
export const KVM_SET_FPU = _IOW(KVMIO, 0x8d, SIZEOF.kvm_fpu);
export const KVM_GET_LAPIC = _IOR(KVMIO, 0x8e, SIZEOF.kvm_lapic_state);
export const KVM_SET_LAPIC = _IOW(KVMIO, 0x8f, SIZEOF.kvm_lapic_state);
export const KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, SIZEOF.kvm_cpuid2);
export const KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, SIZEOF.kvm_mp_state);
export const KVM_SET_TSC_KHZ = _IO(KVMIO, 0xa2);
export const KVM_GET_TSC_KHZ = _IO(KVMIO, 0xa3);

/** KVM_CAP_* used at start-up. */
export const KVM_CAP = {
  IRQCHIP: 0,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  MP_STATE: 14,
  IRQFD: 32,
  PIT2: 33,
  PIT_STATE2: 35,
  IOEVENTFD: 36,
  ADJUST_CLOCK: 39,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  XSAVE: 55,
  XCRS: 56,
  GET_TSC_KHZ: 61,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
} as const;
export type KvmCapName = keyof typeof KVM_CAP;

/** Capabilities the VMM refuses to start without. */
export const REQUIRED_CAPS: readonly KvmCapName[] = [
  'IRQCHIP', 'USER_MEMORY', 'SET_TSS_ADDR', 'EXT_CPUID', 'PIT2', 'IOEVENTFD', 'IRQFD', 'MP_STATE', 'IMMEDIATE_EXIT',
];

export const KVM_API_VERSION = 12;
export const KVM_PIT_SPEAKER_DUMMY = 1;
