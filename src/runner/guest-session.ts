/**
 * The host's side of the guest protocol (docs/guest-protocol.md): dials the agent (through the VMM's vsock
 * Unix socket with Firecracker's `CONNECT <port>` handshake, or a plain Unix socket), checks every frame the
 * guest sends (it is hostile: a frame it may not send, a bad body or broken framing ends the session with a
 * GUEST error and the connection closed), and gives the job's life as promises and an output callback.
 */
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import {
  encodeJsonFrame, FrameDecoder, FrameError, FROM_AGENT, PROTOCOL_VERSION, readMessage,
  type Assignment, type Exited, type Frame, type Hello, type ProtocolErrorBody, type Refused, type Started,
} from '../guest/index.ts';

export type GuestAddress = { readonly kind: 'vsock'; readonly uds: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

function guestError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.GUEST, message, details);
}

/** One connection attempt; resolves with a socket that is past the vsock handshake, or null when refused. */
function dialOnce(address: GuestAddress): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect(address.kind === 'unix' ? address.path : address.uds);
    socket.once('error', () => { socket.destroy(); resolve(null); });
    socket.once('connect', () => {
      if (address.kind === 'unix') return resolve(socket);
      socket.write(`CONNECT ${address.port}\n`);
      let line = '';
      const onData = (c: Buffer): void => {
        const nl = c.indexOf(10);
        line += c.subarray(0, nl === -1 ? c.length : nl).toString('latin1');
        if (nl === -1 && line.length < 64) return;
        socket.off('data', onData);
        if (nl === -1 || !/^OK \d+$/.test(line)) {
          socket.destroy();
          return resolve(null);
        }
        socket.pause();
        const rest = c.subarray(nl + 1);
        if (rest.length > 0) socket.unshift(rest);
        resolve(socket);
      };
      socket.on('data', onData);
      socket.once('close', () => { resolve(null); });
    });
  });
}

/** Dials until the agent answers or `timeoutMs` passes (the agent starts listening some time after boot). */
export async function dialGuest(address: GuestAddress, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await dialOnce(address);
    if (s !== null) return s;
    if (Date.now() >= deadline) {
      const where = address.kind === 'unix' ? address.path : `${address.uds} port ${address.port}`;
      throw guestError(`the guest agent did not answer on ${where} within ${timeoutMs} ms: did the VM boot, and is the agent in its image?`, { address });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface SessionEvents {
  readonly onOutput?: (stream: 'STDOUT' | 'STDERR', data: Buffer) => void;
}

type Waiter = { resolve: (body: unknown) => void; reject: (e: Error) => void };

/** One connection to an agent. Every promise rejects with a GUEST error when the connection fails or the guest misbehaves. */
export class GuestSession {
  readonly hello: Promise<Hello>;
  readonly exited: Promise<Exited>;
  #socket: Socket;
  #log: Logger;
  #waiters = new Map<string, Waiter>();
  #failure: MatchlockError | null = null;
  #events: SessionEvents;

  constructor(socket: Socket, log: Logger, events: SessionEvents = {}, helloTimeoutMs = 10_000) {
    this.#socket = socket;
    this.#log = log;
    this.#events = events;
    this.hello = this.#wait<Hello>('HELLO');
    this.exited = this.#wait<Exited>('EXITED');
    this.hello.catch(() => {});
    this.exited.catch(() => {});
    const helloTimer = setTimeout(() => { this.#fail(guestError(`the guest agent sent no HELLO within ${helloTimeoutMs} ms`)); }, helloTimeoutMs);
    this.hello.then(() => { clearTimeout(helloTimer); }, () => { clearTimeout(helloTimer); });
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const f of decoder.push(chunk)) this.#onFrame(f);
      } catch (e: unknown) {
        if (!(e instanceof FrameError)) throw e;
        this.#fail(guestError(`the guest broke the protocol: ${e.message}`));
      }
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      const truncated = decoder.buffered > 0 ? ` (${decoder.buffered} bytes of an unfinished frame)` : '';
      this.#fail(guestError(`the guest agent closed the connection${truncated}`));
    });
    socket.resume();
  }

  #wait<T>(type: string): Promise<T> {
    return new Promise<T>((resolve, reject) => { this.#waiters.set(type, { resolve: resolve as (b: unknown) => void, reject }); });
  }

  #settle(type: string, body: unknown): void {
    const w = this.#waiters.get(type);
    this.#waiters.delete(type);
    w?.resolve(body);
  }

  #onFrame(frame: Frame): void {
    const body = readMessage(frame, FROM_AGENT);
    switch (frame.type) {
      case 'STDOUT':
      case 'STDERR':
        this.#events.onOutput?.(frame.type, body as Buffer);
        return;
      case 'REFUSED': {
        const r = body as Refused;
        const w = this.#waiters.get('STARTED');
        this.#waiters.delete('STARTED');
        w?.reject(guestError(`the guest agent refused the job (${r.code}): ${r.message}`, { refused: r.code }));
        return;
      }
      case 'ERROR': {
        const e = body as ProtocolErrorBody;
        this.#fail(guestError(`the guest agent reported a protocol error (${e.code}): ${e.message}`));
        return;
      }
      default:
        this.#settle(frame.type, body);
    }
  }

  #fail(e: MatchlockError): void {
    if (this.#failure !== null) return;
    this.#failure = e;
    this.#log.warn({ reason: e.message }, 'guest session ended');
    for (const w of this.#waiters.values()) w.reject(e);
    this.#waiters.clear();
    this.#socket.destroy();
  }

  /** Sends the job; resolves when the runner started, rejects when the agent refuses. */
  assign(a: Omit<Assignment, 'protocol'>): Promise<Started> {
    const started = this.#wait<Started>('STARTED');
    this.#write(encodeJsonFrame('ASSIGN', { protocol: PROTOCOL_VERSION, ...a }));
    return started;
  }

  /** Tells the agent its runner's exit was received: it then syncs and ends the VM. */
  ack(): void {
    this.#write(encodeJsonFrame('ACK', {}));
  }

  cancel(reason: string): void {
    this.#write(encodeJsonFrame('CANCEL', { reason }));
  }

  /** Writes raw bytes (tests of the agent's handling of malformed frames). */
  writeRaw(bytes: Buffer): void {
    this.#write(bytes);
  }

  close(): void {
    this.#socket.end();
  }

  #write(bytes: Buffer): void {
    if (this.#failure !== null) throw this.#failure;
    this.#socket.write(bytes);
  }
}
