/**
 * virtio-vsock with Firecracker's host side: stream connections between the guest and Unix sockets.
 *
 * - Host-initiated: a client connects to `uds`, writes `CONNECT <port>\n`; the device sends the guest a REQUEST
 *   from a local port allocated in [2^30, 2^31); the guest's RESPONSE makes it write `OK <local port>\n` back.
 *   A guest RST, a bad line or 2 s without an answer closes the client.
 * - Guest-initiated: a REQUEST to (CID 2, port P) connects to `<uds>_P`; nothing there gets an RST.
 * - Credit flow control both ways: the device sends no more than the guest's buffer can take
 *   (buf_alloc − (sent − fwd_cnt)), and offers the guest 64 KiB per connection, which is all it ever holds for
 *   one; a guest that sends beyond its credit gets its connection reset.
 * - Bounded: at most `maxConnections`, 64 KiB per connection, a capped list of RSTs for packets that name no
 *   connection. One connection's failure (a client that vanishes mid-stream) touches no other.
 */
import { rmSync } from 'node:fs';
import type { GuestMemory } from '../../../memory/index.ts';
import * as sys from '../../../sys/index.ts';
import type { BackendContext, VirtioBackend } from '../backend.ts';
import { readStream, writeStream } from '../chain-io.ts';
import type { VirtioDeviceInfo } from '../mmio-transport.ts';
import type { SplitQueue } from '../queue.ts';
import { VIRTIO_ID_VSOCK } from '../virtio-abi.ts';
import * as P from './vsock-packet.ts';

export const VSOCK_QUEUE_SIZE = 256;
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
export const EVENT_QUEUE = 2;
/** What the device buffers for one connection, and so the credit it offers the guest. */
export const CONN_BUF = 64 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 1023;
export const CONNECT_TIMEOUT_MS = 2000;
const LOCAL_PORT_FIRST = 2 ** 30;
const LOCAL_PORT_END = 2 ** 31;
const MAX_LINE = 32;
const MAX_STRAY_RSTS = 128;

export function vsockDeviceInfo(name: string, guestCid: number): VirtioDeviceInfo {
  const config = new Uint8Array(8);
  new DataView(config.buffer).setBigUint64(0, BigInt(guestCid), true);
  return { name, deviceId: VIRTIO_ID_VSOCK, features: 0n, queueMaxSizes: [VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE], config };
}

export interface VsockOptions {
  readonly guestCid: number;
  /** The listening socket at `udsPath` (made on the main thread, so a bad path fails before the VM exists). */
  readonly listenFd: number;
  readonly udsPath: string;
  readonly maxConnections?: number;
}

type State = 'line' | 'requested' | 'connecting' | 'open';

interface Conn {
  readonly fd: number;
  /** The port on CID 2. */
  readonly hostPort: number;
  guestPort: number;
  state: State;
  line: string;
  deadline: number;
  /** Control packets to send, in order. */
  readonly ops: { op: number; flags: number }[];
  peerBufAlloc: number;
  peerFwdCnt: number;
  /** Bytes sent to the guest. */
  txCnt: number;
  /** Bytes from the guest written to the socket. */
  fwdCnt: number;
  advertisedFwd: number;
  readonly toHost: Uint8Array[];
  toHostBytes: number;
  /** The socket has data the device has not read yet. */
  readable: boolean;
  hostEof: boolean;
  guestNoSend: boolean;
  guestNoRecv: boolean;
  interest: number;
}

interface Counters {
  connections: number;
  refused: number;
  resets: number;
  toGuestBytes: number;
  toHostBytes: number;
  malformed: number;
  dropped: number;
}

const key = (hostPort: number, guestPort: number): string => `${hostPort}/${guestPort}`;

export class VsockBackend implements VirtioBackend {
  readonly watches: readonly sys.Watch[];
  readonly #mem: GuestMemory;
  readonly #ctx: BackendContext;
  readonly #o: Required<VsockOptions>;
  readonly #conns = new Map<string, Conn>();
  readonly #byFd = new Map<number, Conn>();
  /** Connections with something for the guest, in turn. */
  readonly #rxReady = new Set<Conn>();
  readonly #strayRsts: P.VsockHeader[] = [];
  readonly #scratch = new Uint8Array(CONN_BUF);
  readonly #counters: Counters = { connections: 0, refused: 0, resets: 0, toGuestBytes: 0, toHostBytes: 0, malformed: 0, dropped: 0 };
  #rx: SplitQueue | null = null;
  #tx: SplitQueue | null = null;
  #nextPort = LOCAL_PORT_FIRST;

  constructor(mem: GuestMemory, o: VsockOptions, ctx: BackendContext) {
    this.#mem = mem;
    this.#ctx = ctx;
    this.#o = { maxConnections: DEFAULT_MAX_CONNECTIONS, ...o };
    this.watches = [{ fd: o.listenFd, events: 0 }];
  }

  activate(queues: readonly (SplitQueue | null)[]): void {
    this.#rx = queues[RX_QUEUE] ?? null;
    this.#tx = queues[TX_QUEUE] ?? null;
    this.#ctx.setInterest(this.#o.listenFd, this.#rx !== null && this.#tx !== null ? sys.EPOLLIN : 0);
  }

  process(queue: number): boolean {
    if (queue === TX_QUEUE) this.#fromGuest();
    return this.#toGuest();
  }

  ready(fd: number, events: number): boolean {
    if (fd === this.#o.listenFd) this.#accept();
    else {
      const c = this.#byFd.get(fd);
      if (c !== undefined) this.#socketReady(c, events);
    }
    return this.#toGuest();
  }

  nextDeadline(now: number): number | null {
    let next: number | null = null;
    for (const c of this.#conns.values()) {
      if (c.state === 'line' || c.state === 'requested') next = Math.min(next ?? Infinity, Math.max(0, c.deadline - now));
    }
    return next;
  }

  tick(now: number): boolean {
    for (const c of [...this.#conns.values()]) {
      if ((c.state === 'line' || c.state === 'requested') && now >= c.deadline) {
        if (c.state === 'requested') c.ops.push({ op: P.VIRTIO_VSOCK_OP_RST, flags: 0 });
        this.#close(c, c.state === 'requested');
      }
    }
    return this.#toGuest();
  }

  reset(): void {
    for (const c of [...this.#byFd.values()]) this.#close(c, false);
    this.#strayRsts.length = 0;
    this.#rx = null;
    this.#tx = null;
    this.#ctx.setInterest(this.#o.listenFd, 0);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counters, open: this.#conns.size };
  }

  /** Closes every connection and the listening socket, and removes its path. */
  close(): void {
    for (const c of [...this.#conns.values()]) this.#close(c, false);
    for (const c of [...this.#byFd.values()]) this.#close(c, false);
    sys.closeFd(this.#o.listenFd);
    rmSync(this.#o.udsPath, { force: true });
  }

  // --- host side

  #accept(): void {
    for (let fd = sys.acceptUnix(this.#o.listenFd); fd !== null; fd = sys.acceptUnix(this.#o.listenFd)) {
      const port = this.#allocatePort();
      if (this.#byFd.size >= this.#o.maxConnections || port === null) {
        sys.closeFd(fd);
        this.#counters.refused++;
        continue;
      }
      const c = this.#newConn(fd, port, 0, 'line');
      c.deadline = Date.now() + CONNECT_TIMEOUT_MS;
      this.#ctx.watch(fd, sys.EPOLLIN);
      c.interest = sys.EPOLLIN;
    }
  }

  #allocatePort(): number | null {
    for (let i = 0; i < this.#o.maxConnections + 1; i++) {
      const p = this.#nextPort;
      this.#nextPort = p + 1 >= LOCAL_PORT_END ? LOCAL_PORT_FIRST : p + 1;
      if (![...this.#conns.values()].some((c) => c.hostPort === p)) return p;
    }
    return null;
  }

  #newConn(fd: number, hostPort: number, guestPort: number, state: State): Conn {
    const c: Conn = {
      fd, hostPort, guestPort, state, line: '', deadline: 0, ops: [], peerBufAlloc: 0, peerFwdCnt: 0, txCnt: 0, fwdCnt: 0,
      advertisedFwd: 0, toHost: [], toHostBytes: 0, readable: false, hostEof: false, guestNoSend: false, guestNoRecv: false, interest: 0,
    };
    this.#byFd.set(fd, c);
    if (state !== 'line') this.#conns.set(key(hostPort, guestPort), c);
    this.#counters.connections++;
    return c;
  }

  #socketReady(c: Conn, events: number): void {
    try {
      if (c.state === 'line') {
        this.#readLine(c);
        return;
      }
      if (c.state === 'connecting' && (events & (sys.EPOLLOUT | sys.EPOLLERR | sys.EPOLLHUP)) !== 0) {
        if (sys.socketError(c.fd) !== 0) {
          this.#counters.refused++;
          c.ops.push({ op: P.VIRTIO_VSOCK_OP_RST, flags: 0 });
          this.#close(c, true);
          return;
        }
        c.state = 'open';
        c.ops.push({ op: P.VIRTIO_VSOCK_OP_RESPONSE, flags: 0 });
        this.#rxReady.add(c);
      }
      if ((events & sys.EPOLLOUT) !== 0) this.#flushToHost(c);
      if (this.#byFd.get(c.fd) !== c) return; // finished meanwhile
      if ((events & (sys.EPOLLIN | sys.EPOLLHUP | sys.EPOLLERR)) !== 0 && c.state === 'open') {
        c.readable = true;
        this.#rxReady.add(c);
      }
      this.#updateInterest(c);
    } catch {
      this.#fail(c);
    }
  }

  /** Reads `CONNECT <port>\n` a byte at a time, so no data after it is taken before the guest accepts. */
  #readLine(c: Conn): void {
    const one = this.#scratch.subarray(0, 1);
    for (;;) {
      const n = sys.readSocket(c.fd, one);
      if (n < 0) return;
      if (n === 0) {
        this.#close(c, false);
        return;
      }
      const ch = String.fromCharCode(one[0]!);
      if (ch !== '\n') {
        c.line += ch;
        if (c.line.length > MAX_LINE) this.#close(c, false);
        if (c.line.length > MAX_LINE) return;
        continue;
      }
      const m = /^connect ([0-9]{1,10})$/i.exec(c.line.trimEnd());
      const port = m === null ? Number.NaN : Number(m[1]);
      if (!(port >= 0 && port < 2 ** 32) || this.#conns.has(key(c.hostPort, port))) {
        this.#close(c, false);
        return;
      }
      c.guestPort = port;
      c.state = 'requested';
      this.#conns.set(key(c.hostPort, port), c);
      c.ops.push({ op: P.VIRTIO_VSOCK_OP_REQUEST, flags: 0 });
      this.#rxReady.add(c);
      this.#setInterest(c, 0); // nothing more is read until the guest answers
      return;
    }
  }

  #flushToHost(c: Conn): void {
    while (c.toHost.length > 0) {
      const chunk = c.toHost[0]!;
      const n = sys.writeSocket(c.fd, chunk);
      this.#forwarded(c, n);
      if (n < chunk.length) {
        c.toHost[0] = chunk.subarray(n);
        return;
      }
      c.toHost.shift();
    }
    if (this.#finishIfDone(c)) return;
    if (c.guestNoSend) sys.shutdownWrite(c.fd);
  }

  /** A guest that shut down both ways is answered with RST once all it sent has reached the host. */
  #finishIfDone(c: Conn): boolean {
    if (!c.guestNoSend || !c.guestNoRecv || c.toHostBytes > 0) return false;
    c.ops.length = 0;
    c.ops.push({ op: P.VIRTIO_VSOCK_OP_RST, flags: 0 });
    this.#close(c, true);
    return true;
  }

  #forwarded(c: Conn, n: number): void {
    c.toHostBytes -= n;
    c.fwdCnt = (c.fwdCnt + n) >>> 0;
    this.#counters.toHostBytes += n;
    if (((c.fwdCnt - c.advertisedFwd) >>> 0) >= CONN_BUF / 4 && !c.ops.some((o) => o.op === P.VIRTIO_VSOCK_OP_CREDIT_UPDATE)) {
      c.ops.push({ op: P.VIRTIO_VSOCK_OP_CREDIT_UPDATE, flags: 0 });
      this.#rxReady.add(c);
    }
  }

  #credit(c: Conn): number {
    return Math.max(0, c.peerBufAlloc - ((c.txCnt - c.peerFwdCnt) >>> 0));
  }

  #updateInterest(c: Conn): void {
    if (c.state !== 'open' && c.state !== 'connecting') return;
    let ev = 0;
    if (c.state === 'connecting' || c.toHostBytes > 0) ev |= sys.EPOLLOUT;
    if (c.state === 'open' && !c.readable && !c.hostEof && !c.guestNoRecv && this.#credit(c) > 0) ev |= sys.EPOLLIN;
    this.#setInterest(c, ev);
  }

  #setInterest(c: Conn, ev: number): void {
    if (ev === c.interest) return;
    c.interest = ev;
    this.#ctx.setInterest(c.fd, ev);
  }

  /** The host side failed (a reset, a vanished client): the guest gets an RST, the others carry on. */
  #fail(c: Conn): void {
    if (c.state !== 'line') {
      c.ops.length = 0;
      c.ops.push({ op: P.VIRTIO_VSOCK_OP_RST, flags: 0 });
    }
    this.#close(c, c.state !== 'line');
  }

  /** Closes the socket; with `keepOps`, the pending control packets (an RST) still go to the guest. */
  #close(c: Conn, keepOps: boolean): void {
    if (this.#byFd.get(c.fd) === c) {
      this.#ctx.unwatch(c.fd);
      sys.closeFd(c.fd);
      this.#byFd.delete(c.fd);
    }
    this.#conns.delete(key(c.hostPort, c.guestPort));
    this.#rxReady.delete(c);
    if (keepOps) {
      for (const o of c.ops) if (o.op === P.VIRTIO_VSOCK_OP_RST) this.#strayRst(c.hostPort, c.guestPort);
      c.ops.length = 0;
    }
  }

  #strayRst(hostPort: number, guestPort: number): void {
    if (this.#strayRsts.length >= MAX_STRAY_RSTS) return;
    this.#strayRsts.push(this.#header(P.VIRTIO_VSOCK_OP_RST, hostPort, guestPort, 0, 0, null));
    this.#counters.resets++;
  }

  #header(op: number, hostPort: number, guestPort: number, len: number, flags: number, c: Conn | null): P.VsockHeader {
    if (c !== null) c.advertisedFwd = c.fwdCnt;
    return {
      srcCid: P.VSOCK_HOST_CID, dstCid: this.#o.guestCid, srcPort: hostPort, dstPort: guestPort, len,
      type: P.VIRTIO_VSOCK_TYPE_STREAM, op, flags, bufAlloc: CONN_BUF, fwdCnt: c === null ? 0 : c.fwdCnt,
    };
  }

  // --- guest side

  /** Takes the guest's packets off the TX queue. */
  #fromGuest(): void {
    const q = this.#tx;
    if (q === null) return;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      if (chain.fault !== null || chain.readableBytes < P.VSOCK_HDR_SIZE) {
        this.#counters.malformed++;
      } else {
        const h = P.decodeHeader(readStream(this.#mem, chain.readable, 0, P.VSOCK_HDR_SIZE));
        if (h.len !== chain.readableBytes - P.VSOCK_HDR_SIZE || h.len > CONN_BUF) this.#counters.malformed++;
        else if (h.srcCid !== this.#o.guestCid || h.dstCid !== P.VSOCK_HOST_CID) this.#counters.dropped++;
        else if (h.type !== P.VIRTIO_VSOCK_TYPE_STREAM) this.#strayRst(h.dstPort, h.srcPort);
        else this.#packet(h, chain.readable);
      }
      q.addUsed(chain.head, 0);
    }
    if (q.needsInterrupt()) this.#txInterrupt = true;
  }

  #txInterrupt = false;

  #packet(h: P.VsockHeader, bufs: Parameters<typeof readStream>[1]): void {
    const c = this.#conns.get(key(h.dstPort, h.srcPort));
    if (h.op === P.VIRTIO_VSOCK_OP_REQUEST) {
      if (c === undefined) this.#guestConnect(h);
      else this.#strayRst(h.dstPort, h.srcPort);
      return;
    }
    if (c === undefined) {
      if (h.op !== P.VIRTIO_VSOCK_OP_RST) this.#strayRst(h.dstPort, h.srcPort);
      return;
    }
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    try {
      switch (h.op) {
        case P.VIRTIO_VSOCK_OP_RESPONSE:
          if (c.state !== 'requested') throw new Error('unexpected RESPONSE');
          c.state = 'open';
          if (sys.writeSocket(c.fd, new TextEncoder().encode(`OK ${c.hostPort}\n`)) === 0) throw new Error('client gone');
          break;
        case P.VIRTIO_VSOCK_OP_RW: {
          if (c.state !== 'open') throw new Error('data before the connection is open');
          if (c.toHostBytes + h.len > CONN_BUF) throw new Error('the guest sent beyond its credit');
          const data = readStream(this.#mem, bufs, P.VSOCK_HDR_SIZE, h.len);
          c.toHost.push(data);
          c.toHostBytes += data.length;
          this.#flushToHost(c);
          break;
        }
        case P.VIRTIO_VSOCK_OP_CREDIT_REQUEST:
          c.ops.push({ op: P.VIRTIO_VSOCK_OP_CREDIT_UPDATE, flags: 0 });
          this.#rxReady.add(c);
          break;
        case P.VIRTIO_VSOCK_OP_SHUTDOWN:
          c.guestNoSend ||= (h.flags & P.VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0;
          c.guestNoRecv ||= (h.flags & P.VIRTIO_VSOCK_SHUTDOWN_RCV) !== 0;
          if (this.#finishIfDone(c)) return;
          if (c.guestNoSend && c.toHostBytes === 0) sys.shutdownWrite(c.fd);
          break;
        case P.VIRTIO_VSOCK_OP_RST:
          this.#close(c, false);
          return;
        case P.VIRTIO_VSOCK_OP_CREDIT_UPDATE:
          break;
        default:
          throw new Error(`op ${h.op}`);
      }
      if (this.#byFd.get(c.fd) !== c) return; // finished meanwhile
      if (c.readable || c.ops.length > 0) this.#rxReady.add(c);
      this.#updateInterest(c);
    } catch {
      this.#fail(c);
    }
  }

  #guestConnect(h: P.VsockHeader): void {
    if (this.#byFd.size >= this.#o.maxConnections) {
      this.#counters.refused++;
      this.#strayRst(h.dstPort, h.srcPort);
      return;
    }
    const s = sys.connectUnix(`${this.#o.udsPath}_${h.dstPort}`);
    if (s === null) {
      this.#counters.refused++;
      this.#strayRst(h.dstPort, h.srcPort);
      return;
    }
    const c = this.#newConn(s.fd, h.dstPort, h.srcPort, s.pending ? 'connecting' : 'open');
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    this.#ctx.watch(s.fd, 0);
    if (!s.pending) {
      c.ops.push({ op: P.VIRTIO_VSOCK_OP_RESPONSE, flags: 0 });
      this.#rxReady.add(c);
    }
    this.#updateInterest(c);
  }

  /** Fills the guest's receive buffers with what is waiting; returns whether to interrupt it. */
  #toGuest(): boolean {
    const q = this.#rx;
    const txInterrupt = this.#txInterrupt;
    this.#txInterrupt = false;
    if (q === null) return txInterrupt;
    let used = 0;
    for (;;) {
      if (this.#strayRsts.length === 0 && this.#rxReady.size === 0) break;
      const chain = q.pop();
      if (chain === null) break; // the guest will notify when it has given buffers
      if (chain.fault !== null || chain.writableBytes < P.VSOCK_HDR_SIZE) {
        this.#counters.malformed++;
        q.addUsed(chain.head, 0);
        used++;
        continue;
      }
      const packet = this.#nextPacket(chain.writableBytes - P.VSOCK_HDR_SIZE);
      if (packet === null) {
        q.undoPop();
        break;
      }
      writeStream(this.#mem, chain.writable, 0, P.encodeHeader(packet.header));
      if (packet.data.length > 0) writeStream(this.#mem, chain.writable, P.VSOCK_HDR_SIZE, packet.data);
      q.addUsed(chain.head, P.VSOCK_HDR_SIZE + packet.data.length);
      used++;
    }
    return txInterrupt || (used > 0 && q.needsInterrupt());
  }

  #nextPacket(room: number): { header: P.VsockHeader; data: Uint8Array } | null {
    const stray = this.#strayRsts.shift();
    if (stray !== undefined) return { header: stray, data: new Uint8Array(0) };
    for (const c of [...this.#rxReady]) {
      this.#rxReady.delete(c);
      const op = c.ops.shift();
      if (op !== undefined) {
        if (c.ops.length > 0 || c.readable) this.#rxReady.add(c); // to the back of the line
        return { header: this.#header(op.op, c.hostPort, c.guestPort, 0, op.flags, c), data: new Uint8Array(0) };
      }
      if (c.state !== 'open' || !c.readable || c.guestNoRecv) continue;
      const want = Math.min(room, this.#credit(c), CONN_BUF);
      if (want === 0) continue; // a CREDIT_UPDATE brings it back
      let n: number;
      try {
        n = sys.readSocket(c.fd, this.#scratch.subarray(0, want));
      } catch {
        this.#fail(c);
        return this.#nextPacket(room);
      }
      if (n < 0) {
        c.readable = false;
        this.#updateInterest(c);
        continue;
      }
      if (n === 0) {
        c.readable = false;
        c.hostEof = true;
        this.#updateInterest(c);
        return { header: this.#header(P.VIRTIO_VSOCK_OP_SHUTDOWN, c.hostPort, c.guestPort, 0, P.VIRTIO_VSOCK_SHUTDOWN_SEND, c), data: new Uint8Array(0) };
      }
      c.txCnt = (c.txCnt + n) >>> 0;
      this.#counters.toGuestBytes += n;
      this.#rxReady.add(c);
      return { header: this.#header(P.VIRTIO_VSOCK_OP_RW, c.hostPort, c.guestPort, n, 0, c), data: this.#scratch.slice(0, n) };
    }
    return null;
  }
}
