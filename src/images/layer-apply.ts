/**
 * Applies one image layer (a tar stream) onto a directory tree, as OCI image layers are
 * applied: files, directories, symlinks, hard links, device nodes and FIFOs, owners, modes, times, extended
 * attributes (PAX `SCHILY.xattr.*`), and the whiteouts `.wh.NAME` (remove NAME from the layers below) and
 * `.wh..wh..opq` (an opaque directory: hide everything the layers below put in it).
 * The archive is hostile until proven otherwise: a name that is absolute or climbs out with `..`, a path that
 * goes through a symlink, a hard link to outside, a device node where none is allowed, an entry or a total over
 * the limits, and a truncated archive each stop the layer with an IMAGE error, and nothing is ever written
 * outside the tree (no path is followed through a symlink: every parent is checked with lstat).
 * Here: the stream, read chunk by chunk by the tar reader (tar-reader.ts), handed entry by entry to the
 * LayerWriter (layer-writer.ts), with file data going to a writer thread; waits between entries when that thread
 * is behind.
 */
import { fstatSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import { FileWriterThread, type WriterError } from './file-writer.ts';
import { LayerWriter, type LayerFile } from './layer-writer.ts';
import { TarReader } from './tar-reader.ts';

export { safeComponents } from './layer-paths.ts';
export type { LayerFile } from './layer-writer.ts';

/**
 * Where character and block devices may be: `dev-only` under `/dev/` (root file system tarballs such as
 * debootstrap's carry /dev/null and friends), `none` nowhere. FIFOs are always allowed.
 */
export type DevicePolicy = 'dev-only' | 'none';

export interface ApplyLimits {
  /** The largest single file. */
  readonly maxEntryBytes: number;
  /** All file data of the layer together. */
  readonly maxTotalBytes: number;
  readonly maxEntries: number;
  readonly devices: DevicePolicy;
  /** Apply owners (root only); otherwise files belong to whoever applies the layer. */
  readonly keepOwners: boolean;
}

export const DEFAULT_LIMITS: ApplyLimits = {
  maxEntryBytes: 16 * 1024 ** 3, maxTotalBytes: 64 * 1024 ** 3, maxEntries: 4_000_000, devices: 'dev-only', keepOwners: process.getuid?.() === 0,
};

export interface ApplyStats {
  entries: number;
  bytes: number;
  whiteouts: number;
  devices: number;
  xattrs: number;
  xattrsSkipped: number;
  /** What the layer made, as mkfs.ts's treeStats counts (null once it removed anything: then only a walk tells). */
  made?: { bytes: number; entries: number } | null;
}

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** Any failure as an IMAGE error naming the entry at hand. */
function asImageError(e: unknown, current: string): MatchlockError {
  if (e instanceof MatchlockError && e.code === ErrorCodes.IMAGE) return e;
  if (e instanceof MatchlockError) return imageError(`cannot write archive entry ${JSON.stringify(current)} into the tree: ${e.message}`, { name: current, ...e.details });
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return imageError(`cannot write archive entry ${JSON.stringify(current)} into the tree: ${errorMessage(e)}`, { name: current, errno: code });
  }
  return imageError(`cannot read the layer: ${errorMessage(e)} (a truncated or corrupt archive?)`);
}

/** What the writer thread met, as an IMAGE error naming the file it was writing. */
function writerError(w: WriterError): MatchlockError {
  return asImageError(Object.assign(new Error(w.message), { code: w.code }), w.name);
}

/** How much of a layer file is read at a time (more would mostly read data the writer thread copies itself). */
const READ_BYTES = 1 << 16;
/** Reading a layer file never waits for anything: it lets the event loop run (signals, progress) this often. */
const YIELD_MS = 50;

/**
 * Applies the layer `input` onto `root`. `file`: `input` is exactly the bytes of that open file from `offset` on (an
 * uncompressed tar file): the layer is then read from the file itself (and `input` destroyed unread), and file
 * data is copied from it by the writer thread rather than passed along.
 */
export async function applyLayer(input: Readable, root: string, limits: ApplyLimits = DEFAULT_LIMITS, file: LayerFile | null = null): Promise<ApplyStats> {
  const writer = new FileWriterThread();
  const layer = new LayerWriter(root, limits, writer, file);
  let current = '';
  const reader = new TarReader((entry) => {
    current = entry.name;
    if (++layer.stats.entries > limits.maxEntries) throw imageError(`the layer has more than ${limits.maxEntries} entries`);
    return layer.entry(entry);
  });
  /** Whether to stop before the next entry: the writer thread failed. */
  const behind = (): boolean => writer.failed();
  /** Reads all of `chunk`, waiting for the writer thread when it takes no more (or failed). */
  const feed = async (chunk: Buffer): Promise<void> => {
    for (let at = reader.walk(chunk, 0, behind); at < chunk.length; at = reader.walk(chunk, at, behind)) {
      if (writer.error === null) await writer.ready();
      if (writer.error !== null) throw writerError(writer.error);
    }
    if (writer.error !== null) throw writerError(writer.error);
  };
  try {
    if (file === null) {
      for await (const data of input) await feed(data as Buffer);
    } else {
      // The same bytes, read from the file into one buffer, over and over; data the writer thread copies itself
      // from the file is passed over unread when it runs past the buffer.
      input.destroy();
      const buf = Buffer.allocUnsafe(READ_BYTES);
      let yielded = performance.now();
      for (let pos = file.offset; ;) {
        if (performance.now() - yielded > YIELD_MS) {
          await new Promise(setImmediate);
          yielded = performance.now();
        }
        const skip = reader.passOver();
        pos += skip;
        const n = readSync(file.fd, buf, 0, buf.length, pos);
        file.onRead?.(skip + n);
        if (n === 0) {
          // Data passed over may reach past the end of the file: that is a cut archive, not merely a missing marker.
          if (pos > fstatSync(file.fd).size) throw new Error('unexpected end of data');
          break;
        }
        pos += n;
        await feed(n === buf.length ? buf : buf.subarray(0, n));
      }
    }
    reader.finish();
    if (!reader.ended) throw imageError('the layer ends without the end-of-archive marker: a truncated archive?');
    current = '';
    layer.finish();
  } catch (e: unknown) {
    input.destroy();
    layer.abort();
    await writer.drain(); // every descriptor handed over is closed before this returns
    writer.stop();
    throw asImageError(e, current);
  }
  const failed = await writer.drain();
  writer.stop();
  if (failed !== null) throw writerError(failed);
  return { ...layer.stats, made: layer.paths.made.exact ? { bytes: layer.paths.made.bytes, entries: layer.paths.made.entries } : null };
}
