/**
 * Per-vCPU CPUID normalisation (after Firecracker's cpuid-normalization): topology, APIC IDs, hypervisor and
 * TSC-deadline bits, no PMU, and optionally the TSC frequency. The input is never mutated.
 * Order: copy → CPU template → normalisation, so fields normalisation owns win over a template.
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { KvmCpuidEntry } from '../../sys/kvm-types.ts';
import { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from '../../sys/kvm-types.ts';
import type { CpuTemplate } from './cpu-template.ts';
import { applyCpuTemplate } from './cpu-template.ts';
import { MAX_VCPUS } from './layout.ts';

export interface NormalizeCpuidOptions {
  readonly vcpuIndex: number;
  readonly vcpuCount: number;
  /** Guest TSC frequency; publishes it in the KVM timing leaf 0x40000010 (and 0x15/0x16 when present). */
  readonly tscKhz?: number;
  readonly template?: CpuTemplate;
}

export const CPUID_KVM_SIGNATURE_LEAF = 0x4000_0000;
export const CPUID_KVM_TIMING_LEAF = 0x4000_0010;
/** LAPIC bus frequency reported with the TSC: KVM's APIC timer runs at 1 GHz. */
export const LAPIC_BUS_KHZ = 1_000_000;
export const CLFLUSH_LINE_QWORDS = 8;
/** Leaf 0xB/0x1F level types. */
export const LEVEL_TYPE_INVALID = 0;
export const LEVEL_TYPE_SMT = 1;
export const LEVEL_TYPE_CORE = 2;

export type CpuVendor = 'intel' | 'amd' | 'other';

function configError(message: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, message);
}

/** `value` with bits [lo, hi] replaced by `field`. */
function setField(value: number, lo: number, hi: number, field: number): number {
  const width = hi - lo + 1;
  const mask = (width === 32 ? 0xffff_ffff : ((1 << width) - 1) >>> 0) * 2 ** lo;
  const cleared = (value >>> 0) & ~(mask >>> 0);
  return (cleared | ((field * 2 ** lo) & mask)) >>> 0;
}

function setBit(value: number, bit: number, on: boolean): number {
  return setField(value, bit, bit, on ? 1 : 0);
}

/** Bits needed to number `count` items (0 for 1, 1 for 2, 2 for 3-4, ...). */
function bitsFor(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

function ascii(regs: readonly number[]): string {
  return regs.map((r) => String.fromCharCode(r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, (r >>> 24) & 0xff)).join('');
}

function asciiRegs(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i += 4) {
    let v = 0;
    for (let j = 0; j < 4; j++) v += (text.charCodeAt(i + j) || 0) * 2 ** (8 * j);
    out.push(v);
  }
  return out;
}

export function cpuVendor(entries: readonly KvmCpuidEntry[]): CpuVendor {
  const leaf0 = entries.find((e) => e.function === 0);
  if (!leaf0) return 'other';
  const id = ascii([leaf0.ebx, leaf0.edx, leaf0.ecx]);
  return id === 'GenuineIntel' ? 'intel' : id === 'AuthenticAMD' ? 'amd' : 'other';
}

function validate(opts: NormalizeCpuidOptions): void {
  const { vcpuCount, vcpuIndex, tscKhz } = opts;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
    throw configError(`vCPU count must be 1 to ${MAX_VCPUS}, got ${vcpuCount}`);
  }
  if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= vcpuCount) {
    throw configError(`vCPU index must be 0 to ${vcpuCount - 1}, got ${vcpuIndex}`);
  }
  if (tscKhz !== undefined && (!Number.isInteger(tscKhz) || tscKhz <= 0 || tscKhz > 0xffff_ffff)) {
    throw configError(`TSC frequency must be a positive integer kHz below 2^32, got ${tscKhz}`);
  }
}

function leaf(entries: readonly KvmCpuidEntry[], fn: number): KvmCpuidEntry[] {
  return entries.filter((e) => e.function >>> 0 === fn);
}

function normalizeLeaf1(e: KvmCpuidEntry, index: number, count: number): void {
  e.ebx = setField(e.ebx, 8, 15, CLFLUSH_LINE_QWORDS);
  e.ebx = setField(e.ebx, 16, 23, count);
  e.ebx = setField(e.ebx, 24, 31, index);
  e.ecx = setBit(e.ecx, 15, false); // PDCM: no perf capabilities MSR
  e.ecx = setBit(e.ecx, 24, true); // TSC-deadline (in-kernel LAPIC)
  e.ecx = setBit(e.ecx, 31, true); // hypervisor present
  e.edx = setBit(e.edx, 28, count > 1); // HTT: more than one logical processor
}

/** Leaf 4 (Intel deterministic cache parameters): one thread per core, all cores in one package. */
function normalizeLeaf4(e: KvmCpuidEntry, count: number): void {
  if ((e.eax & 0x1f) === 0) return; // no more caches
  const level = (e.eax >>> 5) & 0x7;
  if (level === 1 || level === 2) e.eax = setField(e.eax, 14, 25, 0);
  else if (level === 3) e.eax = setField(e.eax, 14, 25, count - 1);
  e.eax = setField(e.eax, 26, 31, count - 1);
}

/** Leaf 0xB (extended topology): subleaf 0 SMT (1 thread per core), subleaf 1 cores = vCPUs. */
function normalizeTopology(entries: KvmCpuidEntry[], index: number, count: number): void {
  const existing = leaf(entries, 0xb);
  if (existing.length === 0) return;
  for (const sub of [0, 1]) {
    if (!existing.some((e) => e.index === sub)) {
      const added = { function: 0xb, index: sub, flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX, eax: 0, ebx: 0, ecx: 0, edx: 0 };
      entries.push(added);
      existing.push(added);
    }
  }
  for (const e of existing) {
    e.edx = index;
    if (e.index === 0) {
      e.eax = 0;
      e.ebx = 1;
      e.ecx = (LEVEL_TYPE_SMT << 8) | 0;
    } else if (e.index === 1) {
      e.eax = bitsFor(count);
      e.ebx = count;
      e.ecx = (LEVEL_TYPE_CORE << 8) | 1;
    } else {
      e.eax = 0;
      e.ebx = 0;
      e.ecx = (LEVEL_TYPE_INVALID << 8) | (e.index & 0xff);
    }
  }
  if (leaf(entries, 0x1f).length > 0) {
    const kept = entries.filter((e) => e.function >>> 0 !== 0x1f);
    entries.length = 0;
    entries.push(...kept, ...existing.map((e) => ({ ...e, function: 0x1f })));
  }
}

function upsert(entries: KvmCpuidEntry[], fn: number): KvmCpuidEntry {
  const found = entries.find((e) => e.function >>> 0 === fn && e.index === 0);
  if (found) return found;
  const added = { function: fn, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  entries.push(added);
  return added;
}

function publishTsc(entries: KvmCpuidEntry[], tscKhz: number): void {
  const sig = entries.find((e) => e.function >>> 0 === CPUID_KVM_SIGNATURE_LEAF);
  if (sig) {
    sig.eax = Math.max(sig.eax >>> 0, CPUID_KVM_TIMING_LEAF);
  } else {
    const [ebx, ecx, edx] = asciiRegs('KVMKVMKVM\0\0\0') as [number, number, number];
    entries.push({ function: CPUID_KVM_SIGNATURE_LEAF, index: 0, flags: 0, eax: CPUID_KVM_TIMING_LEAF, ebx, ecx, edx });
  }
  const timing = upsert(entries, CPUID_KVM_TIMING_LEAF);
  Object.assign(timing, { eax: tscKhz, ebx: LAPIC_BUS_KHZ, ecx: 0, edx: 0 });
  // Leaf 0x15: TSC = ECX (crystal Hz) * EBX / EAX. The crystal is the 1 GHz LAPIC clock.
  for (const e of leaf(entries, 0x15)) Object.assign(e, { eax: 1_000_000, ebx: tscKhz, ecx: LAPIC_BUS_KHZ * 1000, edx: 0 });
  // Leaf 0x16: base and maximum MHz, bus MHz (16-bit fields).
  const mhz = Math.min(0xffff, Math.round(tscKhz / 1000));
  for (const e of leaf(entries, 0x16)) Object.assign(e, { eax: mhz, ebx: mhz, ecx: LAPIC_BUS_KHZ / 1000, edx: 0 });
}

function compareEntries(a: KvmCpuidEntry, b: KvmCpuidEntry): number {
  return (a.function >>> 0) - (b.function >>> 0) || (a.index >>> 0) - (b.index >>> 0);
}

/** The CPUID entries for vCPU `vcpuIndex` of `vcpuCount`, sorted by leaf and subleaf. */
export function normalizeCpuid(supported: readonly KvmCpuidEntry[], opts: NormalizeCpuidOptions): KvmCpuidEntry[] {
  validate(opts);
  const { vcpuIndex: index, vcpuCount: count } = opts;
  const entries = opts.template ? applyCpuTemplate(supported, opts.template) : supported.map((e) => ({ ...e }));
  const vendor = cpuVendor(entries);

  for (const e of leaf(entries, 0x1)) normalizeLeaf1(e, index, count);
  if (vendor === 'intel') {
    for (const e of leaf(entries, 0x4)) normalizeLeaf4(e, count);
    for (const e of leaf(entries, 0x7)) {
      if (e.index !== 0) continue;
      e.ebx = setBit(setBit(e.ebx, 6, true), 13, true); // FDP_EXCPTN_ONLY, FCS/FDS deprecated
      e.ecx = setBit(e.ecx, 5, false); // WAITPKG
    }
  }
  for (const e of leaf(entries, 0x6)) {
    e.eax = setBit(e.eax, 1, false); // Turbo Boost
    e.ecx = setBit(e.ecx, 3, false); // energy-performance bias
  }
  for (const e of leaf(entries, 0xa)) Object.assign(e, { eax: 0, ebx: 0, ecx: 0, edx: 0 }); // no PMU
  normalizeTopology(entries, index, count);
  if (opts.tscKhz !== undefined) publishTsc(entries, opts.tscKhz);
  return entries.sort(compareEntries);
}
