/**
 * The host side of the virtio devices: places them (0xC000_1000 + n·0x1000, IRQ 5 + n), wires their queue
 * notifications (ioeventfd) and interrupts (irqfd) into KVM, announces them on the kernel command line, and
 * runs the device thread.
 */
import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { VmFd } from '../../kvm/index.ts';
import * as sys from '../../sys/index.ts';
import { abandonDrive } from './blk/disk.ts';
import { CONTROL_COUNTERS, CONTROL_STOP, CONTROL_WORDS, type BackendData, type DeviceMessage, type DeviceWorkerData, type RegionData, type VirtioShared } from './device-protocol.ts';
import { VirtioMmioTransport, type VirtioDeviceInfo } from './mmio-transport.ts';
import { MAX_VIRTIO_DEVICES, devicePlace, virtioCmdline } from './placement.ts';
import { createTransportShared } from './transport-state.ts';
import { VIRTIO_MMIO_QUEUE_NOTIFY } from './virtio-abi.ts';

type DeviceEntry = DeviceWorkerData['devices'][number];

/** A device to create: what the guest sees, and the host resource behind it. */
export interface DeviceSpec {
  readonly info: VirtioDeviceInfo;
  readonly backend: BackendData;
}

/** Releases a device's host resource that never served a VM (a created overlay is removed, a created TAP goes). */
export function abandonBackend(b: BackendData): void {
  if (b.kind === 'blk') abandonDrive(b.drive);
  else if (b.kind === 'net') sys.closeFd(b.tap.fd);
  else {
    sys.closeFd(b.listenFd);
    rmSync(b.udsPath, { force: true });
  }
}

export type DeviceCounters = Readonly<Record<string, Readonly<Record<string, number>>>>;

export class VirtioDevices {
  readonly #devices: DeviceEntry[];
  readonly #controlFd: number;
  readonly #control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  #counterWaiters: ((c: DeviceCounters) => void)[] = [];
  readonly #log: Logger;
  #worker: Worker | null = null;
  #stopped: Promise<DeviceCounters> | null = null;
  #closed = false;
  #stopping = false;
  #fail: (why: string) => void = () => {};
  /** Settles only if the device thread fails while the VM runs (the VM must then stop). */
  readonly failure = new Promise<string>((resolve) => { this.#fail = resolve; });

  private constructor(devices: DeviceEntry[], controlFd: number, log: Logger) {
    this.#devices = devices;
    this.#controlFd = controlFd;
    this.#log = log;
  }

  /**
   * Takes ownership of the devices' host resources (released by close(), or here on failure) and registers
   * every device with KVM, in the order given. The VM's fds must outlive this object.
   */
  static create(vm: VmFd, specs: readonly DeviceSpec[], log: Logger): VirtioDevices {
    if (specs.length > MAX_VIRTIO_DEVICES) {
      for (const d of specs) abandonBackend(d.backend);
      throw new MatchlockError(ErrorCodes.CONFIG, `${specs.length} virtio devices is more than the ${MAX_VIRTIO_DEVICES} IRQs 5-23 allow`, { devices: specs.length });
    }
    const fds: number[] = [];
    const eventFd = (): number => {
      const fd = sys.eventFd();
      fds.push(fd);
      return fd;
    };
    try {
      const controlFd = eventFd();
      const devices = specs.map(({ info, backend }, n): DeviceEntry => {
        const { base, irq } = devicePlace(n);
        const transport = createTransportShared();
        VirtioMmioTransport.initialise(info, transport);
        const queueFds = info.queueMaxSizes.map((_, q) => {
          const fd = eventFd();
          vm.registerIoeventfd(base + VIRTIO_MMIO_QUEUE_NOTIFY, fd, q);
          return fd;
        });
        const irqFd = eventFd();
        vm.registerIrqfd(irqFd, irq);
        return { info, base, irq, transport, queueFds, controlFd, irqFd, backend };
      });
      return new VirtioDevices(devices, controlFd, log);
    } catch (e: unknown) {
      for (const fd of fds) sys.closeFd(fd);
      for (const d of specs) abandonBackend(d.backend);
      throw e;
    }
  }

  /** What each vCPU thread needs to put the devices on its MMIO bus. */
  get shared(): VirtioShared[] {
    return this.#devices.map(({ info, base, irq, transport, queueFds, controlFd }) => ({ info, base, irq, transport, queueFds, controlFd }));
  }

  /** `virtio_mmio.device=4K@0xc0001000:5 …` for the guest kernel. */
  get cmdline(): string {
    return virtioCmdline(this.#devices.length);
  }

  /** Starts the device thread over guest memory; resolves when it is ready. */
  async start(regions: readonly RegionData[]): Promise<void> {
    if (this.#devices.length === 0) return;
    const wd: DeviceWorkerData = { regions, devices: this.#devices, controlFd: this.#controlFd, control: this.#control.buffer as SharedArrayBuffer };
    const worker = new Worker(new URL('./device-worker.ts', import.meta.url), { workerData: wd, name: 'virtio' });
    this.#worker = worker;
    let ready: () => void = () => {};
    let failed: (e: Error) => void = () => {};
    const started = new Promise<void>((resolve, reject) => { ready = resolve; failed = reject; });
    this.#stopped = new Promise<DeviceCounters>((resolve) => {
      worker.on('message', (m: DeviceMessage) => {
        if (m.type === 'ready') ready();
        else if (m.type === 'guest-fault') this.#log.warn({ device: m.device, count: m.count, reason: m.message }, 'guest driver fault');
        else if (m.type === 'device-failed') this.#log.error({ device: m.device, reason: m.message }, 'virtio device failed');
        else if (m.type === 'counters') for (const w of this.#counterWaiters.splice(0)) w(m.counters);
        else resolve(m.counters);
      });
      worker.on('error', (e: Error) => {
        this.#log.error({ err: e.message }, 'virtio device thread failed');
        failed(e);
        this.#fail(`virtio device thread failed: ${e.message}`);
        resolve({});
      });
      worker.on('exit', () => {
        failed(new Error('virtio device thread ended before it was ready'));
        if (!this.#stopping) this.#fail('virtio device thread ended while the VM ran');
        resolve({});
      });
    });
    await started;
  }

  /** The devices' counters while they run (empty when the device thread is not running). */
  async counters(): Promise<DeviceCounters> {
    const stopped = this.#stopped;
    if (this.#worker === null || stopped === null || this.#stopping) return {};
    const now = new Promise<DeviceCounters>((resolve) => { this.#counterWaiters.push(resolve); });
    Atomics.store(this.#control, CONTROL_COUNTERS, 1);
    sys.signalEventFd(this.#controlFd);
    return Promise.race([now, stopped]);
  }

  /** Stops the device thread; returns its counters. */
  async stop(): Promise<DeviceCounters> {
    const worker = this.#worker;
    if (worker === null || this.#stopped === null) return {};
    this.#stopping = true;
    Atomics.store(this.#control, CONTROL_STOP, 1);
    sys.signalEventFd(this.#controlFd);
    const counters = await this.#stopped;
    await worker.terminate();
    this.#worker = null;
    return counters;
  }

  /** Closes the eventfds, and the drives if the device thread never took them. Call after stop(). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const started = this.#stopped !== null;
    for (const d of this.#devices.splice(0)) {
      for (const fd of d.queueFds) sys.closeFd(fd);
      sys.closeFd(d.irqFd);
      if (!started) abandonBackend(d.backend);
    }
    sys.closeFd(this.#controlFd);
  }
}
