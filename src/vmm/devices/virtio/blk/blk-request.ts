/**
 * One virtio-blk request: the 16-byte header at the start of the readable stream, data after it (OUT) or at the
 * start of the writable stream (IN), and the status byte as the writable stream's last byte. Data moves
 * between the disk and guest memory directly, piece by piece, never through a bounce buffer.
 */
import type { GuestMemory } from '../../../memory/index.ts';
import { readStream, segments, writeStream } from '../chain-io.ts';
import type { DescriptorChain } from '../queue.ts';
import { SECTOR_SIZE, VIRTIO_BLK_ID_BYTES, type Disk } from './disk.ts';

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
export const VIRTIO_BLK_HEADER_BYTES = 16;

export interface BlkCounters {
  reads: number;
  writes: number;
  flushes: number;
  readBytes: number;
  writtenBytes: number;
  /** Requests that ended with IOERR or UNSUPP: the guest's mistake or the host file's. */
  failed: number;
  /** Chains too broken to carry a status: completed with nothing written. */
  malformed: number;
  /** Times a request waited for the drive's rate limits. */
  throttled: number;
}

export function newBlkCounters(): BlkCounters {
  return { reads: 0, writes: 0, flushes: 0, readBytes: 0, writtenBytes: 0, failed: 0, malformed: 0, throttled: 0 };
}

interface Outcome {
  readonly status: number;
  /** Bytes of data written into the chain before the status byte. */
  readonly data: number;
}

const failed = (status: number): Outcome => ({ status, data: 0 });

/** Runs one request; returns the used length (data written into the chain plus the status byte). */
export function executeBlk(mem: GuestMemory, disk: Disk, chain: DescriptorChain, counters: BlkCounters): number {
  if (chain.fault !== null || chain.writableBytes < 1 || chain.readableBytes < VIRTIO_BLK_HEADER_BYTES) {
    counters.malformed++;
    return 0;
  }
  const header = new DataView(readStream(mem, chain.readable, 0, VIRTIO_BLK_HEADER_BYTES).buffer);
  const type = header.getUint32(0, true);
  const sector = header.getBigUint64(8, true);
  let outcome: Outcome;
  try {
    outcome = run(mem, disk, chain, type, sector, counters);
  } catch {
    // The host file failed (EIO, ENOSPC …): the guest sees an I/O error, the VMM goes on.
    outcome = failed(VIRTIO_BLK_S_IOERR);
  }
  if (outcome.status !== VIRTIO_BLK_S_OK) counters.failed++;
  writeStream(mem, chain.writable, chain.writableBytes - 1, Uint8Array.of(outcome.status));
  return outcome.data + 1;
}

function run(mem: GuestMemory, disk: Disk, chain: DescriptorChain, type: number, sector: bigint, counters: BlkCounters): Outcome {
  switch (type) {
    case VIRTIO_BLK_T_IN: {
      const len = chain.writableBytes - 1;
      const position = span(disk, sector, len);
      if (position === null) return failed(VIRTIO_BLK_S_IOERR);
      for (const [at, piece] of pieces(chain.writable, 0, len)) disk.read(position + at, mem.subarray(piece.gpa, piece.len));
      counters.reads++;
      counters.readBytes += len;
      return { status: VIRTIO_BLK_S_OK, data: len };
    }
    case VIRTIO_BLK_T_OUT: {
      const len = chain.readableBytes - VIRTIO_BLK_HEADER_BYTES;
      const position = span(disk, sector, len);
      if (position === null || disk.readOnly) return failed(VIRTIO_BLK_S_IOERR);
      for (const [at, piece] of pieces(chain.readable, VIRTIO_BLK_HEADER_BYTES, len)) disk.write(position + at, mem.subarray(piece.gpa, piece.len));
      counters.writes++;
      counters.writtenBytes += len;
      return { status: VIRTIO_BLK_S_OK, data: 0 };
    }
    case VIRTIO_BLK_T_FLUSH:
      disk.flush();
      counters.flushes++;
      return { status: VIRTIO_BLK_S_OK, data: 0 };
    case VIRTIO_BLK_T_GET_ID: {
      const room = Math.min(chain.writableBytes - 1, VIRTIO_BLK_ID_BYTES);
      const id = new Uint8Array(room);
      id.set(disk.id.subarray(0, room));
      return { status: VIRTIO_BLK_S_OK, data: writeStream(mem, chain.writable, 0, id) };
    }
    default:
      return failed(VIRTIO_BLK_S_UNSUPP);
  }
}

/** The byte position of a transfer of `len` bytes at `sector`, or null when it is not whole sectors inside the disk. */
function span(disk: Disk, sector: bigint, len: number): number | null {
  if (len % SECTOR_SIZE !== 0) return null;
  const start = sector * BigInt(SECTOR_SIZE);
  if (start + BigInt(len) > BigInt(disk.size)) return null;
  return Number(start);
}

/** The guest pieces of stream bytes `[offset, offset + len)`, each with its offset from the transfer's start. */
function pieces(buffers: DescriptorChain['readable'], offset: number, len: number): [number, { gpa: number; len: number }][] {
  let at = 0;
  return segments(buffers, offset, len).map((p) => {
    const here = at;
    at += p.len;
    return [here, p];
  });
}
