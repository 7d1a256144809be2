/**
 * The calls that confine a process (used by the jailer's second stage, on its main thread, right before it
 * starts the VMM): namespaces, mounts, pivot_root, device nodes, identity, limits, seccomp and execve.
 * Each throws a MatchlockError naming the call and errno.
 */
import { raw } from './libc.ts';
import { syscallError } from './errors.ts';
import { mapAnonymous, unmap } from './calls.ts';

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MNT_DETACH = 0x2;
const SYS_pivot_root = 155;
const SYS_seccomp = 317;
const S_IFCHR = 0o020000;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;
const PR_CAPBSET_DROP = 24;
const PR_GET_NO_NEW_PRIVS = 39;
const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
const CLOSE_RANGE_CLOEXEC = 4;
const F_SETFD = 2;
/** The highest capability number the kernel knows is below this (CAP_LAST_CAP is 40 in Linux 6.1). */
const CAP_LIMIT = 64;
export const RLIMIT_FSIZE = 1;
export const RLIMIT_NOFILE = 7;

function check(r: number, name: string, extra: Record<string, unknown> = {}): void {
  if (r < 0) throw syscallError(name, extra);
}

export function unshare(flags: number): void {
  check(raw.unshare(flags), 'unshare', { flags });
}

export function setns(fd: number, nstype: number): void {
  check(raw.setns(fd, nstype), 'setns', { nstype });
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(raw.mount(source, target, fstype, flags, data), 'mount', { source, target, fstype, flags });
}

/** Binds `source` onto `target`, then (unless writable) remounts the bind read-only, without suid or devices. */
export function bindMount(source: string, target: string, writable: boolean): void {
  mount(source, target, null, MS_BIND | MS_REC);
  const flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY);
  mount(null, target, null, flags);
}

export function umountDetach(target: string): void {
  check(raw.umount2(target, MNT_DETACH), 'umount2', { target });
}

export function pivotRoot(newRoot: string, putOld: string): void {
  check(raw.pivotRoot(SYS_pivot_root, newRoot, putOld), 'pivot_root', { newRoot, putOld });
}

export function chroot(path: string): void {
  check(raw.chroot(path), 'chroot', { path });
}

export function chdir(path: string): void {
  check(raw.chdir(path), 'chdir', { path });
}

/** A character device node (mode 0600 | S_IFCHR). */
export function mknodChar(path: string, major: number, minor: number): void {
  // Linux's dev_t: minor low 8 bits | major << 8 | minor high bits << 12 (glibc's makedev for small numbers).
  const dev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
  check(raw.mknod(path, S_IFCHR | 0o600, dev), 'mknod', { path, major, minor });
}

/** Drops every capability from the bounding set (needs CAP_SETPCAP, so before the uid changes). */
export function dropBoundingCapabilities(): void {
  for (let cap = 0; cap < CAP_LIMIT; cap++) {
    if (raw.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) break; // EINVAL: past the last capability
  }
}

/** No supplementary groups, then gid and uid (real, effective, saved): from root, this clears the capabilities. */
export function becomeUser(uid: number, gid: number): void {
  check(raw.setgroups(0, null), 'setgroups');
  check(raw.setresgid(gid, gid, gid), 'setresgid', { gid });
  check(raw.setresuid(uid, uid, uid), 'setresuid', { uid });
}

/** SIGKILL when the parent (the jailer) dies: a VMM never outlives the process that cleans up after it. */
export function dieWithParent(): void {
  check(raw.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), 'prctl(PR_SET_PDEATHSIG)');
}

export function noNewPrivileges(): void {
  check(raw.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'prctl(PR_SET_NO_NEW_PRIVS)');
}

export function hasNoNewPrivileges(): boolean {
  return raw.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) === 1;
}

/** Installs a seccomp filter (an encoded sock_filter array); TSYNC applies it to every thread of the process. */
export function installSeccomp(program: Uint8Array, flags: number): void {
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }: the filter must be native memory.
  const map = mapAnonymous(Math.max(program.length, 1));
  try {
    map.bytes.set(program);
    const fprog = new Uint8Array(16);
    const view = new DataView(fprog.buffer);
    view.setUint16(0, program.length / 8, true);
    view.setBigUint64(8, map.address, true);
    check(raw.seccomp(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, fprog), 'seccomp(SECCOMP_SET_MODE_FILTER)', { instructions: program.length / 8 });
  } finally {
    unmap(map.address, map.size);
  }
}

export function setRlimit(resource: number, value: number): void {
  const rlim = new Uint8Array(16);
  const view = new DataView(rlim.buffer);
  view.setBigUint64(0, BigInt(value), true);
  view.setBigUint64(8, BigInt(value), true);
  check(raw.setrlimit(resource, rlim), 'setrlimit', { resource, value });
}

/** Marks every fd from 3 on close-on-exec, and 0-2 (stdin, stdout, stderr) not, so that only they reach the next program. */
export function onlyStdioAcrossExec(): void {
  check(raw.closeRange(3, 0xffffffff, CLOSE_RANGE_CLOEXEC), 'close_range');
  for (const fd of [0, 1, 2]) check(raw.fcntlInt(fd, F_SETFD, 0), 'fcntl(F_SETFD)', { fd });
}

/** Replaces the process; returns only by throwing. */
export function execve(path: string, argv: readonly string[], env: readonly string[]): never {
  raw.execve(path, [...argv, null], [...env, null]);
  throw syscallError('execve', { path });
}
