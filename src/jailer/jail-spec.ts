/**
 * `matchlock jailer` options, parsed and checked before anything is made: Firecracker's jailer flags
 * (docs/jailer.md), plus `--bind` to make a host file (the VM's kernel, drives) visible inside the jail.
 */
import { parseArgs } from 'node:util';
import { isAbsolute, normalize } from 'node:path';
import { ErrorCodes, MatchlockError } from '../errors.ts';

export interface Bind {
  /** The host path. */
  readonly source: string;
  /** Where it appears inside the jail (absolute). */
  readonly target: string;
  readonly writable: boolean;
}

export interface JailSpec {
  readonly id: string;
  readonly uid: number;
  readonly gid: number;
  /** The jail is `<base>/<id>`; its root `<base>/<id>/root`. */
  readonly baseDir: string;
  readonly netns: string | null;
  readonly cgroupVersion: 1 | 2;
  /** `file=value` pairs written in the VM's cgroup, e.g. memory.limit_in_bytes (v1) or memory.max (v2). */
  readonly cgroups: readonly { readonly file: string; readonly value: string }[];
  readonly parentCgroup: string;
  readonly fileSizeLimit: number | null;
  readonly openFilesLimit: number;
  readonly binds: readonly Bind[];
  /** What follows `--`: the VMM's own arguments. */
  readonly vmmArgs: readonly string[];
}

export const DEFAULT_BASE_DIR = '/srv/matchlock';
export const DEFAULT_OPEN_FILES = 2048;
export const DEFAULT_PARENT_CGROUP = 'matchlock';

export const JAILER_USAGE = `usage: matchlock jailer --id ID --uid UID --gid GID [--chroot-base-dir DIR] [--netns PATH]
                        [--cgroup-version 1|2] [--cgroup FILE=VALUE]... [--parent-cgroup NAME]
                        [--resource-limit fsize=N|no-file=N]... [--bind HOST_PATH[:JAIL_PATH][,rw]]...
                        -- <matchlock vmm arguments>

  Runs \`matchlock vmm\` confined: its own mount and PID namespaces (and the given network namespace), a root
  holding only the runtime, our code and what --bind adds (read-only unless ,rw), /dev/kvm, /dev/net/tun and
  /dev/urandom; its own cgroup; no capabilities, no new privileges, the given uid/gid, and a seccomp
  allow-list. The jail (${DEFAULT_BASE_DIR}/ID by default) and the cgroup are removed when the VMM exits.`;

function usage(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.USAGE, message, details);
}

function id32(text: string | undefined, what: string): number {
  if (text === undefined) throw usage(`give --${what} (the unprivileged ${what} the VMM runs as)`);
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n < 0xffffffff)) throw usage(`--${what} ${JSON.stringify(text)} must be a number from 1 to 4294967294 (not root)`, { [what]: text });
  return n;
}

function parseBind(text: string): Bind {
  const [paths, ...options] = text.split(',');
  const writable = options.length === 1 && options[0] === 'rw';
  if (options.length > 0 && !writable) throw usage(`--bind ${JSON.stringify(text)}: the only option is ",rw"`);
  const colon = paths!.indexOf(':');
  const source = colon < 0 ? paths! : paths!.slice(0, colon);
  const target = colon < 0 ? source : paths!.slice(colon + 1);
  if (!isAbsolute(source) || !isAbsolute(target)) throw usage(`--bind ${JSON.stringify(text)}: both paths must be absolute`);
  const t = normalize(target);
  if (t === '/' || t.split('/').includes('..')) throw usage(`--bind ${JSON.stringify(text)}: the jail path must name something below /`);
  return { source: normalize(source), target: t, writable };
}

function parseLimit(text: string, limits: { fsize: number | null; nofile: number }): void {
  const m = /^(fsize|no-file)=(\d{1,15})$/.exec(text);
  if (m === null) throw usage(`--resource-limit ${JSON.stringify(text)} must be fsize=BYTES or no-file=N`);
  if (m[1] === 'fsize') limits.fsize = Number(m[2]);
  else limits.nofile = Number(m[2]);
}

function parseCgroup(text: string): { file: string; value: string } {
  const eq = text.indexOf('=');
  const file = text.slice(0, eq);
  if (eq < 0 || !/^[a-z0-9_]+\.[A-Za-z0-9_.]+$/.test(file)) throw usage(`--cgroup ${JSON.stringify(text)} must be FILE=VALUE with FILE like memory.max or pids.max`);
  const value = text.slice(eq + 1);
  if (value.includes('\n')) throw usage(`--cgroup ${JSON.stringify(text)}: the value must be one line`);
  return { file, value };
}

export function parseJailArgs(argv: readonly string[]): JailSpec {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const vmmArgs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values } = parseArgs({
    args: [...own],
    strict: true,
    allowPositionals: false,
    options: {
      id: { type: 'string' },
      uid: { type: 'string' },
      gid: { type: 'string' },
      'chroot-base-dir': { type: 'string' },
      netns: { type: 'string' },
      'cgroup-version': { type: 'string' },
      cgroup: { type: 'string', multiple: true },
      'parent-cgroup': { type: 'string' },
      'resource-limit': { type: 'string', multiple: true },
      bind: { type: 'string', multiple: true },
    },
  });
  const id = values.id;
  if (id === undefined || !/^[A-Za-z0-9-]{1,64}$/.test(id)) throw usage('give --id: 1 to 64 letters, digits or "-"', { id });
  const version = values['cgroup-version'] ?? '1';
  if (version !== '1' && version !== '2') throw usage(`--cgroup-version ${JSON.stringify(version)} must be 1 or 2`);
  const baseDir = values['chroot-base-dir'] ?? DEFAULT_BASE_DIR;
  if (!isAbsolute(baseDir)) throw usage(`--chroot-base-dir ${JSON.stringify(baseDir)} must be absolute`);
  const parent = values['parent-cgroup'] ?? DEFAULT_PARENT_CGROUP;
  if (!/^[A-Za-z0-9_.-]{1,64}(\/[A-Za-z0-9_.-]{1,64})*$/.test(parent) || parent.split('/').some((p) => p === '.' || p === '..')) {
    throw usage(`--parent-cgroup ${JSON.stringify(parent)} must be a relative cgroup path of letters, digits, "_", "-", "."`);
  }
  if (values.netns !== undefined && !isAbsolute(values.netns)) throw usage(`--netns ${JSON.stringify(values.netns)} must be an absolute path (e.g. /var/run/netns/NAME)`);
  const limits = { fsize: null as number | null, nofile: DEFAULT_OPEN_FILES };
  for (const l of values['resource-limit'] ?? []) parseLimit(l, limits);
  if (vmmArgs.length === 0) throw usage('give the VMM\'s arguments after "--" (e.g. -- --api-sock /run/api.sock)');
  return Object.freeze({
    id,
    uid: id32(values.uid, 'uid'),
    gid: id32(values.gid, 'gid'),
    baseDir: normalize(baseDir),
    netns: values.netns ?? null,
    cgroupVersion: version === '1' ? 1 : 2,
    cgroups: Object.freeze((values.cgroup ?? []).map(parseCgroup)),
    parentCgroup: parent,
    fileSizeLimit: limits.fsize,
    openFilesLimit: limits.nofile,
    binds: Object.freeze((values.bind ?? []).map(parseBind)),
    vmmArgs: Object.freeze([...vmmArgs]),
  });
}
