/**
 * The microVM's configuration as the API builds it before boot (Firecracker's VmResources): each PUT is checked
 * as a whole (ids, files, limits, what matchlock supports) and either replaces its part or changes nothing.
 * At InstanceStart it becomes a validated VmConfig; `GET /vm/config` shows it in the API's shapes.
 */
import { accessSync, constants as fsc, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { totalmem } from 'node:os';
import { errorMessage } from '../../errors.ts';
import { BUILTIN_CPU_TEMPLATE_NAMES, MAX_MEM_MIB, builtinCpuTemplate } from '../arch/x86_64/index.ts';
import { MAX_VIRTIO_DEVICES } from '../devices/virtio/placement.ts';
import type { DriveSpec } from '../devices/virtio/blk/disk.ts';
import type { BucketSize } from '../devices/virtio/blk/token-bucket.ts';
import { defaultMac, parseMac, tapNameProblem, type NetSpec } from '../net-spec.ts';
import { DEFAULT_CMDLINE, DEFAULT_MEM_MIB, type VmConfig } from '../vm-config.ts';
import { apiError } from './api-error.ts';
import type {
  BootSourceBody, DriveBody, FullVmConfigBody, LoggerBody, MachineConfigBody, MetricsBody, NetworkInterfaceBody, RateLimiterBody,
  SerialBody, TokenBucketBody, VsockBody,
} from './resources.ts';

/** Firecracker's ids: letters, digits and "_", at most 64. */
export function checkId(id: string, what: string): void {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(id)) throw apiError(`invalid ${what} "${id}": use 1 to 64 letters, digits or "_"`);
}

export function checkPathId(pathId: string, bodyId: string): void {
  if (pathId !== bodyId) throw apiError(`the id from the path [${pathId}] does not match the id from the body [${bodyId}]`);
}

function readable(path: string, what: string, writable = false): void {
  try {
    accessSync(path, writable ? fsc.R_OK | fsc.W_OK : fsc.R_OK);
    if (!statSync(path).isFile()) throw new Error('not a regular file');
  } catch (e: unknown) {
    throw apiError(`cannot open ${what} ${path}: ${errorMessage(e)}`, undefined, { path });
  }
}

function creatable(path: string, what: string): void {
  if (existsSync(path)) throw apiError(`${what} ${path} exists already: remove it or give another path`, undefined, { path });
  try {
    accessSync(dirname(path), fsc.W_OK | fsc.X_OK);
  } catch (e: unknown) {
    throw apiError(`cannot create ${what} ${path}: ${errorMessage(e)}`, undefined, { path });
  }
}

function unsupported(what: string): never {
  throw apiError(`${what} is not supported by matchlock`);
}

/** A Firecracker token bucket as a rate, or null when it limits nothing (size or refill_time 0). */
function bucketRate(b: TokenBucketBody | undefined): { rate: number; size: BucketSize } | null {
  if (b === undefined || b.size === 0 || b.refill_time === 0) return null;
  return { rate: (b.size * 1000) / b.refill_time, size: { capacity: b.size, oneTimeBurst: b.one_time_burst ?? 0 } };
}

function driveLimits(r: RateLimiterBody | undefined): Pick<DriveSpec, 'bytesPerSec' | 'opsPerSec' | 'bytesBucket' | 'opsBucket'> {
  const bytes = bucketRate(r?.bandwidth);
  const ops = bucketRate(r?.ops);
  return { bytesPerSec: bytes?.rate ?? null, opsPerSec: ops?.rate ?? null, bytesBucket: bytes?.size ?? null, opsBucket: ops?.size ?? null };
}

export class VmBuilder {
  #machine: Required<MachineConfigBody> = {
    vcpu_count: 1, mem_size_mib: DEFAULT_MEM_MIB, smt: false, cpu_template: 'None', track_dirty_pages: false, huge_pages: 'None',
  };
  #boot: BootSourceBody | null = null;
  readonly #drives = new Map<string, DriveBody>();
  readonly #nets = new Map<string, NetworkInterfaceBody>();
  #vsock: VsockBody | null = null;
  #serial: SerialBody | null = null;
  logger: LoggerBody | null = null;
  metrics: MetricsBody | null = null;

  get machineConfig(): Required<MachineConfigBody> {
    return { ...this.#machine };
  }

  setMachineConfig(body: Partial<MachineConfigBody>): void {
    const next = { ...this.#machine, ...body };
    if (next.smt) unsupported('smt (simultaneous multithreading)');
    if (next.track_dirty_pages) unsupported('track_dirty_pages (it is for snapshots)');
    if (next.huge_pages !== 'None') unsupported(`huge_pages "${next.huge_pages}"`);
    if (next.cpu_template !== 'None') {
      try {
        builtinCpuTemplate(next.cpu_template);
      } catch {
        throw apiError(`cpu_template "${next.cpu_template}" is not available: give None or one of ${BUILTIN_CPU_TEMPLATE_NAMES.join(', ')}`);
      }
    }
    const hostMib = Math.floor(totalmem() / (1024 * 1024));
    if (next.mem_size_mib < 1 || next.mem_size_mib > Math.min(hostMib, MAX_MEM_MIB)) {
      throw apiError(`mem_size_mib ${next.mem_size_mib} is out of range: give 1 to ${Math.min(hostMib, MAX_MEM_MIB)} (this host has ${hostMib} MiB)`);
    }
    this.#machine = next;
  }

  setBootSource(body: BootSourceBody): void {
    readable(body.kernel_image_path, 'kernel image');
    if (body.initrd_path !== undefined) readable(body.initrd_path, 'initrd');
    this.#boot = { ...body };
  }

  #deviceCount(): number {
    return this.#drives.size + this.#nets.size + (this.#vsock === null ? 0 : 1);
  }

  #roomFor(replacing: boolean): void {
    if (!replacing && this.#deviceCount() >= MAX_VIRTIO_DEVICES) {
      throw apiError(`a VM can have at most ${MAX_VIRTIO_DEVICES} virtio devices (IRQs 5-23)`);
    }
  }

  putDrive(body: DriveBody): void {
    checkId(body.drive_id, 'drive id');
    if (body.socket !== undefined) unsupported('a vhost-user drive (socket)');
    if (body.io_engine === 'Async') unsupported('io_engine "Async"');
    if (body.path_on_host === undefined) throw apiError(`drive ${body.drive_id}: path_on_host is required`);
    const cow = body.cow_path;
    if (cow !== undefined && body.is_read_only === true) throw apiError(`drive ${body.drive_id}: is_read_only and cow_path together: a copy-on-write drive is writable, its base is never written`);
    readable(body.path_on_host, 'drive', body.is_read_only !== true && cow === undefined);
    if (cow !== undefined) creatable(cow, 'copy-on-write overlay');
    if (body.is_root_device) {
      const other = [...this.#drives.values()].find((d) => d.is_root_device && d.drive_id !== body.drive_id);
      if (other !== undefined) throw apiError(`a root device exists already (drive ${other.drive_id}): a VM has one`);
    }
    const paths = [...this.#drives.values()].filter((d) => d.drive_id !== body.drive_id);
    if (paths.some((d) => d.path_on_host === body.path_on_host && !(d.is_read_only === true && body.is_read_only === true))) {
      throw apiError(`drive ${body.drive_id}: ${body.path_on_host} is another drive's image already; only read-only drives may share one`);
    }
    this.#roomFor(this.#drives.has(body.drive_id));
    this.#drives.set(body.drive_id, { ...body });
  }

  putNetworkInterface(body: NetworkInterfaceBody): void {
    checkId(body.iface_id, 'interface id');
    const tapProblem = tapNameProblem(body.host_dev_name);
    if (tapProblem !== null) throw apiError(`host_dev_name "${body.host_dev_name}" ${tapProblem}`);
    if (body.rx_rate_limiter !== undefined || body.tx_rate_limiter !== undefined) unsupported('a network rate limiter');
    if (body.guest_mac !== undefined) {
      const mac = parseMac(body.guest_mac);
      if (typeof mac === 'string') throw apiError(`guest_mac "${body.guest_mac}" ${mac}`);
    }
    const twice = [...this.#nets.values()].find((n) => n.host_dev_name === body.host_dev_name && n.iface_id !== body.iface_id);
    if (twice !== undefined) throw apiError(`TAP ${body.host_dev_name} is interface ${twice.iface_id}'s already: each interface needs its own`);
    this.#roomFor(this.#nets.has(body.iface_id));
    this.#nets.set(body.iface_id, { ...body });
  }

  putVsock(body: VsockBody): void {
    creatable(body.uds_path, 'vsock socket');
    this.#roomFor(this.#vsock !== null);
    this.#vsock = { ...body };
  }

  putSerial(body: SerialBody): void {
    if (body.rate_limiter !== undefined) unsupported('a serial rate limiter');
    this.#serial = { ...body };
  }

  /** The drives in the guest's order: the root device first (vda), then the others as they were first put. */
  #orderedDrives(): DriveBody[] {
    const all = [...this.#drives.values()];
    return [...all.filter((d) => d.is_root_device), ...all.filter((d) => !d.is_root_device)];
  }

  /** The configuration to boot; throws a 400 when it cannot boot (no kernel yet). */
  toVmConfig(kvmDevice: string): VmConfig {
    const boot = this.#boot;
    if (boot === null) throw apiError('cannot start the microVM without a kernel: PUT /boot-source first');
    const drives = this.#orderedDrives();
    let cmdline = boot.boot_args ?? DEFAULT_CMDLINE;
    const root = drives[0]?.is_root_device === true ? drives[0] : null;
    if (root !== null) {
      const device = root.partuuid === undefined ? '/dev/vda' : `PARTUUID=${root.partuuid}`;
      cmdline = `${cmdline} root=${device} ${root.is_read_only === true ? 'ro' : 'rw'}`;
    }
    const m = this.#machine;
    return Object.freeze({
      kernel: boot.kernel_image_path,
      initrd: boot.initrd_path ?? null,
      cmdline,
      memMib: m.mem_size_mib,
      vcpus: m.vcpu_count,
      cpuTemplate: m.cpu_template === 'None' ? null : builtinCpuTemplate(m.cpu_template),
      bootProtocol: 'auto' as const,
      // Without PUT /serial the console goes to the VMM's stdout, as Firecracker's does.
      serialOut: this.#serial?.serial_out_path ?? '-',
      serialIn: false,
      drives: Object.freeze(drives.map((d): DriveSpec => Object.freeze({
        path: d.path_on_host!,
        readOnly: d.is_read_only === true,
        overlay: d.cow_path ?? null,
        id: d.drive_id.slice(0, 20),
        ...driveLimits(d.rate_limiter),
      }))),
      nets: Object.freeze([...this.#nets.values()].map((n): NetSpec => Object.freeze({
        tap: n.host_dev_name,
        mac: n.guest_mac === undefined ? defaultMac(n.host_dev_name) : parseMac(n.guest_mac) as Uint8Array, // checked when put
        mtu: n.mtu ?? null,
      }))),
      vsock: this.#vsock === null ? null : Object.freeze({ cid: this.#vsock.guest_cid, uds: this.#vsock.uds_path }),
      kvmDevice,
    });
  }

  /** `GET /vm/config`: what has been configured, in the API's shapes (absent parts left out). */
  toFullConfig(): FullVmConfigBody {
    return {
      'machine-config': this.machineConfig,
      ...(this.#boot === null ? {} : { 'boot-source': { ...this.#boot } }),
      drives: this.#orderedDrives().map((d) => ({ ...d })),
      'network-interfaces': [...this.#nets.values()].map((n) => ({ ...n })),
      ...(this.#vsock === null ? {} : { vsock: { ...this.#vsock } }),
      ...(this.logger === null ? {} : { logger: { ...this.logger } }),
      ...(this.metrics === null ? {} : { metrics: { ...this.metrics } }),
    };
  }
}
