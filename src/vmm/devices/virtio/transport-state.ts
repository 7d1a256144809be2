/**
 * The state of one virtio-mmio device that the vCPU threads (register accesses) and the device's own thread
 * (queues, interrupts) share: 32-bit words in a SharedArrayBuffer, changed under a shared lock.
 */
import { SharedLock } from '../shared-lock.ts';
import type { QueueLayout } from './queue.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_MMIO_INT_CONFIG } from './virtio-abi.ts';

export const S_LOCK = 0;
export const S_STATUS = 1;
export const S_DEVICE_FEATURES_SEL = 2;
export const S_DRIVER_FEATURES_SEL = 3;
export const S_DRIVER_FEATURES_LO = 4;
export const S_DRIVER_FEATURES_HI = 5;
export const S_QUEUE_SEL = 6;
export const S_INTERRUPT_STATUS = 7;
/** Counts resets, so that the device thread can tell that the queues it holds are gone. */
export const S_EPOCH = 8;
const S_QUEUES = 16;
export const Q_NUM = 0;
export const Q_READY = 1;
export const Q_DESC_LO = 2;
export const Q_DESC_HI = 3;
export const Q_AVAIL_LO = 4;
export const Q_AVAIL_HI = 5;
export const Q_USED_LO = 6;
export const Q_USED_HI = 7;
const Q_WORDS = 8;

/** The most queues one device may have (vsock has 3, net 2, blk 1). */
export const MAX_QUEUES = 8;

export function createTransportShared(): SharedArrayBuffer {
  return new SharedArrayBuffer((S_QUEUES + Q_WORDS * MAX_QUEUES) * 4);
}

/** What the device thread takes from the registers when the driver sets DRIVER_OK. */
export interface ActiveConfig {
  readonly epoch: number;
  readonly features: bigint;
  /** One entry per queue the device has; null for a queue the driver did not make ready. */
  readonly queues: readonly (QueueLayout | null)[];
}

const u64 = (lo: number, hi: number): number => (hi >>> 0) * 2 ** 32 + (lo >>> 0);

export class TransportState {
  readonly words: Int32Array;
  readonly lock: SharedLock;
  readonly queueCount: number;

  constructor(shared: SharedArrayBuffer, queueCount: number) {
    if (queueCount < 1 || queueCount > MAX_QUEUES) throw new RangeError(`a virtio device has 1 to ${MAX_QUEUES} queues, not ${queueCount}`);
    this.words = new Int32Array(shared);
    this.lock = new SharedLock(this.words, S_LOCK);
    this.queueCount = queueCount;
  }

  get(word: number): number {
    return Atomics.load(this.words, word) >>> 0;
  }

  set(word: number, value: number): void {
    Atomics.store(this.words, word, value | 0);
  }

  queueWord(queue: number, field: number): number {
    return S_QUEUES + Q_WORDS * queue + field;
  }

  /** The driver's view at DRIVER_OK; null once a reset has come (or the driver never got that far). */
  active(): ActiveConfig | null {
    return this.lock.with(() => {
      if ((this.get(S_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK) === 0) return null;
      const queues: (QueueLayout | null)[] = [];
      for (let q = 0; q < this.queueCount; q++) {
        const w = (f: number): number => this.get(this.queueWord(q, f));
        queues.push(w(Q_READY) === 0 ? null : {
          size: w(Q_NUM),
          descAddr: u64(w(Q_DESC_LO), w(Q_DESC_HI)),
          availAddr: u64(w(Q_AVAIL_LO), w(Q_AVAIL_HI)),
          usedAddr: u64(w(Q_USED_LO), w(Q_USED_HI)),
        });
      }
      const features = (BigInt(this.get(S_DRIVER_FEATURES_HI)) << 32n) | BigInt(this.get(S_DRIVER_FEATURES_LO));
      return { epoch: this.get(S_EPOCH), features, queues };
    });
  }

  get epoch(): number {
    return this.get(S_EPOCH);
  }

  /** Sets interrupt status bits; the caller then raises the device's interrupt line. */
  raise(bits: number): void {
    Atomics.or(this.words, S_INTERRUPT_STATUS, bits);
  }

  /**
   * The device cannot go on until the driver resets it (a broken ring). Returns false when a reset already
   * came since `epoch`, so the failure belongs to a configuration that no longer exists.
   */
  needsReset(epoch: number): boolean {
    return this.lock.with(() => {
      if (this.get(S_EPOCH) !== epoch) return false;
      this.set(S_STATUS, this.get(S_STATUS) | VIRTIO_CONFIG_S_NEEDS_RESET);
      this.raise(VIRTIO_MMIO_INT_CONFIG);
      return true;
    });
  }
}
