/**
 * File-system calls Node has no binding for, used when an image layer is applied: extended attributes set on
 * a path without following a symlink (lsetxattr), and device nodes and FIFOs (mknod). Each throws a
 * MatchlockError naming the call, the path and errno.
 */
import { raw } from './libc.ts';
import { syscallError } from './errors.ts';

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

export type NodeKind = 'character-device' | 'block-device' | 'fifo';

/** glibc's makedev(): minor low 8 bits, major low 12 bits at 8, minor high bits at 20, major high bits at 44. */
export function makedev(major: number, minor: number): number {
  if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0 || major > 0xfff || minor > 0xfffff) {
    throw new RangeError(`device ${major}:${minor} is out of range (major < 4096, minor < 1048576)`);
  }
  return (minor & 0xff) + major * 0x100 + Math.floor(minor / 0x100) * 0x100000;
}

/** A device node or a FIFO at `path` with the permission bits `perm` (before the umask); the path must not exist. */
export function mknodAt(path: string, kind: NodeKind, perm: number, major = 0, minor = 0): void {
  const type = kind === 'fifo' ? S_IFIFO : kind === 'character-device' ? S_IFCHR : S_IFBLK;
  const dev = kind === 'fifo' ? 0 : makedev(major, minor);
  if (raw.mknod(path, type | (perm & 0o7777), dev) < 0) throw syscallError('mknod', { path, kind, major, minor });
}

/** Sets the extended attribute `name` of `path` itself (a symlink is not followed). */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  if (raw.lsetxattr(path, name, value, value.length, 0) < 0) throw syscallError('lsetxattr', { path, name, bytes: value.length });
}
