/**
 * A layer's bytes as a tar stream: gzip in-process (zlib, on libuv's thread pool), zstd through the `zstd`
 * program (faster here than Node's own, and on another core). Compression is named by the source (a media
 * type, a file name) or sniffed from the first bytes.
 */
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ErrorCodes, MatchlockError } from '../errors.ts';

export type Compression = 'none' | 'gzip' | 'zstd';

const CHUNK = 1 << 20;

/** A generous guess of what `bytes` of a layer give decompressed (root file systems compress 2 to 3 times). */
export function expandedGuess(bytes: number, compression: Compression): number {
  return compression === 'none' ? bytes : bytes * 4;
}

/** The compression the first bytes of a file show (gzip 1f 8b, zstd 28 b5 2f fd), else none. */
export function sniffCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** `input` decompressed; an error of either side (or zstd's exit status) ends the returned stream with it. */
export function decompress(input: Readable, compression: Compression, what: string): Readable {
  if (compression === 'none') return input;
  if (compression === 'gzip') {
    const gunzip = createGunzip({ chunkSize: CHUNK });
    input.on('error', (e: Error) => gunzip.destroy(e));
    return input.pipe(gunzip);
  }
  const zstd = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough({ highWaterMark: CHUNK });
  let stderr = '';
  zstd.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  zstd.stdin.on('error', () => {}); // EPIPE when zstd stops early: its exit status says why
  input.on('error', (e: Error) => out.destroy(e));
  input.pipe(zstd.stdin);
  zstd.stdout.pipe(out, { end: false }); // ended once zstd's exit status is known: a failure is never an early end
  zstd.on('error', (e: Error) => out.destroy(new MatchlockError(ErrorCodes.IMAGE, `cannot run zstd for ${what}: ${e.message} (install zstd)`, { what })));
  zstd.on('close', (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed) out.destroy(new MatchlockError(ErrorCodes.IMAGE, `zstd could not decompress ${what} (exit ${code ?? signal}): ${stderr.trim().split('\n').at(-1) ?? ''}`, { what }));
  });
  out.on('close', () => { if (zstd.exitCode === null) zstd.kill('SIGKILL'); });
  return out;
}
