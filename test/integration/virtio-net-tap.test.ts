/**
 * virtio-net's device side on a real TAP, without a guest: the mock driver plays the guest's rings in fake
 * guest memory, the TAP lives in a network namespace made by the test, and tap-peer (AF_PACKET) is the host.
 * And the test guest's own virtio-net driver against QEMU's device on a TAP. Needs root and QEMU; no KVM.
 */
import type { ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { GuestMemory } from '../../src/vmm/memory/index.ts';
import * as sys from '../../src/vmm/sys/index.ts';
import { SplitQueue, VRING_DESC_F_NEXT } from '../../src/vmm/devices/virtio/index.ts';
import { NetBackend, RX_QUEUE, TX_QUEUE, tapOffloads } from '../../src/vmm/devices/virtio/net/net-device.ts';
import { MockDriver, queueLayoutAt } from '../helpers/virtio-driver.ts';
import { rootSuite } from '../helpers/root.ts';
import { netns, runPeer } from '../helpers/netns.ts';
import { parseGuestOutput } from '../helpers/guest-output.ts';
import { ETH_ECHO, frameProblem, testFrame } from '../helpers/net-frames.ts';

const { test } = rootSuite(import.meta.url);
const RUN_QEMU = fileURLToPath(new URL('../guests/run-qemu.sh', import.meta.url));
const GUEST_MAC = Uint8Array.of(0x06, 1, 2, 3, 4, 5);
const RX_RING = 0x1000;
const TX_RING = 0x4000;
const RX_BUFS = 0x100000; // 2 KiB each
const TX_BUFS = 0x200000;
const SLOTS = 32;
/** Frames queued before the device is told: each takes two of the 32 descriptors. */
const BATCH = 16;

interface Rig {
  readonly mem: GuestMemory;
  readonly rx: MockDriver;
  readonly tx: MockDriver;
  readonly net: NetBackend;
  readonly tap: sys.Tap;
  readonly ns: string;
  /** The TAP events the backend asked the loop to wait for. */
  interest: number;
  /** How often the backend stopped reading the TAP for want of receive buffers. */
  rxStalls: number;
}

function rig(t: ExecutionContext, tag: string): Rig {
  const ns = netns(t, tag);
  const name = `mlt${tag}${process.pid % 100000}`.slice(0, 15);
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x400000 }]);
  const rxLayout = queueLayoutAt(RX_RING, SLOTS);
  const txLayout = queueLayoutAt(TX_RING, SLOTS);
  const tap = sys.openTap(name);
  t.true(tap.created);
  // Into the test's namespace with it: our fd stays attached.
  execFileSync('ip', ['link', 'set', name, 'netns', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', name, 'up']);
  const r: Rig = {
    mem, tap, ns, interest: 0, rxStalls: 0,
    rx: new MockDriver(mem, rxLayout),
    tx: new MockDriver(mem, txLayout),
    net: new NetBackend(mem, tap, {
      watch: () => {},
      unwatch: () => {},
      setInterest: (_fd, events) => {
        if ((r.interest & sys.EPOLLIN) !== 0 && (events & sys.EPOLLIN) === 0) r.rxStalls++;
        r.interest = events;
      },
    }),
  };
  t.teardown(() => r.net.close());
  const features = { eventIdx: false, indirect: true };
  r.net.activate([new SplitQueue(mem, rxLayout, features), new SplitQueue(mem, txLayout, features)], 0n);
  return r;
}

/** Gives the device `n` receive buffers of 2 KiB. */
function postRx(r: Rig, n: number, from = 0): void {
  for (let i = 0; i < n; i++) r.rx.add([{ gpa: RX_BUFS + ((from + i) % SLOTS) * 2048, len: 2048, write: true }]);
}

/** Queues one frame for transmission: the 12-byte header and the frame in two descriptors. */
function queueTx(r: Rig, slot: number, frame: Uint8Array): void {
  const at = TX_BUFS + (slot % SLOTS) * 2048;
  r.mem.fill(at, sys.VNET_HDR_SIZE, 0);
  r.mem.write(at + 64, frame);
  r.tx.add([{ gpa: at, len: sys.VNET_HDR_SIZE }, { gpa: at + 64, len: frame.length }]);
}

test('frames the guest transmits arrive on the TAP byte for byte, in order', async (t) => {
  const r = rig(t, 'tx');
  const peer = runPeer(r.ns, ['recv', r.tap.name, '500', '9', '20000']);
  await peer.ready;
  for (let seq = 0; seq < 500; seq++) {
    queueTx(r, seq, testFrame(seq, 9, 60 + (seq % 1400), GUEST_MAC));
    if (seq % BATCH === BATCH - 1) {
      r.net.process(TX_QUEUE);
      t.is(r.tx.takeUsed().length, BATCH);
    }
  }
  r.net.process(TX_QUEUE);
  r.tx.takeUsed();
  const result = await peer.done;
  t.is(result.stdout.trim().split('\n').pop(), 'RECV 500 ok', result.stderr);
  t.like(r.net.counters(), { txFrames: 500, txDropped: 0, malformed: 0 });
});

test('frames written to the TAP reach the guest byte for byte under load, none lost or doubled, also when the guest runs out of buffers', async (t) => {
  const r = rig(t, 'rx');
  const total = 3000;
  // The peer sends up to 48 frames ahead of the echoes, more than the 32 buffers the guest has.
  const peer = runPeer(r.ns, ['echo', r.tap.name, String(total), '1000', '77', '48', '60000']);
  await peer.ready;
  postRx(r, SLOTS);
  let seq = 0;
  let chatter = 0;
  let txSlot = 0;
  let rxSlot = SLOTS;
  const deadline = Date.now() + 60_000;
  while (seq < total && Date.now() < deadline) {
    if ((r.interest & sys.EPOLLIN) !== 0) r.net.ready(r.tap.fd, sys.EPOLLIN);
    const used = r.rx.takeUsed();
    if (used.length === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    let echoed = 0;
    for (const u of used) {
      const at = RX_BUFS + ((u.id % SLOTS) * 2048);
      const frame = r.mem.read(at + sys.VNET_HDR_SIZE, u.len - sys.VNET_HDR_SIZE);
      if (frame.length >= 14 && frame[12] === 0x86 && frame[13] === 0xdd) { // the kernel's own IPv6 chatter
        chatter++;
        continue;
      }
      const problem = frameProblem(frame, seq, 77);
      if (problem !== null) {
        t.fail(`frame ${seq}: ${problem}`);
        return;
      }
      t.is(r.mem.readU16(at + 10), 1, 'num_buffers is 1');
      frame[13] = ETH_ECHO & 0xff;
      queueTx(r, txSlot++, frame);
      seq++;
      if (++echoed % BATCH === 0) {
        r.net.process(TX_QUEUE);
        r.tx.takeUsed();
      }
    }
    r.net.process(TX_QUEUE);
    r.tx.takeUsed();
    // Give the buffers back only now: meanwhile the device found none and left the frames in the TAP.
    postRx(r, used.length, rxSlot);
    rxSlot += used.length;
    r.net.process(RX_QUEUE);
  }
  const result = await peer.done;
  t.is(result.stdout.trim().split('\n').pop(), `ECHO ${total} ok`, result.stderr);
  t.is(seq, total);
  t.like(r.net.counters(), { rxFrames: total + chatter, rxDropped: 0, txFrames: total });
  t.true(r.rxStalls > 0, 'the device did run out of receive buffers');
  t.log(`the device ran out of receive buffers ${r.rxStalls} time(s) and lost nothing`);
});

test('bad transmit chains are dropped and counted; the TAP goes on', async (t) => {
  const r = rig(t, 'bad');
  const peer = runPeer(r.ns, ['recv', r.tap.name, '1', '5', '20000']);
  await peer.ready;
  r.tx.add([{ gpa: TX_BUFS, len: sys.VNET_HDR_SIZE }]); // a header and no frame
  r.tx.add([{ gpa: 0x3ff000, len: 0x2000 }]); // runs out of guest memory
  r.tx.writeDesc(TX_RING, 5, TX_BUFS, 12, VRING_DESC_F_NEXT, 5); // a loop
  r.tx.publish(5);
  queueTx(r, 10, testFrame(0, 5, 100, GUEST_MAC));
  r.net.process(TX_QUEUE);
  t.is(r.tx.takeUsed().length, 4);
  t.like(r.net.counters(), { txFrames: 1, txDropped: 1, malformed: 2 });
  t.is((await peer.done).stdout.trim().split('\n').pop(), 'RECV 1 ok');
});

test('offloads follow what the guest accepted; a TAP we created disappears with the device', (t) => {
  t.is(tapOffloads(0n), 0);
  t.is(tapOffloads((1n << 1n) | (1n << 7n)), sys.TUN_F_CSUM | sys.TUN_F_TSO4);
  t.is(tapOffloads(1n << 7n), 0, 'no TSO without GUEST_CSUM');
  const name = `mltgone${process.pid % 10000}`;
  const tap = sys.openTap(name);
  t.true(existsSync(`/sys/class/net/${name}`));
  sys.closeFd(tap.fd);
  t.false(existsSync(`/sys/class/net/${name}`), 'a TAP this VMM created is gone once its fd is closed');
});

test('the test guest\'s virtio-net driver passes both ways against QEMU microvm\'s virtio-net-device on a TAP', async (t) => {
  const ns = netns(t, 'qemu');
  const tap = 'mlqtap0';
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'tuntap', 'add', tap, 'mode', 'tap']);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', tap, 'up']);
  const fromGuest = runPeer(ns, ['recv', tap, '1000', '32', '120000']);
  await fromGuest.ready;
  const qemuExtra = `-global virtio-mmio.force-legacy=false -netdev tap,id=n0,ifname=${tap},script=no,downscript=no -device virtio-net-device,netdev=n0,mac=06:aa:bb:cc:dd:01`;
  const cmdline = 'ml.vnet.info ml.vnet.echo=1000:31 ml.vnet.send=1000:900:32';
  let driverUp: () => void = () => {};
  const up = new Promise<void>((resolve) => { driverUp = resolve; });
  const guest = new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, RUN_QEMU, cmdline], { env: { ...process.env, QEMU_EXTRA: qemuExtra }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (stdout.includes('VNET INFO')) driverUp();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      driverUp();
      resolve({ code, stdout });
    });
  });
  // Frames sent before the guest's driver has its receive buffers would be dropped by QEMU's TAP backend.
  await up;
  const echo = runPeer(ns, ['echo', tap, '1000', '1514', '31', '48', '120000']);
  const [g, e, r] = await Promise.all([guest, echo.done, fromGuest.done]);
  t.is(g.code, 0, g.stdout);
  t.deepEqual(parseGuestOutput(g.stdout).vnet, ['INFO mac 06:aa:bb:cc:dd:01 mtu 1500', 'ECHO 1000 ok', 'SENT 1000']);
  t.is(e.stdout.trim().split('\n').pop(), 'ECHO 1000 ok', e.stderr);
  t.is(r.stdout.trim().split('\n').pop(), 'RECV 1000 ok', r.stderr);
});
