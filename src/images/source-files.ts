/** Reading a source's files: whole small ones, byte ranges of large ones, and streams that report progress. */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { imageError } from './source.ts';

const READ_CHUNK = 1 << 20;

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Reads `length` bytes at `offset` of `path` (all of it when `length` is null), at most `max`; refuses a
 * symlink when `noFollow`.
 */
export function readBytes(path: string, what: string, opts: { offset?: number; length?: number | null; max: number; noFollow?: boolean }): Buffer {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | (opts.noFollow === true ? fsc.O_NOFOLLOW : 0));
  } catch (e: unknown) {
    throw imageError(`cannot read ${what} (${path}): ${(e as { code?: string }).code ?? String(e)}`, { path });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw imageError(`${what} (${path}) is not a regular file`, { path });
    const length = opts.length ?? st.size;
    if (length > opts.max) throw imageError(`${what} (${path}) is ${length} bytes, more than the ${opts.max} allowed`, { path });
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, (opts.offset ?? 0) + got);
      if (n === 0) throw imageError(`${what} (${path}) ends early: ${got} of ${length} bytes`, { path });
      got += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** A stream of `path` (bytes `start` to `end` inclusive when given) telling `onRead` of each chunk. */
export function readFileStream(path: string, onRead: (bytes: number) => void, range: { start: number; end: number } | null = null, noFollow = false): Readable {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | (noFollow ? fsc.O_NOFOLLOW : 0));
  } catch (e: unknown) {
    throw imageError(`cannot read ${path}: ${(e as { code?: string }).code ?? String(e)}`, { path });
  }
  const s = createReadStream(path, { fd, highWaterMark: READ_CHUNK, ...(range === null ? {} : { start: range.start, end: range.end }) });
  s.on('data', (c) => onRead((c as Buffer).length));
  return s;
}
