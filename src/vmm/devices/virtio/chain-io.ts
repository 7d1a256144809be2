/**
 * A chain's readable (or writable) buffers as one byte stream, whatever the driver's framing: a device reads
 * its header and writes its status by offset in the stream, never assuming one descriptor per field
 * (virtio 1.2, 2.7.4 "Message Framing").
 */
import type { GuestMemory } from '../../memory/index.ts';
import type { ChainBuffer } from './queue.ts';

/** The pieces of guest memory that hold bytes `[offset, offset + len)` of the stream; fewer bytes if it ends. */
export function segments(buffers: readonly ChainBuffer[], offset: number, len: number): ChainBuffer[] {
  const out: ChainBuffer[] = [];
  let skip = offset;
  let want = len;
  for (const b of buffers) {
    if (want === 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const n = Math.min(b.len - skip, want);
    out.push({ gpa: b.gpa + skip, len: n });
    want -= n;
    skip = 0;
  }
  return out;
}

/** Copies `len` bytes of the stream from `offset`; shorter if the stream ends first. */
export function readStream(mem: GuestMemory, buffers: readonly ChainBuffer[], offset: number, len: number): Uint8Array {
  const parts = segments(buffers, offset, len);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.len, 0));
  let at = 0;
  for (const p of parts) {
    out.set(mem.subarray(p.gpa, p.len), at);
    at += p.len;
  }
  return out;
}

/** Writes `data` into the stream from `offset`; returns how many bytes fitted. */
export function writeStream(mem: GuestMemory, buffers: readonly ChainBuffer[], offset: number, data: Uint8Array): number {
  let at = 0;
  for (const p of segments(buffers, offset, data.length)) {
    mem.write(p.gpa, data.subarray(at, at + p.len));
    at += p.len;
  }
  return at;
}
