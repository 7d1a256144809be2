import test from 'ava';
import { GuestMemory } from '../../../src/vmm/memory/guest-memory.ts';
import {
  parseMpTable, ramRegions, writeMpTable, MiB, MPTABLE_START, APIC_ADDR, IOAPIC_ADDR, SYSTEM_DATA_END,
} from '../../../src/vmm/arch/x86_64/index.ts';
import { isMatchlockError } from '../../../src/errors.ts';

/** Independent of the implementation: the bytes of a valid MP structure sum to 0 mod 256. */
function byteSum(mem: GuestMemory, gpa: number, len: number): number {
  return mem.read(gpa, len).reduce((s, b) => (s + b) % 256, 0);
}

const text = (mem: GuestMemory, gpa: number, len: number): string => new TextDecoder().decode(mem.read(gpa, len));

for (const vcpus of [1, 2, 4, 32]) {
  test(`MP table for ${vcpus} vCPU(s) parses back with valid checksums`, (t) => {
    const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
    const size = writeMpTable(mem, vcpus);
    t.true(MPTABLE_START + size <= SYSTEM_DATA_END);

    // Floating pointer: "_MP_", 1 paragraph, spec rev 4, checksum over 16 bytes.
    t.is(text(mem, MPTABLE_START, 4), '_MP_');
    t.is(mem.readU8(MPTABLE_START + 8), 1);
    t.is(mem.readU8(MPTABLE_START + 9), 4);
    t.is(byteSum(mem, MPTABLE_START, 16), 0);
    const header = mem.readU32(MPTABLE_START + 4);
    t.is(text(mem, header, 4), 'PCMP');
    const length = mem.readU16(header + 4);
    t.is(byteSum(mem, header, length), 0);
    t.is(mem.readU8(header + 6), 4);
    t.is(text(mem, header + 8, 8), 'MATCHLCK');
    t.is(mem.readU32(header + 36), APIC_ADDR);
    t.is(mem.readU16(header + 34), vcpus + 1 + 1 + 24 + 2);
    t.is(length, 44 + 20 * vcpus + 8 * (1 + 1 + 24 + 2));

    const mp = parseMpTable(mem);
    t.true(mp.checksumsValid);
    t.deepEqual(mp.cpus.map((c) => c.apicId), Array.from({ length: vcpus }, (_, i) => i));
    t.true(mp.cpus.every((c) => c.enabled && c.apicVersion === 0x14));
    t.deepEqual(mp.cpus.map((c) => c.bsp), Array.from({ length: vcpus }, (_, i) => i === 0));
    t.deepEqual(mp.buses, [{ id: 0, type: 'ISA   ' }]);
    t.deepEqual(mp.ioapic, { id: vcpus + 1, version: 0x11, enabled: true, address: IOAPIC_ADDR });
    t.is(mp.ioInterrupts.length, 24);
    mp.ioInterrupts.forEach((irq, i) => t.like(irq, { irqType: 0, srcBus: 0, srcIrq: i, dstId: vcpus + 1, dstPin: i }));
    t.like(mp.localInterrupts[0], { irqType: 3, dstPin: 0 });
    t.like(mp.localInterrupts[1], { irqType: 1, dstPin: 1 });
  });
}

test('a corrupted byte breaks the checksum', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  writeMpTable(mem, 2);
  mem.writeU8(MPTABLE_START + 16 + 44 + 1, 7);
  t.false(parseMpTable(mem).checksumsValid);
});

test('0 and 33 vCPUs are refused', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  for (const n of [0, 33, 1.5]) {
    const e = t.throws(() => writeMpTable(mem, n));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CONFIG'), String(n));
  }
});
