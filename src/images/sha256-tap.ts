/**
 * A pass-through stream that counts the bytes going through it and takes their sha256 on another thread, so
 * that hashing a layer (a few hundred MB/s without SHA instructions) overlaps with applying it instead of
 * adding to it. The hashed bytes are exactly the bytes passed on: each chunk is copied to the worker.
 * At most HASH_BACKLOG bytes wait for the worker; beyond that the stream waits (backpressure). The backlog is
 * large so that the layer is applied at full speed and the worker finishes while mke2fs runs on another core.
 * Also here: the sha256 of a whole open file (a rootfs tarball), on the layer applier's thread once it is done.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { startHash, takeThread } from './file-writer.ts';

const HASH_BACKLOG = 128 * 1024 * 1024;

// The worker: one sha256; a chunk in, its length back (the acknowledgement); null in, the hex digest back.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
parentPort.on('message', (m) => {
  if (m === null) parentPort.postMessage(hash.digest('hex'));
  else { hash.update(m); parentPort.postMessage(m.byteLength); }
});`;

/**
 * The sha256 of the open file `fd` (from its start to its end) and its length, taken on another thread (the layer
 * applier's, when it just finished a layer: no thread to start). `stop` ends the thread (before the fd is closed,
 * so that it never reads whatever file gets the number next).
 */
export function hashFileOnWorker(fd: number): { result: Promise<{ hex: string; bytes: number }>; stop: () => Promise<void> } {
  const worker = takeThread();
  const result = new Promise<{ hex: string; bytes: number }>((resolve, reject) => {
    worker.once('message', (m: { hex: string; bytes: number }) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', () => reject(new Error('the hashing thread was stopped')));
  });
  result.catch(() => {}); // the caller awaits it, or has stopped it
  startHash(worker, fd);
  return { result, stop: async () => { await worker.terminate(); } };
}

export class Sha256Tap extends Transform {
  /** Bytes passed through so far. */
  bytes = 0;
  private readonly worker = new Worker(WORKER, { eval: true });
  private backlog = 0;
  private waiting: TransformCallback | null = null;
  private digestWanted: ((hex: string) => void) | null = null;
  private failed: Error | null = null;
  private readonly onBytes: (bytes: number) => void;

  constructor(onBytes: (bytes: number) => void = () => {}) {
    super({ highWaterMark: 1 << 20 });
    this.onBytes = onBytes;
    this.worker.unref();
    this.worker.on('message', (m: number | string) => {
      if (typeof m === 'string') {
        this.digestWanted?.(m);
        return;
      }
      this.backlog -= m;
      if (this.waiting !== null && this.backlog <= HASH_BACKLOG) {
        const cb = this.waiting;
        this.waiting = null;
        cb();
      }
    });
    this.worker.on('error', (e: Error) => {
      this.failed = e;
      this.destroy(e);
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const copy = new Uint8Array(chunk); // the chunk itself goes on; the worker gets its own bytes
    this.worker.postMessage(copy, [copy.buffer]);
    this.backlog += chunk.length;
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    this.push(chunk);
    if (this.backlog > HASH_BACKLOG) this.waiting = cb;
    else cb();
  }

  /** The hex sha256 of everything that went through; call once, after the stream ended. The worker then stops. */
  digest(): Promise<string> {
    if (this.failed !== null) return Promise.reject(this.failed);
    return new Promise<string>((resolve, reject) => {
      this.digestWanted = (hex) => {
        this.close();
        resolve(hex);
      };
      this.worker.once('error', reject);
      this.worker.postMessage(null);
    });
  }

  /** Stops the worker (after digest(), or when the stream is abandoned); safe to call more than once. */
  close(): void {
    void this.worker.terminate();
  }

  override _destroy(e: Error | null, cb: (e: Error | null) => void): void {
    if (e !== null) this.close();
    cb(e);
  }
}
