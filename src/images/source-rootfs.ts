/**
 * `rootfs:FILE.tar[.gz|.tgz|.zst]`: a root file system tarball is one layer, decompressed by its name's suffix.
 * The source digest is the sha256 of the file. Nothing describes a tarball's content, so nothing is verified as it
 * is read; the digest records what the image was built from, and is taken on another thread from the same open
 * file once the layer was applied, while mke2fs runs. A file that changed meanwhile (its size, times or inode
 * differ at the end) fails the build.
 */
import { closeSync, createReadStream, fstatSync, openSync, read, type Stats } from 'node:fs';
import { basename } from 'node:path';
import { decompress, expandedGuess, type Compression } from './decompress.ts';
import { hashFileOnWorker } from './sha256-tap.ts';
import { imageError, type ImageSource, type OpenedLayer } from './source.ts';

function compressionOf(path: string): Compression {
  if (/\.(tar\.gz|tgz)$/.test(path)) return 'gzip';
  if (/\.tar\.zst$/.test(path)) return 'zstd';
  if (path.endsWith('.tar')) return 'none';
  throw imageError(`rootfs ${path}: give a .tar, .tar.gz, .tgz or .tar.zst file`, { path });
}

const same = (a: Stats, b: Stats): boolean => a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

export function openRootfs(path: string): ImageSource {
  const compression = compressionOf(path);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e: unknown) {
    throw imageError(`rootfs ${path}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such file' : String(e)}`, { path });
  }
  const before = fstatSync(fd);
  if (!before.isFile()) {
    closeSync(fd);
    throw imageError(`rootfs ${path}: not a regular file`, { path });
  }
  // Hashing starts once the layer was applied (on a 2-core host the applier keeps both busy), alongside mke2fs.
  let hashing: ReturnType<typeof hashFileOnWorker> | null = null;
  /** The digest, once the file is found unchanged since it was opened (checked again at each call: last at the end). */
  const digest = (): Promise<string> => {
    hashing ??= hashFileOnWorker(fd);
    return hashing.result.then(({ hex, bytes }) => {
      if (bytes !== before.size || !same(before, fstatSync(fd))) throw imageError(`rootfs ${path} changed while the image was built: build again`, { path });
      return hex;
    });
  };
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    if (hashing === null) closeSync(fd);
    else void hashing.stop().finally(() => closeSync(fd)); // the worker may still read it
  };
  const open = (onRead: (bytes: number) => void): OpenedLayer => {
    // The stream reads the source's descriptor but never closes it (destroy() would, whatever autoClose says): close() does.
    const file = createReadStream(path, { fd, fs: { read, close: (_fd: number, cb: (e: null) => void) => cb(null) }, start: 0, highWaterMark: 1 << 20 });
    file.on('data', (c) => onRead((c as Buffer).length));
    return {
      tar: decompress(file, compression, path),
      file: compression === 'none' ? { fd, offset: 0 } : null,
      verify: () => digest().then(() => undefined),
      close: () => {},
    };
  };
  return {
    kind: 'rootfs',
    layers: [{ label: basename(path), sourceBytes: before.size, expandedBytes: expandedGuess(before.size, compression), open }],
    config: null,
    digest,
    close,
  };
}
