/**
 * A split virtqueue, device side, that knows nothing of its transport: given the ring addresses the driver
 * chose, it takes descriptor chains off the available ring and puts them on the used ring.
 *
 * Everything the guest wrote is checked. A mistake inside one chain (an address outside RAM, a loop, a bad
 * indirect table) costs that request only: `pop` returns the chain with `fault` set and the device completes it
 * with nothing written. A mistake in the ring itself (an index that jumps past the queue, a head out of range)
 * leaves the queue unusable: `pop` throws a VirtioDriverError and the device marks itself NEEDS_RESET.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { GuestMemory } from '../../memory/index.ts';
import {
  VIRTQ_MAX_SIZE, VRING_AVAIL_ALIGN, VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_ALIGN, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE, VRING_DESC_SIZE, VRING_USED_ALIGN, VRING_USED_ELEM_SIZE, VRING_USED_F_NO_NOTIFY, availRingBytes,
  usedRingBytes, vringNeedEvent,
} from './virtio-abi.ts';

/** Where the driver put one queue, as it told the transport. */
export interface QueueLayout {
  readonly size: number;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
}

export interface QueueFeatures {
  /** VIRTIO_RING_F_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC was negotiated. */
  readonly indirect: boolean;
}

/** One buffer of a chain, in guest-physical terms, checked to lie inside guest RAM. */
export interface ChainBuffer {
  readonly gpa: number;
  readonly len: number;
}

export interface DescriptorChain {
  /** The head's index: what goes back on the used ring. */
  readonly head: number;
  /** Buffers the device may read, in order. */
  readonly readable: readonly ChainBuffer[];
  /** Buffers the device may write, in order (they follow the readable ones). */
  readonly writable: readonly ChainBuffer[];
  readonly readableBytes: number;
  readonly writableBytes: number;
  /** Set when the chain broke the rules: the device must complete it without using its buffers. */
  readonly fault: string | null;
}

/** Descriptors one indirect table may hold: bounds the memory and time one request can cost. */
export const MAX_INDIRECT_DESCRIPTORS = 1024;

export function driverError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.VIRTIO_DRIVER, message, details);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Checks a layout against guest RAM and the spec; returns the reason it is unusable, or null. */
export function layoutProblem(mem: GuestMemory, q: QueueLayout, maxSize: number): string | null {
  if (!Number.isInteger(q.size) || q.size < 1 || q.size > Math.min(maxSize, VIRTQ_MAX_SIZE) || (q.size & (q.size - 1)) !== 0) {
    return `queue size ${q.size} is not a power of two from 1 to ${Math.min(maxSize, VIRTQ_MAX_SIZE)}`;
  }
  const parts: [string, number, number, number][] = [
    ['descriptor table', q.descAddr, VRING_DESC_SIZE * q.size, VRING_DESC_ALIGN],
    ['available ring', q.availAddr, availRingBytes(q.size), VRING_AVAIL_ALIGN],
    ['used ring', q.usedAddr, usedRingBytes(q.size), VRING_USED_ALIGN],
  ];
  for (const [what, gpa, len, align] of parts) {
    if (gpa % align !== 0) return `${what} at ${hex(gpa)} is not ${align}-byte aligned`;
    if (!mem.contains(gpa, len)) return `${what} at ${hex(gpa)} (${len} bytes) is outside guest RAM`;
  }
  return null;
}

export class SplitQueue {
  readonly layout: QueueLayout;
  readonly #mem: GuestMemory;
  readonly #features: QueueFeatures;
  #nextAvail = 0;
  #nextUsed = 0;
  /** The used index when the driver was last interrupted (EVENT_IDX). */
  #signalledUsed = 0;

  /** Throws a VirtioDriverError if the layout is unusable. */
  constructor(mem: GuestMemory, layout: QueueLayout, features: QueueFeatures, maxSize: number = VIRTQ_MAX_SIZE) {
    const problem = layoutProblem(mem, layout, maxSize);
    if (problem !== null) throw driverError(problem, { ...layout });
    this.#mem = mem;
    this.layout = { ...layout };
    this.#features = features;
  }

  get size(): number {
    return this.layout.size;
  }

  /** Chains the driver has made available that the device has not taken yet. */
  pending(): number {
    const idx = this.#mem.loadU16Ordered(this.layout.availAddr + 2);
    const n = (idx - this.#nextAvail) & 0xffff;
    if (n > this.size) {
      throw driverError(`available index ${idx} is ${n} ahead of the device, more than the queue's ${this.size} entries`, { idx, next: this.#nextAvail });
    }
    return n;
  }

  /** Takes the next available chain, or null when there is none. */
  pop(): DescriptorChain | null {
    if (this.pending() === 0) return null;
    const slot = this.#nextAvail % this.size;
    const head = this.#mem.readU16(this.layout.availAddr + 4 + 2 * slot);
    if (head >= this.size) throw driverError(`available ring entry ${slot} names descriptor ${head}, outside the queue's ${this.size}`, { head });
    this.#nextAvail = (this.#nextAvail + 1) & 0xffff;
    if (this.#features.eventIdx) this.#publishAvailEvent();
    return this.#walk(head);
  }

  /** Undoes the last pop: the chain is taken again by the next pop (a device out of room for it, say). */
  undoPop(): void {
    this.#nextAvail = (this.#nextAvail - 1) & 0xffff;
  }

  /** Returns a chain to the driver with the number of bytes the device wrote into it. */
  addUsed(head: number, written: number): void {
    const slot = this.#nextUsed % this.size;
    const elem = this.layout.usedAddr + 4 + VRING_USED_ELEM_SIZE * slot;
    this.#mem.writeU32(elem, head);
    this.#mem.writeU32(elem + 4, written);
    this.#nextUsed = (this.#nextUsed + 1) & 0xffff;
    this.#mem.storeU16Ordered(this.layout.usedAddr + 2, this.#nextUsed);
  }

  /**
   * Whether the driver wants an interrupt for what was added since the last one; call once after a batch of
   * addUsed. With EVENT_IDX the driver's used_event decides, otherwise its NO_INTERRUPT flag.
   */
  needsInterrupt(): boolean {
    const used = this.#nextUsed;
    if (this.#features.eventIdx) {
      const old = this.#signalledUsed;
      this.#signalledUsed = used;
      const event = this.#mem.loadU16Ordered(this.layout.availAddr + 4 + 2 * this.size);
      return vringNeedEvent(event, used, old);
    }
    return (this.#mem.loadU16Ordered(this.layout.availAddr) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Tells the driver whether to notify the device of new buffers. Returns true when buffers arrived meanwhile
   * (so a device re-enabling notifications must look again before it sleeps).
   */
  setNotification(enabled: boolean): boolean {
    if (this.#features.eventIdx) {
      if (enabled) this.#publishAvailEvent();
    } else {
      this.#mem.storeU16Ordered(this.layout.usedAddr, enabled ? 0 : VRING_USED_F_NO_NOTIFY);
    }
    return enabled && this.pending() > 0;
  }

  #publishAvailEvent(): void {
    this.#mem.storeU16Ordered(this.layout.usedAddr + 4 + VRING_USED_ELEM_SIZE * this.size, this.#nextAvail);
  }

  #walk(head: number): DescriptorChain {
    const readable: ChainBuffer[] = [];
    const writable: ChainBuffer[] = [];
    const totals = { readable: 0, writable: 0 };
    const done = (fault: string | null): DescriptorChain => ({
      head, readable, writable, readableBytes: totals.readable, writableBytes: totals.writable, fault,
    });
    let table = this.layout.descAddr;
    let count = this.size;
    let index = head;
    let indirect = false;
    // Every descriptor of a table is visited at most once, or the chain has a loop.
    for (let steps = 0; ; steps++) {
      if (steps >= count) return done(`descriptor chain from ${head} is longer than its table (${count}): a loop`);
      const d = table + VRING_DESC_SIZE * index;
      const addr = this.#mem.readU64(d);
      const len = this.#mem.readU32(d + 8);
      const flags = this.#mem.readU16(d + 12);
      const next = this.#mem.readU16(d + 14);
      if ((flags & VRING_DESC_F_INDIRECT) !== 0) {
        const problem = this.#indirectProblem(indirect, addr, len, flags, readable.length + writable.length);
        if (problem !== null) return done(problem);
        table = Number(addr);
        count = len / VRING_DESC_SIZE;
        index = 0;
        indirect = true;
        steps = -1;
        continue;
      }
      const gpa = Number(addr);
      if (addr > BigInt(Number.MAX_SAFE_INTEGER) || !this.#mem.contains(gpa, len)) {
        return done(`descriptor ${index} points at ${len} bytes at 0x${addr.toString(16)}, outside guest RAM`);
      }
      if ((flags & VRING_DESC_F_WRITE) !== 0) {
        writable.push({ gpa, len });
        totals.writable += len;
      } else {
        if (writable.length > 0) return done(`descriptor ${index} is device-readable but follows a device-writable one`);
        readable.push({ gpa, len });
        totals.readable += len;
      }
      if ((flags & VRING_DESC_F_NEXT) === 0) return done(null);
      if (next >= count) return done(`descriptor ${index} chains to ${next}, outside its table of ${count}`);
      index = next;
    }
  }

  #indirectProblem(nested: boolean, addr: bigint, len: number, flags: number, before: number): string | null {
    if (!this.#features.indirect) return 'an indirect descriptor, but INDIRECT_DESC was not negotiated';
    if (nested) return 'an indirect descriptor inside an indirect table';
    if (before > 0) return 'an indirect descriptor after direct ones in the same chain';
    if ((flags & VRING_DESC_F_NEXT) !== 0) return 'an indirect descriptor with NEXT set';
    if (len === 0 || len % VRING_DESC_SIZE !== 0) return `an indirect table of ${len} bytes, not a positive multiple of ${VRING_DESC_SIZE}`;
    if (len / VRING_DESC_SIZE > MAX_INDIRECT_DESCRIPTORS) return `an indirect table of ${len / VRING_DESC_SIZE} descriptors, more than ${MAX_INDIRECT_DESCRIPTORS}`;
    if (addr > BigInt(Number.MAX_SAFE_INTEGER) || !this.#mem.contains(Number(addr), len)) {
      return `an indirect table at 0x${addr.toString(16)} (${len} bytes) outside guest RAM`;
    }
    return null;
  }
}
