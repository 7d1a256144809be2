/**
 * Applies one image layer (a tar stream, read with tar-stream) onto a directory tree, as OCI image layers are
 * applied: files, directories, symlinks, hard links, (optionally) device nodes and FIFOs, owners and modes, and
 * the whiteouts `.wh.NAME` (remove NAME from the layers below) and `.wh..wh..opq` (an opaque directory).
 * The archive is hostile until proven otherwise: a name that is absolute or climbs out with `..`, a path that
 * goes through a symlink, a hard link to outside, a device node where none is allowed, an entry or a total over
 * the limits, and a truncated archive each stop the layer with an IMAGE error, and nothing is ever written
 * outside the tree (no path is followed through a symlink: every parent is checked with lstat).
 */
import {
  chmodSync, closeSync, constants as fsc, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, rmSync,
  symlinkSync, writeSync, type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';

export interface ApplyLimits {
  /** The largest single file. */
  readonly maxEntryBytes: number;
  /** All file data of the layer together. */
  readonly maxTotalBytes: number;
  readonly maxEntries: number;
  /** Character and block devices (FIFOs are always allowed). */
  readonly allowDevices: boolean;
  /** Apply owners (root only); otherwise files belong to whoever applies the layer. */
  readonly keepOwners: boolean;
}

export const DEFAULT_LIMITS: ApplyLimits = {
  maxEntryBytes: 16 * 1024 ** 3, maxTotalBytes: 64 * 1024 ** 3, maxEntries: 4_000_000, allowDevices: false, keepOwners: process.getuid?.() === 0,
};

export interface ApplyStats {
  entries: number;
  bytes: number;
  whiteouts: number;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** The entry's path as components, refusing absolute names and `..`. */
export function safeComponents(name: string): string[] {
  if (name.startsWith('/')) throw imageError(`archive entry ${JSON.stringify(name)} is an absolute path`, { name });
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw imageError(`archive entry ${JSON.stringify(name)} climbs out of the tree with ".."`, { name });
  if (parts.some((p) => p.includes('\0'))) throw imageError(`archive entry ${JSON.stringify(name)} has a NUL byte`, { name });
  return parts;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e: unknown) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
}

/** The host path for `parts` below `root`, with every parent made as a directory and none a symlink. */
function parentChecked(root: string, parts: readonly string[], name: string): string {
  let at = root;
  for (const p of parts.slice(0, -1)) {
    at = join(at, p);
    const st = lstatOrNull(at);
    if (st === null) mkdirSync(at, { mode: 0o755 });
    else if (st.isSymbolicLink()) throw imageError(`archive entry ${JSON.stringify(name)} goes through the symlink ${p}`, { name });
    else if (!st.isDirectory()) throw imageError(`archive entry ${JSON.stringify(name)} goes through ${p}, which is not a directory`, { name });
  }
  return join(at, parts.at(-1)!);
}

/** Removes what is at `path` (not following a symlink) unless both are directories. */
function clearFor(path: string, wantDirectory: boolean): void {
  const st = lstatOrNull(path);
  if (st === null || (wantDirectory && st.isDirectory())) return;
  rmSync(path, { recursive: true, force: true });
}

function own(path: string, h: Header, limits: ApplyLimits): void {
  if (limits.keepOwners) lchownSync(path, h.uid ?? 0, h.gid ?? 0);
  if (h.mtime !== undefined) lutimesSync(path, h.mtime, h.mtime);
}

export async function applyLayer(input: Readable, root: string, limits: ApplyLimits = DEFAULT_LIMITS): Promise<ApplyStats> {
  const stats: ApplyStats = { entries: 0, bytes: 0, whiteouts: 0 };
  const tar = extract();
  const links: { path: string; target: string[]; name: string }[] = [];
  input.on('error', (e: Error) => tar.destroy(e));
  input.pipe(tar);
  try {
    for await (const entry of tar) {
      const h = entry.header;
      stats.entries++;
      if (stats.entries > limits.maxEntries) throw imageError(`the layer has more than ${limits.maxEntries} entries`);
      const parts = safeComponents(h.name);
      if (parts.length === 0) {
        entry.resume();
        continue; // "./" itself
      }
      const base = parts.at(-1)!;
      if (base === OPAQUE) {
        const dir = dirname(parentChecked(root, parts, h.name)); // the opaque directory, checked like any parent
        for (const child of readdirSync(dir)) rmSync(join(dir, child), { recursive: true, force: true });
        stats.whiteouts++;
        entry.resume();
        continue;
      }
      if (base.startsWith(WHITEOUT)) {
        const hidden = [...parts.slice(0, -1), base.slice(WHITEOUT.length)];
        safeComponents(hidden.join('/'));
        rmSync(parentChecked(root, hidden, h.name), { recursive: true, force: true });
        stats.whiteouts++;
        entry.resume();
        continue;
      }
      const path = parentChecked(root, parts, h.name);
      const mode = (h.mode ?? 0o644) & 0o7777;
      switch (h.type) {
        case 'file':
        case 'contiguous-file': {
          const size = h.size ?? 0;
          if (size > limits.maxEntryBytes) throw imageError(`archive entry ${JSON.stringify(h.name)} is ${size} bytes, more than the ${limits.maxEntryBytes} allowed`, { name: h.name });
          if (stats.bytes + size > limits.maxTotalBytes) throw imageError(`the layer holds more than ${limits.maxTotalBytes} bytes of files`);
          clearFor(path, false);
          const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o777);
          try {
            for await (const chunk of entry) {
              const b = chunk as Buffer;
              let off = 0;
              while (off < b.length) off += writeSync(fd, b, off);
              stats.bytes += b.length;
            }
          } finally {
            closeSync(fd);
          }
          own(path, h, limits);
          if ((mode & 0o7000) !== 0) chmodKeep(path, mode);
          continue;
        }
        case 'directory':
          clearFor(path, true);
          if (lstatOrNull(path) === null) mkdirSync(path, { mode: mode & 0o777 });
          own(path, h, limits);
          chmodKeep(path, mode);
          break;
        case 'symlink':
          clearFor(path, false);
          symlinkSync(h.linkname ?? '', path);
          own(path, h, limits);
          break;
        case 'link':
          // Hard links point inside the tree; made after the rest, so that their targets exist.
          links.push({ path, target: safeComponents(h.linkname ?? ''), name: h.name });
          break;
        case 'character-device':
        case 'block-device':
          if (!limits.allowDevices) throw imageError(`archive entry ${JSON.stringify(h.name)} is a device node, and device nodes are not allowed here`, { name: h.name });
          throw imageError(`archive entry ${JSON.stringify(h.name)}: device nodes are not supported yet`, { name: h.name });
        case 'fifo':
          throw imageError(`archive entry ${JSON.stringify(h.name)}: FIFOs are not supported yet`, { name: h.name });
        default:
          if (h.type === 'pax-header' || h.type === 'pax-global-header' || h.type === 'gnu-long-path' || h.type === 'gnu-long-link-path') break;
          throw imageError(`archive entry ${JSON.stringify(h.name)} has the unsupported type ${String(h.type)}`, { name: h.name });
      }
      entry.resume();
    }
  } catch (e: unknown) {
    if (e instanceof MatchlockError) throw e;
    throw imageError(`cannot read the layer: ${errorMessage(e)} (a truncated or corrupt archive?)`);
  }
  for (const l of links) {
    const target = parentChecked(root, l.target, l.name);
    const st = lstatOrNull(target);
    if (st === null || st.isDirectory()) throw imageError(`hard link ${JSON.stringify(l.name)} points at ${JSON.stringify(l.target.join('/'))}, which is not a file in the tree`, { name: l.name });
    clearFor(l.path, false);
    linkSync(target, l.path);
  }
  return stats;
}

/** chmod after chown (which clears set-uid and set-gid), never through a symlink. */
function chmodKeep(path: string, mode: number): void {
  if (!lstatSync(path).isSymbolicLink()) chmodSync(path, mode);
}
