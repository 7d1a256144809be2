/**
 * virtio-blk: one request queue over a Disk. Offers FLUSH, SEG_MAX (so Linux builds large requests), BLK_SIZE,
 * RO for read-only drives, indirect descriptors and EVENT_IDX.
 */
import type { GuestMemory } from '../../../memory/index.ts';
import type { VirtioBackend } from '../backend.ts';
import type { VirtioDeviceInfo } from '../mmio-transport.ts';
import type { DescriptorChain, SplitQueue } from '../queue.ts';
import { VIRTIO_ID_BLOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio-abi.ts';
import { SECTOR_SIZE, type Disk } from './disk.ts';
import { executeBlk, newBlkCounters, VIRTIO_BLK_HEADER_BYTES, type BlkCounters } from './blk-request.ts';
import { TokenBucket, type BucketSize } from './token-bucket.ts';

export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const BLK_QUEUE_SIZE = 256;
/** struct virtio_blk_config up to blk_size: capacity, size_max, seg_max, geometry, blk_size. */
const CONFIG_BYTES = 24;

export function blkDeviceInfo(name: string, disk: Pick<Disk, 'size' | 'readOnly'>): VirtioDeviceInfo {
  let features = (1n << BigInt(VIRTIO_BLK_F_SEG_MAX)) | (1n << BigInt(VIRTIO_BLK_F_BLK_SIZE)) | (1n << BigInt(VIRTIO_BLK_F_FLUSH))
    | (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)) | (1n << BigInt(VIRTIO_RING_F_INDIRECT_DESC));
  if (disk.readOnly) features |= 1n << BigInt(VIRTIO_BLK_F_RO);
  const config = new Uint8Array(CONFIG_BYTES);
  const v = new DataView(config.buffer);
  v.setBigUint64(0, BigInt(disk.size / SECTOR_SIZE), true);
  v.setUint32(12, BLK_QUEUE_SIZE - 2, true); // seg_max: room for the header and the status
  v.setUint32(20, SECTOR_SIZE, true);
  return { name, deviceId: VIRTIO_ID_BLOCK, features, queueMaxSizes: [BLK_QUEUE_SIZE], config };
}

/** Optional limits of one drive: bytes a second and requests a second. */
export interface BlkLimits {
  readonly bytesPerSec: number | null;
  readonly opsPerSec: number | null;
  /** Bucket sizes other than one second's worth (the API's token buckets). */
  readonly bytesBucket?: BucketSize | null;
  readonly opsBucket?: BucketSize | null;
}

export const NO_LIMITS: BlkLimits = { bytesPerSec: null, opsPerSec: null };

/** The data bytes a request moves (what the bandwidth limit counts). */
function requestBytes(chain: DescriptorChain): number {
  return Math.max(0, chain.writableBytes - 1) + Math.max(0, chain.readableBytes - VIRTIO_BLK_HEADER_BYTES);
}

export class BlkBackend implements VirtioBackend {
  readonly watches = [];
  readonly #mem: GuestMemory;
  readonly #disk: Disk;
  readonly #counters: BlkCounters = newBlkCounters();
  readonly #clock: () => number;
  readonly #bytes: TokenBucket | null;
  readonly #ops: TokenBucket | null;
  #queue: SplitQueue | null = null;
  /** When the rate limits let the next request through; null when nothing waits for them. */
  #blockedUntil: number | null = null;

  constructor(mem: GuestMemory, disk: Disk, limits: BlkLimits = NO_LIMITS, clock: () => number = Date.now) {
    this.#mem = mem;
    this.#disk = disk;
    this.#clock = clock;
    this.#bytes = limits.bytesPerSec === null ? null : new TokenBucket(limits.bytesPerSec, clock(), limits.bytesBucket ?? null);
    this.#ops = limits.opsPerSec === null ? null : new TokenBucket(limits.opsPerSec, clock(), limits.opsBucket ?? null);
  }

  activate(queues: readonly (SplitQueue | null)[]): void {
    this.#queue = queues[0] ?? null;
  }

  process(): boolean {
    const q = this.#queue;
    if (q === null || this.#blockedUntil !== null) return false;
    let used = 0;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      if (!this.#admit(chain)) {
        q.undoPop(); // waits in the ring; tick() takes it again
        break;
      }
      q.addUsed(chain.head, executeBlk(this.#mem, this.#disk, chain, this.#counters));
      used++;
    }
    return used > 0 && q.needsInterrupt();
  }

  /** Whether the rate limits let this request through now; if not, when they will. */
  #admit(chain: DescriptorChain): boolean {
    const now = this.#clock();
    const bytes = requestBytes(chain);
    const waitOps = this.#ops?.waitMs(1, now) ?? 0;
    const waitBytes = this.#bytes?.waitMs(bytes, now) ?? 0;
    if (waitOps > 0 || waitBytes > 0) {
      this.#blockedUntil = now + Math.max(waitOps, waitBytes);
      this.#counters.throttled++;
      return false;
    }
    this.#ops?.take(1, now);
    this.#bytes?.take(bytes, now);
    return true;
  }

  nextDeadline(now: number): number | null {
    return this.#blockedUntil === null ? null : Math.max(0, this.#blockedUntil - now);
  }

  tick(now: number): boolean {
    if (this.#blockedUntil === null || now < this.#blockedUntil) return false;
    this.#blockedUntil = null;
    return this.process();
  }

  ready(): boolean {
    return false;
  }

  reset(): void {
    this.#queue = null;
    this.#blockedUntil = null;
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counters };
  }

  close(): void {
    this.#disk.close();
  }
}
