/**
 * A single-producer, single-consumer byte ring in a SharedArrayBuffer, to move serial bytes between threads
 * without messages. Positions are free-running 32-bit counters; capacity is a power of two.
 */
const WRITE = 0;
const READ = 1;
const DROPPED = 2;
const HEADER_BYTES = 16;

export class ByteRing {
  readonly buffer: SharedArrayBuffer;
  readonly #hdr: Int32Array;
  readonly #data: Uint8Array;
  readonly #mask: number;

  constructor(bufferOrCapacity: SharedArrayBuffer | number) {
    const buffer = typeof bufferOrCapacity === 'number'
      ? new SharedArrayBuffer(HEADER_BYTES + bufferOrCapacity)
      : bufferOrCapacity;
    const capacity = buffer.byteLength - HEADER_BYTES;
    if (capacity <= 0 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`ring capacity ${capacity} is not a power of two`);
    this.buffer = buffer;
    this.#hdr = new Int32Array(buffer, 0, 4);
    this.#data = new Uint8Array(buffer, HEADER_BYTES);
    this.#mask = capacity - 1;
  }

  get capacity(): number {
    return this.#mask + 1;
  }

  /** Bytes waiting to be read. */
  get length(): number {
    return (Atomics.load(this.#hdr, WRITE) - Atomics.load(this.#hdr, READ)) >>> 0;
  }

  /** Bytes the producer had to drop because the consumer did not keep up. */
  get dropped(): number {
    return Atomics.load(this.#hdr, DROPPED);
  }

  /** Producer: appends one byte; waits up to `waitMs` for room, then drops it (counted). */
  pushByte(byte: number, waitMs = 100): boolean {
    let w = Atomics.load(this.#hdr, WRITE);
    if (((w - Atomics.load(this.#hdr, READ)) >>> 0) >= this.capacity) {
      const r = Atomics.load(this.#hdr, READ);
      Atomics.wait(this.#hdr, READ, r, waitMs);
      if (((w - Atomics.load(this.#hdr, READ)) >>> 0) >= this.capacity) {
        Atomics.add(this.#hdr, DROPPED, 1);
        return false;
      }
    }
    this.#data[w & this.#mask] = byte;
    w = (w + 1) | 0;
    Atomics.store(this.#hdr, WRITE, w);
    Atomics.notify(this.#hdr, WRITE);
    return true;
  }

  /** Consumer: takes everything waiting (a copy), or null when empty. */
  pull(): Uint8Array | null {
    const r = Atomics.load(this.#hdr, READ);
    const w = Atomics.load(this.#hdr, WRITE);
    const n = (w - r) >>> 0;
    if (n === 0) return null;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#data[(r + i) & this.#mask]!;
    Atomics.store(this.#hdr, READ, (r + n) | 0);
    Atomics.notify(this.#hdr, READ);
    return out;
  }

  /** Consumer: takes one byte, or -1 when empty. */
  pullByte(): number {
    const r = Atomics.load(this.#hdr, READ);
    if (r === Atomics.load(this.#hdr, WRITE)) return -1;
    const b = this.#data[r & this.#mask]!;
    Atomics.store(this.#hdr, READ, (r + 1) | 0);
    Atomics.notify(this.#hdr, READ);
    return b;
  }

  /**
   * Consumer: resolves when the producer writes past what was last pulled, or after `timeoutMs`. A pending
   * Atomics.waitAsync does not keep Node's event loop alive, so a timer of the same length does: without it a
   * process whose only other handles are gone would exit in the middle of the wait.
   */
  async waitForData(timeoutMs: number): Promise<void> {
    const w = Atomics.load(this.#hdr, WRITE);
    if (((w - Atomics.load(this.#hdr, READ)) >>> 0) > 0) return;
    const res = Atomics.waitAsync(this.#hdr, WRITE, w, timeoutMs);
    if (!res.async) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
    try {
      await Promise.race([res.value, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
