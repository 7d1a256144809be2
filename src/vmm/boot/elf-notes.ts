/**
 * ELF note scanning, just enough to find the Xen PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`) of a vmlinux.
 * A note is: namesz (u32), descsz (u32), type (u32), name padded to the alignment, desc padded likewise.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';

/** `XEN_ELFNOTE_PHYS32_ENTRY`: desc is the 32-bit physical address of the PVH entry point. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfNote {
  readonly name: string;
  readonly type: number;
  /** Offset of desc in the scanned buffer. */
  readonly descOffset: number;
  readonly descSize: number;
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/**
 * The notes in `buf[offset, offset + size)`. `align` is 4 or 8 (the segment's or section's alignment).
 * A note that runs past the range throws KERNEL_FORMAT naming `source`.
 */
export function readNotes(buf: Uint8Array, offset: number, size: number, align: number, source: string): ElfNote[] {
  if (offset < 0 || size < 0 || offset + size > buf.byteLength) {
    throw new MatchlockError(
      ErrorCodes.KERNEL_FORMAT,
      `kernel ${source} has a note area 0x${offset.toString(16)}+0x${size.toString(16)} outside its ${buf.byteLength} bytes: the file is truncated or corrupt, rebuild or re-download it`,
      { path: source, offset, size },
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = offset + size;
  const notes: ElfNote[] = [];
  let pos = offset;
  while (end - pos >= 12) {
    const namesz = view.getUint32(pos, true);
    const descsz = view.getUint32(pos + 4, true);
    const type = view.getUint32(pos + 8, true);
    const nameOffset = pos + 12;
    const descOffset = nameOffset + alignUp(namesz, align);
    const next = descOffset + alignUp(descsz, align);
    // The desc itself must fit; trailing padding of the last note may be missing.
    if (descOffset > end || descOffset + descsz > end) {
      throw new MatchlockError(
        ErrorCodes.KERNEL_FORMAT,
        `kernel ${source} has an ELF note at file offset 0x${pos.toString(16)} (name ${namesz} bytes, desc ${descsz} bytes) running past its note area ending at 0x${end.toString(16)}: the file is corrupt, rebuild or re-download it`,
        { path: source, offset: pos, namesz, descsz },
      );
    }
    let nameEnd = nameOffset + namesz;
    while (nameEnd > nameOffset && buf[nameEnd - 1] === 0) nameEnd--;
    const name = new TextDecoder('latin1').decode(buf.subarray(nameOffset, nameEnd));
    notes.push({ name, type, descOffset, descSize: descsz });
    pos = next;
  }
  return notes;
}

/**
 * The PVH entry from the notes, or null when there is none. A PVH note whose desc is not 4 or 8 bytes,
 * or holds an address at or above 4 GiB, throws KERNEL_FORMAT.
 */
export function pvhEntryFromNotes(buf: Uint8Array, notes: readonly ElfNote[], source: string): number | null {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const n of notes) {
    if (n.name !== 'Xen' || n.type !== XEN_ELFNOTE_PHYS32_ENTRY) continue;
    let entry: bigint;
    if (n.descSize === 4) entry = BigInt(view.getUint32(n.descOffset, true));
    else if (n.descSize === 8) entry = view.getBigUint64(n.descOffset, true);
    else {
      throw new MatchlockError(
        ErrorCodes.KERNEL_FORMAT,
        `kernel ${source} has a Xen PVH entry note with a ${n.descSize}-byte value (expected 4 or 8): the file is corrupt, rebuild or re-download it`,
        { path: source, descSize: n.descSize },
      );
    }
    if (entry >= 1n << 32n) {
      throw new MatchlockError(
        ErrorCodes.KERNEL_FORMAT,
        `kernel ${source} has a Xen PVH entry 0x${entry.toString(16)} above 4 GiB, which a 32-bit entry cannot be: the file is corrupt, rebuild or re-download it`,
        { path: source, entry: `0x${entry.toString(16)}` },
      );
    }
    return Number(entry);
  }
  return null;
}
