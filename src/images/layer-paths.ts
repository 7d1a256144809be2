/**
 * Paths inside the tree a layer is applied to. An entry's name is split into components, refusing absolute
 * names, `..` and NUL; its parents are made as directories (mode 0755) and checked with lstat, so that no path
 * ever goes through a symlink or out of the tree. Directories checked once are remembered for the rest of the
 * layer (most entries share their parents), until anything is removed.
 */
import { lstatSync, mkdirSync, rmSync, type Stats } from 'node:fs';
import { ErrorCodes, MatchlockError } from '../errors.ts';

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** The entry's path as components, refusing absolute names and `..`. */
export function safeComponents(name: string): string[] {
  if (name.startsWith('/')) throw imageError(`archive entry ${JSON.stringify(name)} is an absolute path`, { name });
  if (name.includes('\0')) throw imageError(`archive entry ${JSON.stringify(name)} has a NUL byte`, { name });
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw imageError(`archive entry ${JSON.stringify(name)} climbs out of the tree with ".."`, { name });
    parts.push(p);
  }
  return parts;
}

export function lstatOrNull(path: string): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null; // no exception made for the common "not there yet"
}

export class TreePaths {
  /** Directories (relative paths) known to be real directories now. */
  private readonly checked = new Set<string>();
  /** Every path this layer wrote or went through: what an opaque directory or a whiteout must keep. */
  readonly touched = new Set<string>();
  /**
   * What this layer made, counted as mkfs.ts's treeStats counts a tree (a block per entry, files' data rounded up
   * to blocks): the tree's own figures for a first layer, as long as nothing was removed.
   */
  readonly made = { bytes: 0, entries: 0, exact: true };
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The host path of `parts`, its parents made as directories when missing, none a symlink. */
  resolve(parts: readonly string[], name: string): string {
    return this.walk(parts, name, true)!;
  }

  /** The host path of `parts` if all its parents exist (none a symlink), else null. Makes nothing. */
  existing(parts: readonly string[], name: string): string | null {
    return this.walk(parts, name, false);
  }

  /** `name` is the entry's name, for messages. */
  private walk(parts: readonly string[], name: string, create: boolean): string | null {
    const parent = parts.length > 1 ? parts.slice(0, -1).join('/') : '';
    if (parent !== '' && !this.checked.has(parent)) {
      let rel = '';
      for (const p of parts.slice(0, -1)) {
        rel = rel === '' ? p : `${rel}/${p}`;
        if (this.checked.has(rel)) continue;
        const at = `${this.root}/${rel}`;
        const st = lstatOrNull(at);
        if (st === null) {
          if (!create) return null;
          mkdirSync(at, { mode: 0o755 });
          this.counted(0);
        } else if (st.isSymbolicLink()) throw imageError(`archive entry ${JSON.stringify(name)} goes through the symlink ${p}`, { name });
        else if (!st.isDirectory()) throw imageError(`archive entry ${JSON.stringify(name)} goes through ${p}, which is not a directory`, { name });
        this.checked.add(rel);
        this.touched.add(rel);
      }
    }
    return parent === '' ? `${this.root}/${parts[0]!}` : `${this.root}/${parent}/${parts.at(-1)!}`;
  }

  /** Removes what is at `path` (a symlink itself, never its target; a directory with all below it). */
  remove(path: string): void {
    rmSync(path, { recursive: true, force: true });
    this.checked.clear();
    this.made.exact = false;
  }

  /** Counts a new entry of `dataBytes` (a file's size, else 0). */
  counted(dataBytes: number): void {
    this.made.entries++;
    this.made.bytes += 4096 + Math.ceil(dataBytes / 4096) * 4096;
  }

  /** Records that this layer wrote `rel` (an entry, or a directory it made). */
  wrote(rel: string): void {
    this.touched.add(rel);
  }

  /** Records a directory the layer made or kept, so that its children need no lstat. */
  isDirectory(rel: string): void {
    this.checked.add(rel);
  }
}
