/**
 * virtio-vsock in our VMM on real KVM, with the test guest's ring-3 vsock driver and the host side on Unix
 * sockets (Firecracker's protocol): 64 MiB echoed with a checksum, 100 connections at once, a client that
 * vanishes mid-stream, a refused port both ways, and guest-initiated connections to `<uds>_PORT`.
 */
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmSuite } from '../helpers/kvm.ts';
import { boot } from '../helpers/boot.ts';
import { logLines } from '../helpers/cli.ts';
import { patternBytes } from '../helpers/vblk-pattern.ts';

const { test } = kvmSuite(import.meta.url);
const MiB = 1024 * 1024;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Connects to the VMM's socket, asks for guest port `port`, sends `data` (then ends), collects the reply. */
function exchange(uds: string, port: number, data: Buffer, opts: { vanishAfter?: number } = {}): Promise<{ ok: string | null; reply: Buffer; closedEarly: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(uds);
    let head = '';
    let ok: string | null = null;
    const reply: Buffer[] = [];
    let got = 0;
    s.on('connect', () => s.write(`CONNECT ${port}\n`));
    s.on('data', (d: Buffer) => {
      if (ok === null) {
        head += d.toString('latin1');
        const nl = head.indexOf('\n');
        if (nl < 0) return;
        ok = head.slice(0, nl);
        const rest = Buffer.from(head.slice(nl + 1), 'latin1');
        if (rest.length > 0) reply.push(rest);
        s.end(data);
        return;
      }
      reply.push(d);
      got += d.length;
      if (opts.vanishAfter !== undefined && got >= opts.vanishAfter) {
        s.destroy();
        resolve({ ok, reply: Buffer.concat(reply), closedEarly: true });
      }
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ ok, reply: Buffer.concat(reply), closedEarly: ok === null }));
  });
}

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-vsock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('host→guest: 64 MiB echoed intact, 100 connections at once, a vanishing client and a refused port disturb nothing', async (t) => {
  const dir = scratch(t);
  const uds = join(dir, 'v.sock');
  const small = 100;
  let listening: () => void = () => {};
  const listen = new Promise<void>((resolve) => { listening = resolve; });
  const vm = boot(t, `ml.vsock.echo=5000:${small + 2}`, ['--vsock', `cid=3,uds=${uds}`, '--mem', '256'], {
    timeoutMs: 900_000,
    onStdout: (_c, all) => { if (all.includes('VSOCK LISTEN 5000')) listening(); },
  });
  vm.then(listening, listening);
  await listen;
  const refused = await exchange(uds, 6000, Buffer.from('nobody'));
  t.is(refused.ok, null, 'a port nobody listens on gets no OK');
  const big = randomBytes(64 * MiB);
  const smalls = Array.from({ length: small }, () => randomBytes(64 * 1024));
  const [bigReply, vanished, ...replies] = await Promise.all([
    exchange(uds, 5000, big),
    exchange(uds, 5000, randomBytes(4 * MiB), { vanishAfter: 256 * 1024 }),
    ...smalls.map((d) => exchange(uds, 5000, d)),
  ]);
  const { r, out } = await vm;
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.regex(bigReply.ok ?? '', /^OK \d+$/);
  t.is(bigReply.reply.length, big.length);
  t.is(sha(bigReply.reply), sha(big), '64 MiB came back intact');
  t.true(vanished.closedEarly);
  replies.forEach((x, i) => t.is(sha(x.reply), sha(smalls[i]!), `connection ${i}`));
  t.is(out.vsock[0], 'LISTEN 5000');
  t.regex(out.vsock[1] ?? '', new RegExp(`^ECHO ${small + 2} \\d+$`));
  const devices = logLines(r.stderr).find((l) => l['msg'] === 'vm stopped')?.['devices'] as Record<string, Record<string, number>> | undefined;
  t.like(devices?.['virtio-vsock0'], { open: 0, malformed: 0, guestFaults: 0 });
  t.false(existsSync(uds), 'the socket is removed with the VM');
});

test('guest→host: a connection to port P reaches <uds>_P with every byte; a port nobody serves is refused', async (t) => {
  const dir = scratch(t);
  const uds = join(dir, 'v.sock');
  const received: Buffer[] = [];
  const server = createServer((s) => s.on('data', (d: Buffer) => received.push(d)));
  await new Promise<void>((resolve) => server.listen(`${uds}_7000`, resolve));
  t.teardown(() => server.close());
  const bytes = 4 * MiB;
  const { r, out } = await boot(t, `ml.vsock.send=7001:4096:1 ml.vsock.send=7000:${bytes}:9`, ['--vsock', `cid=3,uds=${uds}`], { timeoutMs: 600_000 });
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.deepEqual(out.vsock, ['REFUSED 7001', `SENT ${bytes}`]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is(sha(Buffer.concat(received)), sha(patternBytes(9, 0, bytes / 512)));
});
