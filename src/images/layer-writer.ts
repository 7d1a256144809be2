/**
 * The operations of one layer on the tree, in archive order, on this thread: names checked and made (parents
 * without symlinks, whatever was in the way removed), directories, symlinks, device nodes and FIFOs, whiteouts
 * and opaque directories, hard links and directory times at the end, owners, modes, xattrs. A regular file is
 * created here; its data, owner, mode and time go to the writer thread by descriptor (file-writer.ts), except for
 * a file with xattrs (its xattrs must follow its chown) and a small file while the thread has enough queued: those
 * are finished here. Of a large file copied from the layer file, this thread copies the end meanwhile.
 */
import {
  chmodSync, closeSync, constants as fsc, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync,
  readSync, readdirSync, symlinkSync, writeSync,
} from 'node:fs';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { mknodAt } from '../vmm/sys/index.ts';
import type { FileWriterThread } from './file-writer.ts';
import type { ApplyLimits, ApplyStats } from './layer-apply.ts';
import { TreePaths, lstatOrNull, safeComponents } from './layer-paths.ts';
import { applyXattrs, type XattrTarget } from './layer-xattrs.ts';
import type { EntrySink, TarEntry } from './tar-reader.ts';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const WRITE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
/**
 * A file at least this large, copied from the layer file, is copied by both threads at once (in pieces of
 * SPLIT_ALIGN; their writes to the one file take turns, their reads do not): a large file last in a layer is
 * then not left to the writer thread alone while this one waits.
 */
const SPLIT_BYTES = 4 << 20;
const SPLIT_ALIGN = 1 << 16;

/** A layer that is an uncompressed tar file: the open file and where the layer starts in it. */
export interface LayerFile {
  readonly fd: number;
  readonly offset: number;
  /** Told of the bytes read (or passed over) as the layer is read from the file (for progress). */
  readonly onRead?: (bytes: number) => void;
}

/** A time for futimes and lutimes: Node takes a negative number of seconds for "now", but a Date as it is. */
const when = (seconds: number): number | Date => (seconds < 0 ? new Date(seconds * 1000) : seconds);

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** One layer being applied: the tree, the limits, what was seen so far and what waits for the end. */
export class LayerWriter {
  readonly stats: ApplyStats = { entries: 0, bytes: 0, whiteouts: 0, devices: 0, xattrs: 0, xattrsSkipped: 0 };
  readonly paths: TreePaths;
  private readonly links: { path: string; rel: string; target: string[]; name: string }[] = [];
  private readonly dirTimes: { path: string; mtime: number }[] = [];
  private readonly limits: ApplyLimits;
  private readonly writer: FileWriterThread;
  /** The file whose data is coming, until its end. */
  private open: { fd: number; onThread: boolean; name: string } | null = null;
  /** The layer as a file (uncompressed): file data is copied from it by the writer thread, not passed along. */
  private readonly direct: LayerFile | null;
  private copyBuf: Buffer | null = null;

  constructor(root: string, limits: ApplyLimits, writer: FileWriterThread, direct: LayerFile | null) {
    this.paths = new TreePaths(root);
    this.limits = limits;
    this.writer = writer;
    this.direct = direct;
  }

  /** Applies one entry; for a regular file whose data passes here, returns where it goes. */
  entry(h: TarEntry): EntrySink | null {
    const parts = safeComponents(h.name);
    const xattrs = h.xattrs;
    if (parts.length === 0) return null; // "./" itself: the tree's root keeps its own owner and mode
    const base = parts.at(-1)!;
    if (base === OPAQUE) return this.opaque(parts.slice(0, -1), h.name);
    if (base.startsWith(`${WHITEOUT}${WHITEOUT}`)) return null; // other aufs metadata (.wh..wh.plnk, ...): not content
    if (base.startsWith(WHITEOUT)) return this.whiteout([...parts.slice(0, -1), base.slice(WHITEOUT.length)], h.name);
    const path = this.paths.resolve(parts, h.name);
    const rel = parts.join('/');
    this.paths.wrote(rel);
    const mode = h.mode & 0o7777;
    let target: XattrTarget = 'other';
    switch (h.type) {
      case 'file':
      case 'contiguous-file':
        return this.file(path, h, mode, xattrs);
      case 'directory': {
        const st = lstatOrNull(path);
        if (st !== null && !st.isDirectory()) this.paths.remove(path);
        if (st === null || !st.isDirectory()) {
          mkdirSync(path, { mode: 0o700 });
          this.paths.counted(0);
        }
        this.paths.isDirectory(rel);
        if (this.limits.keepOwners) lchownSync(path, h.uid, h.gid);
        chmodSync(path, mode);
        this.dirTimes.push({ path, mtime: h.mtime });
        target = 'directory';
        break;
      }
      case 'symlink':
        // (where it points is the guest's business: nothing here follows it; but Linux has no NUL in a target)
        if (h.linkname.includes('\0')) throw imageError(`archive entry ${JSON.stringify(h.name)} is a symlink whose target has a NUL byte`, { name: h.name });
        this.clear(path);
        symlinkSync(h.linkname, path);
        this.paths.counted(0);
        this.own(path, h);
        break;
      case 'link':
        // Hard links point inside the tree; made after the rest, so that their targets exist.
        this.links.push({ path, rel, target: safeComponents(h.linkname), name: h.name });
        return null;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        this.node(path, parts, h, mode);
        break;
      default:
        throw imageError(`archive entry ${JSON.stringify(h.name)} has the unsupported type ${JSON.stringify(String.fromCharCode(h.flag))}`, { name: h.name });
    }
    if (xattrs !== null) this.xattrs(path, h.name, xattrs, target);
    return null;
  }

  /**
   * Creates the file (never through a symlink, never an existing one: what was there goes first) and returns
   * where its data goes: to the writer thread (null: it copies the data from the layer file itself), or here, for
   * a file with xattrs (which must follow the chown) and whenever the writer thread is behind.
   */
  private file(path: string, h: TarEntry, mode: number, xattrs: Map<string, Buffer> | null): EntrySink | null {
    const size = h.size;
    if (size > this.limits.maxEntryBytes) throw imageError(`archive entry ${JSON.stringify(h.name)} is ${size} bytes, more than the ${this.limits.maxEntryBytes} allowed`, { name: h.name });
    if (this.stats.bytes + size > this.limits.maxTotalBytes) throw imageError(`the layer holds more than ${this.limits.maxTotalBytes} bytes of files`);
    let fd: number;
    try {
      fd = openSync(path, WRITE_FLAGS, 0o600);
    } catch (e: unknown) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
      this.paths.remove(path); // what a lower layer (or this one) had there
      fd = openSync(path, WRITE_FLAGS, 0o600);
    }
    this.paths.counted(size);
    const name = h.name;
    const owner = this.limits.keepOwners ? [h.uid, h.gid] as const : null;
    const mtime = h.mtime;
    // The writer thread takes the file unless it has xattrs, or unless it is behind (still starting, say): then
    // this thread, which would otherwise wait for it, writes the file itself.
    const onThread = xattrs === null && !this.writer.congested(size);
    if (onThread && this.direct !== null) {
      // The same bytes, read from the file by the writer thread (the reader skips them); of a large file, this
      // thread copies the end meanwhile, as much as the thread's backlog leaves it behind, so both end together.
      this.stats.bytes += size;
      const from = this.direct.offset + h.dataOffset;
      const mine = size < SPLIT_BYTES ? 0 : Math.max(0, Math.floor((size - this.writer.backlog()) / 2 / SPLIT_ALIGN) * SPLIT_ALIGN);
      this.writer.copy(fd, this.direct.fd, from, size - mine, name);
      if (mine > 0) {
        this.writer.hurry();
        try {
          this.copyRange(from + size - mine, fd, size - mine, mine);
        } catch (e: unknown) {
          this.writer.close(fd, -1, -1, 0o600, Number.NaN, name);
          throw e;
        }
      }
      this.writer.close(fd, owner?.[0] ?? -1, owner?.[1] ?? -1, mode, mtime, name);
      return null;
    }
    if (onThread) {
      this.open = { fd, onThread: true, name };
      return {
        write: (chunk) => {
          const took = this.writer.write(fd, chunk, name);
          this.stats.bytes += took;
          return took;
        },
        end: () => {
          this.open = null;
          this.writer.close(fd, owner?.[0] ?? -1, owner?.[1] ?? -1, mode, mtime, name);
        },
      };
    }
    this.open = { fd, onThread: false, name };
    return {
      write: (chunk) => {
        this.stats.bytes += chunk.length;
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off);
        return off;
      },
      end: () => {
        this.open = null;
        try {
          if (owner !== null) fchownSync(fd, owner[0], owner[1]);
          fchmodSync(fd, mode); // after the chown, which clears set-uid and set-gid
          if (xattrs !== null) this.xattrs(path, name, xattrs, 'file'); // after the chown, which clears file capabilities
          futimesSync(fd, when(mtime), when(mtime));
        } finally {
          closeSync(fd);
        }
      },
    };
  }

  /** Copies `length` bytes of the layer file at `from` to `fd` at `at` (positioned writes: the writer thread writes the start meanwhile). */
  private copyRange(from: number, fd: number, at: number, length: number): void {
    this.copyBuf ??= Buffer.allocUnsafe(1 << 20);
    for (let done = 0; done < length;) {
      const n = readSync(this.direct!.fd, this.copyBuf, 0, Math.min(this.copyBuf.length, length - done), from + done);
      if (n === 0) throw imageError('the layer file ended early');
      for (let off = 0; off < n;) off += writeSync(fd, this.copyBuf, off, n - off, at + done + off);
      done += n;
    }
  }

  /** After a failure: the file being written, if any, is closed (by the thread that has its descriptor). */
  abort(): void {
    const o = this.open;
    this.open = null;
    if (o === null) return;
    if (o.onThread) this.writer.close(o.fd, -1, -1, 0o600, Number.NaN, o.name);
    else closeSync(o.fd);
  }

  private node(path: string, parts: readonly string[], h: TarEntry, mode: number): void {
    const kind = h.type as 'character-device' | 'block-device' | 'fifo';
    if (kind !== 'fifo') {
      if (this.limits.devices === 'none') throw imageError(`archive entry ${JSON.stringify(h.name)} is a device node, and device nodes are not allowed (--no-devices)`, { name: h.name });
      if (parts[0] !== 'dev' || parts.length < 2) throw imageError(`archive entry ${JSON.stringify(h.name)} is a device node outside /dev/, and device nodes are allowed only under /dev/`, { name: h.name });
      this.stats.devices++;
    }
    this.clear(path);
    mknodAt(path, kind, 0o600, h.devmajor, h.devminor);
    this.paths.counted(0);
    if (this.limits.keepOwners) lchownSync(path, h.uid, h.gid);
    chmodSync(path, mode); // a device node or FIFO we just made: chmod cannot follow a symlink here
    lutimesSync(path, when(h.mtime), when(h.mtime));
  }

  private own(path: string, h: TarEntry): void {
    if (this.limits.keepOwners) lchownSync(path, h.uid, h.gid);
    lutimesSync(path, when(h.mtime), when(h.mtime));
  }

  private xattrs(path: string, name: string, xattrs: ReadonlyMap<string, Buffer>, target: XattrTarget): void {
    const r = applyXattrs(path, name, xattrs, target);
    this.stats.xattrs += r.set;
    this.stats.xattrsSkipped += r.skipped;
  }

  /** Removes what is at `path`, if anything. */
  private clear(path: string): void {
    if (lstatOrNull(path) !== null) this.paths.remove(path);
  }

  /** `.wh.NAME`: NAME goes, unless this layer itself wrote it (a whiteout applies to the layers below). */
  private whiteout(hidden: string[], name: string): null {
    safeComponents(hidden.join('/'));
    this.stats.whiteouts++;
    if (this.paths.touched.has(hidden.join('/'))) return null;
    const path = this.paths.existing(hidden, name);
    if (path !== null) this.clear(path);
    return null;
  }

  /** `.wh..wh..opq` in DIR: what the layers below put in DIR goes; what this layer put there stays. */
  private opaque(dirParts: string[], name: string): null {
    this.stats.whiteouts++;
    if (dirParts.length === 0) throw imageError(`archive entry ${JSON.stringify(name)} makes the root opaque, which would hide the whole image below`, { name });
    const dir = this.paths.existing(dirParts, name);
    const st = dir === null ? null : lstatOrNull(dir);
    if (st === null) return null;
    if (!st.isDirectory()) throw imageError(`archive entry ${JSON.stringify(name)} marks ${dirParts.join('/')} opaque, which is not a directory`, { name });
    this.prune(dir!, dirParts.join('/'));
    return null;
  }

  private prune(dir: string, rel: string): void {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const childRel = `${rel}/${e.name}`;
      if (!this.paths.touched.has(childRel)) this.paths.remove(`${dir}/${e.name}`);
      else if (e.isDirectory()) this.prune(`${dir}/${e.name}`, childRel);
    }
  }

  /** The end of the layer: hard links, then directory times (which making their children changed). */
  finish(): void {
    for (const l of this.links) {
      const target = this.paths.existing(l.target, l.name);
      const st = target === null ? null : lstatOrNull(target);
      if (target === null || st === null || st.isDirectory()) throw imageError(`hard link ${JSON.stringify(l.name)} points at ${JSON.stringify(l.target.join('/'))}, which is not a file in the tree`, { name: l.name });
      this.paths.resolve(l.rel.split('/'), l.name);
      this.clear(l.path);
      linkSync(target, l.path);
      this.paths.counted(st.size);
    }
    for (const d of this.dirTimes) if (lstatOrNull(d.path)?.isDirectory() === true) lutimesSync(d.path, when(d.mtime), when(d.mtime));
  }
}

