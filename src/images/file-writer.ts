/**
 * Writes the data of regular files on another thread, so that copying a layer's bytes into the tree overlaps with
 * reading the next entries. The layer applier still does every operation on names (create, remove, link, check
 * for symlinks) itself, in archive order: this thread only gets file descriptors of files already created
 * (O_CREAT | O_EXCL | O_NOFOLLOW) and does `write`, then `fchown`, `fchmod`, `futimens` and `close` on them,
 * which touch nothing but that inode whatever happens to its name meanwhile.
 * Work goes over in batches, in a ring of SLOTS_N batches in shared memory: operations as numbers, the bytes
 * copied in, or, when the layer is an uncompressed tar file, ranges for the thread to copy from that file itself.
 * A batch is sent with a short message; the thread counts the batches it finished in a shared counter, which the
 * applier reads without waiting for messages (its loop may not yield for a while). When the thread has enough
 * queued (MAX_BACKLOG) the applier finishes small files itself instead of waiting (`congested`), and a file whose
 * data streams here takes what fits (`write` says how much) until `ready`. A descriptor handed over is the
 * thread's: it closes it after the file's last operation (a number is reused only once closed, and batches are
 * done in order). After a failure the thread only closes what it gets, and the first error is reported.
 * After a clean layer the thread is parked for the rest of the event loop's turn: the build's next layer, or the
 * sha256 of its rootfs tarball (sha256-tap.ts), takes it instead of starting one (~50 ms of CPU).
 */
import { Worker } from 'node:worker_threads';

const SLOTS_N = 8;
const BATCH_OPS = 128;
const BATCH_BYTES = 1 << 20;
/**
 * The work queued for the thread, in bytes to write plus WORK_PER_FILE a file (its own calls), beyond which the
 * applier does small files itself: the queue stays short (so it is soon done when the layer ends) and busy.
 */
const WORK_PER_FILE = 16 << 10;
const MAX_BACKLOG = 8 << 20;
const SMALL_FILE = 256 << 10;
/** An idle thread is sent a batch once it holds this much work (not after every file: a message costs too). */
const MIN_BATCH = 128 << 10;

/** An operation is FIELDS numbers: op, fd, four arguments, the index of the entry's name in the batch. */
const FIELDS = 7;
const OP_WRITE = 0; // offset in the batch's bytes, length
const OP_COPY = 1; // source fd, offset in the source, length
const OP_FINISH = 2; // uid (-1: leave), gid, mode, mtime (seconds, NaN: leave); then close

/** The shared counters: batches sent, batches done, and whether the thread failed. */
const SENT = 0;
const DONE = 1;
const FAILED = 2;

// The thread: batches of a writer attached to it, and (once parked, lent to the rootfs source) a file's sha256.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const copyBuf = Buffer.allocUnsafe(1 << 20);
let ctrl = null;
let slots = [];
let failed = false;
function run(data, op, fd, a, b, c, d) {
  if (op === ${OP_WRITE}) {
    for (let off = a; off < a + b;) off += fs.writeSync(fd, data, off, a + b - off);
  } else if (op === ${OP_COPY}) {
    for (let got = 0; got < c;) {
      const n = fs.readSync(a, copyBuf, 0, Math.min(copyBuf.length, c - got), b + got);
      if (n === 0) throw new Error('the layer file ended early');
      for (let off = 0; off < n;) off += fs.writeSync(fd, copyBuf, off, n - off);
      got += n;
    }
  } else {
    if (a >= 0) fs.fchownSync(fd, a, b);
    fs.fchmodSync(fd, c);
    if (d === d) {
      const t = d < 0 ? new Date(d * 1000) : d; // node takes a negative number for "now", not a Date
      fs.futimesSync(fd, t, t);
    }
  }
}
function hash(fd) {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(256 << 10); // small enough to be hashed from the CPU's cache
  let at = 0;
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, at)) > 0; at += n) h.update(buf.subarray(0, n));
  parentPort.postMessage({ hex: h.digest('hex'), bytes: at });
}
parentPort.on('message', (m) => {
  if (m.attach !== undefined) {
    ctrl = new Int32Array(m.attach.ctrl);
    slots = m.attach.slots.map((s) => ({ ops: new Float64Array(s.ops), data: new Uint8Array(s.data) }));
    failed = false;
    return;
  }
  if (m.hash !== undefined) return hash(m.hash);
  const { slot, count, names } = m;
  Atomics.load(ctrl, ${SENT}); // what the applier wrote before sending is visible from here
  const { ops, data } = slots[slot];
  for (let i = 0; i < count * ${FIELDS}; i += ${FIELDS}) {
    const op = ops[i], fd = ops[i + 1];
    try {
      if (!failed) run(data, op, fd, ops[i + 2], ops[i + 3], ops[i + 4], ops[i + 5]);
    } catch (e) {
      failed = true;
      Atomics.store(ctrl, ${FAILED}, 1);
      parentPort.postMessage({ message: e.message, code: e.code, name: names[ops[i + 6]] });
    }
    if (op === ${OP_FINISH}) {
      try { fs.closeSync(fd); } catch {}
    }
  }
  Atomics.add(ctrl, ${DONE}, 1);
  Atomics.notify(ctrl, ${DONE});
});`;

/** The thread of the last writer that finished cleanly, kept until the end of this turn of the event loop. */
let parked: Worker | null = null;

/**
 * A thread: the parked one (a build hashes its rootfs, or applies its next layer, right after a layer: one
 * thread start saved), or a new one. It closes descriptors this thread opened: not its own to track (and warn about).
 */
export function takeThread(): Worker {
  const w = parked;
  parked = null;
  if (w === null) return new Worker(WORKER, { eval: true, trackUnmanagedFds: false });
  w.ref();
  return w;
}

function park(w: Worker): void {
  if (parked !== null) {
    void w.terminate();
    return;
  }
  parked = w;
  w.unref();
  setImmediate(() => {
    if (parked !== w) return;
    parked = null;
    void w.terminate();
  });
}

/** Hashes the open file `fd` (sha256, from its start to its end) on the thread `w`: its message is `{ hex, bytes }`. */
export function startHash(w: Worker, fd: number): void {
  w.postMessage({ hash: fd });
}

export interface WriterError {
  readonly message: string;
  readonly code?: string;
  /** The archive entry being written. */
  readonly name: string;
}

interface Slot {
  readonly ops: Float64Array;
  readonly data: Uint8Array;
}

export class FileWriterThread {
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(3 * 4));
  private readonly slots: Slot[] = [];
  private readonly worker: Worker;
  /** Batches sent; the one being filled is slot `sent % SLOTS_N`. */
  private sent = 0;
  /** Work queued so far, and as it stood when each batch in flight was sent (by slot). */
  private queued = 0;
  private readonly queuedAt: number[] = new Array<number>(SLOTS_N).fill(0);
  private count = 0;
  private used = 0;
  /** Work in the batch being filled. */
  private batched = 0;
  /** The names of the entries in the batch being filled (for messages), and the last one's index. */
  private names: string[] = [];
  private lastName = '';
  private failure: WriterError | null = null;
  private dead = false;
  /** Resolved (and made anew) when a message or an error comes from the thread. */
  private heard!: Promise<void>;
  private hear: () => void = () => {};

  constructor() {
    this.wake();
    const shared: { ops: SharedArrayBuffer; data: SharedArrayBuffer }[] = [];
    for (let i = 0; i < SLOTS_N; i++) {
      const s = { ops: new SharedArrayBuffer(BATCH_OPS * FIELDS * 8), data: new SharedArrayBuffer(BATCH_BYTES) };
      shared.push(s);
      this.slots.push({ ops: new Float64Array(s.ops), data: new Uint8Array(s.data) });
    }
    this.worker = takeThread();
    this.worker.postMessage({ attach: { ctrl: this.ctrl.buffer, slots: shared } });
    this.worker.on('message', this.onMessage);
    this.worker.on('error', this.onError);
  }

  private readonly onMessage = (m: { message: string; code?: string; name?: string }): void => {
    this.failure ??= { message: m.message, ...(m.code === undefined ? {} : { code: m.code }), name: m.name ?? '' };
    this.wake();
  };

  private readonly onError = (e: Error): void => {
    this.dead = true; // the descriptors it had stay open until the process exits
    this.failure ??= { message: e.message, name: '' };
    this.wake();
  };

  /** The first error the thread met, once it is known. */
  get error(): WriterError | null {
    return this.failure;
  }

  /** Whether the thread failed (known at once; its error follows as a message: see `ready`). */
  failed(): boolean {
    return this.dead || this.failure !== null || Atomics.load(this.ctrl, FAILED) !== 0;
  }

  private wake(): void {
    this.hear();
    this.heard = new Promise((resolve) => { this.hear = resolve; });
  }

  private inFlight(): number {
    return this.sent - Atomics.load(this.ctrl, DONE);
  }

  /** Sends the batch being filled, if there is a slot to fill next; false if there is none. */
  private flush(): boolean {
    if (this.count === 0) return true;
    if (this.inFlight() >= SLOTS_N - 1) return false;
    Atomics.store(this.ctrl, SENT, this.sent + 1);
    this.queuedAt[this.sent % SLOTS_N] = this.queued;
    this.worker.postMessage({ slot: this.sent % SLOTS_N, count: this.count, names: this.names });
    this.sent++;
    this.count = 0;
    this.used = 0;
    this.batched = 0;
    this.names = [];
    return true;
  }

  /** The index in the batch of `name`, the entry operations are pushed for. */
  private nameIndex(name: string): number {
    if (this.names.length === 0 || this.lastName !== name) {
      this.names.push(name);
      this.lastName = name;
    }
    return this.names.length - 1;
  }

  private push(op: number, fd: number, name: string, a: number, b: number, c: number, d = 0): void {
    const ops = this.slots[this.sent % SLOTS_N]!.ops;
    const at = this.count * FIELDS;
    ops[at] = op;
    ops[at + 1] = fd;
    ops[at + 2] = a;
    ops[at + 3] = b;
    ops[at + 4] = c;
    ops[at + 5] = d;
    ops[at + 6] = this.nameIndex(name);
    this.count++;
  }

  /** The work queued and not yet done (bytes, and WORK_PER_FILE a file). */
  backlog(): number {
    const done = Atomics.load(this.ctrl, DONE);
    return this.queued - (done === 0 ? 0 : this.queuedAt[(done - 1) % SLOTS_N]!);
  }

  /**
   * Whether the thread should not take a file of `bytes` now: it has enough queued (and the file is small), or
   * every slot is in flight. The applier writes it itself. (The last operation of a batch is kept for the end of
   * a file whose data streams in, so `close` always fits.)
   */
  congested(bytes: number): boolean {
    if (this.batched >= MIN_BATCH && this.inFlight() === 0) this.flush(); // the thread is idle: what is batched is its work now
    if (bytes <= SMALL_FILE && this.backlog() > MAX_BACKLOG) return true;
    if (this.count + 2 <= BATCH_OPS - 1) return false;
    return !this.flush();
  }

  /** Appends what fits of `chunk` to the file open as `fd`; returns how many bytes it took (then see `ready`). */
  write(fd: number, chunk: Uint8Array, name: string): number {
    let at = 0;
    while (at < chunk.length) {
      if ((this.used === BATCH_BYTES || this.count >= BATCH_OPS - 1) && !this.flush()) break;
      const n = Math.min(chunk.length - at, BATCH_BYTES - this.used);
      this.slots[this.sent % SLOTS_N]!.data.set(chunk.subarray(at, at + n), this.used);
      this.push(OP_WRITE, fd, name, this.used, n, 0);
      this.queued += n;
      this.batched += n;
      this.used += n;
      at += n;
    }
    return at;
  }

  /** Appends `length` bytes of the (uncompressed) layer file `sourceFd` at `offset` to the file open as `fd` (after `congested` said no). */
  copy(fd: number, sourceFd: number, offset: number, length: number, name: string): void {
    if (length > 0) this.push(OP_COPY, fd, name, sourceFd, offset, length);
    this.queued += length;
    this.batched += length;
  }

  /** Sends what is batched now, if a slot is free (so that the thread starts on it). */
  hurry(): void {
    this.flush();
  }

  /** Gives the file its owner (uid -1: left alone), mode and mtime (seconds, NaN: left alone), then closes `fd`. */
  close(fd: number, uid: number, gid: number, mode: number, mtime: number, name: string): void {
    this.push(OP_FINISH, fd, name, uid, gid, mode, mtime);
    this.queued += WORK_PER_FILE;
    this.batched += WORK_PER_FILE;
    if (this.batched >= MIN_BATCH && this.inFlight() === 0) this.flush(); // the thread is idle: this is its work now
  }

  /** Waits for the next batch done or the next message (or a while, to look again). */
  private async progress(): Promise<void> {
    const done = Atomics.load(this.ctrl, DONE);
    const wait = Atomics.waitAsync(this.ctrl, DONE, done, 50);
    if (wait.async) await Promise.race([wait.value, this.heard]);
  }

  /** Resolves once a batch can be sent (what is batched is sent then), or the thread failed with its error known. */
  async ready(): Promise<void> {
    for (;;) {
      if (this.failed()) {
        if (this.failure !== null) return;
      } else if (this.flush()) return;
      await this.progress();
    }
  }

  /** Resolves when everything is done (every descriptor closed), with the first error if there was one. */
  async drain(): Promise<WriterError | null> {
    while (!this.dead && (!this.flush() || this.inFlight() > 0 || (this.failed() && this.failure === null))) await this.progress();
    return this.failure;
  }

  /** After `drain`: the thread is ended, or, after a clean layer, parked for what comes next. */
  stop(): void {
    this.worker.off('message', this.onMessage);
    this.worker.off('error', this.onError);
    if (this.failed()) void this.worker.terminate();
    else park(this.worker);
  }
}
