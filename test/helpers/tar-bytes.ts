/**
 * Tar archives byte by byte, for tests that need what no archiver writes: bad checksums, negative or garbage
 * numbers, malformed PAX records, long headers that lie about their size, archives cut inside a header. Each
 * header is a ustar block with its checksum computed after every field is set, so a test changes exactly the
 * field it means to (or the checksum itself, last).
 */

const BLOCK = 512;

export interface RawHeader {
  readonly name: string;
  /** The flag byte as a character: '0' file, '1' hard link, '2' symlink, '3'/'4' devices, '5' directory, 'x' PAX, 'g' global PAX, 'L' GNU long name, 'K' GNU long link. */
  readonly flag?: string;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly mtime?: number;
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** 'ustar' (POSIX, the default) or 'gnu' (`ustar  \0`). */
  readonly magic?: 'ustar' | 'gnu' | 'none';
  /** Raw bytes for numeric fields, as written (e.g. base-256 or garbage), by field name. */
  readonly raw?: Partial<Record<'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor', Buffer>>;
  /** Replaces the computed checksum. */
  readonly checksum?: number;
}

const FIELDS = { mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], devmajor: [329, 8], devminor: [337, 8] } as const;

function octal(v: number, len: number): string {
  return v.toString(8).padStart(len - 1, '0');
}

/** One 512-byte header block. */
export function header(h: RawHeader): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  const values = { mode: h.mode ?? 0o644, uid: h.uid ?? 0, gid: h.gid ?? 0, size: h.size ?? 0, mtime: h.mtime ?? 1_700_000_000, devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0 };
  for (const [field, [off, len]] of Object.entries(FIELDS) as [keyof typeof FIELDS, readonly [number, number]][]) {
    const raw = h.raw?.[field];
    if (raw !== undefined) raw.copy(b, off, 0, len);
    else b.write(octal(values[field], len), off, len - 1, 'latin1');
  }
  b.write(h.flag ?? '0', 156, 1, 'latin1');
  if (h.linkname !== undefined) b.write(h.linkname, 157, 100, 'utf8');
  const magic = h.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 8, 'latin1');
  else if (magic === 'gnu') b.write('ustar  \x00', 257, 8, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${octal(h.checksum ?? sum, 7)}\x00`, 148, 8, 'latin1');
  return b;
}

/** `data` padded to whole blocks. */
export function padded(data: Buffer | string): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([d, Buffer.alloc((BLOCK - (d.length % BLOCK)) % BLOCK)]);
}

/** A header (its size that of `data` unless given) and its padded data. */
export function member(h: RawHeader, data: Buffer | string = ''): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([header({ size: d.length, ...h }), padded(d)]);
}

/** A PAX record `LEN KEY=VALUE\n`, its length counting itself. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), typeof value === 'string' ? Buffer.from(value) : value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** A local ('x') or global ('g') PAX header with these records, as a member. */
export function pax(records: readonly Buffer[], flag: 'x' | 'g' = 'x'): Buffer {
  return member({ name: 'PaxHeaders/x', flag }, Buffer.concat(records));
}

/** The end-of-archive marker: two zero blocks. */
export const END = Buffer.alloc(2 * BLOCK);

/** A whole archive of the given members, with the end marker. */
export function tarOf(...members: readonly Buffer[]): Buffer {
  return Buffer.concat([...members, END]);
}
