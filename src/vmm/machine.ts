/**
 * One microVM: built from a validated config (guest memory prepared first, so bad input fails before KVM is
 * touched), run until the guest or the host stops it, and torn down with nothing left behind.
 */
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import {
  KVM_TSS_ADDRESS, bootFpu, bootMsrs, linuxBootRegs, linuxBootSregs, normalizeCpuid, pvhBootRegs, pvhBootSregs,
} from './arch/x86_64/index.ts';
import { I8042, I8042_KBD_IRQ, Serial, createLegacyShared, type LegacyShared } from './devices/index.ts';
import { openDrive } from './devices/virtio/blk/disk.ts';
import { blkDeviceInfo } from './devices/virtio/blk/blk-device.ts';
import { netDeviceInfo } from './devices/virtio/net/net-device.ts';
import { vsockDeviceInfo } from './devices/virtio/vsock/vsock-device.ts';
import { VirtioDevices, abandonBackend, type DeviceCounters, type DeviceSpec } from './devices/virtio/virtio-devices.ts';
import * as sys from './sys/index.ts';
import { Kvm, type VcpuFd, type VmFd } from './kvm/index.ts';
import { GuestRam } from './memory/index.ts';
import { prepareGuest, type PreparedGuest } from './guest-setup.ts';
import { SerialSink } from './serial-sink.ts';
import type { StopReason } from './vcpu/exit.ts';
import { VcpuThreads } from './vcpu/vcpu-threads.ts';
import type { VmConfig } from './vm-config.ts';

export interface VmResult {
  readonly reason: StopReason;
  readonly detail: string;
  /** 0 for an orderly end (guest reset or power-off, or a host signal); 3 when the guest failed; 1 for a VMM error. */
  readonly exitCode: number;
  readonly vcpu: number | null;
  readonly registers: string | null;
  readonly exits: Readonly<Record<string, number>>;
  readonly serialBytes: number;
  /** Per virtio device: requests, bytes, guest faults. */
  readonly devices: DeviceCounters;
  /** When the guest first left KVM_RUN (wall-clock ms): it had run; null if it never did. */
  readonly firstGuestExitAt: number | null;
}

export const EXIT_OK = 0;
export const EXIT_VMM_ERROR = 1;
export const EXIT_GUEST_FAILED = 3;

export function exitCodeFor(reason: StopReason): number {
  if (reason === 'reset' || reason === 'shutdown' || reason === 'signal') return EXIT_OK;
  if (reason === 'vmm-error') return EXIT_VMM_ERROR;
  return EXIT_GUEST_FAILED;
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Scancode set 2: Ctrl, Alt, Delete pressed, then released in reverse order. */
const CTRL_ALT_DEL_SCANCODES = [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14];

interface Running {
  readonly threads: VcpuThreads;
  readonly sink: SerialSink;
  readonly legacy: LegacyShared;
  readonly signalled: Promise<NodeJS.Signals>;
  /** Stops the devices and undoes what start() set up (idempotent enough to run once per start). */
  readonly release: () => Promise<void>;
}

export class Machine {
  readonly config: VmConfig;
  readonly guest: PreparedGuest;
  readonly #log: Logger;
  readonly #ram: GuestRam;
  readonly #kvm: Kvm;
  readonly #vm: VmFd;
  readonly #vcpus: VcpuFd[];
  readonly #virtio: VirtioDevices;
  #running: Running | null = null;
  #started = false;

  private constructor(config: VmConfig, log: Logger, ram: GuestRam, guest: PreparedGuest, kvm: Kvm, vm: VmFd, vcpus: VcpuFd[], virtio: VirtioDevices) {
    this.config = config;
    this.#log = log;
    this.#ram = ram;
    this.guest = guest;
    this.#kvm = kvm;
    this.#vm = vm;
    this.#vcpus = vcpus;
    this.#virtio = virtio;
  }

  static create(config: VmConfig, log: Logger): Machine {
    const ram = GuestRam.map(config.memMib);
    let kvm: Kvm | null = null;
    let vm: VmFd | null = null;
    const vcpus: VcpuFd[] = [];
    let specs: DeviceSpec[] = [];
    let virtio: VirtioDevices | null = null;
    try {
      const guest = prepareGuest(ram.memory, config);
      log.info({ kernel: config.kernel, format: guest.kernel.kind, mode: guest.mode, entry: guest.entry, cmdline: guest.cmdline }, 'guest prepared');
      // Drives first, then network devices (Firecracker's order): vda… and eth0… in the order given.
      config.drives.forEach((d, i) => {
        const drive = openDrive(d);
        specs.push({ info: blkDeviceInfo(`virtio-blk${i}`, drive), backend: { kind: 'blk', drive, limits: { bytesPerSec: d.bytesPerSec ?? null, opsPerSec: d.opsPerSec ?? null, bytesBucket: d.bytesBucket ?? null, opsBucket: d.opsBucket ?? null } } });
      });
      config.nets.forEach((n, i) => {
        const tap = sys.openTap(n.tap);
        specs.push({ info: netDeviceInfo(`virtio-net${i}`, n), backend: { kind: 'net', tap } });
        log.info({ device: `virtio-net${i}`, tap: tap.name, created: tap.created }, 'tap opened');
      });
      if (config.vsock !== null) {
        const { cid, uds } = config.vsock;
        const listenFd = sys.listenUnix(uds);
        specs.push({ info: vsockDeviceInfo('virtio-vsock0', cid), backend: { kind: 'vsock', guestCid: cid, listenFd, udsPath: uds } });
      }
      kvm = Kvm.open(config.kvmDevice);
      const max = kvm.maxVcpus();
      if (config.vcpus > max) {
        throw new MatchlockError(ErrorCodes.CONFIG, `${config.vcpus} vCPUs is more than KVM allows here (${max}): lower --vcpus`, { vcpus: config.vcpus, max });
      }
      vm = kvm.createVm();
      vm.setTssAddr(KVM_TSS_ADDRESS);
      vm.createIrqchip();
      vm.createPit2();
      ram.memory.regions.forEach((r, slot) => vm!.setUserMemoryRegion(slot, r.gpa, r.size, r.hostAddress!));
      virtio = VirtioDevices.create(vm, specs, log);
      specs = []; // owned by the devices now
      const supported = kvm.supportedCpuid();
      for (let i = 0; i < config.vcpus; i++) {
        const vcpu = vm.createVcpu(i);
        vcpus.push(vcpu);
        Machine.#setupVcpu(vcpu, supported, config, guest);
      }
      return new Machine(config, log, ram, guest, kvm, vm, vcpus, virtio);
    } catch (e: unknown) {
      virtio?.close();
      for (const d of specs) abandonBackend(d.backend);
      for (const v of vcpus) v.close();
      vm?.close();
      kvm?.close();
      ram[Symbol.dispose]();
      throw e;
    }
  }

  static #setupVcpu(vcpu: VcpuFd, supported: Parameters<typeof normalizeCpuid>[0], config: VmConfig, guest: PreparedGuest): void {
    const tscKhz = vcpu.tscKhz();
    vcpu.setCpuid(normalizeCpuid(supported, {
      vcpuIndex: vcpu.index,
      vcpuCount: config.vcpus,
      ...(tscKhz === null ? {} : { tscKhz }),
      ...(config.cpuTemplate === null ? {} : { template: config.cpuTemplate }),
    }));
    vcpu.setMsrs(bootMsrs());
    const pvh = guest.mode === 'pvh';
    vcpu.setRegs(pvh ? pvhBootRegs(guest.entry) : linuxBootRegs(guest.entry));
    vcpu.setFpu(bootFpu());
    const base = vcpu.getSregs();
    vcpu.setSregs(pvh ? pvhBootSregs(base) : linuxBootSregs(base));
    vcpu.setupLapicLints();
  }

  /** Host address ranges of guest RAM, for diagnostics and leak checks. */
  get ramHostRanges(): readonly { readonly address: bigint; readonly size: number }[] {
    return this.#ram.memory.regions.flatMap((r) => (r.hostAddress === null ? [] : [{ address: r.hostAddress, size: r.size }]));
  }

  /** Runs the guest until it stops or the process gets SIGTERM/SIGINT. */
  async run(): Promise<VmResult> {
    await this.start();
    return this.wait();
  }

  /** Starts the devices and the vCPUs; resolves once every vCPU thread is about to enter KVM_RUN. */
  async start(): Promise<void> {
    if (this.#running !== null || this.#started) throw new MatchlockError(ErrorCodes.VCPU, 'the VM was started already', {});
    this.#started = true;
    const legacy = createLegacyShared(this.#virtio.shared);
    const sink = new SerialSink(legacy.serial.output, this.config.serialOut);
    let onSignal: (s: NodeJS.Signals) => void = () => {};
    const signalled = new Promise<NodeJS.Signals>((resolve) => { onSignal = resolve; });
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
    const stopInput = this.config.serialIn ? this.#feedStdin(legacy) : (): void => {};
    const release = async (): Promise<void> => {
      await this.#virtio.stop();
      stopInput();
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      await sink.close();
    };
    try {
      await this.#virtio.start(this.#ram.memory.regions.map((r) => ({ gpa: r.gpa, size: r.size, hostAddress: r.hostAddress! })));
      const threads = await VcpuThreads.start(this.#vm, this.#vcpus, legacy, this.#log);
      this.#running = { threads, sink, legacy, signalled, release };
      this.#log.info({ vcpus: this.#vcpus.length, memMib: this.config.memMib }, 'vm started');
    } catch (e: unknown) {
      await release();
      throw e;
    }
  }

  /** Waits for the started guest to stop (or for SIGTERM/SIGINT), stops everything and reports. */
  async wait(): Promise<VmResult> {
    const running = this.#running;
    if (running === null) throw new MatchlockError(ErrorCodes.VCPU, 'the VM is not running', {});
    const { threads, sink, signalled } = running;
    try {
      const deviceFailure = this.#virtio.failure.then((why) => ({ deviceFailure: why }));
      const first = await Promise.race([threads.firstStop, signalled, deviceFailure]);
      const firstGuestExitAt = threads.firstExitAt;
      const stopped = await threads.stopAll();
      const exits: Record<string, number> = {};
      for (const s of stopped) for (const [k, n] of Object.entries(s.exits)) exits[k] = (exits[k] ?? 0) + n;
      await sink.close();
      const base = { exits, serialBytes: sink.bytes, devices: await this.#virtio.stop(), firstGuestExitAt };
      if (typeof first === 'string') {
        return { ...base, reason: 'signal', detail: `stopped by ${first}`, exitCode: EXIT_OK, vcpu: null, registers: null };
      }
      if ('deviceFailure' in first) {
        return { ...base, reason: 'vmm-error', detail: first.deviceFailure, exitCode: EXIT_VMM_ERROR, vcpu: null, registers: null };
      }
      const outcome = first.outcome ?? { reason: 'vmm-error' as const, detail: `vCPU ${first.index} ended without a reason` };
      return {
        ...base, reason: outcome.reason, detail: outcome.detail, exitCode: exitCodeFor(outcome.reason), vcpu: first.index,
        registers: first.registers,
      };
    } finally {
      this.#running = null;
      await running.release();
    }
  }

  #runningOrThrow(): Running {
    if (this.#running === null) throw new MatchlockError(ErrorCodes.VCPU, 'the VM is not running', {});
    return this.#running;
  }

  /** Holds every vCPU outside the guest; false when the VM stopped before all were held. */
  async pause(): Promise<boolean> {
    return this.#runningOrThrow().threads.pause();
  }

  resume(): void {
    this.#runningOrThrow().threads.resume();
  }

  /** Presses and releases Ctrl+Alt+Del on the i8042 keyboard (what Firecracker's SendCtrlAltDel does). */
  sendCtrlAltDel(): void {
    const vm = this.#vm;
    const kbd = new I8042(this.#runningOrThrow().legacy.i8042, { pulseIrq: (irq) => vm.pulseIrq(irq), requestStop: () => {} });
    if (kbd.queue(CTRL_ALT_DEL_SCANCODES)) vm.pulseIrq(I8042_KBD_IRQ);
  }

  /** What can be read while the guest runs: when it first ran, and the devices' counters. */
  async stats(): Promise<{ readonly firstExitAt: number | null; readonly devices: DeviceCounters }> {
    const running = this.#running;
    if (running === null) return { firstExitAt: null, devices: {} };
    return { firstExitAt: running.threads.firstExitAt, devices: await this.#virtio.counters() };
  }

  /** Sends stdin to COM1; returns what stops it. */
  #feedStdin(devices: LegacyShared): () => void {
    const vm = this.#vm;
    const uart = new Serial(devices.serial, {
      pulseIrq: (irq) => vm.pulseIrq(irq),
      requestStop: () => {},
    });
    const onData = (chunk: Buffer): void => uart.receive(chunk);
    process.stdin.on('data', onData);
    return () => {
      process.stdin.off('data', onData);
      process.stdin.pause();
    };
  }

  /** Closes every fd and unmaps guest memory. */
  close(): void {
    this.#virtio.close();
    for (const v of this.#vcpus.splice(0)) v.close();
    this.#vm.close();
    this.#kvm.close();
    this.#ram[Symbol.dispose]();
  }
}
