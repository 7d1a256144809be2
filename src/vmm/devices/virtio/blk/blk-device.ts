/**
 * virtio-blk: one request queue over a Disk. Offers FLUSH, SEG_MAX (so Linux builds large requests), BLK_SIZE,
 * RO for read-only drives, indirect descriptors and EVENT_IDX.
 */
import type { GuestMemory } from '../../../memory/index.ts';
import type { VirtioBackend } from '../backend.ts';
import type { VirtioDeviceInfo } from '../mmio-transport.ts';
import type { SplitQueue } from '../queue.ts';
import { VIRTIO_ID_BLOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio-abi.ts';
import { SECTOR_SIZE, type Disk } from './disk.ts';
import { executeBlk, newBlkCounters, type BlkCounters } from './blk-request.ts';

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

export class BlkBackend implements VirtioBackend {
  readonly watches = [];
  readonly #mem: GuestMemory;
  readonly #disk: Disk;
  readonly #counters: BlkCounters = newBlkCounters();
  #queue: SplitQueue | null = null;

  constructor(mem: GuestMemory, disk: Disk) {
    this.#mem = mem;
    this.#disk = disk;
  }

  activate(queues: readonly (SplitQueue | null)[]): void {
    this.#queue = queues[0] ?? null;
  }

  process(): boolean {
    const q = this.#queue;
    if (q === null) return false;
    let used = 0;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      q.addUsed(chain.head, executeBlk(this.#mem, this.#disk, chain, this.#counters));
      used++;
    }
    return used > 0 && q.needsInterrupt();
  }

  ready(): boolean {
    return false;
  }

  reset(): void {
    this.#queue = null;
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counters };
  }

  close(): void {
    this.#disk.close();
  }
}
