/**
 * The virtio-mmio (version 2, modern only) register window of one device, as a vCPU thread sees it. Register
 * semantics only: the queues are worked by the device's own thread, told through `VirtioTransportEvents`.
 *
 * Every guest write is checked: registers are 32-bit and aligned, read-only registers ignore writes, queue
 * registers are frozen while the queue is ready, status bits only accumulate (0 resets), and FEATURES_OK sticks
 * only for a subset of what the device offers that includes VERSION_1. Refused accesses are counted.
 */
import type { BusDevice } from '../bus.ts';
import {
  S_DEVICE_FEATURES_SEL, S_DRIVER_FEATURES_HI, S_DRIVER_FEATURES_LO, S_DRIVER_FEATURES_SEL, S_EPOCH, S_INTERRUPT_STATUS,
  S_QUEUE_SEL, S_STATUS, Q_AVAIL_HI, Q_AVAIL_LO, Q_DESC_HI, Q_DESC_LO, Q_NUM, Q_READY, Q_USED_HI, Q_USED_LO, TransportState,
} from './transport-state.ts';
import * as V from './virtio-abi.ts';

/** What a device shows the driver; fixed for the device's life. */
export interface VirtioDeviceInfo {
  readonly name: string;
  readonly deviceId: number;
  /** Offered features (VERSION_1 is added). */
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  /** The device configuration space (read-only to the driver). */
  readonly config: Uint8Array;
}

/** What the transport tells the device's thread. Called on the vCPU thread that made the access. */
export interface VirtioTransportEvents {
  /** A queue notification that did not go through an ioeventfd. */
  notify(queue: number): void;
  /** The driver set DRIVER_OK: the queues are ready to work. */
  activate(): void;
  /** The driver reset the device: stop using its queues. */
  reset(): void;
}

export interface TransportCounters {
  /** Accesses the guest should not have made (bad width, read-only register, out-of-order status …). */
  refused: number;
}

const QUEUE_ADDRESS_FIELDS: Readonly<Record<number, number>> = {
  [V.VIRTIO_MMIO_QUEUE_DESC_LOW]: Q_DESC_LO,
  [V.VIRTIO_MMIO_QUEUE_DESC_HIGH]: Q_DESC_HI,
  [V.VIRTIO_MMIO_QUEUE_AVAIL_LOW]: Q_AVAIL_LO,
  [V.VIRTIO_MMIO_QUEUE_AVAIL_HIGH]: Q_AVAIL_HI,
  [V.VIRTIO_MMIO_QUEUE_USED_LOW]: Q_USED_LO,
  [V.VIRTIO_MMIO_QUEUE_USED_HIGH]: Q_USED_HI,
};

export function offeredFeatures(info: VirtioDeviceInfo): bigint {
  return info.features | (1n << BigInt(V.VIRTIO_F_VERSION_1));
}

export class VirtioMmioTransport implements BusDevice {
  readonly name: string;
  readonly counters: TransportCounters = { refused: 0 };
  readonly #info: VirtioDeviceInfo;
  readonly #state: TransportState;
  readonly #events: VirtioTransportEvents;
  readonly #features: bigint;

  constructor(info: VirtioDeviceInfo, shared: SharedArrayBuffer, events: VirtioTransportEvents) {
    this.name = info.name;
    this.#info = info;
    this.#state = new TransportState(shared, info.queueMaxSizes.length);
    this.#events = events;
    this.#features = offeredFeatures(info);
  }

  read(offset: number, data: Uint8Array): void {
    if (offset >= V.VIRTIO_MMIO_CONFIG) {
      this.#readConfig(offset - V.VIRTIO_MMIO_CONFIG, data);
      return;
    }
    data.fill(0);
    if (data.length !== 4 || offset % 4 !== 0) {
      this.counters.refused++;
      return;
    }
    new DataView(data.buffer, data.byteOffset, 4).setUint32(0, this.#register(offset) >>> 0, true);
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length !== 4 || offset % 4 !== 0 || offset >= V.VIRTIO_MMIO_CONFIG) {
      // The configuration spaces we offer have no field the driver may write.
      this.counters.refused++;
      return;
    }
    const value = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    if (offset === V.VIRTIO_MMIO_QUEUE_NOTIFY) {
      if (value < this.#state.queueCount) this.#events.notify(value);
      else this.counters.refused++;
      return;
    }
    const r = this.#state.lock.with(() => this.#writeRegister(offset, value));
    if (r === false) this.counters.refused++;
    else if (r === 'activate') this.#events.activate();
    else if (r === 'reset') this.#events.reset();
  }

  #readConfig(offset: number, data: Uint8Array): void {
    const config = this.#info.config;
    for (let i = 0; i < data.length; i++) data[i] = config[offset + i] ?? 0;
  }

  #queue(): number | null {
    const q = this.#state.get(S_QUEUE_SEL);
    return q < this.#state.queueCount ? q : null;
  }

  #register(offset: number): number {
    const s = this.#state;
    const q = this.#queue();
    switch (offset) {
      case V.VIRTIO_MMIO_MAGIC_VALUE: return V.VIRTIO_MMIO_MAGIC;
      case V.VIRTIO_MMIO_VERSION: return V.VIRTIO_MMIO_VERSION_MODERN;
      case V.VIRTIO_MMIO_DEVICE_ID: return this.#info.deviceId;
      case V.VIRTIO_MMIO_VENDOR_ID: return 0;
      case V.VIRTIO_MMIO_DEVICE_FEATURES: {
        const sel = s.get(S_DEVICE_FEATURES_SEL);
        return sel > 1 ? 0 : Number((this.#features >> BigInt(32 * sel)) & 0xffffffffn);
      }
      case V.VIRTIO_MMIO_QUEUE_NUM_MAX: return q === null ? 0 : this.#info.queueMaxSizes[q]!;
      case V.VIRTIO_MMIO_QUEUE_READY: return q === null ? 0 : s.get(s.queueWord(q, Q_READY));
      case V.VIRTIO_MMIO_INTERRUPT_STATUS: return s.get(S_INTERRUPT_STATUS);
      case V.VIRTIO_MMIO_STATUS: return s.get(S_STATUS);
      case V.VIRTIO_MMIO_SHM_LEN_LOW:
      case V.VIRTIO_MMIO_SHM_LEN_HIGH: return 0xffffffff; // no shared memory regions
      case V.VIRTIO_MMIO_CONFIG_GENERATION: return 0; // the configuration never changes
      default: {
        // Write-only and queue address registers read as 0 (Linux does not read them back).
        return 0;
      }
    }
  }

  /** Returns false for a refused write, or the event the write causes. Runs under the lock. */
  #writeRegister(offset: number, value: number): boolean | 'activate' | 'reset' {
    const s = this.#state;
    const status = s.get(S_STATUS);
    switch (offset) {
      case V.VIRTIO_MMIO_DEVICE_FEATURES_SEL: s.set(S_DEVICE_FEATURES_SEL, value); return true;
      case V.VIRTIO_MMIO_DRIVER_FEATURES_SEL: s.set(S_DRIVER_FEATURES_SEL, value); return true;
      case V.VIRTIO_MMIO_DRIVER_FEATURES: {
        const sel = s.get(S_DRIVER_FEATURES_SEL);
        if ((status & V.VIRTIO_CONFIG_S_DRIVER) === 0 || (status & V.VIRTIO_CONFIG_S_FEATURES_OK) !== 0 || sel > 1) return false;
        s.set(sel === 0 ? S_DRIVER_FEATURES_LO : S_DRIVER_FEATURES_HI, value);
        return true;
      }
      case V.VIRTIO_MMIO_QUEUE_SEL: s.set(S_QUEUE_SEL, value); return true;
      case V.VIRTIO_MMIO_INTERRUPT_ACK: Atomics.and(s.words, S_INTERRUPT_STATUS, ~value); return true;
      case V.VIRTIO_MMIO_STATUS: return this.#writeStatus(status, value);
      default: return this.#writeQueueRegister(offset, value, status);
    }
  }

  #writeQueueRegister(offset: number, value: number, status: number): boolean {
    const s = this.#state;
    const q = this.#queue();
    const field = offset === V.VIRTIO_MMIO_QUEUE_NUM ? Q_NUM : offset === V.VIRTIO_MMIO_QUEUE_READY ? Q_READY : QUEUE_ADDRESS_FIELDS[offset];
    if (field === undefined || q === null || (status & V.VIRTIO_CONFIG_S_DRIVER_OK) !== 0) return false;
    const ready = s.get(s.queueWord(q, Q_READY)) !== 0;
    if (field === Q_READY) {
      s.set(s.queueWord(q, Q_READY), value === 0 ? 0 : 1);
      return value === 0 || value === 1;
    }
    if (ready) return false;
    if (field === Q_NUM && (value === 0 || value > this.#info.queueMaxSizes[q]!)) return false;
    s.set(s.queueWord(q, field), value);
    return true;
  }

  #writeStatus(status: number, value: number): boolean | 'activate' | 'reset' {
    const s = this.#state;
    if (value === 0) {
      this.#reset();
      return 'reset';
    }
    if ((value & status) !== status || (value & ~0xff) !== 0) return false; // bits are only ever added
    let next = value;
    if ((value & V.VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (status & V.VIRTIO_CONFIG_S_FEATURES_OK) === 0 && !this.#featuresAcceptable()) {
      next &= ~V.VIRTIO_CONFIG_S_FEATURES_OK; // the driver reads it back and gives up
    }
    const activating = (next & V.VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (status & V.VIRTIO_CONFIG_S_DRIVER_OK) === 0;
    if (activating && (next & V.VIRTIO_CONFIG_S_FEATURES_OK) === 0) return false;
    s.set(S_STATUS, next);
    return activating ? 'activate' : next === value;
  }

  #featuresAcceptable(): boolean {
    const s = this.#state;
    const wanted = (BigInt(s.get(S_DRIVER_FEATURES_HI)) << 32n) | BigInt(s.get(S_DRIVER_FEATURES_LO));
    return (wanted & ~this.#features) === 0n && (wanted & (1n << BigInt(V.VIRTIO_F_VERSION_1))) !== 0n;
  }

  #reset(): void {
    const s = this.#state;
    for (const w of [S_STATUS, S_DEVICE_FEATURES_SEL, S_DRIVER_FEATURES_SEL, S_DRIVER_FEATURES_LO, S_DRIVER_FEATURES_HI, S_QUEUE_SEL, S_INTERRUPT_STATUS]) s.set(w, 0);
    for (let q = 0; q < s.queueCount; q++) {
      for (const f of [Q_READY, Q_DESC_LO, Q_DESC_HI, Q_AVAIL_LO, Q_AVAIL_HI, Q_USED_LO, Q_USED_HI]) s.set(s.queueWord(q, f), 0);
      s.set(s.queueWord(q, Q_NUM), this.#info.queueMaxSizes[q]!);
    }
    s.set(S_EPOCH, s.get(S_EPOCH) + 1);
  }

  /** Puts the registers in their reset state; called once when the device is created. */
  static initialise(info: VirtioDeviceInfo, shared: SharedArrayBuffer): void {
    const s = new TransportState(shared, info.queueMaxSizes.length);
    for (let q = 0; q < s.queueCount; q++) s.set(s.queueWord(q, Q_NUM), info.queueMaxSizes[q]!);
  }
}

