/**
 * virtio-net on a TAP: queue 0 receives (TAP → guest), queue 1 transmits (guest → TAP). The 12-byte
 * virtio_net_hdr_v1 passes through unchanged in both directions (the TAP speaks it too), which is what makes
 * the checksum and TSO offloads free: the guest's GSO frames go to the kernel as they are, and the kernel hands
 * the guest large frames only when the guest accepted them (TUNSETOFFLOAD).
 *
 * Nothing is lost inside the VMM: a frame is read from the TAP only when the guest has a buffer for it (else
 * the TAP keeps it), and a frame the TAP refuses (full) stays on the TX queue until the TAP is writable.
 */
import type { GuestMemory } from '../../../memory/index.ts';
import * as sys from '../../../sys/index.ts';
import type { BackendContext, VirtioBackend } from '../backend.ts';
import { readStream, writeStream } from '../chain-io.ts';
import type { VirtioDeviceInfo } from '../mmio-transport.ts';
import type { SplitQueue } from '../queue.ts';
import { VIRTIO_ID_NET, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio-abi.ts';

export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const NET_QUEUE_SIZE = 256;
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
/** The largest frame with its header: 64 KiB of GSO payload plus Ethernet and virtio-net headers. */
export const MAX_FRAME_WITH_HEADER = 65562 + sys.VNET_HDR_SIZE;
const CONFIG_BYTES = 12; // mac[6], status, max_virtqueue_pairs, mtu

export interface NetOptions {
  readonly mac: Uint8Array;
  readonly mtu: number | null;
}

const bit = (n: number): bigint => 1n << BigInt(n);

export function netDeviceInfo(name: string, o: NetOptions): VirtioDeviceInfo {
  let features = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4)
    | bit(VIRTIO_NET_F_GUEST_TSO6) | bit(VIRTIO_NET_F_HOST_TSO4) | bit(VIRTIO_NET_F_HOST_TSO6)
    | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);
  if (o.mtu !== null) features |= bit(VIRTIO_NET_F_MTU);
  const config = new Uint8Array(CONFIG_BYTES);
  config.set(o.mac, 0);
  const v = new DataView(config.buffer);
  v.setUint16(8, 1, true);
  v.setUint16(10, o.mtu ?? 1500, true);
  return { name, deviceId: VIRTIO_ID_NET, features, queueMaxSizes: [NET_QUEUE_SIZE, NET_QUEUE_SIZE], config };
}

/** The TAP offloads (TUN_F_*) that the guest's accepted features allow. */
export function tapOffloads(features: bigint): number {
  const has = (n: number): boolean => (features & bit(n)) !== 0n;
  if (!has(VIRTIO_NET_F_GUEST_CSUM)) return 0;
  return sys.TUN_F_CSUM | (has(VIRTIO_NET_F_GUEST_TSO4) ? sys.TUN_F_TSO4 : 0) | (has(VIRTIO_NET_F_GUEST_TSO6) ? sys.TUN_F_TSO6 : 0);
}

interface NetCounters {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames the guest gave no room for (its RX buffer was too small) or sent malformed. */
  rxDropped: number;
  txDropped: number;
  malformed: number;
}

export class NetBackend implements VirtioBackend {
  readonly watches: readonly sys.Watch[];
  readonly #mem: GuestMemory;
  readonly #tap: sys.Tap;
  readonly #ctx: BackendContext;
  readonly #frame = new Uint8Array(MAX_FRAME_WITH_HEADER);
  readonly #counters: NetCounters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, rxDropped: 0, txDropped: 0, malformed: 0 };
  #rx: SplitQueue | null = null;
  #tx: SplitQueue | null = null;
  /** The TAP events the loop waits for now. */
  #interest = 0;

  constructor(mem: GuestMemory, tap: sys.Tap, ctx: BackendContext) {
    this.#mem = mem;
    this.#tap = tap;
    this.#ctx = ctx;
    this.watches = [{ fd: tap.fd, events: 0 }];
  }

  activate(queues: readonly (SplitQueue | null)[], features: bigint): void {
    this.#rx = queues[RX_QUEUE] ?? null;
    this.#tx = queues[TX_QUEUE] ?? null;
    sys.setTapOffload(this.#tap, tapOffloads(features));
    this.#want(this.#rx === null ? 0 : sys.EPOLLIN);
  }

  process(queue: number): boolean {
    if (queue === RX_QUEUE) return this.#receive(); // the guest gave buffers: frames may be waiting
    return this.#transmit();
  }

  ready(_fd: number, events: number): boolean {
    let interrupt = false;
    if ((events & sys.EPOLLOUT) !== 0) interrupt = this.#transmit() || interrupt;
    if ((events & (sys.EPOLLIN | sys.EPOLLERR | sys.EPOLLHUP)) !== 0) interrupt = this.#receive() || interrupt;
    return interrupt;
  }

  reset(): void {
    this.#rx = null;
    this.#tx = null;
    this.#want(0);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counters };
  }

  close(): void {
    sys.closeFd(this.#tap.fd);
  }

  #want(events: number): void {
    if (events === this.#interest) return;
    this.#interest = events;
    this.#ctx.setInterest(this.#tap.fd, events);
  }

  /** TAP → guest, for as long as there are frames and buffers. */
  #receive(): boolean {
    const q = this.#rx;
    if (q === null) return false;
    let used = 0;
    for (;;) {
      const chain = q.pop();
      if (chain === null) {
        // No buffer: leave the frames in the TAP until the guest gives some (an RX notification).
        this.#want(this.#interest & ~sys.EPOLLIN);
        break;
      }
      const n = sys.readFrame(this.#tap.fd, this.#frame);
      if (n === 0) {
        q.undoPop();
        this.#want(this.#interest | sys.EPOLLIN);
        break;
      }
      used++;
      if (chain.fault !== null || chain.writableBytes < n) {
        if (chain.fault !== null) this.#counters.malformed++;
        else this.#counters.rxDropped++;
        q.addUsed(chain.head, 0);
        continue;
      }
      const frame = this.#frame.subarray(0, n);
      new DataView(frame.buffer).setUint16(10, 1, true); // num_buffers: one buffer holds the whole frame
      writeStream(this.#mem, chain.writable, 0, frame);
      q.addUsed(chain.head, n);
      this.#counters.rxFrames++;
      this.#counters.rxBytes += n - sys.VNET_HDR_SIZE;
    }
    return used > 0 && q.needsInterrupt();
  }

  /** guest → TAP, until the queue is empty or the TAP is full. */
  #transmit(): boolean {
    const q = this.#tx;
    if (q === null) return false;
    let used = 0;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      if (chain.fault !== null || chain.readableBytes <= sys.VNET_HDR_SIZE || chain.readableBytes > MAX_FRAME_WITH_HEADER) {
        if (chain.fault !== null) this.#counters.malformed++;
        else this.#counters.txDropped++;
        q.addUsed(chain.head, 0);
        used++;
        continue;
      }
      const frame = readStream(this.#mem, chain.readable, 0, chain.readableBytes);
      if (!sys.writeFrame(this.#tap.fd, frame)) {
        q.undoPop(); // the TAP is full: try again when it is writable
        this.#want(this.#interest | sys.EPOLLOUT);
        return used > 0 && q.needsInterrupt();
      }
      q.addUsed(chain.head, 0);
      used++;
      this.#counters.txFrames++;
      this.#counters.txBytes += frame.length - sys.VNET_HDR_SIZE;
    }
    this.#want(this.#interest & ~sys.EPOLLOUT);
    return used > 0 && q.needsInterrupt();
  }
}
