import test from 'ava';
import type { ExecutionContext } from 'ava';
import { loadElf, parseElf, loadKernelImage, XEN_ELFNOTE_PHYS32_ENTRY } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';
import { buildElf, concat, note, pattern, PT_NOTE, SHT_NOTE, u32, u64 } from './elf-writer.ts';
import type { ElfSpec, SegmentSpec } from './elf-writer.ts';

const TEXT: SegmentSpec = { paddr: 0x100000, data: pattern(0x300, 3), memsz: 0x1000 };
const DATA: SegmentSpec = { paddr: 0x200000, data: pattern(0x80, 9), memsz: 0x2000 };
const good = (extra: Partial<ElfSpec> = {}): Uint8Array => buildElf({ entry: 0x100040, segments: [TEXT, DATA], ...extra });
const smallGuest = (): GuestMemory => GuestMemory.fromLayout(ramRegions(8 * MiB));

function isAllZero(mem: GuestMemory): boolean {
  return mem.regions.every((r) => Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength).equals(Buffer.alloc(r.size)));
}

function throwsCode(t: ExecutionContext, code: string, fn: () => unknown, message?: RegExp): void {
  const e = t.throws(fn);
  t.true(isMatchlockError(e, code as never), `expected ${code}, got ${String(e)}`);
  if (message && e) t.regex(e.message, message);
}

test('loads two PT_LOAD segments at their physical addresses and zero-fills up to p_memsz', (t) => {
  const mem = smallGuest();
  mem.fill(0x100000, 0x200000, 0xaa); // dirty memory: the bss part must come out zero
  mem.fill(0x202000, 0x10, 0xbb);
  const k = loadElf(mem, good(), '/k/vmlinux');
  t.deepEqual(k, { kind: 'elf', entry64: 0x100040, pvhEntry: null, loadStart: 0x100000, loadEnd: 0x202000 });
  t.deepEqual(mem.read(0x100000, 0x300), TEXT.data);
  t.true(mem.read(0x100300, 0x1000 - 0x300).every((b) => b === 0));
  t.is(mem.readU8(0x101000), 0xaa, 'nothing written past the first segment');
  t.deepEqual(mem.read(0x200000, 0x80), DATA.data);
  t.true(mem.read(0x200080, 0x2000 - 0x80).every((b) => b === 0));
  t.is(mem.readU8(0x202000), 0xbb, 'nothing written past the last segment');
});

test('finds the PVH entry in a Xen note of type 18, ignoring other names and types', (t) => {
  const notes = concat(
    note('GNU', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100999)),
    note('Xenon', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100998)),
    note('Xen', 17, u32(0x100997)),
    note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100100)),
  );
  const k = loadElf(smallGuest(), good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0x100200, data: notes }] }), 'k');
  t.is(k.pvhEntry, 0x100100);
  t.is(k.entry64, 0x100040);

  const wide = note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u64(0x200010));
  t.is(parseElf(good({ segments: [TEXT, { type: PT_NOTE, paddr: 0, data: wide }, DATA] }), 'k').pvhEntry, 0x200010);
});

test('a note segment without the Xen PVH note gives no PVH entry', (t) => {
  const notes = concat(note('GNU', 3, pattern(20)), note('Linux', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100100)));
  t.is(parseElf(good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: notes }] }), 'k').pvhEntry, null);
});

test('falls back to SHT_NOTE sections for the PVH entry', (t) => {
  const sections = [{ type: 1, data: pattern(32) }, { type: SHT_NOTE, data: note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x200020)) }];
  t.is(parseElf(good({ sections }), 'k').pvhEntry, 0x200020);
});

test('translates a virtual e_entry through the segment vaddr to paddr', (t) => {
  const seg: SegmentSpec = { paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: pattern(0x400), memsz: 0x1000 };
  const k = parseElf(buildElf({ entry: 0xffffffff81000200n, segments: [seg] }), 'k');
  t.is(k.entry64, 0x1000200);
  throwsCode(t, 'MATCHLOCK_ERR_KERNEL_FORMAT', () => parseElf(buildElf({ entry: 0xffffffff82000000n, segments: [seg] }), 'k'), /entry point 0xffffffff82000000/);
});

const hostile: [string, () => Uint8Array, string, RegExp][] = [
  ['truncated header', () => good().subarray(0, 40), 'KERNEL_FORMAT', /shorter than an ELF64 header/],
  ['32-bit class', () => good({ elfClass: 1 }), 'KERNEL_FORMAT', /ELFCLASS64/],
  ['big-endian', () => good({ data: 2 }), 'KERNEL_FORMAT', /little-endian/],
  ['wrong machine', () => good({ machine: 3 }), 'KERNEL_FORMAT', /machine 3/],
  ['ET_DYN', () => good({ type: 3 }), 'KERNEL_FORMAT', /ET_EXEC/],
  ['zero phnum', () => good({ phnum: 0 }), 'KERNEL_FORMAT', /no program headers/],
  ['phnum beyond the file', () => good({ phnum: 500 }), 'KERNEL_FORMAT', /run past the end/],
  ['phoff beyond file', () => good({ phoff: 0x100000n }), 'KERNEL_FORMAT', /offset 0x100000 run past/],
  ['phoff overflowing 64 bits', () => good({ phoff: 0xffffffffffffffc0n }), 'KERNEL_FORMAT', /run past/],
  ['short phentsize', () => good({ phentsize: 32 }), 'KERNEL_FORMAT', /program header size 32/],
  ['p_offset+p_filesz beyond file', () => good({ segments: [TEXT, { ...DATA, filesz: 0x100000n, memsz: 0x200000 }] }), 'KERNEL_FORMAT', /segment 1 .* runs past the end/],
  ['p_offset near 2^64', () => good({ segments: [{ ...TEXT, offset: 0xfffffffffffffff0n }] }), 'KERNEL_FORMAT', /runs past the end/],
  ['filesz above memsz', () => good({ segments: [{ ...TEXT, memsz: 0x10 }] }), 'KERNEL_FORMAT', /more file bytes/],
  ['segment at paddr 0', () => good({ segments: [{ ...TEXT, paddr: 0 }], entry: 0x40 }), 'KERNEL_FORMAT', /below 1 MiB/],
  ['huge p_memsz', () => good({ segments: [TEXT, { ...DATA, memsz: 0x7fffffffffffffffn }] }), 'KERNEL_FORMAT', /plausible/],
  ['segment past RAM end', () => good({ segments: [TEXT, { ...DATA, paddr: 0x7ff000 }] }), 'KERNEL_TOO_BIG', /0x7ff000-0x801000 .* 8\.0 MiB/],
  ['segment larger than RAM', () => good({ segments: [TEXT, { ...DATA, memsz: 1024 * MiB }] }), 'KERNEL_TOO_BIG', /give the VM more memory/],
  ['overlapping segments', () => good({ segments: [TEXT, { ...DATA, paddr: 0x100800 }] }), 'KERNEL_FORMAT', /overlap/],
  ['no PT_LOAD', () => good({ segments: [{ type: PT_NOTE, paddr: 0, data: note('GNU', 1, u32(0)) }] }), 'KERNEL_FORMAT', /no non-empty PT_LOAD/],
  ['note name size past its segment', () => {
    const n = note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100100));
    new DataView(n.buffer).setUint32(0, 0xfffffff0, true);
    return good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: n }] });
  }, 'KERNEL_FORMAT', /running past its note area/],
  ['PT_NOTE past the file', () => good({ segments: [TEXT, { type: PT_NOTE, paddr: 0, data: u32(0), filesz: 0x10000000n }] }), 'KERNEL_FORMAT', /PT_NOTE segment 1/],
  ['PVH note with a 2-byte value', () => good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, new Uint8Array(2)) }] }), 'KERNEL_FORMAT', /2-byte/],
  ['PVH entry above 4 GiB', () => good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u64(0x100000000n)) }] }), 'KERNEL_FORMAT', /above 4 GiB/],
  ['PVH entry outside the segments', () => good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x180000)) }] }), 'KERNEL_FORMAT', /PVH entry 0x180000 is in no PT_LOAD/],
];

for (const [name, build, code, message] of hostile) {
  test(`rejects a hostile ELF: ${name}`, (t) => {
    const mem = smallGuest();
    throwsCode(t, `MATCHLOCK_ERR_${code}`, () => loadElf(mem, build(), '/k/evil'), message);
    t.true(isAllZero(mem), 'guest memory untouched');
  });
}

test('error messages are one line and name the file', (t) => {
  const e = t.throws(() => loadKernelImage(smallGuest(), good({ machine: 40 }), '/boot/vmlinux-arm'));
  t.regex(e.message, /^kernel \/boot\/vmlinux-arm .*machine 40.*; pass an uncompressed x86_64 vmlinux or a bzImage$/);
  t.false(e.message.includes('\n'));
});

test('random corruption of the headers only ever yields kernel errors or a load inside RAM', (t) => {
  const base = good({ segments: [TEXT, DATA, { type: PT_NOTE, paddr: 0, data: note('Xen', XEN_ELFNOTE_PHYS32_ENTRY, u32(0x100100)) }] });
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const mem = smallGuest();
  let loaded = 0;
  for (let i = 0; i < 3000; i++) {
    const buf = base.slice();
    const flips = 1 + rand(4);
    for (let j = 0; j < flips; j++) buf[rand(64 + 4 * 56)] = rand(256);
    try {
      const k = loadElf(mem, buf, 'fuzz');
      t.true(k.loadStart >= 0x100000 && k.loadEnd <= mem.end && k.entry64 >= k.loadStart && k.entry64 < k.loadEnd);
      loaded++;
    } catch (e: unknown) {
      if (!isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_FORMAT') && !isMatchlockError(e, 'MATCHLOCK_ERR_KERNEL_TOO_BIG')) {
        t.fail(`iteration ${i}: ${String(e)}`);
        return;
      }
    }
  }
  t.log(`${loaded} of 3000 corrupted files still loaded`);
});
