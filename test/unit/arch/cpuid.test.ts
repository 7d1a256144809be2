import test from 'ava';
import { builtinCpuTemplate, normalizeCpuid, parseCpuTemplate, cpuVendor } from '../../../src/vmm/arch/x86_64/index.ts';
import type { KvmCpuidEntry } from '../../../src/vmm/sys/kvm-types.ts';
import { isMatchlockError } from '../../../src/errors.ts';

const e = (fn: number, index: number, eax: number, ebx: number, ecx: number, edx: number, flags = 0): KvmCpuidEntry =>
  ({ function: fn, index, flags, eax, ebx, ecx, edx });

/** A KVM_GET_SUPPORTED_CPUID-like list for a recent Intel host (AVX-512, XSAVE). */
function intelSupported(): KvmCpuidEntry[] {
  return [
    e(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69), // "GenuineIntel"
    e(0x1, 0, 0x000606a6, 0x00010800, 0xfffab223, 0x0f8bfbff),
    e(0x4, 0, 0x1c004121, 0x02c0003f, 0x3f, 0, 1),
    e(0x4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, 1),
    e(0x4, 2, 0x1c004143, 0x04c0003f, 0x3ff, 0, 1),
    e(0x4, 3, 0x1c03c163, 0x0280003f, 0xdfff, 4, 1),
    e(0x4, 4, 0, 0, 0, 0, 1),
    e(0x6, 0, 0x77, 0x2, 0x9, 0),
    e(0x7, 0, 0x1, 0xf3bfb7ef, 0x40417f5e, 0xbc040412, 1),
    e(0x7, 1, 0x00001c30, 0, 0, 0, 1),
    e(0xa, 0, 0x07300404, 0, 0, 0x603),
    e(0xb, 0, 0x1, 0x2, 0x100, 0x5, 1),
    e(0xd, 0, 0x2e7, 0xa88, 0xa88, 0, 1),
    e(0xd, 1, 0xf, 0x1a8, 0, 0, 1),
    e(0xd, 2, 0x100, 0x240, 0, 0, 1),
    e(0x15, 0, 2, 0xc8, 0x16e3600, 0),
    e(0x16, 0, 0xbb8, 0xfa0, 0x64, 0),
    e(0x1f, 0, 0x1, 0x2, 0x100, 0x5, 1),
    e(0x1f, 1, 0x7, 0x10, 0x201, 0x5, 1),
    e(0x4000_0000, 0, 0x4000_0001, 0x4b4d564b, 0x564b4d56, 0x4d),
    e(0x4000_0001, 0, 0x01007afb, 0, 0, 0),
    e(0x8000_0000, 0, 0x8000_0008, 0, 0, 0),
    e(0x8000_0001, 0, 0, 0, 0x00000121, 0x2c100800),
  ];
}

const find = (list: KvmCpuidEntry[], fn: number, index = 0): KvmCpuidEntry => {
  const f = list.find((x) => x.function === fn && x.index === index);
  if (!f) throw new Error(`no leaf 0x${fn.toString(16)}.${index}`);
  return f;
};
const bit = (v: number, b: number): number => (v >>> b) & 1;

test('the vendor is read from leaf 0', (t) => {
  t.is(cpuVendor(intelSupported()), 'intel');
  t.is(cpuVendor([e(0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65)]), 'amd');
  t.is(cpuVendor([]), 'other');
});

test('each vCPU gets its own APIC ID; the input is not mutated', (t) => {
  const supported = intelSupported();
  const snapshot = structuredClone(supported);
  const out = [0, 1, 2, 3].map((vcpuIndex) => normalizeCpuid(supported, { vcpuIndex, vcpuCount: 4 }));
  t.deepEqual(supported, snapshot);
  t.false(out[0]!.some((x) => supported.includes(x)), 'entries are copies');
  for (const [i, list] of out.entries()) {
    const l1 = find(list, 1);
    t.is(l1.ebx >>> 24, i);
    t.is((l1.ebx >>> 16) & 0xff, 4);
    t.is((l1.ebx >>> 8) & 0xff, 8);
    t.is(bit(l1.ecx, 31), 1);
    t.is(bit(l1.ecx, 24), 1);
    t.is(bit(l1.ecx, 15), 0);
    t.is(bit(l1.edx, 28), 1);
    t.true(list.filter((x) => x.function === 0xb).every((x) => x.edx === i));
  }
  t.is(bit(find(normalizeCpuid(supported, { vcpuIndex: 0, vcpuCount: 1 }), 1).edx, 28), 0, 'no HTT for one vCPU');
});

test('leaf 0xB topology: subleaf 1 added, shifts follow the vCPU count, 0x1F copied', (t) => {
  for (const [count, shift] of [[1, 0], [2, 1], [3, 2], [4, 2], [5, 3], [32, 5]] as const) {
    const list = normalizeCpuid(intelSupported(), { vcpuIndex: count - 1, vcpuCount: count });
    const smt = find(list, 0xb, 0);
    const core = find(list, 0xb, 1);
    t.deepEqual([smt.eax, smt.ebx, smt.ecx, smt.edx], [0, 1, 0x100, count - 1]);
    t.deepEqual([core.eax, core.ebx, core.ecx, core.edx], [shift, count, 0x201, count - 1]);
    t.is(core.flags & 1, 1);
    const leaf1f = list.filter((x) => x.function === 0x1f).map((x) => ({ ...x, function: 0xb }));
    t.deepEqual(leaf1f, list.filter((x) => x.function === 0xb));
  }
});

test('Intel cache sharing, power management and PMU leaves', (t) => {
  const list = normalizeCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 8 });
  const sharing = (i: number): number => (find(list, 4, i).eax >>> 14) & 0xfff;
  t.deepEqual([0, 1, 2, 3].map(sharing), [0, 0, 0, 7]);
  t.true([0, 1, 2, 3].every((i) => find(list, 4, i).eax >>> 26 === 7));
  t.is(find(list, 4, 4).eax, 0);
  t.is(find(list, 4, 0).eax & 0x3fff, 0x121, 'cache type and level kept');
  t.is(bit(find(list, 6).eax, 1), 0);
  t.is(bit(find(list, 6).ecx, 3), 0);
  t.is(bit(find(list, 6).eax, 2), 1, 'ARAT kept');
  const pmu = find(list, 0xa);
  t.deepEqual([pmu.eax, pmu.ebx, pmu.ecx, pmu.edx], [0, 0, 0, 0]);
  t.is(bit(find(list, 7).ecx, 5), 0);
  t.is(bit(find(list, 7).ebx, 13), 1);
});

test('the TSC frequency is published in 0x40000010, 0x15 and 0x16', (t) => {
  const list = normalizeCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 1, tscKhz: 2_899_999 });
  t.is(find(list, 0x4000_0000).eax, 0x4000_0010);
  t.is(find(list, 0x4000_0000).ebx, 0x4b4d564b);
  const timing = find(list, 0x4000_0010);
  t.deepEqual([timing.eax, timing.ebx], [2_899_999, 1_000_000]);
  const l15 = find(list, 0x15);
  t.is((l15.ecx * l15.ebx) / l15.eax, 2_899_999_000);
  t.is(find(list, 0x16).eax, 2900);
  t.is(list.filter((x) => x.function === 0x4000_0010).length, 1);
  const without = normalizeCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 1 });
  t.false(without.some((x) => x.function === 0x4000_0010));
});

test('the KVM signature leaf is added when missing', (t) => {
  const supported = intelSupported().filter((x) => x.function >>> 0 < 0x4000_0000 || x.function >>> 0 > 0x4000_00ff);
  const list = normalizeCpuid(supported, { vcpuIndex: 0, vcpuCount: 1, tscKhz: 1_000_000 });
  const sig = find(list, 0x4000_0000);
  const text = [sig.ebx, sig.ecx, sig.edx].map((r) => String.fromCharCode(r & 0xff, (r >> 8) & 0xff, (r >> 16) & 0xff, r >>> 24)).join('');
  t.is(text, 'KVMKVMKVM\0\0\0');
  t.is(sig.eax, 0x4000_0010);
  t.is(find(list, 0x4000_0010).eax, 1_000_000);
});

test('output is sorted by leaf and subleaf', (t) => {
  const list = normalizeCpuid(intelSupported().reverse(), { vcpuIndex: 0, vcpuCount: 2, tscKhz: 3_000_000 });
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!;
    const b = list[i]!;
    t.true(a.function >>> 0 < b.function >>> 0 || (a.function === b.function && a.index < b.index), `entry ${i}`);
  }
});

test('template bits are forced before normalisation', (t) => {
  const template = parseCpuTemplate({
    name: 'custom',
    cpuid: [
      { leaf: '0x1', register: 'ecx', bitmap: '0b' + 'x'.repeat(31) + '0' },
      { leaf: 7, subleaf: 0, register: 'ebx', bitmap: 'xxxx_xxxx_xxxx_xxxx_xxxx_xxxx_xxx1_x0x1' },
      { leaf: 0x8000_0001, register: 'edx', bitmap: '1'.repeat(32) },
      { leaf: 0x12345, register: 'eax', bitmap: '1'.repeat(32) },
    ],
  });
  const supported = intelSupported();
  const list = normalizeCpuid(supported, { vcpuIndex: 0, vcpuCount: 1, template });
  t.is(bit(find(list, 1).ecx, 0), 0);
  t.is(find(list, 1).ecx & ~1, (supported[1]!.ecx & ~1 & ~(1 << 15)) | (1 << 24) | (1 << 31));
  const l7 = find(list, 7).ebx;
  t.deepEqual([bit(l7, 0), bit(l7, 2), bit(l7, 4)], [1, 0, 1]); // host has 1, 1, 0
  t.is(find(list, 0x8000_0001).edx, 0xffff_ffff);
  t.false(list.some((x) => x.function === 0x12345), 'templates do not invent leaves');
});

test('pvm-safe hides XSAVE, AVX, leaf 0xD and the newer SSE levels', (t) => {
  const list = normalizeCpuid(intelSupported(), { vcpuIndex: 0, vcpuCount: 2, template: builtinCpuTemplate('pvm-safe') });
  const ecx = find(list, 1).ecx;
  for (const b of [1, 9, 12, 13, 19, 20, 22, 23, 25, 26, 27, 28, 29]) t.is(bit(ecx, b), 0, `leaf 1 ecx bit ${b}`);
  t.is(bit(ecx, 0), 1, 'SSE3 kept');
  t.is(bit(ecx, 31), 1, 'hypervisor bit still set');
  const l7 = find(list, 7);
  for (const b of [3, 5, 8, 16, 17, 30, 31]) t.is(bit(l7.ebx, b), 0, `leaf 7 ebx bit ${b}`);
  t.is(bit(l7.ebx, 0), 1, 'FSGSBASE kept');
  t.is(l7.ecx & ((1 << 1) | (1 << 6) | (1 << 11) | (1 << 14)), 0);
  t.is(bit(l7.edx, 23), 0);
  t.is(bit(find(list, 7, 1).eax, 4), 0, 'AVX-VNNI hidden');
  for (const x of list.filter((x) => x.function === 0xd)) t.deepEqual([x.eax, x.ebx, x.ecx, x.edx], [0, 0, 0, 0]);
  t.is(find(list, 0x8000_0001).ecx & 0x20, 0, 'LZCNT hidden');
  t.is(bit(find(list, 0x8000_0001).ecx, 0), 1, 'LAHF kept');
});

test('T0 and none change nothing beyond normalisation', (t) => {
  const plain = normalizeCpuid(intelSupported(), { vcpuIndex: 1, vcpuCount: 2 });
  t.deepEqual(normalizeCpuid(intelSupported(), { vcpuIndex: 1, vcpuCount: 2, template: builtinCpuTemplate('T0') }), plain);
  t.is(builtinCpuTemplate('none'), builtinCpuTemplate('T0'));
});

test('bad vCPU options are refused', (t) => {
  for (const opts of [{ vcpuIndex: 2, vcpuCount: 2 }, { vcpuIndex: 0, vcpuCount: 0 }, { vcpuIndex: 0, vcpuCount: 33 }, { vcpuIndex: 0, vcpuCount: 1, tscKhz: -1 }]) {
    const err = t.throws(() => normalizeCpuid(intelSupported(), opts));
    t.true(isMatchlockError(err, 'MATCHLOCK_ERR_CONFIG'), JSON.stringify(opts));
  }
});
