/**
 * The file systems of cache disks, made and checked with e2fsprogs on plain files (no loop mounts):
 * `mke2fs` on a sparse file written next to the disk and renamed over it (a disk is replaced whole or not at
 * all), `e2fsck -fy` after an unclean end.
 */
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { cacheError } from './pool-config.ts';

export interface FsckResult {
  /** e2fsck's exit status: 0 clean, 1 or 2 errors fixed, 4 and above errors left (or e2fsck could not check). */
  readonly exitCode: number;
  /** Its last lines, for the log. */
  readonly summary: string;
}

/** e2fsprogs live in sbin, which a non-root PATH may lack. */
const TOOL_ENV = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` };

function runTool(file: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: TOOL_ENV });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { output += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { output += c; });
    child.on('error', (e) => reject(cacheError(`cannot run ${file}: ${e.message}: install e2fsprogs`, { file }, e)));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === null ? 255 : 128), output }));
  });
}

function lastLines(output: string, n = 3): string {
  return output.trim().split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(-n).join(' / ').slice(0, 600);
}

/** An ext4 label holds at most 16 bytes. */
export function diskLabel(pool: string): string {
  return `cache-${pool}`.slice(0, 16);
}

/** Makes a fresh, empty ext4 file system of sizeMib at path, replacing whatever was there. */
export async function formatDisk(path: string, sizeMib: number, label: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.new`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    ftruncateSync(fd, sizeMib * 2 ** 20); // sparse: blocks are taken as the guest writes
  } finally {
    closeSync(fd);
  }
  const r = await runTool('mke2fs', ['-t', 'ext4', '-q', '-F', '-m', '0', '-E', 'lazy_itable_init=0', '-L', label, tmp]);
  if (r.code !== 0) {
    rmSync(tmp, { force: true });
    throw cacheError(`mke2fs could not make the cache disk ${path} (exit ${r.code}): ${lastLines(r.output)}: check the disk space and e2fsprogs`, { path, exitCode: r.code });
  }
  renameSync(tmp, path);
}

/** `e2fsck -fy`: checks the whole file system and repairs what it can. */
export async function checkDisk(path: string): Promise<FsckResult> {
  const r = await runTool('e2fsck', ['-fy', path]);
  return { exitCode: r.code, summary: fsckSummary(r.output) };
}

/**
 * What e2fsck found, in a line: its own error lines ("e2fsck: …", "ext2fs_open2: …"), whether it modified the
 * file system, and its closing count of files and blocks; its last lines when it printed none of those.
 */
function fsckSummary(output: string): string {
  const lines = output.split('\n').map((l) => l.trim());
  const telling = lines.filter((l) => /^(e2fsck|ext2fs_\w+): /.test(l) || /FILE SYSTEM WAS MODIFIED/.test(l) || /: \d+\/\d+ files /.test(l));
  return telling.length > 0 ? [...new Set(telling)].join(' / ').slice(0, 600) : lastLines(output);
}

/** 0 clean, 1 fixed, 2 fixed (a reboot would be wanted were it mounted as root); anything else is corrupt. */
export function fsckOutcome(exitCode: number): 'clean' | 'repaired' | 'corrupt' {
  if (exitCode === 0) return 'clean';
  if (exitCode === 1 || exitCode === 2) return 'repaired';
  return 'corrupt';
}
