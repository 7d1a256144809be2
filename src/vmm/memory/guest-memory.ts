import { ErrorCodes, MatchlockError } from '../../errors.ts';
import type { RamRegion } from '../arch/x86_64/layout.ts';

/** One region of guest RAM and the host bytes behind it. */
export interface MemoryRegion {
  readonly gpa: number;
  readonly size: number;
  /** The host bytes of the region (a view of the mapping; never copied). */
  readonly bytes: Uint8Array;
  /** Host virtual address of the mapping, or null for memory that is not mapped natively (unit tests). */
  readonly hostAddress: bigint | null;
}

interface Slot {
  readonly region: MemoryRegion;
  readonly view: DataView;
  /** 16-bit words of the region, for the ordered accesses of shared rings (made on first use). */
  words?: Uint16Array;
}

function guestMemoryError(gpa: number, len: number, why: string): MatchlockError {
  return new MatchlockError(
    ErrorCodes.GUEST_MEMORY,
    `guest memory access of ${len} bytes at 0x${gpa.toString(16)} ${why}`,
    { gpa, len },
  );
}

const Slots = {
  words(s: Slot, gpa: number): Uint16Array {
    if (((gpa - s.region.gpa) & 1) !== 0 || (s.region.bytes.byteOffset & 1) !== 0) {
      throw guestMemoryError(gpa, 2, 'is not 2-byte aligned');
    }
    s.words ??= new Uint16Array(s.region.bytes.buffer, s.region.bytes.byteOffset, Math.floor(s.region.bytes.byteLength / 2));
    return s.words;
  },
};

/**
 * Guest RAM, addressed by guest-physical address. Every access is bounds-checked and must lie within one
 * region; a bad address throws MATCHLOCK_ERR_GUEST_MEMORY carrying the address. Values are little-endian.
 */
export class GuestMemory {
  readonly #slots: readonly Slot[];

  constructor(regions: readonly MemoryRegion[]) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      if (!Number.isSafeInteger(r.gpa) || !Number.isSafeInteger(r.size) || r.gpa < 0 || r.size <= 0) {
        throw new RangeError(`memory region 0x${r.gpa.toString(16)}+0x${r.size.toString(16)} is invalid`);
      }
      if (r.bytes.byteLength !== r.size) throw new RangeError(`memory region at 0x${r.gpa.toString(16)}: backing size differs`);
      const prev = sorted[i - 1];
      if (prev && prev.gpa + prev.size > r.gpa) throw new RangeError(`memory regions overlap at 0x${r.gpa.toString(16)}`);
    }
    this.#slots = sorted.map((region) => ({
      region,
      view: new DataView(region.bytes.buffer, region.bytes.byteOffset, region.bytes.byteLength),
    }));
  }

  /** Plain in-process memory for a layout (tests, and tools that only build images). */
  static fromLayout(layout: readonly RamRegion[]): GuestMemory {
    return new GuestMemory(layout.map((r) => ({ gpa: r.gpa, size: r.size, bytes: new Uint8Array(r.size), hostAddress: null })));
  }

  get regions(): readonly MemoryRegion[] {
    return this.#slots.map((s) => s.region);
  }

  /** Total RAM in bytes. */
  get size(): number {
    return this.#slots.reduce((n, s) => n + s.region.size, 0);
  }

  /** One past the highest RAM address. */
  get end(): number {
    const last = this.#slots[this.#slots.length - 1];
    return last ? last.region.gpa + last.region.size : 0;
  }

  /** True when `[gpa, gpa + len)` lies inside one region. */
  contains(gpa: number, len: number): boolean {
    return this.#find(gpa, len) !== undefined;
  }

  #find(gpa: number, len: number): Slot | undefined {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return undefined;
    for (const s of this.#slots) {
      const { gpa: start, size } = s.region;
      if (gpa >= start && gpa - start + len <= size) return s;
    }
    return undefined;
  }

  #slot(gpa: number, len: number): Slot {
    const s = this.#find(gpa, len);
    if (!s) throw guestMemoryError(gpa, len, 'is outside guest RAM');
    return s;
  }

  /** A view of guest bytes, without copying: writes through it reach the guest. */
  subarray(gpa: number, len: number): Uint8Array {
    const s = this.#slot(gpa, len);
    const off = gpa - s.region.gpa;
    return s.region.bytes.subarray(off, off + len);
  }

  /** A copy of guest bytes. */
  read(gpa: number, len: number): Uint8Array {
    return this.subarray(gpa, len).slice();
  }

  write(gpa: number, data: Uint8Array): void {
    this.subarray(gpa, data.byteLength).set(data);
  }

  fill(gpa: number, len: number, value: number): void {
    this.subarray(gpa, len).fill(value);
  }

  readU8(gpa: number): number {
    const s = this.#slot(gpa, 1);
    return s.view.getUint8(gpa - s.region.gpa);
  }

  readU16(gpa: number): number {
    const s = this.#slot(gpa, 2);
    return s.view.getUint16(gpa - s.region.gpa, true);
  }

  readU32(gpa: number): number {
    const s = this.#slot(gpa, 4);
    return s.view.getUint32(gpa - s.region.gpa, true);
  }

  readU64(gpa: number): bigint {
    const s = this.#slot(gpa, 8);
    return s.view.getBigUint64(gpa - s.region.gpa, true);
  }

  writeU8(gpa: number, value: number): void {
    const s = this.#slot(gpa, 1);
    s.view.setUint8(gpa - s.region.gpa, value);
  }

  writeU16(gpa: number, value: number): void {
    const s = this.#slot(gpa, 2);
    s.view.setUint16(gpa - s.region.gpa, value, true);
  }

  writeU32(gpa: number, value: number): void {
    const s = this.#slot(gpa, 4);
    s.view.setUint32(gpa - s.region.gpa, value >>> 0, true);
  }

  writeU64(gpa: number, value: bigint | number): void {
    const s = this.#slot(gpa, 8);
    s.view.setBigUint64(gpa - s.region.gpa, BigInt(value), true);
  }

  /**
   * An ordered (sequentially consistent) 16-bit load, for indices the guest publishes to other threads: later
   * reads see at least what the guest wrote before it. `gpa` must be even.
   */
  loadU16Ordered(gpa: number): number {
    const s = this.#slot(gpa, 2);
    return Atomics.load(Slots.words(s, gpa), (gpa - s.region.gpa) / 2);
  }

  /** An ordered 16-bit store: everything written before it is visible to the guest first. `gpa` must be even. */
  storeU16Ordered(gpa: number, value: number): void {
    const s = this.#slot(gpa, 2);
    Atomics.store(Slots.words(s, gpa), (gpa - s.region.gpa) / 2, value);
  }

  /** A NUL-terminated ASCII string of at most `max` bytes (the NUL not counted). */
  readCString(gpa: number, max: number): string {
    let out = '';
    for (let i = 0; i < max; i++) {
      const c = this.readU8(gpa + i);
      if (c === 0) return out;
      out += String.fromCharCode(c);
    }
    throw guestMemoryError(gpa, max, 'holds no NUL-terminated string');
  }
}
