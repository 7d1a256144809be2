/**
 * The kernel command line: built argument by argument, never longer than the kernel accepts.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { CMDLINE_MAX_SIZE } from '../arch/x86_64/layout.ts';
import type { GuestMemory } from '../memory/index.ts';

const encoder = new TextEncoder();

function invalid(what: string, value: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, `kernel command line ${what}: ${JSON.stringify(value)}; remove it or fix the value`, { value });
}

/** A kernel command line whose encoded length, with the terminating NUL, stays within `maxSize` bytes. */
export class Cmdline {
  readonly maxSize: number;
  readonly #args: string[] = [];
  #bytes = 0;

  /** `maxSize` counts the terminating NUL, like Linux's COMMAND_LINE_SIZE. */
  constructor(maxSize: number = CMDLINE_MAX_SIZE) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new RangeError(`command line size ${maxSize} is not a positive integer`);
    this.maxSize = maxSize;
  }

  /** Appends one or more space-separated arguments (trimmed; empty is ignored). Throws on NUL or overflow. */
  push(arg: string): this {
    if (arg.includes('\0')) throw invalid('argument contains a NUL byte', arg);
    const a = arg.trim();
    if (a === '') return this;
    const bytes = encoder.encode(a).byteLength;
    const next = this.#bytes + (this.#args.length > 0 ? 1 : 0) + bytes;
    if (next + 1 > this.maxSize) {
      throw new MatchlockError(
        ErrorCodes.CMDLINE_TOO_LONG,
        `kernel command line would be ${next} bytes plus its NUL, over the limit of ${this.maxSize} bytes including the NUL (adding ${JSON.stringify(a.length > 40 ? `${a.slice(0, 40)}...` : a)}): shorten the arguments`,
        { length: next, limit: this.maxSize },
      );
    }
    this.#args.push(a);
    this.#bytes = next;
    return this;
  }

  /** Appends `key=value` (or just `key` when value is undefined). */
  insert(key: string, value?: string | number): this {
    if (key === '' || /[\s=]/.test(key)) throw invalid('key is empty or contains "=" or a space', key);
    if (value === undefined) return this.push(key);
    const v = String(value);
    if (/\s/.test(v) && !/^".*"$/.test(v)) throw invalid(`value of ${key} contains a space and is not quoted`, v);
    return this.push(`${key}=${v}`);
  }

  /** Encoded length in bytes, without the NUL. */
  get length(): number {
    return this.#bytes;
  }

  toString(): string {
    return this.#args.join(' ');
  }

  /** The encoded command line with its terminating NUL. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.#bytes + 1);
    encoder.encodeInto(this.toString(), out);
    return out;
  }
}

/** Memparse-style size: the largest of G, M, K that divides it, else plain decimal bytes. */
function formatSize(size: number): string {
  for (const [suffix, unit] of [['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (size % unit === 0) return `${size / unit}${suffix}`;
  }
  return String(size);
}

/** `virtio_mmio.device=<size>@<addr>:<irq>`, e.g. `virtio_mmio.device=4K@0xc0001000:5`. */
export function virtioMmioDeviceArg(addr: number, size: number, irq: number): string {
  for (const [name, v] of [['address', addr], ['size', size], ['irq', irq]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`virtio-mmio ${name} ${v} is not a non-negative integer`);
  }
  if (size === 0) throw new RangeError('virtio-mmio size 0 is empty');
  return `virtio_mmio.device=${formatSize(size)}@0x${addr.toString(16)}:${irq}`;
}

/** Writes the NUL-terminated command line at `gpa`; returns the bytes written (NUL included). */
export function writeCmdline(mem: GuestMemory, gpa: number, cmdline: Cmdline): number {
  const bytes = cmdline.toBytes();
  mem.write(gpa, bytes);
  return bytes.byteLength;
}
