import test from 'ava';
import { GuestMemory } from '../../../src/vmm/memory/guest-memory.ts';
import {
  bootFpu, bootMsrs, gdtEntry, linuxBootRegs, linuxBootSregs, pvhBootRegs, pvhBootSregs, ramRegions,
  segmentFromGdtEntry, writeBootGdtAndPageTables, MiB, GiB, BOOT_GDT_START, BOOT_IDT_START, PML4_START,
  BOOT_STACK_POINTER, ZERO_PAGE_START, PVH_INFO_START, PDE_START,
  MSR_IA32_MISC_ENABLE, MSR_MTRRdefType, MSR_LSTAR, MSR_IA32_TSC,
} from '../../../src/vmm/arch/x86_64/index.ts';
import type { KvmSegment, KvmSregs } from '../../../src/vmm/sys/kvm-types.ts';

function seg(): KvmSegment {
  return { base: 0n, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
}

/** Roughly what KVM_GET_SREGS returns for a fresh vCPU. */
function freshSregs(): KvmSregs {
  return {
    cs: { ...seg(), selector: 0xf000, base: 0xffff0000n, type: 11 }, ds: seg(), es: seg(), fs: seg(), gs: seg(), ss: seg(),
    tr: { ...seg(), type: 11, s: 0 }, ldt: { ...seg(), type: 2, s: 0 },
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apic_base: 0xfee00900n,
    interrupt_bitmap: [0n, 0n, 0n, 0n],
  };
}

test('gdtEntry matches the conventional descriptor encoding', (t) => {
  t.is(gdtEntry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffn);
  t.is(gdtEntry(0xc093, 0, 0xfffff), 0x00cf93000000ffffn);
  t.is(gdtEntry(0x808b, 0, 0xfffff), 0x008f8b000000ffffn);
  t.is(gdtEntry(0x93, 0x12345678, 0xabcde), 0x120a93345678bcden);
  const s = segmentFromGdtEntry(gdtEntry(0x93, 0x12345678, 0xabcde), 5);
  t.like(s, { base: 0x12345678n, limit: 0xabcde, selector: 40, g: 0, present: 1, unusable: 0 });
  t.like(segmentFromGdtEntry(0n, 0), { present: 0, unusable: 1 });
});

test('Linux 64-bit boot registers and segments', (t) => {
  const regs = linuxBootRegs(0x1000000);
  t.like(regs, { rip: 0x1000000n, rflags: 2n, rsp: BigInt(BOOT_STACK_POINTER), rbp: BigInt(BOOT_STACK_POINTER), rsi: BigInt(ZERO_PAGE_START), rax: 0n });

  const base = freshSregs();
  const before = structuredClone(base);
  const s = linuxBootSregs(base);
  t.deepEqual(base, before, 'input not mutated');
  t.like(s.cs, { selector: 0x08, type: 0xb, l: 1, db: 0, s: 1, present: 1, g: 1, dpl: 0, base: 0n, limit: 0xffffffff });
  for (const r of [s.ds, s.es, s.fs, s.gs, s.ss]) t.like(r, { selector: 0x10, type: 0x3, db: 1, l: 0, s: 1, present: 1, g: 1 });
  t.like(s.tr, { selector: 0x18, type: 0xb, s: 0, present: 1 });
  t.deepEqual(s.gdt, { base: BigInt(BOOT_GDT_START), limit: 31 });
  t.deepEqual(s.idt, { base: BigInt(BOOT_IDT_START), limit: 7 });
  t.is(s.cr0, 0x60000010n | 0x1n | 0x80000000n);
  t.is(s.cr3, BigInt(PML4_START));
  t.is(s.cr4 & 0x20n, 0x20n);
  t.is(s.efer, 0x500n);
  t.is(s.apic_base, 0xfee00900n);
  s.ds.limit = 1;
  t.not(s.es.limit, 1, 'segments are distinct objects');
});

test('PVH boot registers and segments', (t) => {
  t.like(pvhBootRegs(0x1000abc), { rip: 0x1000abcn, rflags: 2n, rbx: BigInt(PVH_INFO_START), rsp: 0n, rsi: 0n });
  const base = { ...freshSregs(), efer: 0x1n, cr4: 0x20n };
  const s = pvhBootSregs(base);
  t.like(s.cs, { selector: 0x08, type: 0xb, l: 0, db: 1, g: 1, limit: 0xffffffff });
  t.like(s.ss, { selector: 0x10, type: 0x3, db: 1 });
  t.like(s.tr, { selector: 0x18, type: 0xb, limit: 0x67, g: 0 });
  t.is(s.cr0, 0x11n);
  t.is(s.cr4, 0n);
  t.is(s.efer, 0x1n);
});

/** Walks the 4-level tables like the MMU for a 2 MiB mapping; null when not present. */
function translate(mem: GuestMemory, cr3: number, va: number): number | null {
  const idx = (shift: number): number => Math.floor(va / 2 ** shift) % 512;
  const pml4e = mem.readU64(cr3 + idx(39) * 8);
  if (!(pml4e & 1n)) return null;
  const pdpte = mem.readU64(Number(pml4e & 0xffffffffff000n) + idx(30) * 8);
  if (!(pdpte & 1n)) return null;
  const pde = mem.readU64(Number(pdpte & 0xffffffffff000n) + idx(21) * 8);
  if (!(pde & 1n) || !(pde & 0x80n)) return null;
  return Number(pde & 0xfffffffe00000n) + (va % (2 * MiB));
}

test('identity page tables map the first GiB with 2 MiB pages, plus GDT and IDT', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  mem.fill(BOOT_IDT_START, 8, 0xff);
  writeBootGdtAndPageTables(mem, 'linux');
  t.is(mem.readU64(PML4_START), 0xa003n);
  t.is(mem.readU64(0xa000), 0xb003n);
  t.is(mem.readU64(PDE_START + 8 * 5), (5n << 21n) | 0x83n);
  for (const va of [0, 0x1000, 0x100000, 0x1234567, 512 * MiB + 3, GiB - 1]) t.is(translate(mem, PML4_START, va), va);
  t.is(translate(mem, PML4_START, GiB), null);
  t.is(mem.readU64(BOOT_GDT_START + 8), 0x00af9b000000ffffn);
  t.is(mem.readU64(BOOT_GDT_START + 24), 0x008f8b000000ffffn);
  t.is(mem.readU64(BOOT_IDT_START), 0n);
});

test('PVH mode writes the 32-bit GDT and no page tables', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(128 * MiB));
  writeBootGdtAndPageTables(mem, 'pvh');
  t.is(mem.readU64(BOOT_GDT_START + 8), 0x00cf9b000000ffffn);
  t.is(mem.readU64(BOOT_GDT_START + 24), 0x00008b0000000067n);
  t.is(mem.readU64(PML4_START), 0n);
});

test('boot FPU and MSRs', (t) => {
  t.like(bootFpu(), { fcw: 0x37f, mxcsr: 0x1f80, fsw: 0 });
  const msrs = new Map(bootMsrs().map((m) => [m.index, m.data]));
  t.is(msrs.size, 11);
  t.is(msrs.get(MSR_IA32_MISC_ENABLE), 1n);
  t.is(msrs.get(MSR_MTRRdefType), 0x806n);
  t.is(msrs.get(MSR_LSTAR), 0n);
  t.is(msrs.get(MSR_IA32_TSC), 0n);
  t.is(msrs.get(0x174), 0n);
  t.is(msrs.get(0xc0000102), 0n);
});
