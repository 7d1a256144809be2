/**
 * The virtio device thread: one epoll loop over every device's queue eventfds and the control eventfd, so that
 * disk I/O never runs on a vCPU thread. Guest mistakes are counted and reported (the first few in full); a
 * broken ring marks that device NEEDS_RESET and the others go on.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isMatchlockError, errorMessage } from '../../../errors.ts';
import { GuestMemory } from '../../memory/index.ts';
import * as sys from '../../sys/index.ts';
import type { BackendContext, VirtioBackend } from './backend.ts';
import { NetBackend } from './net/net-device.ts';
import { VsockBackend } from './vsock/vsock-device.ts';
import { BlkBackend } from './blk/blk-device.ts';
import { diskFrom } from './blk/disk.ts';
import { CONTROL_COUNTERS, CONTROL_STOP, type DeviceMessage, type DeviceWorkerData } from './device-protocol.ts';
import { SplitQueue } from './queue.ts';
import { MAX_QUEUES, TransportState } from './transport-state.ts';
import { MAX_VIRTIO_DEVICES } from './placement.ts';
import { VIRTIO_MMIO_INT_VRING, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from './virtio-abi.ts';

/** Guest faults reported in full per device; later ones are only counted. */
const FAULTS_REPORTED = 10;

const data = workerData as DeviceWorkerData;
const port = parentPort!;
const control = new Int32Array(data.control);
const mem = new GuestMemory(data.regions.map((r) => ({ gpa: r.gpa, size: r.size, bytes: sys.viewMapping(r.hostAddress, r.size), hostAddress: r.hostAddress })));

interface Device {
  readonly name: string;
  readonly state: TransportState;
  readonly backend: VirtioBackend;
  readonly irqFd: number;
  readonly queueFds: readonly number[];
  readonly maxSizes: readonly number[];
  /** The transport epoch the backend's queues belong to, or null while the device is not active. */
  epoch: number | null;
  /** The epoch whose rings broke: the device stays down until the driver resets it. */
  brokenEpoch: number | null;
  faults: number;
}

const epfd = sys.epollCreate();
const CONTROL_TOKEN = 0;
/** Tokens from here name a backend's own fd (a TAP, a socket); below, a queue's eventfd (1 + device·8 + queue). */
const WATCH_TOKENS = 1 + MAX_QUEUES * MAX_VIRTIO_DEVICES;
const watched = new Map<number, { readonly device: number; readonly fd: number }>();
const tokens = new Map<number, number>();
let nextToken = WATCH_TOKENS;

/** What backend `device` may ask of the loop: its fds get tokens of their own, never reused. */
function contextFor(device: number): BackendContext {
  return {
    setInterest(fd: number, events: number): void {
      const token = tokens.get(fd);
      if (token !== undefined) sys.epollModify(epfd, fd, events, token);
    },
    watch(fd: number, events: number): void {
      const token = nextToken++;
      tokens.set(fd, token);
      watched.set(token, { device, fd });
      sys.epollAdd(epfd, fd, events, token);
    },
    unwatch(fd: number): void {
      const token = tokens.get(fd);
      if (token === undefined) return;
      sys.epollRemove(epfd, fd);
      tokens.delete(fd);
      watched.delete(token);
    },
  };
}

function makeBackend(d: DeviceWorkerData['devices'][number], ctx: BackendContext): VirtioBackend {
  switch (d.backend.kind) {
    case 'blk': return new BlkBackend(mem, diskFrom(d.backend.drive), d.backend.limits);
    case 'net': return new NetBackend(mem, d.backend.tap, ctx);
    case 'vsock': return new VsockBackend(mem, d.backend, ctx);
  }
}

const contexts = data.devices.map((_d, i) => contextFor(i));
const devices: Device[] = data.devices.map((d, i) => ({
  name: d.info.name,
  state: new TransportState(d.transport, d.info.queueMaxSizes.length),
  backend: makeBackend(d, contexts[i]!),
  irqFd: d.irqFd,
  queueFds: d.queueFds,
  maxSizes: d.info.queueMaxSizes,
  epoch: null,
  brokenEpoch: null,
  faults: 0,
}));

function interrupt(dev: Device): void {
  dev.state.raise(VIRTIO_MMIO_INT_VRING);
  sys.signalEventFd(dev.irqFd);
}

/**
 * The device cannot go on with this configuration. A guest's mistake is counted (and the first few reported);
 * a host failure (a TAP gone, say) is reported; either way the device waits for a reset and the others go on.
 */
function fault(dev: Device, e: unknown): void {
  if (isMatchlockError(e, 'MATCHLOCK_ERR_VIRTIO_DRIVER')) {
    dev.faults++;
    if (dev.faults <= FAULTS_REPORTED) port.postMessage({ type: 'guest-fault', device: dev.name, message: errorMessage(e), count: dev.faults } satisfies DeviceMessage);
  } else {
    port.postMessage({ type: 'device-failed', device: dev.name, message: errorMessage(e) } satisfies DeviceMessage);
  }
  const epoch = dev.epoch ?? dev.state.epoch;
  dev.brokenEpoch = epoch;
  if (dev.state.needsReset(epoch)) sys.signalEventFd(dev.irqFd);
  dev.backend.reset();
  dev.epoch = null;
}

/** Brings the backend in line with the registers: activates, re-activates after a reset, or stops. */
function reconcile(dev: Device): void {
  const active = dev.state.active();
  if (active === null) {
    if (dev.epoch !== null) dev.backend.reset();
    dev.epoch = null;
    return;
  }
  if (dev.epoch === active.epoch || dev.brokenEpoch === active.epoch) return;
  dev.backend.reset();
  dev.epoch = active.epoch;
  try {
    const features = {
      eventIdx: (active.features & (1n << BigInt(VIRTIO_RING_F_EVENT_IDX))) !== 0n,
      indirect: (active.features & (1n << BigInt(VIRTIO_RING_F_INDIRECT_DESC))) !== 0n,
    };
    const queues = active.queues.map((q, i) => (q === null ? null : new SplitQueue(mem, q, features, dev.maxSizes[i])));
    dev.backend.activate(queues, active.features);
  } catch (e: unknown) {
    fault(dev, e);
    return;
  }
  // The driver may have queued buffers before DRIVER_OK reached us.
  for (let q = 0; q < dev.queueFds.length; q++) work(dev, (b) => b.process(q));
}

/** Runs `step` for an active device; true from it means: interrupt the driver. */
function work(dev: Device, step: (b: VirtioBackend) => boolean): void {
  if (dev.epoch === null || dev.state.epoch !== dev.epoch) reconcile(dev);
  if (dev.epoch === null) return;
  try {
    if (step(dev.backend)) interrupt(dev);
  } catch (e: unknown) {
    fault(dev, e);
  }
}

sys.epollAdd(epfd, data.controlFd, sys.EPOLLIN, CONTROL_TOKEN);
devices.forEach((dev, d) => {
  dev.queueFds.forEach((fd, q) => sys.epollAdd(epfd, fd, sys.EPOLLIN, 1 + d * MAX_QUEUES + q));
  for (const w of dev.backend.watches) contexts[d]!.watch(w.fd, w.events);
});

/** Milliseconds until the first backend deadline, or -1 (wait for ever). */
function waitMs(now: number): number {
  let ms = -1;
  for (const dev of devices) {
    const next = dev.epoch === null ? null : dev.backend.nextDeadline?.(now) ?? null;
    if (next !== null) ms = ms < 0 ? next : Math.min(ms, next);
  }
  return ms;
}
function countersNow(): Record<string, Readonly<Record<string, number>>> {
  const counters: Record<string, Readonly<Record<string, number>>> = {};
  for (const dev of devices) counters[dev.name] = { ...dev.backend.counters(), guestFaults: dev.faults };
  return counters;
}

const events = new Uint8Array(sys.EPOLL_EVENT_SIZE * 64);

port.postMessage({ type: 'ready' } satisfies DeviceMessage);

try {
  while (Atomics.load(control, CONTROL_STOP) === 0) {
    const ready = sys.epollWait(epfd, events, waitMs(Date.now()));
    const now = Date.now();
    for (const dev of devices) {
      if (dev.epoch !== null && dev.backend.nextDeadline?.(now) === 0) work(dev, (b) => b.tick?.(now) ?? false);
    }
    for (const ev of ready) {
      if (ev.token === CONTROL_TOKEN) {
        sys.drainEventFd(data.controlFd);
        for (const dev of devices) reconcile(dev);
        if (Atomics.exchange(control, CONTROL_COUNTERS, 0) !== 0) port.postMessage({ type: 'counters', counters: countersNow() } satisfies DeviceMessage);
        continue;
      }
      if (ev.token >= WATCH_TOKENS) {
        const w = watched.get(ev.token);
        if (w === undefined) continue; // unwatched earlier in this batch
        const dev = devices[w.device]!;
        if (dev.epoch === null) contexts[w.device]!.setInterest(w.fd, 0); // a device that is down waits for its driver
        else work(dev, (b) => b.ready(w.fd, ev.events));
        continue;
      }
      const d = Math.floor((ev.token - 1) / MAX_QUEUES);
      const q = (ev.token - 1) % MAX_QUEUES;
      const dev = devices[d]!;
      sys.drainEventFd(dev.queueFds[q]!);
      work(dev, (b) => b.process(q));
    }
  }
} catch (e: unknown) {
  // Report what broke the loop itself (with where), before the clean-up below can add errors of its own.
  port.postMessage({ type: 'device-failed', device: 'virtio device thread', message: e instanceof Error ? `${e.message} ${e.stack ?? ''}` : String(e) } satisfies DeviceMessage);
  throw e;
} finally {
  // Backends first: closing their fds unwatches them, which needs the epoll fd still open.
  const counters = countersNow();
  for (const dev of devices) {
    try {
      dev.backend.close();
    } catch (e: unknown) {
      port.postMessage({ type: 'device-failed', device: dev.name, message: `closing: ${errorMessage(e)}` } satisfies DeviceMessage);
    }
  }
  sys.closeFd(epfd);
  port.postMessage({ type: 'stopped', counters } satisfies DeviceMessage);
}
