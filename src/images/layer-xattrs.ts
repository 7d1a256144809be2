/**
 * Extended attributes of layer entries: read as bytes from their PAX records by the tar reader (tar-reader.ts),
 * and set with lsetxattr after the owner (a chown clears `security.capability`). Kept:
 * `user.*` (on files and directories: Linux allows them nowhere else), `trusted.*` and `security.*` (file
 * capabilities, SELinux labels), which ext4 stores and `mke2fs -d` copies. Others (`system.*`, which holds
 * ACLs, and unknown namespaces) are skipped and counted.
 */
import { ErrorCodes, MatchlockError, isMatchlockError } from '../errors.ts';
import { lsetxattr } from '../vmm/sys/index.ts';

/** Linux's XATTR_SIZE_MAX; ext4 keeps much less (a block for all of an inode's attributes). */
const MAX_VALUE_BYTES = 64 * 1024;
const KEPT = ['user.', 'trusted.', 'security.'] as const;

function imageError(message: string, details: Record<string, unknown>): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

export type XattrTarget = 'file' | 'directory' | 'other';

/** Sets the kept xattrs on `path` (not following a symlink); returns how many were set and skipped. */
export function applyXattrs(path: string, name: string, xattrs: ReadonlyMap<string, Buffer>, target: XattrTarget): { set: number; skipped: number } {
  let set = 0;
  let skipped = 0;
  for (const [key, value] of xattrs) {
    const kept = KEPT.some((ns) => key.startsWith(ns) && key.length > ns.length) && !(key.startsWith('user.') && target === 'other');
    if (!kept) {
      skipped++;
      continue;
    }
    if (value.length > MAX_VALUE_BYTES) throw imageError(`archive entry ${JSON.stringify(name)}: xattr ${key} is ${value.length} bytes, more than ${MAX_VALUE_BYTES}`, { name, xattr: key });
    try {
      lsetxattr(path, key, value);
    } catch (e: unknown) {
      const errno = isMatchlockError(e) ? String(e.details['errno']) : '';
      if (errno === 'ENOTSUP' || errno === 'EOPNOTSUPP') {
        throw imageError(`cannot keep xattr ${key} of ${JSON.stringify(name)}: the build directory's file system does not support it (${errno}); put --images-dir on ext4 or xfs`, { name, xattr: key, path });
      }
      throw imageError(`cannot set xattr ${key} on ${JSON.stringify(name)}: ${errno || String(e)}`, { name, xattr: key, path });
    }
    set++;
  }
  return { set, skipped };
}
