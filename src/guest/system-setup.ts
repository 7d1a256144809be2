/**
 * What the agent does to the system as PID 1 (the kernel starts it with nothing mounted), and the cache disks
 * of an assignment. Each mount that already exists is left as it is, so an image whose init did it is fine.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import * as sys from '../vmm/sys/index.ts';
import type { CacheMount } from './messages.ts';

const { MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY } = sys;

interface SystemMount { readonly source: string; readonly target: string; readonly type: string; readonly flags: number; readonly data?: string }

const SYSTEM_MOUNTS: readonly SystemMount[] = [
  { source: 'proc', target: '/proc', type: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
  { source: 'sysfs', target: '/sys', type: 'sysfs', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
  { source: 'devtmpfs', target: '/dev', type: 'devtmpfs', flags: MS_NOSUID, data: 'mode=0755' },
  { source: 'devpts', target: '/dev/pts', type: 'devpts', flags: MS_NOSUID | MS_NOEXEC, data: 'gid=5,mode=620,ptmxmode=666' },
  { source: 'tmpfs', target: '/dev/shm', type: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777' },
  { source: 'tmpfs', target: '/run', type: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=0755' },
  { source: 'tmpfs', target: '/tmp', type: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777' },
  { source: 'cgroup2', target: '/sys/fs/cgroup', type: 'cgroup2', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
];

function setupError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.GUEST, message, details);
}

/** Mount points in use (from /proc/self/mountinfo; empty before /proc is mounted). */
function mountPoints(): Set<string> {
  try {
    return new Set(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p !== ''));
  } catch {
    return new Set();
  }
}

/**
 * As PID 1, /proc first: the agent's settings come from /proc/cmdline, which the kernel started it without.
 * Returns whether it mounted it.
 */
export function mountProcForCmdline(): boolean {
  if (existsSync('/proc/self')) return false;
  const proc = SYSTEM_MOUNTS[0]!;
  mkdirSync(proc.target, { recursive: true });
  sys.mount(proc.source, proc.target, proc.type, proc.flags, null);
  return true;
}

/** Mounts the system file systems that are not mounted yet; sets the hostname and DNS. Returns what it mounted. */
export function setUpSystem(hostname: string | null, dns: readonly string[]): string[] {
  const mounted: string[] = [];
  for (const m of SYSTEM_MOUNTS) {
    if (mountPoints().has(m.target)) continue;
    mkdirSync(m.target, { recursive: true });
    try {
      sys.mount(m.source, m.target, m.type, m.flags, m.data ?? null);
      mounted.push(m.target);
    } catch (e: unknown) {
      throw setupError(`cannot mount ${m.type} on ${m.target}: ${errorMessage(e)}`, { target: m.target });
    }
  }
  if (hostname !== null) writeFileSync('/proc/sys/kernel/hostname', hostname);
  if (dns.length > 0) writeFileSync('/etc/resolv.conf', dns.map((d) => `nameserver ${d}\n`).join(''));
  return mounted;
}

export interface RunnerUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** Its groups as initgroups(3) gives them: the primary gid, then each group of /etc/group that lists it. */
  readonly groups: readonly number[];
}

/** A decimal uid or gid below 2^32-1 (the launcher's --run-as takes no other), or null. */
function parseId(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return null;
  const n = Number(s);
  return n < 0xffffffff ? n : null;
}

/**
 * The runner's user from the image's /etc/passwd and /etc/group; root is refused (the runner runs unprivileged).
 */
export function findUser(name: string, passwd = '/etc/passwd', group = '/etc/group'): RunnerUser {
  let text: string;
  try {
    text = readFileSync(passwd, 'utf8');
  } catch (e: unknown) {
    throw setupError(`cannot read ${passwd}: ${errorMessage(e)}`);
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] !== name || f.length < 7) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === null || gid === null) break;
    if (uid === 0) throw setupError(`the runner's user ${name} is root: the image must give it an unprivileged uid`, { user: name });
    return { name, uid, gid, home: f[5] === undefined || f[5] === '' ? '/' : f[5], groups: [gid, ...memberOf(name, gid, group)] };
  }
  throw setupError(`no user ${name} in the image's ${passwd}: add one (useradd -m ${name}) or set matchlock.user=`, { user: name });
}

/**
 * The gids of the lines of `group` (name:password:gid:members) whose members name `name`, sorted, without
 * `primary`. No such file means none; malformed lines and comments are skipped.
 */
function memberOf(name: string, primary: number, group: string): number[] {
  let text: string;
  try {
    text = readFileSync(group, 'utf8');
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw setupError(`cannot read ${group}: ${errorMessage(e)}`);
  }
  const gids = new Set<number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length !== 4 || line.startsWith('#')) continue;
    const gid = parseId(f[2]);
    if (gid !== null && f[3]!.split(',').some((m) => m.trim() === name)) gids.add(gid);
  }
  gids.delete(primary);
  return [...gids].sort((a, b) => a - b);
}

/** Mounts the assignment's cache disks (ext4) and gives their roots to the runner's user. */
export function mountCaches(caches: readonly CacheMount[], devDir: string, owner: RunnerUser): string[] {
  const done: string[] = [];
  for (const c of caches) {
    const device = join(devDir, c.device.slice('/dev/'.length));
    if (!existsSync(device)) throw setupError(`cache device ${c.device} is not in this VM (looked for ${device})`, { device: c.device });
    mkdirSync(c.path, { recursive: true });
    try {
      sys.mount(device, c.path, 'ext4', MS_NOSUID | MS_NODEV | (c.readOnly === true ? MS_RDONLY : 0), null);
    } catch (e: unknown) {
      throw setupError(`cannot mount cache ${c.device} on ${c.path}: ${errorMessage(e)}`, { device: c.device, path: c.path });
    }
    if (c.readOnly !== true) chownSync(c.path, owner.uid, owner.gid);
    done.push(c.path);
  }
  return done;
}
