import test from 'ava';
import { GuestMemory } from '../../../src/vmm/memory/guest-memory.ts';
import { e820Entries, ramRegions, GiB, MiB, E820_RAM, E820_RESERVED } from '../../../src/vmm/arch/x86_64/index.ts';
import { isMatchlockError } from '../../../src/errors.ts';

const mem = (bytes: number): GuestMemory => GuestMemory.fromLayout(ramRegions(bytes));
const low = [
  { addr: 0, size: 0x9fc00, type: E820_RAM },
  { addr: 0x9fc00, size: 0xe0000 - 0x9fc00, type: E820_RESERVED },
];
const mmconfig = { addr: 0xeec0_0000, size: 256 * MiB, type: E820_RESERVED };

function assertSortedDisjoint(t: { true(v: boolean, m?: string): void }, list: { addr: number; size: number }[]): void {
  for (let i = 1; i < list.length; i++) t.true(list[i - 1]!.addr + list[i - 1]!.size <= list[i]!.addr, `entry ${i}`);
}

test('128 MiB guest', (t) => {
  const list = e820Entries(mem(128 * MiB));
  t.deepEqual(list, [...low, { addr: 0x100000, size: 128 * MiB - 0x100000, type: E820_RAM }, mmconfig]);
  assertSortedDisjoint(t, list);
});

test('3.5 GiB guest splits RAM around the 32-bit gap', (t) => {
  const list = e820Entries(mem(3.5 * GiB));
  t.deepEqual(list, [
    ...low,
    { addr: 0x100000, size: 3 * GiB - 0x100000, type: E820_RAM },
    mmconfig,
    { addr: 4 * GiB, size: 0.5 * GiB, type: E820_RAM },
  ]);
  assertSortedDisjoint(t, list);
});

test('8 GiB guest', (t) => {
  const list = e820Entries(mem(8 * GiB));
  t.deepEqual(list.at(-1), { addr: 4 * GiB, size: 5 * GiB, type: E820_RAM });
  t.is(list.length, 5);
  t.is(list.filter((e) => e.type === E820_RAM).reduce((n, e) => n + e.size, 0), 8 * GiB - (0x100000 - 0x9fc00));
  assertSortedDisjoint(t, list);
});

test('a guest without RAM above 1 MiB is refused', (t) => {
  const e = t.throws(() => e820Entries(GuestMemory.fromLayout([{ gpa: 0, size: 0x100000 }])));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CONFIG'));
});
