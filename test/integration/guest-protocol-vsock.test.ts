/**
 * The host side of the guest protocol (src/runner) against the test guest's implementation of the agent
 * (test/guests/agent.c) over real virtio-vsock in our VMM on KVM: the same frames as the Node agent speaks,
 * through Firecracker's `CONNECT <port>` handshake on the VMM's Unix socket.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import pino from 'pino';
import { encodeFrame, PROTOCOL_VERSION } from '../../src/guest/index.ts';
import { dialGuest, GuestSession } from '../../src/runner/index.ts';
import { assignment } from '../helpers/agent.ts';
import { boot } from '../helpers/boot.ts';
import { kvmSuite } from '../helpers/kvm.ts';

const { test } = kvmSuite(import.meta.url);
const PORT = 1024;

function fnv1a64(b: Buffer): string {
  let h = 0xcbf29ce484222325n;
  for (const x of b) h = BigInt.asUintN(64, (h ^ BigInt(x)) * 0x100000001b3n);
  return h.toString(16);
}

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-agent-vsock-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  return dir;
}

test('assignment, output, exit and ACK between our host side and the test guest, over virtio-vsock', async (t) => {
  const uds = join(scratch(t), 'v.sock');
  const vm = boot(t, `ml.vsock.agent=${PORT}`, ['--vsock', `cid=3,uds=${uds}`], { timeoutMs: 900_000 });
  const socket = await dialGuest({ kind: 'vsock', uds, port: PORT }, 600_000);
  let out = '';
  const session = new GuestSession(socket, pino({ level: 'silent' }), { onOutput: (_s, d) => { out += d.toString(); } }, 600_000);
  const hello = await session.hello;
  t.deepEqual(hello, { protocol: PROTOCOL_VERSION, agent: 'matchlock-testguest/1', state: 'idle' });
  const job = assignment({ MODE: 'ok', BIG: 'x'.repeat(20_000) });
  const started = await session.assign(job);
  t.is(started.pid, 1);
  await t.throwsAsync(session.assign(job), { message: /refused the job \(busy\)/ });
  const exited = await session.exited;
  t.is(exited.code, 0);
  const sent = Buffer.from(JSON.stringify({ protocol: PROTOCOL_VERSION, ...job }));
  t.is(out, `testguest ran the job: ${sent.length} bytes fnv ${fnv1a64(sent)}\n`, 'every byte of the assignment arrived');
  session.ack();
  const { r, out: guest } = await vm;
  t.deepEqual(guest.agent, [`LISTEN ${PORT}`, `ASSIGN ${sent.length} 0x${fnv1a64(sent)}`, 'ACK']);
  t.is(r.code, 0);
});

test('a malformed frame from the host gets an ERROR from the test guest, and the connection ends', async (t) => {
  const uds = join(scratch(t), 'v.sock');
  const vm = boot(t, `ml.vsock.agent=${PORT}`, ['--vsock', `cid=3,uds=${uds}`], { timeoutMs: 900_000 });
  const socket = await dialGuest({ kind: 'vsock', uds, port: PORT }, 600_000);
  const session = new GuestSession(socket, pino({ level: 'silent' }), {}, 600_000);
  await session.hello;
  session.writeRaw(encodeFrame('ACK', Buffer.alloc(0)));
  await t.throwsAsync(session.exited, { message: /protocol error \(malformed\)/ });
  const { out: guest } = await vm;
  t.deepEqual(guest.agent, [`LISTEN ${PORT}`, 'MALFORMED']);
});
