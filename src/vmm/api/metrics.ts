/**
 * The VMM's metrics: one JSON object per line, appended to the metrics path (a file or a named pipe) when the
 * client asks (FlushMetrics), every minute while the VM runs, and once more when the VMM ends. Each line holds
 * the totals so far: boot timings, API requests, vCPU exits by reason (known once the vCPUs have stopped) and
 * the virtio devices' counters.
 */
import { closeSync, constants as fsc, openSync, writeSync } from 'node:fs';
import { errorMessage } from '../../errors.ts';
import { apiError } from './api-error.ts';
import type { MetricsBody } from './resources.ts';

export const METRICS_PERIOD_MS = 60_000;

/** Boot timings in milliseconds of wall-clock time (performance.timeOrigin + performance.now()). */
export interface BootTimes {
  /** The VMM process began (its own start time). */
  processStart: number;
  /** The API socket listens (or, with --no-api, the config file has been read). */
  apiReady: number | null;
  /** InstanceStart (or the config file's boot) began. */
  instanceStart: number | null;
  /** Every vCPU thread was about to enter KVM_RUN. */
  vcpusStarted: number | null;
  /** The guest first left KVM_RUN: it has run. */
  firstGuestExit: number | null;
}

export interface MetricsSnapshot {
  readonly state: string;
  readonly boot: BootTimes;
  readonly api: { readonly requests: number; readonly errors: number };
  readonly vcpuExits: Readonly<Record<string, number>> | null;
  readonly devices: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

function since(from: number | null, to: number | null): number | null {
  return from === null || to === null ? null : Math.round((to - from) * 1000);
}

export class MetricsWriter {
  readonly #fd: number;
  readonly #config: MetricsBody;
  readonly #id: string;

  private constructor(fd: number, config: MetricsBody, id: string) {
    this.#fd = fd;
    this.#config = config;
    this.#id = id;
  }

  /** Opens (creating, appending) the metrics path; a named pipe must have a reader, as Firecracker's does. */
  static open(config: MetricsBody, id: string): MetricsWriter {
    try {
      const fd = openSync(config.metrics_path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NONBLOCK, 0o600);
      return new MetricsWriter(fd, config, id);
    } catch (e: unknown) {
      throw apiError(`cannot open metrics path ${config.metrics_path}: ${errorMessage(e)}`, undefined, { path: config.metrics_path });
    }
  }

  /** The line for a snapshot (times as microseconds between boot steps). */
  line(s: MetricsSnapshot, now: number): string {
    const b = s.boot;
    const record = {
      utc_timestamp_ms: Math.round(now),
      ...(this.#config.emit_id === true ? { id: this.#id } : {}),
      ...(this.#config.properties === undefined ? {} : { properties: this.#config.properties }),
      state: s.state,
      boot: {
        process_start_to_api_ready_us: since(b.processStart, b.apiReady),
        instance_start_to_vcpus_started_us: since(b.instanceStart, b.vcpusStarted),
        instance_start_to_first_guest_exit_us: since(b.instanceStart, b.firstGuestExit),
        process_start_to_first_guest_exit_us: since(b.processStart, b.firstGuestExit),
      },
      api: s.api,
      vcpu_exits: s.vcpuExits,
      devices: s.devices,
    };
    return `${JSON.stringify(record)}\n`;
  }

  write(s: MetricsSnapshot, now: number = performance.timeOrigin + performance.now()): void {
    const text = Buffer.from(this.line(s, now));
    try {
      let off = 0;
      while (off < text.length) off += writeSync(this.#fd, text, off);
    } catch (e: unknown) {
      throw apiError(`cannot write metrics to ${this.#config.metrics_path}: ${errorMessage(e)}`);
    }
  }

  close(): void {
    closeSync(this.#fd);
  }
}
