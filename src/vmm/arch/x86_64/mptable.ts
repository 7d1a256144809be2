/**
 * The Intel MultiProcessor Specification 1.4 table at MPTABLE_START: a 16-byte floating pointer, then the
 * configuration table (processors, one ISA bus, one IOAPIC, IRQs 0-23 routed 1:1, LINT0 = ExtINT, LINT1 = NMI).
 */
import { ErrorCodes, MatchlockError } from '../../../errors.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { APIC_ADDR, IOAPIC_ADDR, IRQ_MAX, MAX_VCPUS, MPTABLE_START, SYSTEM_DATA_END } from './layout.ts';

export const MP_FLOATING_SIGNATURE = '_MP_';
export const MP_CONFIG_SIGNATURE = 'PCMP';
export const MP_SPEC_REV = 4;
export const MP_OEM_ID = 'MATCHLCK';
export const MP_PRODUCT_ID = 'MICROVM';
export const MP_APIC_VERSION = 0x14;
export const MP_IOAPIC_VERSION = 0x11;
/** Processor signature (family 6) and feature flags (FPU, APIC) reported in the processor entries. */
export const MP_CPU_SIGNATURE = 0x600;
export const MP_CPU_FEATURES = 0x201;
export const MP_BUS_ISA = 'ISA   ';
/** The MP spec caps APIC IDs at 254 (0xff is broadcast); matchlock caps vCPUs lower. */
export const MP_MAX_CPUS = Math.min(254, MAX_VCPUS);

const FLOATING_SIZE = 16;
const HEADER_SIZE = 44;
const PROCESSOR_SIZE = 20;
const SMALL_ENTRY_SIZE = 8;
const ENTRY_PROCESSOR = 0;
const ENTRY_BUS = 1;
const ENTRY_IOAPIC = 2;
const ENTRY_IO_INTERRUPT = 3;
const ENTRY_LOCAL_INTERRUPT = 4;
const CPU_ENABLED = 1;
const CPU_BSP = 2;
const IOAPIC_ENABLED = 1;
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
const BUS_ID_ISA = 0;
const IRQ_COUNT = IRQ_MAX + 1;

/** Bytes the table takes for `vcpus` processors. */
export function mpTableSize(vcpus: number): number {
  const entries = SMALL_ENTRY_SIZE * (1 + 1 + IRQ_COUNT + 2);
  return FLOATING_SIZE + HEADER_SIZE + PROCESSOR_SIZE * vcpus + entries;
}

/** Two's-complement byte sum: the value that makes `bytes` plus it sum to 0 mod 256. */
function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

function writeAscii(mem: GuestMemory, gpa: number, text: string, width: number): void {
  const bytes = new Uint8Array(width).fill(0x20);
  for (let i = 0; i < Math.min(text.length, width); i++) bytes[i] = text.charCodeAt(i);
  mem.write(gpa, bytes);
}

/** Writes the MP table for `vcpus` processors (APIC IDs 0..vcpus-1; vCPU 0 is the BSP). Returns its size. */
export function writeMpTable(mem: GuestMemory, vcpus: number): number {
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MP_MAX_CPUS) {
    throw new MatchlockError(ErrorCodes.CONFIG, `the MP table needs 1 to ${MP_MAX_CPUS} vCPUs, got ${vcpus}`, { vcpus });
  }
  const size = mpTableSize(vcpus);
  if (MPTABLE_START + size > SYSTEM_DATA_END) {
    throw new MatchlockError(ErrorCodes.CONFIG, `the MP table for ${vcpus} vCPUs (${size} bytes) does not fit below 0x${SYSTEM_DATA_END.toString(16)}`);
  }
  mem.fill(MPTABLE_START, size, 0);
  const header = MPTABLE_START + FLOATING_SIZE;
  const ioapicId = vcpus + 1;
  let p = header + HEADER_SIZE;
  let count = 0;
  const small = (type: number, b1: number, b2: number, b3: number): number => {
    mem.writeU8(p, type);
    mem.writeU8(p + 1, b1);
    mem.writeU8(p + 2, b2);
    mem.writeU8(p + 3, b3);
    const at = p;
    p += SMALL_ENTRY_SIZE;
    count++;
    return at;
  };

  for (let cpu = 0; cpu < vcpus; cpu++) {
    mem.writeU8(p, ENTRY_PROCESSOR);
    mem.writeU8(p + 1, cpu);
    mem.writeU8(p + 2, MP_APIC_VERSION);
    mem.writeU8(p + 3, CPU_ENABLED | (cpu === 0 ? CPU_BSP : 0));
    mem.writeU32(p + 4, MP_CPU_SIGNATURE);
    mem.writeU32(p + 8, MP_CPU_FEATURES);
    p += PROCESSOR_SIZE;
    count++;
  }
  writeAscii(mem, small(ENTRY_BUS, BUS_ID_ISA, 0, 0) + 2, MP_BUS_ISA, 6);
  mem.writeU32(small(ENTRY_IOAPIC, ioapicId, MP_IOAPIC_VERSION, IOAPIC_ENABLED) + 4, IOAPIC_ADDR);
  // Interrupt entries: type, interrupt type, flags (u16, 0 = conforms to bus), source bus, source IRQ, dest id, dest pin.
  const route = (kind: number, irqType: number, srcIrq: number, dstId: number, dstPin: number): void => {
    const at = small(kind, irqType, 0, 0);
    mem.writeU8(at + 4, BUS_ID_ISA);
    mem.writeU8(at + 5, srcIrq);
    mem.writeU8(at + 6, dstId);
    mem.writeU8(at + 7, dstPin);
  };
  for (let irq = 0; irq < IRQ_COUNT; irq++) route(ENTRY_IO_INTERRUPT, MP_INT, irq, ioapicId, irq);
  route(ENTRY_LOCAL_INTERRUPT, MP_EXTINT, 0, 0xff, 0);
  route(ENTRY_LOCAL_INTERRUPT, MP_NMI, 0, 0xff, 1);

  const tableLength = p - header;
  writeAscii(mem, header, MP_CONFIG_SIGNATURE, 4);
  mem.writeU16(header + 4, tableLength);
  mem.writeU8(header + 6, MP_SPEC_REV);
  writeAscii(mem, header + 8, MP_OEM_ID, 8);
  writeAscii(mem, header + 16, MP_PRODUCT_ID, 12);
  mem.writeU16(header + 34, count);
  mem.writeU32(header + 36, APIC_ADDR);
  mem.writeU8(header + 7, checksum(mem.read(header, tableLength)));

  const fp = MPTABLE_START;
  writeAscii(mem, fp, MP_FLOATING_SIGNATURE, 4);
  mem.writeU32(fp + 4, header);
  mem.writeU8(fp + 8, 1); // length in 16-byte units
  mem.writeU8(fp + 9, MP_SPEC_REV);
  mem.writeU8(fp + 10, checksum(mem.read(fp, FLOATING_SIZE)));
  return size;
}

export interface MpCpu {
  apicId: number;
  apicVersion: number;
  enabled: boolean;
  bsp: boolean;
}

export interface MpInterrupt {
  irqType: number;
  srcBus: number;
  srcIrq: number;
  dstId: number;
  dstPin: number;
}

export interface MpTable {
  specRev: number;
  oemId: string;
  productId: string;
  lapicAddress: number;
  entryCount: number;
  cpus: MpCpu[];
  buses: { id: number; type: string }[];
  ioapic: { id: number; version: number; enabled: boolean; address: number } | null;
  ioInterrupts: MpInterrupt[];
  localInterrupts: MpInterrupt[];
  /** True when both the floating pointer and the configuration table sum to 0. */
  checksumsValid: boolean;
}

function readAscii(mem: GuestMemory, gpa: number, len: number): string {
  return String.fromCharCode(...mem.read(gpa, len));
}

function sumsToZero(bytes: Uint8Array): boolean {
  return checksum(bytes) === 0;
}

/** Decodes the MP table at MPTABLE_START; throws CONFIG when a signature or entry type is wrong. */
export function parseMpTable(mem: GuestMemory): MpTable {
  const bad = (why: string): MatchlockError => new MatchlockError(ErrorCodes.CONFIG, `MP table: ${why}`);
  if (readAscii(mem, MPTABLE_START, 4) !== MP_FLOATING_SIGNATURE) throw bad('no _MP_ floating pointer');
  const header = mem.readU32(MPTABLE_START + 4);
  if (readAscii(mem, header, 4) !== MP_CONFIG_SIGNATURE) throw bad('no PCMP configuration table');
  const length = mem.readU16(header + 4);
  const entryCount = mem.readU16(header + 34);
  const table: MpTable = {
    specRev: mem.readU8(header + 6),
    oemId: readAscii(mem, header + 8, 8),
    productId: readAscii(mem, header + 16, 12),
    lapicAddress: mem.readU32(header + 36),
    entryCount,
    cpus: [],
    buses: [],
    ioapic: null,
    ioInterrupts: [],
    localInterrupts: [],
    checksumsValid: sumsToZero(mem.read(MPTABLE_START, FLOATING_SIZE)) && sumsToZero(mem.read(header, length)),
  };
  let p = header + HEADER_SIZE;
  for (let i = 0; i < entryCount; i++) {
    const type = mem.readU8(p);
    if (type === ENTRY_PROCESSOR) {
      const flags = mem.readU8(p + 3);
      table.cpus.push({ apicId: mem.readU8(p + 1), apicVersion: mem.readU8(p + 2), enabled: (flags & CPU_ENABLED) !== 0, bsp: (flags & CPU_BSP) !== 0 });
      p += PROCESSOR_SIZE;
      continue;
    }
    if (type === ENTRY_BUS) table.buses.push({ id: mem.readU8(p + 1), type: readAscii(mem, p + 2, 6) });
    else if (type === ENTRY_IOAPIC) {
      table.ioapic = { id: mem.readU8(p + 1), version: mem.readU8(p + 2), enabled: (mem.readU8(p + 3) & IOAPIC_ENABLED) !== 0, address: mem.readU32(p + 4) };
    } else if (type === ENTRY_IO_INTERRUPT || type === ENTRY_LOCAL_INTERRUPT) {
      const irq = { irqType: mem.readU8(p + 1), srcBus: mem.readU8(p + 4), srcIrq: mem.readU8(p + 5), dstId: mem.readU8(p + 6), dstPin: mem.readU8(p + 7) };
      (type === ENTRY_IO_INTERRUPT ? table.ioInterrupts : table.localInterrupts).push(irq);
    } else throw bad(`unknown entry type ${type} at 0x${p.toString(16)}`);
    p += SMALL_ENTRY_SIZE;
  }
  if (p - header !== length) throw bad(`entries end at ${p - header} bytes but the header says ${length}`);
  return table;
}
