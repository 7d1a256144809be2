/**
 * struct kvm_run, the page shared between KVM and a vCPU thread: offsets and a reader for the exit data.
 */
export const KVM_RUN_OFFSETS = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  /** Start of the exit union. */
  exit: 32,
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  fail_entry_reason: 32,
  fail_entry_cpu: 40,
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  system_event_type: 32,
  system_event_ndata: 36,
  system_event_data: 40,
  hw_exit_reason: 32,
} as const;

export const KVM_EXIT = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7, SHUTDOWN: 8,
  FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, NMI: 16, INTERNAL_ERROR: 17, SYSTEM_EVENT: 24,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;
export const KVM_INTERNAL_ERROR = { EMULATION: 1, SIMUL_EX: 2, DELIVERY_EV: 3, UNEXPECTED_EXIT_REASON: 4 } as const;

export function exitReasonName(reason: number): string {
  for (const [k, v] of Object.entries(KVM_EXIT)) if (v === reason) return `KVM_EXIT_${k}`;
  return `KVM_EXIT_${reason}`;
}

/** A typed window on one vCPU's kvm_run page. `bytes` covers the whole mapping (the PIO data lives inside it). */
export class KvmRun {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get exitReason(): number {
    return this.view.getUint32(KVM_RUN_OFFSETS.exit_reason, true);
  }

  set immediateExit(on: boolean) {
    this.view.setUint8(KVM_RUN_OFFSETS.immediate_exit, on ? 1 : 0);
  }

  u8(off: number): number { return this.view.getUint8(off); }
  u16(off: number): number { return this.view.getUint16(off, true); }
  u32(off: number): number { return this.view.getUint32(off, true); }
  u64(off: number): bigint { return this.view.getBigUint64(off, true); }
}
