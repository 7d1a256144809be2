/**
 * virtio-vsock's device side with real Unix sockets and a mock guest: the mock driver writes the guest's packets
 * into fake guest memory and reads what the device puts on the receive ring; Node's net module is the host.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../../../src/vmm/memory/index.ts';
import * as sys from '../../../../src/vmm/sys/index.ts';
import { SplitQueue } from '../../../../src/vmm/devices/virtio/index.ts';
import { CONN_BUF, RX_QUEUE, TX_QUEUE, VsockBackend } from '../../../../src/vmm/devices/virtio/vsock/vsock-device.ts';
import * as P from '../../../../src/vmm/devices/virtio/vsock/vsock-packet.ts';
import { MockDriver, queueLayoutAt } from '../../../helpers/virtio-driver.ts';

const CID = 3;
const SLOTS = 64;
const RX_BUFS = 0x100000;
const TX_BUFS = 0x200000;
const BUF = 4096;

interface Packet extends P.VsockHeader {
  readonly data: Buffer;
}

class Guest {
  readonly mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x400000 }]);
  readonly rx = new MockDriver(this.mem, queueLayoutAt(0x1000, SLOTS));
  readonly tx = new MockDriver(this.mem, queueLayoutAt(0x4000, SLOTS));
  readonly dev: VsockBackend;
  readonly inbox: Packet[] = [];
  readonly uds: string;
  readonly #epfd = sys.epollCreate();
  readonly #events = new Uint8Array(sys.EPOLL_EVENT_SIZE * 64);
  #txSlot = 0;

  constructor(t: ExecutionContext, maxConnections?: number) {
    const dir = mkdtempSync(join(tmpdir(), 'matchlock-vsock-'));
    this.uds = join(dir, 'v.sock');
    const listenFd = sys.listenUnix(this.uds);
    const epfd = this.#epfd;
    this.dev = new VsockBackend(this.mem, { guestCid: CID, listenFd, udsPath: this.uds, ...(maxConnections === undefined ? {} : { maxConnections }) }, {
      watch: (fd, ev) => sys.epollAdd(epfd, fd, ev, fd),
      unwatch: (fd) => sys.epollRemove(epfd, fd),
      setInterest: (fd, ev) => sys.epollModify(epfd, fd, ev, fd),
    });
    for (const w of this.dev.watches) sys.epollAdd(epfd, w.fd, w.events, w.fd);
    const features = { eventIdx: false, indirect: false };
    this.dev.activate([new SplitQueue(this.mem, this.rx.layout, features), new SplitQueue(this.mem, this.tx.layout, features), null]);
    for (let i = 0; i < SLOTS; i++) this.rx.add([{ gpa: RX_BUFS + i * BUF, len: BUF, write: true }]);
    t.teardown(() => {
      this.dev.close();
      sys.closeFd(epfd);
      rmSync(dir, { recursive: true, force: true });
    });
  }

  /** Runs the device loop (and Node's, for the host sockets) until `until` holds or `ms` pass. */
  async pump(until: () => boolean, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      for (const ev of sys.epollWait(this.#epfd, this.#events, 0)) this.dev.ready(ev.token, ev.events);
      this.dev.tick(Date.now());
      this.#collect();
      if (until()) return true;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return until();
  }

  #collect(): void {
    const used = this.rx.takeUsed();
    for (const u of used) {
      const at = RX_BUFS + u.id * BUF;
      const h = P.decodeHeader(this.mem.read(at, P.VSOCK_HDR_SIZE));
      this.inbox.push({ ...h, data: Buffer.from(this.mem.read(at + P.VSOCK_HDR_SIZE, u.len - P.VSOCK_HDR_SIZE)) });
      this.rx.add([{ gpa: at, len: BUF, write: true }]);
    }
    if (used.length > 0) this.dev.process(RX_QUEUE);
  }

  send(h: Partial<P.VsockHeader> & { op: number; srcPort: number; dstPort: number }, data: Uint8Array = new Uint8Array(0)): void {
    const at = TX_BUFS + (this.#txSlot++ % SLOTS) * (BUF + 64);
    const header: P.VsockHeader = { srcCid: CID, dstCid: P.VSOCK_HOST_CID, len: data.length, type: P.VIRTIO_VSOCK_TYPE_STREAM, flags: 0, bufAlloc: CONN_BUF, fwdCnt: 0, ...h };
    this.mem.write(at, P.encodeHeader(header));
    this.mem.write(at + P.VSOCK_HDR_SIZE, data);
    this.tx.add([{ gpa: at, len: P.VSOCK_HDR_SIZE + data.length }]);
    this.dev.process(TX_QUEUE);
    this.tx.takeUsed();
  }

  take(op: number, port?: number): Packet | undefined {
    const i = this.inbox.findIndex((p) => p.op === op && (port === undefined || p.dstPort === port));
    return i < 0 ? undefined : this.inbox.splice(i, 1)[0];
  }
}

function client(path: string): { sock: Socket; data: () => Buffer; closed: () => boolean } {
  const sock = connect(path);
  const chunks: Buffer[] = [];
  let closed = false;
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  return { sock, data: () => Buffer.concat(chunks), closed: () => closed };
}

test('host-initiated: CONNECT <port> reaches the guest as a REQUEST, its RESPONSE as OK <local port>, data both ways', async (t) => {
  const g = new Guest(t);
  const c = client(g.uds);
  c.sock.write('CONNECT 1234\n');
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_REQUEST)));
  const req = g.take(P.VIRTIO_VSOCK_OP_REQUEST)!;
  t.like(req, { srcCid: 2, dstCid: CID, dstPort: 1234, type: P.VIRTIO_VSOCK_TYPE_STREAM, bufAlloc: CONN_BUF });
  t.true(req.srcPort >= 2 ** 30 && req.srcPort < 2 ** 31, 'local ports come from [2^30, 2^31)');
  g.send({ op: P.VIRTIO_VSOCK_OP_RESPONSE, srcPort: 1234, dstPort: req.srcPort });
  t.true(await g.pump(() => c.data().toString() === `OK ${req.srcPort}\n`));
  c.sock.write('hello');
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RW)));
  t.is(g.take(P.VIRTIO_VSOCK_OP_RW)!.data.toString(), 'hello');
  g.send({ op: P.VIRTIO_VSOCK_OP_RW, srcPort: 1234, dstPort: req.srcPort }, Buffer.from('world'));
  t.true(await g.pump(() => c.data().toString().endsWith('world')));
  c.sock.end();
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_SHUTDOWN)), 'the host closing its side is a SHUTDOWN');
  g.send({ op: P.VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 1234, dstPort: req.srcPort, flags: 3 });
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RST)), 'a full guest shutdown is answered with RST');
  t.is(g.dev.counters()['open'], 0);
});

test('guest-initiated: a REQUEST to port P connects to <uds>_P; nothing there is an RST', async (t) => {
  const g = new Guest(t);
  const got: Buffer[] = [];
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => { got.push(d); s.write('pong'); });
  });
  await new Promise<void>((resolve) => server.listen(`${g.uds}_52`, resolve));
  t.teardown(() => server.close());
  g.send({ op: P.VIRTIO_VSOCK_OP_REQUEST, srcPort: 5000, dstPort: 52 });
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RESPONSE)));
  t.like(g.take(P.VIRTIO_VSOCK_OP_RESPONSE), { srcPort: 52, dstPort: 5000 });
  g.send({ op: P.VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: 52 }, Buffer.from('ping'));
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RW)));
  t.is(Buffer.concat(got).toString(), 'ping');
  t.is(g.take(P.VIRTIO_VSOCK_OP_RW)!.data.toString(), 'pong');
  g.send({ op: P.VIRTIO_VSOCK_OP_REQUEST, srcPort: 5001, dstPort: 99 });
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RST && p.dstPort === 5001)), 'refused ports give RST');
});

test('refusals: a bad CONNECT line closes the client; a guest RST closes it without OK; data for no connection gets RST', async (t) => {
  const g = new Guest(t);
  const bad = client(g.uds);
  bad.sock.write('HELLO THERE\n');
  t.true(await g.pump(() => bad.closed()));
  t.is(bad.data().length, 0);
  const refused = client(g.uds);
  refused.sock.write('connect 7\n');
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_REQUEST)));
  const req = g.take(P.VIRTIO_VSOCK_OP_REQUEST)!;
  g.send({ op: P.VIRTIO_VSOCK_OP_RST, srcPort: 7, dstPort: req.srcPort });
  t.true(await g.pump(() => refused.closed()));
  t.is(refused.data().length, 0);
  g.send({ op: P.VIRTIO_VSOCK_OP_RW, srcPort: 9, dstPort: 9 }, Buffer.from('x'));
  t.true(await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_RST && p.dstPort === 9)));
});

test('credit: the device sends no more than the guest\'s buffer allows, and more after a CREDIT_UPDATE', async (t) => {
  const g = new Guest(t);
  const c = client(g.uds);
  c.sock.write('CONNECT 80\n');
  await g.pump(() => g.inbox.some((p) => p.op === P.VIRTIO_VSOCK_OP_REQUEST));
  const req = g.take(P.VIRTIO_VSOCK_OP_REQUEST)!;
  g.send({ op: P.VIRTIO_VSOCK_OP_RESPONSE, srcPort: 80, dstPort: req.srcPort, bufAlloc: 5000 });
  await g.pump(() => c.data().length > 0);
  c.sock.write(randomBytes(100_000));
  const received = (): number => g.inbox.filter((p) => p.op === P.VIRTIO_VSOCK_OP_RW).reduce((n, p) => n + p.data.length, 0);
  await g.pump(() => received() >= 5000, 1000);
  await g.pump(() => false, 200);
  t.is(received(), 5000, 'exactly the credit, no more');
  g.send({ op: P.VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 80, dstPort: req.srcPort, bufAlloc: 5000, fwdCnt: 5000 });
  t.true(await g.pump(() => received() >= 10_000));
  await g.pump(() => false, 200);
  t.is(received(), 10_000);
});

test('a packet whose length disagrees with its buffers, or from another CID, is dropped and counted', async (t) => {
  const g = new Guest(t);
  g.send({ op: P.VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2, len: 100 }, Buffer.alloc(10));
  g.send({ op: P.VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2, srcCid: 77 });
  g.send({ op: P.VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2, dstCid: 5 });
  await g.pump(() => false, 100);
  t.like(g.dev.counters(), { malformed: 1, dropped: 2, connections: 0 });
  t.deepEqual(g.inbox, []);
});

test('twenty connections echo through a guest; a client that vanishes mid-stream disturbs none of the others', async (t) => {
  const g = new Guest(t);
  const n = 20;
  const clients = Array.from({ length: n }, () => client(g.uds));
  clients.forEach((c, i) => c.sock.write(`CONNECT ${100 + i}\n`));
  await g.pump(() => g.inbox.filter((p) => p.op === P.VIRTIO_VSOCK_OP_REQUEST).length === n);
  const ports = new Map<number, number>(); // guest port -> host port
  for (let p = g.take(P.VIRTIO_VSOCK_OP_REQUEST); p !== undefined; p = g.take(P.VIRTIO_VSOCK_OP_REQUEST)) {
    ports.set(p.dstPort, p.srcPort);
    g.send({ op: P.VIRTIO_VSOCK_OP_RESPONSE, srcPort: p.dstPort, dstPort: p.srcPort });
  }
  await g.pump(() => clients.every((c) => c.data().toString().startsWith('OK ')));
  const payloads = clients.map(() => randomBytes(200_000));
  const sums = payloads.map((p) => createHash('sha256').update(p).digest('hex'));
  const echoed = clients.map(() => [] as Buffer[]);
  clients.forEach((c, i) => {
    c.sock.removeAllListeners('data');
    let skip = `OK ${ports.get(100 + i)}\n`.length - c.data().length;
    c.sock.on('data', (d: Buffer) => {
      const rest = skip > 0 ? d.subarray(skip) : d;
      skip = Math.max(0, skip - d.length);
      echoed[i]!.push(rest);
    });
    c.sock.write(payloads[i]!);
  });
  const fwd = new Map<number, number>();
  let destroyed = false;
  const done = (): boolean => clients.every((_c, i) => i === 3 || Buffer.concat(echoed[i]!).length === payloads[i]!.length);
  // The guest echoes every RW straight back, and returns credit as it goes.
  await g.pump(() => {
    for (let p = g.take(P.VIRTIO_VSOCK_OP_RW); p !== undefined; p = g.take(P.VIRTIO_VSOCK_OP_RW)) {
      const f = (fwd.get(p.dstPort) ?? 0) + p.data.length;
      fwd.set(p.dstPort, f);
      g.send({ op: P.VIRTIO_VSOCK_OP_RW, srcPort: p.dstPort, dstPort: p.srcPort, fwdCnt: f }, p.data);
      if (!destroyed && p.dstPort === 103) {
        destroyed = true;
        clients[3]!.sock.destroy(); // gone mid-stream
      }
    }
    return done();
  }, 30_000);
  clients.forEach((c, i) => {
    if (i !== 3) t.is(createHash('sha256').update(Buffer.concat(echoed[i]!)).digest('hex'), sums[i]!, `connection ${i}`);
    c.sock.destroy();
  });
  t.true(destroyed);
});

test('the connection limit turns clients away, and the socket path goes with the device', async (t) => {
  const g = new Guest(t, 2);
  const clients = [0, 1, 2].map(() => client(g.uds));
  clients.forEach((c, i) => c.sock.write(`CONNECT ${i}\n`));
  t.true(await g.pump(() => clients[2]!.closed() && g.inbox.filter((p) => p.op === P.VIRTIO_VSOCK_OP_REQUEST).length === 2));
  t.false(clients[0]!.closed());
  t.true(existsSync(g.uds));
  g.dev.close();
  t.false(existsSync(g.uds));
  for (const c of clients) c.sock.destroy();
});
