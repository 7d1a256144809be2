/**
 * What a virtio device does on its own thread, kvmtool-style: a small table of operations the device thread
 * calls. The transport and the thread's event loop are the same for every device.
 */
import type { SplitQueue } from './queue.ts';

export interface VirtioBackend {
  /**
   * The driver set DRIVER_OK: these are its queues (null where it left one unready) and the features it
   * accepted. Throws a MATCHLOCK_ERR_VIRTIO_DRIVER error if the device cannot work with them.
   */
  activate(queues: readonly (SplitQueue | null)[], features: bigint): void;
  /** Works a notified queue; returns true when the driver should be interrupted. */
  process(queue: number): boolean;
  /** The driver reset the device: forget the queues. */
  reset(): void;
  /** Counters for the log and the benchmarks. */
  counters(): Readonly<Record<string, number>>;
  /** Releases the device's host resources (files, sockets). */
  close(): void;
}
