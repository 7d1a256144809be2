/**
 * Loading an uncompressed ELF64 x86_64 `vmlinux`: every PT_LOAD segment goes to its physical address.
 * Every offset and size read from the file is checked before use: a hostile file can neither make us read
 * outside its bytes nor write outside guest RAM, and a file that fails a check leaves guest memory untouched.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { HIMEM_START } from '../arch/x86_64/layout.ts';
import type { GuestMemory } from '../memory/index.ts';
import { pvhEntryFromNotes, readNotes } from './elf-notes.ts';

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const PT_NOTE = 4;
const SHT_NOTE = 7;
const PN_XNUM = 0xffff;
/** No real kernel is placed this high; it also keeps all arithmetic exact in doubles. */
const MAX_PHYS = 2 ** 52;

export interface ElfSegment {
  readonly fileOffset: number;
  readonly fileSize: number;
  readonly paddr: number;
  readonly memSize: number;
}

/** What the headers say, validated against the file but not yet against guest RAM. */
export interface ElfImage {
  readonly segments: readonly ElfSegment[];
  /** Physical 64-bit entry point (`startup_64`). */
  readonly entry64: number;
  /** Physical 32-bit PVH entry from the `Xen` note of type 18, or null. */
  readonly pvhEntry: number | null;
  readonly loadStart: number;
  /** One past the highest byte loaded (including zero-filled memory). */
  readonly loadEnd: number;
}

export interface ElfKernel {
  readonly kind: 'elf';
  readonly entry64: number;
  readonly pvhEntry: number | null;
  readonly loadStart: number;
  readonly loadEnd: number;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

function formatError(source: string, what: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(
    ErrorCodes.KERNEL_FORMAT,
    `kernel ${source} is not a loadable ELF vmlinux: ${what}; pass an uncompressed x86_64 vmlinux or a bzImage`,
    { path: source, ...details },
  );
}

interface RawPhdr {
  readonly type: number;
  readonly offset: bigint;
  readonly vaddr: bigint;
  readonly paddr: bigint;
  readonly filesz: bigint;
  readonly memsz: bigint;
  readonly align: bigint;
}

function readHeaderTable(view: DataView, buf: Uint8Array, source: string): { entry: bigint; phdrs: RawPhdr[] } {
  if (buf.byteLength < EHDR_SIZE) throw formatError(source, `the file is ${buf.byteLength} bytes, shorter than an ELF64 header`);
  if (view.getUint32(0, false) !== 0x7f454c46) throw formatError(source, 'no ELF magic');
  const cls = view.getUint8(4);
  if (cls !== ELFCLASS64) throw formatError(source, `ELF class ${cls} is not ELFCLASS64 (2); a 32-bit kernel cannot be booted`, { elfClass: cls });
  const data = view.getUint8(5);
  if (data !== ELFDATA2LSB) throw formatError(source, `ELF data encoding ${data} is not little-endian`, { elfData: data });
  const type = view.getUint16(16, true);
  if (type !== ET_EXEC) throw formatError(source, `ELF type ${type} is not ET_EXEC (2)`, { elfType: type });
  const machine = view.getUint16(18, true);
  if (machine !== EM_X86_64) throw formatError(source, `ELF machine ${machine} is not x86_64 (62)`, { elfMachine: machine });
  const entry = view.getBigUint64(24, true);
  const phoff = view.getBigUint64(32, true);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phnum === 0 || phnum === PN_XNUM) throw formatError(source, `it has ${phnum === 0 ? 'no' : 'an extended count of'} program headers`, { phnum });
  if (phentsize < PHDR_SIZE) throw formatError(source, `program header size ${phentsize} is below ${PHDR_SIZE}`, { phentsize });
  if (phoff + BigInt(phnum) * BigInt(phentsize) > BigInt(buf.byteLength)) {
    throw formatError(source, `its ${phnum} program headers at offset ${hex(phoff)} run past the end of the ${buf.byteLength}-byte file`, { phoff: hex(phoff), phnum });
  }
  const phdrs: RawPhdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = Number(phoff) + i * phentsize;
    phdrs.push({
      type: view.getUint32(p, true),
      offset: view.getBigUint64(p + 8, true),
      vaddr: view.getBigUint64(p + 16, true),
      paddr: view.getBigUint64(p + 24, true),
      filesz: view.getBigUint64(p + 32, true),
      memsz: view.getBigUint64(p + 40, true),
      align: view.getBigUint64(p + 48, true),
    });
  }
  return { entry, phdrs };
}

function checkLoadSegment(ph: RawPhdr, index: number, size: number, source: string): ElfSegment {
  const where = `PT_LOAD segment ${index} (paddr ${hex(ph.paddr)}, file ${hex(ph.offset)}+${hex(ph.filesz)}, memory size ${hex(ph.memsz)})`;
  if (ph.offset + ph.filesz > BigInt(size)) throw formatError(source, `${where} runs past the end of the ${size}-byte file`, { segment: index });
  if (ph.filesz > ph.memsz) throw formatError(source, `${where} has more file bytes than memory bytes`, { segment: index });
  if (ph.paddr + ph.memsz > BigInt(MAX_PHYS)) throw formatError(source, `${where} ends beyond any plausible physical address`, { segment: index });
  if (ph.paddr < BigInt(HIMEM_START)) throw formatError(source, `${where} lies below 1 MiB (${hex(HIMEM_START)}), where firmware data lives`, { segment: index });
  return { fileOffset: Number(ph.offset), fileSize: Number(ph.filesz), paddr: Number(ph.paddr), memSize: Number(ph.memsz) };
}

function noteAlign(align: bigint): number {
  return align === 8n ? 8 : 4;
}

/** The PVH entry from SHT_NOTE sections; a section header table that does not fit the file is ignored. */
function pvhFromSections(view: DataView, buf: Uint8Array, source: string): number | null {
  const shoff = view.getBigUint64(40, true);
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  if (shoff === 0n || shnum === 0 || shentsize < SHDR_SIZE) return null;
  if (shoff + BigInt(shnum) * BigInt(shentsize) > BigInt(buf.byteLength)) return null;
  for (let i = 0; i < shnum; i++) {
    const s = Number(shoff) + i * shentsize;
    if (view.getUint32(s + 4, true) !== SHT_NOTE) continue;
    const offset = view.getBigUint64(s + 24, true);
    const size = view.getBigUint64(s + 32, true);
    if (offset + size > BigInt(buf.byteLength)) continue;
    const notes = readNotes(buf, Number(offset), Number(size), noteAlign(view.getBigUint64(s + 48, true)), source);
    const entry = pvhEntryFromNotes(buf, notes, source);
    if (entry !== null) return entry;
  }
  return null;
}

/** Parses and validates the headers of an ELF vmlinux held in `buf`; `source` names it in errors. */
export function parseElf(buf: Uint8Array, source: string): ElfImage {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const { entry, phdrs } = readHeaderTable(view, buf, source);

  const loads: { seg: ElfSegment; vaddr: bigint }[] = [];
  let pvhEntry: number | null = null;
  for (const [i, ph] of phdrs.entries()) {
    if (ph.type === PT_LOAD && ph.memsz > 0n) loads.push({ seg: checkLoadSegment(ph, i, buf.byteLength, source), vaddr: ph.vaddr });
    if (ph.type === PT_NOTE && pvhEntry === null) {
      if (ph.offset + ph.filesz > BigInt(buf.byteLength)) {
        throw formatError(source, `PT_NOTE segment ${i} (file ${hex(ph.offset)}+${hex(ph.filesz)}) runs past the end of the ${buf.byteLength}-byte file`, { segment: i });
      }
      pvhEntry = pvhEntryFromNotes(buf, readNotes(buf, Number(ph.offset), Number(ph.filesz), noteAlign(ph.align), source), source);
    }
  }
  if (loads.length === 0) throw formatError(source, 'it has no non-empty PT_LOAD segment');
  pvhEntry ??= pvhFromSections(view, buf, source);

  const sorted = [...loads].sort((a, b) => a.seg.paddr - b.seg.paddr);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!.seg;
    const cur = sorted[i]!.seg;
    if (cur.paddr < prev.paddr + prev.memSize) {
      throw formatError(source, `PT_LOAD segments at ${hex(prev.paddr)} and ${hex(cur.paddr)} overlap`, { paddr: cur.paddr });
    }
  }

  // e_entry is normally physical; some kernels give the virtual address, which we translate.
  const inPhys = loads.find(({ seg }) => entry >= BigInt(seg.paddr) && entry < BigInt(seg.paddr + seg.memSize));
  let entry64: number;
  if (inPhys) entry64 = Number(entry);
  else {
    const inVirt = loads.find(({ seg, vaddr }) => entry >= vaddr && entry < vaddr + BigInt(seg.memSize));
    if (!inVirt) throw formatError(source, `its entry point ${hex(entry)} is in no PT_LOAD segment`, { entry: hex(entry) });
    entry64 = Number(entry - inVirt.vaddr) + inVirt.seg.paddr;
  }
  const pvh = pvhEntry;
  if (pvh !== null && !loads.some(({ seg }) => pvh >= seg.paddr && pvh < seg.paddr + seg.memSize)) {
    throw formatError(source, `its Xen PVH entry ${hex(pvh)} is in no PT_LOAD segment`, { pvhEntry: hex(pvh) });
  }

  const first = sorted[0]!.seg;
  const last = sorted[sorted.length - 1]!.seg;
  return { segments: sorted.map((l) => l.seg), entry64, pvhEntry: pvh, loadStart: first.paddr, loadEnd: last.paddr + last.memSize };
}

/**
 * Loads the ELF vmlinux in `buf` into guest memory. Every segment is checked against guest RAM before the
 * first byte is written; one that does not fit throws KERNEL_TOO_BIG with the sizes.
 */
export function loadElf(mem: GuestMemory, buf: Uint8Array, source: string): ElfKernel {
  const image = parseElf(buf, source);
  for (const s of image.segments) {
    if (!mem.contains(s.paddr, s.memSize)) {
      const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
      throw new MatchlockError(
        ErrorCodes.KERNEL_TOO_BIG,
        `kernel ${source} needs guest memory ${hex(s.paddr)}-${hex(s.paddr + s.memSize)} (it loads up to ${mib(image.loadEnd)}) but guest RAM is ${mib(mem.size)} ending at ${hex(mem.end)}: give the VM more memory`,
        { path: source, paddr: s.paddr, memSize: s.memSize, loadEnd: image.loadEnd, ramSize: mem.size },
      );
    }
  }
  for (const s of image.segments) {
    mem.write(s.paddr, buf.subarray(s.fileOffset, s.fileOffset + s.fileSize));
    if (s.memSize > s.fileSize) mem.fill(s.paddr + s.fileSize, s.memSize - s.fileSize, 0);
  }
  return { kind: 'elf', entry64: image.entry64, pvhEntry: image.pvhEntry, loadStart: image.loadStart, loadEnd: image.loadEnd };
}
