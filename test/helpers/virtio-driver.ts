/**
 * A mock virtio *driver* for unit tests: it lays out a split queue in fake guest memory and writes descriptors
 * and available-ring entries the way a guest would (or the way a hostile guest would, through the raw writers),
 * so queues and devices are tested without a guest.
 */
import type { GuestMemory } from '../../src/vmm/memory/index.ts';
import {
  VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_SIZE, availRingBytes, usedRingBytes,
  type QueueLayout,
} from '../../src/vmm/devices/virtio/index.ts';

export interface DriverBuffer {
  readonly gpa: number;
  readonly len: number;
  /** Device-writable. */
  readonly write?: boolean;
}

export interface UsedElem {
  readonly id: number;
  readonly len: number;
}

/** A layout of `size` entries from `base`: descriptor table, available ring, used ring (aligned). */
export function queueLayoutAt(base: number, size: number): QueueLayout {
  const descAddr = base;
  const availAddr = descAddr + VRING_DESC_SIZE * size;
  const usedAddr = Math.ceil((availAddr + availRingBytes(size)) / 4) * 4;
  return { size, descAddr, availAddr, usedAddr };
}

/** Bytes a queueLayoutAt layout occupies. */
export function queueLayoutBytes(q: QueueLayout): number {
  return q.usedAddr + usedRingBytes(q.size) - q.descAddr;
}

export class MockDriver {
  readonly mem: GuestMemory;
  readonly layout: QueueLayout;
  #freeDesc = 0;
  #availIdx = 0;
  #usedSeen = 0;

  constructor(mem: GuestMemory, layout: QueueLayout) {
    this.mem = mem;
    this.layout = layout;
    mem.fill(layout.descAddr, VRING_DESC_SIZE * layout.size, 0);
    mem.fill(layout.availAddr, availRingBytes(layout.size), 0);
    mem.fill(layout.usedAddr, usedRingBytes(layout.size), 0);
  }

  writeDesc(table: number, index: number, addr: number | bigint, len: number, flags: number, next: number): void {
    const d = table + VRING_DESC_SIZE * index;
    this.mem.writeU64(d, BigInt(addr));
    this.mem.writeU32(d + 8, len);
    this.mem.writeU16(d + 12, flags);
    this.mem.writeU16(d + 14, next);
  }

  /** Writes a chain into free descriptors (or into an indirect table at `indirectAt`) and makes it available. */
  add(buffers: readonly DriverBuffer[], opts: { indirectAt?: number } = {}): number {
    const flagsOf = (b: DriverBuffer, last: boolean): number => (b.write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT);
    const head = this.#freeDesc;
    if (opts.indirectAt !== undefined) {
      buffers.forEach((b, i) => this.writeDesc(opts.indirectAt!, i, b.gpa, b.len, flagsOf(b, i === buffers.length - 1), i + 1));
      this.writeDesc(this.layout.descAddr, head, opts.indirectAt, VRING_DESC_SIZE * buffers.length, VRING_DESC_F_INDIRECT, 0);
      this.#freeDesc = (this.#freeDesc + 1) % this.layout.size;
    } else {
      buffers.forEach((b, i) => {
        const index = (head + i) % this.layout.size;
        this.writeDesc(this.layout.descAddr, index, b.gpa, b.len, flagsOf(b, i === buffers.length - 1), (index + 1) % this.layout.size);
      });
      this.#freeDesc = (this.#freeDesc + buffers.length) % this.layout.size;
    }
    this.publish(head);
    return head;
  }

  /** Puts `head` on the available ring and moves its index. */
  publish(head: number): void {
    const slot = this.#availIdx % this.layout.size;
    this.mem.writeU16(this.layout.availAddr + 4 + 2 * slot, head);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.mem.writeU16(this.layout.availAddr + 2, this.#availIdx);
  }

  setAvailIdx(idx: number): void {
    this.#availIdx = idx & 0xffff;
    this.mem.writeU16(this.layout.availAddr + 2, this.#availIdx);
  }

  setAvailFlags(flags: number): void {
    this.mem.writeU16(this.layout.availAddr, flags);
  }

  /** used_event (EVENT_IDX): interrupt me when the used index passes this. */
  setUsedEvent(idx: number): void {
    this.mem.writeU16(this.layout.availAddr + 4 + 2 * this.layout.size, idx);
  }

  get usedIdx(): number {
    return this.mem.readU16(this.layout.usedAddr + 2);
  }

  get usedFlags(): number {
    return this.mem.readU16(this.layout.usedAddr);
  }

  /** avail_event (EVENT_IDX): the device wants a notification when the available index passes this. */
  get availEvent(): number {
    return this.mem.readU16(this.layout.usedAddr + 4 + 8 * this.layout.size);
  }

  /** Used elements the device returned since the last call. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedIdx;
    while (this.#usedSeen !== idx) {
      const e = this.layout.usedAddr + 4 + 8 * (this.#usedSeen % this.layout.size);
      out.push({ id: this.mem.readU32(e), len: this.mem.readU32(e + 4) });
      this.#usedSeen = (this.#usedSeen + 1) & 0xffff;
    }
    return out;
  }
}
