/**
 * Where the agent listens: a vsock port in a VM, or a Unix socket (tests, and the agent run as a process).
 * Node's net module cannot hold a vsock socket, so a connection is read and written as a plain file descriptor
 * on the thread pool.
 */
import { createReadStream, rmSync, write } from 'node:fs';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import * as sys from '../vmm/sys/index.ts';

export interface Connection {
  /** Called with each chunk, then `onEnd` once (the peer closed, or the connection broke). */
  start(onData: (chunk: Buffer) => void, onEnd: () => void): void;
  write(data: Buffer): void;
  close(): void;
  readonly closed: boolean;
}

export interface Listener {
  close(): void;
}

export type ListenAddress = { readonly kind: 'vsock'; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

export function parseListenAddress(text: string): ListenAddress {
  const vsock = /^vsock:(\d{1,10})$/.exec(text);
  if (vsock !== null) {
    const port = Number(vsock[1]);
    if (port >= 1 && port <= 0xfffffffe) return { kind: 'vsock', port };
  }
  if (text.startsWith('unix:/') && text.length > 6) return { kind: 'unix', path: text.slice(5) };
  throw new MatchlockError(ErrorCodes.USAGE, `--listen ${text}: give vsock:PORT (1 to 4294967294) or unix:/ABSOLUTE/PATH`, {});
}

class FdConnection implements Connection {
  #fd: number;
  #closed = false;
  #broken = false;
  #queue: Promise<void> = Promise.resolve();
  constructor(fd: number) {
    this.#fd = fd;
  }

  start(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    const stream = createReadStream('', { fd: this.#fd, autoClose: false, highWaterMark: 65536 });
    stream.on('data', (c) => { onData(c as Buffer); });
    const end = (): void => {
      this.close();
      onEnd();
    };
    stream.once('end', end);
    stream.once('error', end);
  }

  write(data: Buffer): void {
    if (this.#closed || this.#broken) return;
    this.#queue = this.#queue.then(() => this.#writeAll(data)).catch(() => { this.#broken = true; this.close(); });
  }

  async #writeAll(data: Buffer): Promise<void> {
    for (let at = 0; at < data.length;) {
      at += await new Promise<number>((resolve, reject) => {
        write(this.#fd, data, at, data.length - at, null, (err, n) => (err === null ? resolve(n) : reject(err)));
      });
    }
  }

  /** Closes once what was written has gone out (an ERROR frame before the close reaches the peer). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#queue.finally(() => {
      sys.shutdownBoth(this.#fd); // a read waiting in the thread pool returns, and the stream ends
      setTimeout(() => { sys.closeFd(this.#fd); }, 100);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/**
 * Listens at `address` and hands each connection to `onConnection`. A Unix socket is handled exactly as a vsock
 * one (a blocking socket accepted on a worker thread, read and written as a file descriptor), so the tests that
 * run the agent on a Unix socket run the code a VM runs.
 */
export function listen(address: ListenAddress, onConnection: (c: Connection) => void): Listener {
  let fd: number;
  if (address.kind === 'unix') {
    rmSync(address.path, { force: true });
    fd = sys.listenUnixBlocking(address.path);
  } else fd = sys.listenVsock(address.port);
  let open = true;
  const loop = async (): Promise<void> => {
    while (open) {
      const c = await sys.acceptOnWorker(fd).catch(() => -1);
      if (!open) break;
      if (c >= 0) onConnection(new FdConnection(c));
      else await new Promise((r) => setTimeout(r, 200));
    }
  };
  void loop();
  return { close: () => { open = false; sys.shutdownBoth(fd); } };
}
