/**
 * Whether an image version is in use. A version is in use while some process holds its `rootfs.ext4` open (found
 * by scanning /proc/PID/fd: `stat` on a descriptor's magic link reaches the open file itself, even for a process
 * in another mount namespace or a jail), or while a live process has an `.in-use-PID` marker in the version's
 * directory (a VM that is starting and has not opened the file yet). A marker keeps the process's start time, so a
 * recycled pid does not keep a dead VM's marker alive.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';

const MARKER = /^\.in-use-(\d+)$/;

export interface InUseMarker {
  readonly pid: number;
  readonly path: string;
  /** The process is alive and is the one that wrote the marker. */
  readonly live: boolean;
}

function errno(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

/** The entries of a directory; none when it has gone or cannot be read (a process that exited, another user's). */
function entriesOrNone(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The start time of a process (clock ticks after boot, field 22 of /proc/PID/stat), or null when there is no such
 * process or it is a zombie (it has exited and holds nothing).
 */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the name in parentheses may hold spaces
  const state = fields[0];
  if (state === undefined || state === 'Z' || state === 'X' || state === 'x') return null;
  return fields[19] ?? null;
}

export function isAlive(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && processStartTime(pid) !== null;
}

/**
 * The pids of the processes that hold each of `files` open, by the path given. Processes that exit during the scan
 * and descriptors that cannot be read (another user's, when not root) are skipped; a file that does not exist has
 * no holders. One pass over /proc serves all the files.
 */
export function openHolders(files: readonly string[]): Map<string, number[]> {
  const holders = new Map<string, number[]>();
  const byInode = new Map<string, string>();
  for (const file of files) {
    holders.set(file, []);
    try {
      const st = statSync(file, { bigint: true });
      byInode.set(`${st.dev}:${st.ino}`, file);
    } catch (e: unknown) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }
  if (byInode.size === 0) return holders;
  let procs: string[];
  try {
    procs = readdirSync('/proc');
  } catch (e: unknown) {
    throw new MatchlockError(ErrorCodes.IMAGE, `cannot read /proc to find which processes use images (${errorMessage(e)}): mount /proc`, {});
  }
  for (const proc of procs) {
    if (!/^\d+$/.test(proc)) continue;
    const fdDir = `/proc/${proc}/fd`;
    const found = new Set<string>();
    for (const fd of entriesOrNone(fdDir)) {
      let key: string;
      try {
        const st = statSync(join(fdDir, fd), { bigint: true });
        key = `${st.dev}:${st.ino}`;
      } catch {
        continue; // closed meanwhile, or not ours to see
      }
      const file = byInode.get(key);
      if (file !== undefined) found.add(file);
    }
    for (const file of found) holders.get(file)!.push(Number(proc));
  }
  return holders;
}

/** The `.in-use-PID` markers in a version's directory. */
export function readMarkers(dir: string): InUseMarker[] {
  const markers: InUseMarker[] = [];
  for (const entry of entriesOrNone(dir)) {
    const m = MARKER.exec(entry);
    if (m === null) continue;
    const pid = Number(m[1]);
    const path = join(dir, entry);
    let wrote = '';
    try {
      wrote = readFileSync(path, 'utf8').trim();
    } catch {
      continue; // removed meanwhile
    }
    const started = processStartTime(pid);
    markers.push({ pid, path, live: started !== null && (wrote === '' || wrote === started) });
  }
  return markers;
}

/**
 * Marks a version's directory (`resolveImage(...).dir`) as in use by `pid` until `unmarkInUse`, for the time
 * between resolving an image and opening its `rootfs.ext4`. Fails when the version has been removed meanwhile:
 * resolve the image again.
 */
export function markInUse(dir: string, pid: number = process.pid): string {
  const started = processStartTime(pid);
  if (started === null) throw new MatchlockError(ErrorCodes.IMAGE, `cannot mark ${dir} as in use by pid ${pid}: no such process`, { dir, pid });
  const path = join(dir, `.in-use-${pid}`);
  try {
    writeFileSync(path, `${started}\n`);
  } catch (e: unknown) {
    if (errno(e) === 'ENOENT') throw new MatchlockError(ErrorCodes.IMAGE, `image version ${dir} is gone (removed by matchlock image rm or gc): resolve the image again`, { dir, pid });
    throw e;
  }
  return path;
}

export function unmarkInUse(dir: string, pid: number = process.pid): void {
  rmSync(join(dir, `.in-use-${pid}`), { force: true });
}
