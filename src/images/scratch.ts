/**
 * Where a build puts the tree its layers are applied to. The tree is scratch: mke2fs reads it once, then it is
 * removed. On tmpfs (/dev/shm) writing it costs a fraction of what a journalled disk file system costs (no
 * journal, no block allocation, no discard when it is removed), so it goes there when it fits comfortably: the
 * estimated tree at most half of the memory available and of /dev/shm's free space, and tmpfs keeping the user.*
 * xattrs layers carry (Linux 6.6 and later; probed). Otherwise it goes in the build directory beside the images.
 * The scratch directory is private (0700, random name, pid in it); one left by a killed build (its pid gone) is
 * removed by the next build.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lsetxattr } from '../vmm/sys/index.ts';

const SHM = '/dev/shm';
const TMPFS_MAGIC = 0x01021994;
const PREFIX = 'matchlock-build-';

/** MemAvailable from /proc/meminfo, in bytes (0 if unknown). */
function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** Removes scratch trees of builds that died (their pid is gone). */
function removeAbandoned(): void {
  for (const name of readdirSync(SHM)) {
    const pid = new RegExp(`^${PREFIX}.*-(\\d+)-[A-Za-z0-9]{6}$`).exec(name)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && !alive(Number(pid))) rmSync(join(SHM, name), { recursive: true, force: true });
  }
}

/** Whether tmpfs here keeps user.* xattrs (it does from Linux 6.6). */
function keepsUserXattrs(dir: string): boolean {
  const probe = join(dir, '.xattr-probe');
  try {
    writeFileSync(probe, '');
    lsetxattr(probe, 'user.matchlock.probe', new Uint8Array([1]));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}

/**
 * A new private directory for the tree of the build `name`: on tmpfs when `estimatedBytes` (null: unknown) fits as
 * said above, else `fallback`'s path (made by the caller). Returns the directory and whether it is in memory.
 */
export function scratchDir(name: string, estimatedBytes: number | null, fallback: string): { dir: string; inMemory: boolean } {
  try {
    const fs = statfsSync(SHM);
    const free = fs.bavail * fs.bsize;
    if (fs.type !== TMPFS_MAGIC || estimatedBytes === null || estimatedBytes * 2 > Math.min(free, memAvailable())) return { dir: fallback, inMemory: false };
    removeAbandoned();
    const dir = mkdtempSync(join(SHM, `${PREFIX}${name}-${process.pid}-`));
    if (keepsUserXattrs(dir)) return { dir, inMemory: true };
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // no /dev/shm, or not usable: the disk it is
  }
  return { dir: fallback, inMemory: false };
}
