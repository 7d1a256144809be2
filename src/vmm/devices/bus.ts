import { ErrorCodes, MatchlockError } from '../../errors.ts';

/** A device on a bus. `data` is the access: its length is the access size; reads fill it in place. */
export interface BusDevice {
  readonly name: string;
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

interface Range {
  readonly base: number;
  readonly size: number;
  readonly device: BusDevice;
}

/**
 * An address space (port I/O or MMIO) of non-overlapping device ranges. An access that hits no device, or that
 * runs past the end of the device it starts in, returns false and is left to the caller (reads see all ones).
 */
export class Bus {
  readonly kind: 'pio' | 'mmio';
  #ranges: Range[] = [];

  constructor(kind: 'pio' | 'mmio') {
    this.kind = kind;
  }

  insert(base: number, size: number, device: BusDevice): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new RangeError(`${this.kind} range 0x${base.toString(16)}+${size} for ${device.name} is invalid`);
    }
    const clash = this.#ranges.find((r) => base < r.base + r.size && r.base < base + size);
    if (clash) {
      throw new MatchlockError(ErrorCodes.BUS_OVERLAP,
        `${this.kind} range 0x${base.toString(16)}-0x${(base + size - 1).toString(16)} of ${device.name} overlaps ${clash.device.name} at 0x${clash.base.toString(16)}`,
        { base, size, device: device.name, other: clash.device.name });
    }
    this.#ranges.push({ base, size, device });
    this.#ranges.sort((a, b) => a.base - b.base);
  }

  /** The device holding `[addr, addr + len)`, and the offset of `addr` in it. */
  find(addr: number, len = 1): { device: BusDevice; offset: number } | undefined {
    let lo = 0;
    let hi = this.#ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.#ranges[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.base + r.size) lo = mid + 1;
      else return addr + len <= r.base + r.size ? { device: r.device, offset: addr - r.base } : undefined;
    }
    return undefined;
  }

  read(addr: number, data: Uint8Array): boolean {
    const hit = this.find(addr, data.length);
    if (!hit) return false;
    hit.device.read(hit.offset, data);
    return true;
  }

  write(addr: number, data: Uint8Array): boolean {
    const hit = this.find(addr, data.length);
    if (!hit) return false;
    hit.device.write(hit.offset, data);
    return true;
  }

  get devices(): readonly { base: number; size: number; name: string }[] {
    return this.#ranges.map((r) => ({ base: r.base, size: r.size, name: r.device.name }));
  }
}
