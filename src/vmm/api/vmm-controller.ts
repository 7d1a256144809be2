/**
 * The VMM process's state and what each API operation does to it: configure before boot, InstanceStart,
 * then pause, resume, Ctrl+Alt+Del and metrics while the guest runs. One operation at a time (the server
 * queues them). When the guest stops, `ended` settles with its result, and the process should exit.
 */
import type { Logger } from 'pino';
import { createRootLogger } from '../../log.ts';
import { VERSION } from '../../version.ts';
import { Machine, type VmResult } from '../machine.ts';
import { apiError } from './api-error.ts';
import { checkBody, type Fields } from './body-schema.ts';
import { MetricsWriter, METRICS_PERIOD_MS, type BootTimes } from './metrics.ts';
import {
  ACTION, BOOT_SOURCE, DRIVE, LOGGER, MACHINE_CONFIG, MACHINE_CONFIG_PATCH, METRICS, NETWORK_INTERFACE, SERIAL, VM_STATE, VSOCK,
  type BootSourceBody, type DriveBody, type LoggerBody, type MachineConfigBody, type MetricsBody, type NetworkInterfaceBody,
  type SerialBody, type VsockBody,
} from './resources.ts';
import { VmBuilder, checkId, checkPathId } from './vm-builder.ts';

export type VmState = 'Not started' | 'Running' | 'Paused';

export interface ApiReply {
  readonly status: number;
  readonly body?: unknown;
}

const NO_CONTENT: ApiReply = { status: 204 };

const LOG_LEVELS: Readonly<Record<string, string>> = {
  Error: 'error', Warning: 'warn', Info: 'info', Debug: 'debug', Trace: 'trace', Off: 'silent',
};

export interface ControllerOptions {
  /** The instance id (the jailer's --id), shown by GET / and in metrics. */
  readonly id: string;
  readonly log: Logger;
  readonly kvmDevice: string;
  /** When the VMM process began (wall-clock ms). */
  readonly processStart: number;
}

export function now(): number {
  return performance.timeOrigin + performance.now();
}

export class VmmController {
  readonly #id: string;
  readonly #kvmDevice: string;
  readonly builder = new VmBuilder();
  #log: Logger;
  #state: VmState = 'Not started';
  #machine: Machine | null = null;
  #metrics: MetricsWriter | null = null;
  #metricsTimer: NodeJS.Timeout | null = null;
  /** How the guest ended, once it has. */
  #result: VmResult | null = null;
  readonly boot: BootTimes;
  readonly api = { requests: 0, errors: 0 };
  #settle: (r: VmResult) => void = () => {};
  /** The guest's end (after InstanceStart): the VMM's work is done. */
  readonly ended = new Promise<VmResult>((resolve) => { this.#settle = resolve; });

  constructor(options: ControllerOptions) {
    this.#id = options.id;
    this.#kvmDevice = options.kvmDevice;
    this.#log = options.log;
    this.boot = { processStart: options.processStart, apiReady: null, instanceStart: null, vcpusStarted: null, firstGuestExit: null };
  }

  get state(): VmState {
    return this.#state;
  }

  #preBoot(): void {
    if (this.#state !== 'Not started') throw apiError('the requested operation is not supported after starting the microVM');
  }

  #postBoot(): Machine {
    if (this.#machine === null) throw apiError('the requested operation is not supported before starting the microVM');
    return this.#machine;
  }

  info(): ApiReply {
    return { status: 200, body: { id: this.#id, state: this.#state, vmm_version: VERSION, app_name: 'matchlock' } };
  }

  version(): ApiReply {
    return { status: 200, body: { firecracker_version: VERSION } };
  }

  machineConfig(): ApiReply {
    return { status: 200, body: this.builder.machineConfig };
  }

  vmConfig(): ApiReply {
    return { status: 200, body: this.builder.toFullConfig() };
  }

  #configure<T>(fields: Fields, body: unknown, what: string, apply: (b: T) => void): ApiReply {
    this.#preBoot();
    apply(checkBody<T>(fields, body, what));
    return NO_CONTENT;
  }

  putMachineConfig(body: unknown): ApiReply {
    return this.#configure<MachineConfigBody>(MACHINE_CONFIG, body, 'machine-config', (b) => this.builder.setMachineConfig(b));
  }

  patchMachineConfig(body: unknown): ApiReply {
    return this.#configure<Partial<MachineConfigBody>>(MACHINE_CONFIG_PATCH, body, 'machine-config', (b) => this.builder.setMachineConfig(b));
  }

  putBootSource(body: unknown): ApiReply {
    return this.#configure<BootSourceBody>(BOOT_SOURCE, body, 'boot-source', (b) => this.builder.setBootSource(b));
  }

  putDrive(pathId: string, body: unknown): ApiReply {
    checkId(pathId, 'drive id');
    return this.#configure<DriveBody>(DRIVE, body, 'drive', (b) => {
      checkPathId(pathId, b.drive_id);
      this.builder.putDrive(b);
    });
  }

  putNetworkInterface(pathId: string, body: unknown): ApiReply {
    checkId(pathId, 'interface id');
    return this.#configure<NetworkInterfaceBody>(NETWORK_INTERFACE, body, 'network-interface', (b) => {
      checkPathId(pathId, b.iface_id);
      this.builder.putNetworkInterface(b);
    });
  }

  putVsock(body: unknown): ApiReply {
    return this.#configure<VsockBody>(VSOCK, body, 'vsock', (b) => this.builder.putVsock(b));
  }

  putSerial(body: unknown): ApiReply {
    return this.#configure<SerialBody>(SERIAL, body, 'serial', (b) => this.builder.putSerial(b));
  }

  putLogger(body: unknown): ApiReply {
    return this.#configure<LoggerBody>(LOGGER, body, 'logger', (b) => {
      const level = LOG_LEVELS[b.level ?? 'Info']!;
      let log: Logger;
      try {
        log = b.log_path === undefined ? this.#log.child({}, { level }) : createRootLogger(level, b.log_path).child({ vm: this.#id });
      } catch (e: unknown) {
        throw apiError(`cannot open log path ${b.log_path ?? ''}: ${e instanceof Error ? e.message : String(e)}`);
      }
      this.#log = log;
      this.builder.logger = { ...b };
    });
  }

  putMetrics(body: unknown): ApiReply {
    return this.#configure<MetricsBody>(METRICS, body, 'metrics', (b) => {
      if (this.#metrics !== null) throw apiError('metrics are configured already: they can be set once');
      this.#metrics = MetricsWriter.open(b, this.#id);
      this.builder.metrics = { ...b };
    });
  }

  async action(body: unknown): Promise<ApiReply> {
    const { action_type: action } = checkBody<{ action_type: string }>(ACTION, body, 'action');
    if (action === 'InstanceStart') {
      this.#preBoot();
      await this.start();
    } else if (action === 'SendCtrlAltDel') {
      this.#postBoot().sendCtrlAltDel();
    } else {
      await this.flushMetrics();
    }
    return NO_CONTENT;
  }

  async patchVm(body: unknown): Promise<ApiReply> {
    const { state } = checkBody<{ state: 'Paused' | 'Resumed' }>(VM_STATE, body, 'vm');
    const machine = this.#postBoot();
    if (state === 'Paused' && this.#state === 'Running') {
      if (!(await machine.pause())) throw apiError('the microVM stopped while it was being paused');
      this.#state = 'Paused';
    } else if (state === 'Resumed' && this.#state === 'Paused') {
      machine.resume();
      this.#state = 'Running';
    }
    return NO_CONTENT;
  }

  /** Builds and starts the VM from the configuration so far; the VM's end settles `ended`. */
  async start(): Promise<void> {
    this.boot.instanceStart = now();
    const config = this.builder.toVmConfig(this.#kvmDevice);
    const machine = Machine.create(config, this.#log);
    try {
      await machine.start();
    } catch (e: unknown) {
      machine.close();
      throw e;
    }
    this.boot.vcpusStarted = now();
    this.#machine = machine;
    this.#state = 'Running';
    if (this.#metrics !== null) {
      this.#metricsTimer = setInterval(() => { void this.flushMetrics().catch(() => {}); }, METRICS_PERIOD_MS);
      this.#metricsTimer.unref();
    }
    void machine.wait().then((result) => this.#finish(machine, result), (e: unknown) => this.#finish(machine, {
      reason: 'vmm-error', detail: e instanceof Error ? e.message : String(e), exitCode: 1, vcpu: null, registers: null, exits: {}, serialBytes: 0, devices: {}, firstGuestExitAt: null,
    }));
  }

  async #finish(machine: Machine, result: VmResult): Promise<void> {
    if (this.#metricsTimer !== null) clearInterval(this.#metricsTimer);
    this.#result = result;
    this.boot.firstGuestExit ??= result.firstGuestExitAt;
    machine.close();
    this.#machine = null;
    try {
      if (this.#metrics !== null) await this.flushMetrics();
    } catch (e: unknown) {
      this.#log.warn({ err: e instanceof Error ? e.message : String(e) }, 'last metrics line not written');
    }
    this.#settle(result);
  }

  /** Writes one metrics line now. */
  async flushMetrics(): Promise<void> {
    const metrics = this.#metrics;
    if (metrics === null) throw apiError('metrics are not configured: PUT /metrics first');
    const stats = this.#machine === null ? null : await this.#machine.stats();
    if (stats !== null && stats.firstExitAt !== null) this.boot.firstGuestExit = stats.firstExitAt;
    metrics.write({
      state: this.#state,
      boot: { ...this.boot },
      api: { ...this.api },
      vcpuExits: this.#result?.exits ?? null,
      devices: stats?.devices ?? this.#result?.devices ?? {},
    });
  }

  /** Closes the metrics file; for the process's own shutdown. */
  close(): void {
    if (this.#metricsTimer !== null) clearInterval(this.#metricsTimer);
    this.#metrics?.close();
    this.#metrics = null;
  }
}
