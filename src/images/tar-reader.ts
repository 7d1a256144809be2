/**
 * The tar reader of the layer applier (it replaced tar-stream there, and the tap that read xattr bytes beside it):
 * 512-byte headers (ustar and GNU, checksums checked, octal or base-256 numbers), PAX extended headers (local and
 * global: `path`, `linkpath`, `size`, `uid`, `gid`, `mtime` and `SCHILY.xattr.*`, xattr values kept as bytes),
 * GNU long names and link names, and each entry's data, passed on as views of the chunks read (no copy) or
 * passed over. It reads as tar-stream did (the same types; a directory has no data; the old trailing "/" marks
 * a directory; zero blocks are skipped; a global PAX header counts only through a local one), and, as tar does,
 * takes uid, gid and mtime from PAX records when they are there. One pass, synchronous, chunk by chunk: what the
 * archive says is read once, by one reader. It stops only between entries when asked (and where a sink takes no
 * more). Whatever it cannot read (a bad checksum, an unknown format, a malformed number or PAX record, a long
 * header over 4 MiB, an end inside an entry) is an Error, which the applier reports as a corrupt or truncated layer.
 */

export const XATTR_PREFIX = 'SCHILY.xattr.';
const BLOCK = 512;
/** tar-stream's limit for a long header. */
const MAX_META_BYTES = 4 * 1024 * 1024;

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file';

/** tar-stream's type names, by `typeflag - '0'` (a NUL flag is 0). */
const TYPES: Readonly<Record<number, EntryType>> = {
  0: 'file', 1: 'link', 2: 'symlink', 3: 'character-device', 4: 'block-device', 5: 'directory', 6: 'fifo', 7: 'contiguous-file',
};
const PAX_LOCAL = 0x78; // x
const PAX_GLOBAL = 0x67; // g
const GNU_LONG_NAME = 0x4c; // L
const GNU_LONG_NAME_OLD = 0x4e; // N
const GNU_LONG_LINK = 0x4b; // K

export interface TarEntry {
  readonly name: string;
  readonly linkname: string;
  /** null: a type the applier does not know (it refuses the entry). */
  readonly type: EntryType | null;
  /** The flag byte as it was, for messages. */
  readonly flag: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** The data's length (a directory has none, whatever this says). */
  readonly size: number;
  /** Seconds since the epoch (PAX `mtime`, with its fraction, else the header's field). */
  readonly mtime: number;
  readonly devmajor: number;
  readonly devminor: number;
  /** Where the entry's data starts in the stream. */
  readonly dataOffset: number;
  /** Its `SCHILY.xattr.*` records (names without the prefix), values as bytes; null when it has none. */
  readonly xattrs: Map<string, Buffer> | null;
}

/**
 * Where an entry's data goes: each piece (a view of the chunk, valid during the call), then its end. `write`
 * returns how many bytes it took: fewer than given, and the reader stops there (to be called again later).
 */
export interface EntrySink {
  write(chunk: Buffer): number;
  end(): void;
}

/** What a PAX header says that matters here. */
interface Pax {
  path?: string;
  linkpath?: string;
  size?: string;
  uid?: string;
  gid?: string;
  mtime?: string;
  xattrs?: Map<string, Buffer>;
}
type PaxText = 'path' | 'linkpath' | 'size' | 'uid' | 'gid' | 'mtime';
const PAX_TEXT = new Set<string>(['path', 'linkpath', 'size', 'uid', 'gid', 'mtime']);

/** A PAX number: a decimal integer (uid, gid, size) or a time in seconds with an optional fraction. */
function paxNumber(pax: Pax, key: 'size' | 'uid' | 'gid' | 'mtime', header: number): number {
  const v = pax[key];
  if (v === undefined || v === '') return header;
  if (!(key === 'mtime' ? /^-?\d{1,12}(\.\d{1,9})?$/ : /^\d{1,16}$/).test(v)) throw new Error(`invalid PAX ${key} ${JSON.stringify(v.slice(0, 20))}`);
  return Number(v);
}

function startsWith(buf: Buffer, at: number, end: number, prefix: string): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[at + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** The records `LEN KEY=VALUE\n` of a PAX header. Trailing NULs end them; anything else malformed throws. */
function paxRecords(buf: Buffer, into: Pax): Pax {
  let at = 0;
  while (at < buf.length) {
    if (buf[at] === 0) break;
    let len = 0;
    let sp = at;
    for (; sp < buf.length && buf[sp]! >= 0x30 && buf[sp]! <= 0x39 && sp - at < 8; sp++) len = len * 10 + buf[sp]! - 0x30;
    const end = at + len;
    if (sp === at || buf[sp] !== 0x20 || end > buf.length || end <= sp + 2 || buf[end - 1] !== 0x0a) throw new Error('a malformed PAX extended header');
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq === -1 || eq >= end - 1) throw new Error('a malformed PAX extended header');
    if (startsWith(buf, sp + 1, eq, XATTR_PREFIX)) {
      into.xattrs ??= new Map();
      into.xattrs.set(buf.toString('utf8', sp + 1 + XATTR_PREFIX.length, eq), Buffer.from(buf.subarray(eq + 1, end - 1)));
    } else if (eq - sp - 1 <= 8) { // the keys used here are short: the others (atime, ctime…) are not decoded
      const key = buf.toString('latin1', sp + 1, eq);
      if (PAX_TEXT.has(key)) into[key as PaxText] = buf.toString('utf8', eq + 1, end - 1);
    }
    at = end;
  }
  return into;
}

/** A header's numeric field: octal (leading spaces and NULs skipped, up to a space or NUL), or base-256. */
function number(h: Buffer, off: number, len: number): number {
  const first = h[off]!;
  if ((first & 0x80) !== 0) {
    if (first !== 0x80 && first !== 0xff) return Number.NaN;
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + (first === 0x80 ? h[i]! : 0xff - h[i]!);
    return first === 0x80 ? v : -(v + 1);
  }
  let i = off;
  const end = off + len;
  while (i < end && h[i] === 0x20) i++;
  while (i < end && h[i] === 0) i++;
  let v = 0;
  let digits = 0;
  for (; i < end && h[i] !== 0x20 && h[i] !== 0; i++, digits++) {
    const d = h[i]! - 0x30;
    if (d < 0 || d > 7) return digits === 0 ? Number.NaN : v;
    v = v * 8 + d;
  }
  return v;
}

/** A NUL-terminated UTF-8 string of at most `len` bytes. */
function text(h: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return h.toString('utf8', off, end);
}

function isUstar(h: Buffer, off: number): boolean {
  return h[off + 257] === 0x75 && h[off + 258] === 0x73 && h[off + 259] === 0x74 && h[off + 260] === 0x61 && h[off + 261] === 0x72;
}

export class TarReader {
  /** Whether the last header block seen was an end-of-archive (all-zero) block. */
  ended = false;
  /** Stream offset of the next byte to read. */
  private pos = 0;
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current entry's data still to come, then of padding to skip. */
  private dataLeft = 0;
  private skipLeft = 0;
  private sink: EntrySink | null = null;
  /** A long header being collected across chunks. */
  private meta: Buffer | null = null;
  private metaFill = 0;
  private metaFlag = 0;
  private metaPad = 0;
  /** What the long headers say about the next entry. */
  private local: Pax | null = null;
  private global: Pax | null = null;
  private longName: string | null = null;
  private longLink: string | null = null;
  private readonly onEntry: (entry: TarEntry) => EntrySink | null;

  /** `onEntry` is told of each entry and returns where its data goes (null: skipped). */
  constructor(onEntry: (entry: TarEntry) => EntrySink | null) {
    this.onEntry = onEntry;
  }

  /**
   * Reads `chunk` from `at` on; returns where it stopped: the chunk's end, the start of an entry when `pause()`
   * said so there, or where the entry's sink took no more (call again with the rest later).
   */
  walk(chunk: Buffer, at: number, pause: () => boolean): number {
    const end = chunk.length;
    while (at < end) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, end - at);
        const took = this.sink === null ? n : this.sink.write(chunk.subarray(at, at + n));
        this.dataLeft -= took;
        at += took;
        this.pos += took;
        if (this.dataLeft === 0) this.endEntry();
        else if (took < n) return at;
      } else if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, end - at);
        this.skipLeft -= n;
        at += n;
        this.pos += n;
      } else if (this.meta !== null) {
        const n = Math.min(this.meta.length - this.metaFill, end - at);
        chunk.copy(this.meta, this.metaFill, at, at + n);
        this.metaFill += n;
        at += n;
        this.pos += n;
        if (this.metaFill === this.meta.length) this.endMeta(this.meta);
      } else if (this.headerFill === 0 && end - at >= BLOCK) {
        if (pause()) return at;
        this.pos += BLOCK;
        at = this.onHeader(chunk, at, chunk, at + BLOCK);
      } else {
        if (this.headerFill === 0 && pause()) return at;
        const n = Math.min(BLOCK - this.headerFill, end - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        this.pos += n;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          at = this.onHeader(this.header, 0, chunk, at);
        }
      }
    }
    return at;
  }

  /**
   * Passes over what is left of the current entry's data when nobody reads it (and its padding), without seeing
   * it: returns how many bytes the caller must skip in the stream. (For a file read by offset: large files' data
   * is not read here at all.)
   */
  passOver(): number {
    if (this.meta !== null || (this.dataLeft > 0 && this.sink !== null)) return 0;
    const n = this.dataLeft + this.skipLeft;
    this.dataLeft = 0;
    this.skipLeft = 0;
    this.pos += n;
    return n;
  }

  /** The end of the stream: throws if it ends inside a header or an entry. */
  finish(): void {
    if (this.headerFill > 0 || this.dataLeft > 0 || this.skipLeft > 0 || this.meta !== null) throw new Error('unexpected end of data');
  }

  private endEntry(): void {
    const sink = this.sink;
    this.sink = null;
    sink?.end();
  }

  private endMeta(data: Buffer): void {
    this.meta = null;
    this.skipLeft = this.metaPad;
    if (this.metaFlag === PAX_GLOBAL) this.global = paxRecords(data, {});
    else if (this.metaFlag === PAX_LOCAL) {
      const g = this.global;
      const merged: Pax = g === null ? {} : { ...g, ...(g.xattrs === undefined ? {} : { xattrs: new Map(g.xattrs) }) };
      this.local = paxRecords(data, merged);
    } else if (this.metaFlag === GNU_LONG_LINK) this.longLink = text(data, 0, data.length);
    else this.longName = text(data, 0, data.length);
  }

  /**
   * The header block at `h[off]`, followed in `chunk` by what comes next from `at` on. Returns where reading goes
   * on in `chunk` (past a long header that is all there, read in place).
   */
  private onHeader(h: Buffer, off: number, chunk: Buffer, at: number): number {
    let sum = 8 * 32;
    for (let j = off; j < off + 148; j++) sum += h[j]!;
    for (let j = off + 156; j < off + BLOCK; j++) sum += h[j]!;
    if (sum === 8 * 32) {
      this.ended = true; // a zero block: read on, as tar-stream does
      return at;
    }
    this.ended = false;
    if (sum !== number(h, off + 148, 8)) throw new Error('invalid tar header (bad checksum; a compressed layer not named so?)');
    const ustar = isUstar(h, off) && h[off + 262] === 0;
    const gnu = isUstar(h, off) && h[off + 262] === 0x20 && h[off + 263] === 0x20 && h[off + 264] === 0;
    if (!ustar && !gnu) throw new Error('invalid tar header: unknown format');
    const flag = h[off + 156]!;
    let size = number(h, off + 124, 12);
    if (flag === PAX_LOCAL || flag === PAX_GLOBAL || flag === GNU_LONG_NAME || flag === GNU_LONG_NAME_OLD || flag === GNU_LONG_LINK) {
      if (!(size >= 0) || size > MAX_META_BYTES) throw new Error('a tar long header is larger than 4 MiB, or has no valid size');
      this.metaFlag = flag;
      this.metaPad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (at + size <= chunk.length) { // all in this chunk: read in place
        this.pos += size;
        this.endMeta(chunk.subarray(at, at + size));
        return at + size;
      }
      this.meta = Buffer.allocUnsafe(size);
      this.metaFill = 0;
      if (size === 0) this.endMeta(this.meta);
      return at;
    }
    const pax = this.local;
    this.local = null;
    // As tar-stream: a PAX path over a GNU long name over the header's own, each only if not empty.
    let name = pax?.path !== undefined && pax.path !== '' ? pax.path : this.longName ?? '';
    if (name === '') {
      name = text(h, off, 100);
      if (ustar && h[off + 345] !== 0) name = `${text(h, off + 345, 155)}/${name}`;
    }
    let linkname = pax?.linkpath !== undefined && pax.linkpath !== '' ? pax.linkpath : this.longLink ?? '';
    if (linkname === '' && h[off + 157] !== 0) linkname = text(h, off + 157, 100);
    this.longName = null;
    this.longLink = null;
    const typeflag = flag === 0 ? 0 : flag - 0x30;
    // The old mark of a directory, on the header's own name: a trailing "/".
    let nameEnd = off;
    while (nameEnd < off + 100 && h[nameEnd] !== 0) nameEnd++;
    const slash = nameEnd > off ? h[nameEnd - 1] === 0x2f : ustar && h[off + 345] !== 0;
    const type = typeflag === 0 && slash ? 'directory' : TYPES[typeflag] ?? null;
    let uid = number(h, off + 108, 8);
    let gid = number(h, off + 116, 8);
    let mtime = number(h, off + 136, 12);
    if (pax !== null) { // what does not fit a header field (large ids, times before 1970 or with a fraction)
      size = paxNumber(pax, 'size', size);
      uid = paxNumber(pax, 'uid', uid);
      gid = paxNumber(pax, 'gid', gid);
      mtime = paxNumber(pax, 'mtime', mtime);
    }
    const entry: TarEntry = {
      name, linkname, type, flag, size, dataOffset: this.pos, mode: number(h, off + 100, 8), uid, gid, mtime,
      devmajor: number(h, off + 329, 8), devminor: number(h, off + 337, 8), xattrs: pax?.xattrs ?? null,
    };
    const id = (v: number): boolean => v >= 0 && v < 2 ** 32 - 1; // -1 would mean "leave it" to chown
    if (!(entry.mode >= 0 && id(uid) && id(gid) && entry.devmajor >= 0 && entry.devminor >= 0 && Number.isSafeInteger(size) && size >= 0 && Number.isFinite(mtime))) {
      throw new Error(`archive entry ${JSON.stringify(name)} has an invalid number (mode, owner, size, time or device) in its header`);
    }
    const data = type === 'directory' ? 0 : size; // tar-stream reads no data for a directory
    this.sink = this.onEntry(entry);
    this.dataLeft = data;
    this.skipLeft = (BLOCK - (data % BLOCK)) % BLOCK;
    if (data === 0) this.endEntry();
    return at;
  }
}
