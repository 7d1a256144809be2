/**
 * What a virtio device does on its own thread, kvmtool-style: a small table of operations the device thread
 * calls. The transport and the thread's event loop are the same for every device.
 */
import type { Watch } from '../../sys/index.ts';
import type { SplitQueue } from './queue.ts';

/** What a backend may ask of the device thread's loop. */
export interface BackendContext {
  /** Changes which events (EPOLLIN, EPOLLOUT) of one of the backend's own fds the loop waits for; 0 for none. */
  setInterest(fd: number, events: number): void;
  /** Starts watching a new fd of the backend's (a connection). */
  watch(fd: number, events: number): void;
  /** Stops watching an fd; call before closing it. */
  unwatch(fd: number): void;
}

export interface VirtioBackend {
  /** The backend's own fds for the loop to watch (none for a disk). */
  readonly watches: readonly Watch[];
  /** One of `watches` is ready; returns true when the driver should be interrupted. */
  ready(fd: number, events: number): boolean;
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
  /** Milliseconds until the backend's next deadline (a connection timing out), or null for none. */
  nextDeadline?(now: number): number | null;
  /** Deadlines may have passed; returns true when the driver should be interrupted. */
  tick?(now: number): boolean;
  /** Releases the device's host resources (files, sockets). */
  close(): void;
}
