/**
 * A tiny ELF64 writer for tests: program headers and segment data, optional note sections, and
 * overrides for every header field that the loader must validate.
 */
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const SHT_NOTE = 7;

export interface SegmentSpec {
  readonly type?: number;
  readonly paddr: number | bigint;
  readonly vaddr?: number | bigint;
  readonly data?: Uint8Array;
  readonly memsz?: number | bigint;
  /** Overrides of what the writer computes. */
  readonly offset?: bigint;
  readonly filesz?: bigint;
  readonly align?: number;
}

export interface SectionSpec {
  readonly type: number;
  readonly data: Uint8Array;
  readonly align?: number;
}

export interface ElfSpec {
  readonly entry: number | bigint;
  readonly segments: readonly SegmentSpec[];
  readonly sections?: readonly SectionSpec[];
  readonly elfClass?: number;
  readonly data?: number;
  readonly type?: number;
  readonly machine?: number;
  readonly phoff?: bigint;
  readonly phnum?: number;
  readonly phentsize?: number;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** One ELF note: namesz, descsz, type, then name and desc each padded to `pad`. */
export function note(name: string, type: number, desc: Uint8Array, pad = 4): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const out = new Uint8Array(12 + align(nameBytes.length, pad) + align(desc.length, pad));
  const v = new DataView(out.buffer);
  v.setUint32(0, nameBytes.length, true);
  v.setUint32(4, desc.length, true);
  v.setUint32(8, type, true);
  out.set(nameBytes, 12);
  out.set(desc, 12 + align(nameBytes.length, pad));
  return out;
}

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

export function u64(n: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Bytes 0, 1, 2, ... (mod 251) so that misplaced copies show. */
export function pattern(len: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed) % 251);
}

export function buildElf(spec: ElfSpec): Uint8Array {
  const sections = spec.sections ?? [];
  const phnum = spec.segments.length;
  let at = align(64 + phnum * 56, 16);
  const segOffsets = spec.segments.map((s) => {
    const off = at;
    at = align(at + (s.data?.length ?? 0), 16);
    return off;
  });
  const secOffsets = sections.map((s) => {
    const off = at;
    at = align(at + s.data.length, 16);
    return off;
  });
  const shoff = sections.length > 0 ? at : 0;
  // Section 0 is the null section, as in real files.
  const shnum = sections.length > 0 ? sections.length + 1 : 0;
  const out = new Uint8Array(at + shnum * 64);
  const v = new DataView(out.buffer);

  out.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 2, spec.data ?? 1, 1], 0);
  v.setUint16(16, spec.type ?? 2, true);
  v.setUint16(18, spec.machine ?? 62, true);
  v.setUint32(20, 1, true);
  v.setBigUint64(24, BigInt(spec.entry), true);
  v.setBigUint64(32, spec.phoff ?? 64n, true);
  v.setBigUint64(40, BigInt(shoff), true);
  v.setUint16(52, 64, true);
  v.setUint16(54, spec.phentsize ?? 56, true);
  v.setUint16(56, spec.phnum ?? phnum, true);
  v.setUint16(58, 64, true);
  v.setUint16(60, shnum, true);

  spec.segments.forEach((s, i) => {
    const p = 64 + i * 56;
    const data = s.data ?? new Uint8Array(0);
    v.setUint32(p, s.type ?? PT_LOAD, true);
    v.setUint32(p + 4, 7, true);
    v.setBigUint64(p + 8, s.offset ?? BigInt(segOffsets[i] ?? 0), true);
    v.setBigUint64(p + 16, BigInt(s.vaddr ?? s.paddr), true);
    v.setBigUint64(p + 24, BigInt(s.paddr), true);
    v.setBigUint64(p + 32, s.filesz ?? BigInt(data.length), true);
    v.setBigUint64(p + 40, BigInt(s.memsz ?? data.length), true);
    v.setBigUint64(p + 48, BigInt(s.align ?? (s.type === PT_NOTE ? 4 : 0x200000)), true);
    out.set(data, segOffsets[i] ?? 0);
  });
  sections.forEach((s, i) => {
    const h = shoff + (i + 1) * 64;
    const off = secOffsets[i] ?? 0;
    out.set(s.data, off);
    v.setUint32(h + 4, s.type, true);
    v.setBigUint64(h + 24, BigInt(off), true);
    v.setBigUint64(h + 32, BigInt(s.data.length), true);
    v.setBigUint64(h + 48, BigInt(s.align ?? 4), true);
  });
  return out;
}
