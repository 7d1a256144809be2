import { closeSync, openSync, writeSync } from 'node:fs';
import { ByteRing } from './devices/index.ts';

/**
 * Drains the guest's serial output from the shared ring to stdout, a file, or nowhere. Memory stays bounded by
 * the ring: a guest that writes faster than the sink takes waits in its vCPU thread, as with a real UART.
 */
export class SerialSink {
  readonly #ring: ByteRing;
  readonly #fd: number | null;
  readonly #ownsFd: boolean;
  #running = true;
  readonly #done: Promise<void>;
  bytes = 0;

  constructor(ringBuffer: SharedArrayBuffer, target: string | null) {
    this.#ring = new ByteRing(ringBuffer);
    this.#fd = target === null ? null : target === '-' ? 1 : openSync(target, 'w', 0o640);
    this.#ownsFd = target !== null && target !== '-';
    this.#done = this.#pump();
  }

  #drain(): void {
    for (let chunk = this.#ring.pull(); chunk !== null; chunk = this.#ring.pull()) {
      this.bytes += chunk.length;
      if (this.#fd === null) continue;
      for (let off = 0; off < chunk.length;) off += writeSync(this.#fd, chunk, off);
    }
  }

  async #pump(): Promise<void> {
    while (this.#running) {
      await this.#ring.waitForData(50);
      this.#drain();
    }
    this.#drain();
  }

  get dropped(): number {
    return this.#ring.dropped;
  }

  /** Stops after draining what is left; safe to call more than once. */
  async close(): Promise<void> {
    if (!this.#running) return this.#done;
    this.#running = false;
    await this.#done;
    if (this.#ownsFd && this.#fd !== null) closeSync(this.#fd);
  }
}
