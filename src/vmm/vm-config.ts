import { totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import type { DriveSpec } from './devices/virtio/blk/disk.ts';
import { parseDriveSpec } from './drive-spec.ts';
import { parseNetSpec, type NetSpec } from './net-spec.ts';
import { parseVsockSpec, type VsockSpec } from './vsock-spec.ts';
import { MAX_VIRTIO_DEVICES } from './devices/virtio/placement.ts';
import { MAX_MEM_MIB, MAX_VCPUS, builtinCpuTemplate, parseCpuTemplate, type CpuTemplate } from './arch/x86_64/index.ts';

export type BootProtocol = 'auto' | 'linux' | 'pvh';

/** A VM's boot configuration, validated and frozen. */
export interface VmConfig {
  readonly kernel: string;
  readonly initrd: string | null;
  readonly cmdline: string;
  readonly memMib: number;
  readonly vcpus: number;
  readonly cpuTemplate: CpuTemplate | null;
  readonly bootProtocol: BootProtocol;
  /** Where the serial console goes: '-' for stdout, a file path, or null to discard. */
  readonly serialOut: string | null;
  /** Feed the process's stdin to the guest's serial console. */
  readonly serialIn: boolean;
  /** virtio-blk drives, in the order the guest sees them (vda, vdb …). */
  readonly drives: readonly DriveSpec[];
  /** virtio-net devices on TAPs, after the drives (eth0, eth1 …). */
  readonly nets: readonly NetSpec[];
  /** The one virtio-vsock device, last; null for none. */
  readonly vsock: VsockSpec | null;
  /** The KVM device; MATCHLOCK_KVM_DEVICE overrides /dev/kvm (for hosts that put it elsewhere, and for tests). */
  readonly kvmDevice: string;
}

export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=k panic=1 pci=off nomodule i8042.noaux i8042.nomux i8042.dumbkbd';
export const DEFAULT_MEM_MIB = 128;

export interface VmConfigInput {
  kernel?: string | undefined;
  initrd?: string | undefined;
  cmdline?: string | undefined;
  memMib?: number | string | undefined;
  vcpus?: number | string | undefined;
  cpuTemplate?: string | undefined;
  bootProtocol?: string | undefined;
  serialOut?: string | undefined;
  serialIn?: string | undefined;
  drives?: readonly string[] | undefined;
  nets?: readonly string[] | undefined;
  vsock?: string | undefined;
}

function configError(message: string, details: Record<string, unknown>): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, message, details);
}

function integer(value: number | string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw configError(`${what} must be a whole number, got ${JSON.stringify(value)}`, { [what]: value });
  return n;
}

/** A built-in template name, or the path of a JSON template file. */
export function resolveCpuTemplate(spec: string): CpuTemplate {
  if (!spec.includes('/') && !spec.endsWith('.json')) return builtinCpuTemplate(spec);
  let text: string;
  try {
    text = readFileSync(spec, 'utf8');
  } catch (e: unknown) {
    throw new MatchlockError(ErrorCodes.CPU_TEMPLATE, `cannot read CPU template ${spec}: ${errorMessage(e)}`, { path: spec });
  }
  return parseCpuTemplate(text);
}

function serialInput(spec: string | undefined): boolean {
  if (spec === undefined || spec === 'none') return false;
  if (spec === '-') return true;
  throw configError(`serial input ${JSON.stringify(spec)} is not "-" (stdin) or "none"`, { serialIn: spec });
}

export function validateVmConfig(input: VmConfigInput): VmConfig {
  if (!input.kernel) throw new MatchlockError(ErrorCodes.USAGE, 'no kernel given: pass --kernel PATH', {});
  const memMib = integer(input.memMib, DEFAULT_MEM_MIB, 'memory (MiB)');
  const hostMib = Math.floor(totalmem() / (1024 * 1024));
  if (memMib < 1) throw configError(`memory of ${memMib} MiB is too small: give at least 1 MiB (--mem)`, { memMib });
  if (memMib > hostMib || memMib > MAX_MEM_MIB) {
    throw configError(`memory of ${memMib} MiB is more than this host has (${hostMib} MiB): lower --mem`, { memMib, hostMib });
  }
  const vcpus = integer(input.vcpus, 1, 'vCPU count');
  if (vcpus < 1 || vcpus > MAX_VCPUS) throw configError(`${vcpus} vCPUs is out of range: give 1 to ${MAX_VCPUS} (--vcpus)`, { vcpus });
  const bootProtocol = input.bootProtocol ?? 'auto';
  if (bootProtocol !== 'auto' && bootProtocol !== 'linux' && bootProtocol !== 'pvh') {
    throw configError(`boot protocol ${JSON.stringify(bootProtocol)} is not one of auto, linux, pvh`, { bootProtocol });
  }
  const drives = input.drives ?? [];
  const nets = input.nets ?? [];
  if (drives.length + nets.length + (input.vsock === undefined ? 0 : 1) > MAX_VIRTIO_DEVICES) {
    throw configError(`${drives.length} drives and ${nets.length} network devices are more than the ${MAX_VIRTIO_DEVICES} virtio devices a VM can have (IRQs 5-23)`, { drives: drives.length, nets: nets.length });
  }
  const netSpecs = nets.map(parseNetSpec);
  const taps = netSpecs.map((n) => n.tap);
  const twice = taps.find((name, i) => taps.indexOf(name) !== i);
  if (twice !== undefined) throw configError(`TAP ${twice} is given twice: each --net needs its own TAP`, { tap: twice });
  return Object.freeze({
    kernel: input.kernel,
    initrd: input.initrd ?? null,
    cmdline: input.cmdline ?? DEFAULT_CMDLINE,
    memMib,
    vcpus,
    cpuTemplate: input.cpuTemplate === undefined ? null : resolveCpuTemplate(input.cpuTemplate),
    bootProtocol,
    serialOut: input.serialOut === undefined ? '-' : input.serialOut === 'none' ? null : input.serialOut,
    serialIn: serialInput(input.serialIn),
    drives: Object.freeze(drives.map(parseDriveSpec)),
    nets: Object.freeze(netSpecs),
    vsock: input.vsock === undefined ? null : parseVsockSpec(input.vsock),
    kvmDevice: process.env['MATCHLOCK_KVM_DEVICE'] ?? '/dev/kvm',
  });
}
