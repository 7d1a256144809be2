/**
 * What a kernel file must be before it is imported. Whether it boots is decided by the VMM's own loader parsers
 * (parseElf, parseBzImage: ELF64 x86_64 ET_EXEC with PT_LOAD segments inside the file and the entry in one of
 * them; bzImage with boot protocol 2.12+ and XLF_KERNEL_64). On top of that an import checks what only a stored
 * kernel cares about: a bzImage's setup sectors and payload lie inside the file. It also reads the Linux
 * version string the kernel carries, if any.
 */
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { detectKernelFormat, parseBzImage, parseElf, type KernelFormat } from '../vmm/index.ts';

export interface KernelFacts {
  readonly format: KernelFormat;
  /** The version string without "Linux version ", e.g. "6.1.0-56-cloud-amd64 (debian-kernel@...) #1 SMP ...". */
  readonly version: string | null;
}

/** Setup header fields the loader does not read (Documentation/arch/x86/boot.rst). */
const SYSSIZE = 0x1f4;
const KERNEL_VERSION = 0x20e;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
/** The boot sector and the real-mode setup must end by X+0x8000 (boot.rst's memory layout): 1 + 63 sectors. */
const MAX_SETUP_SECTS = 63;
const BANNER = 'Linux version ';
const MAX_VERSION_LENGTH = 256;

/** Compressed or foreign files people pass by mistake, by their first bytes. */
const LOOKALIKES: readonly { readonly magic: readonly number[]; readonly what: string }[] = [
  { magic: [0x1f, 0x8b], what: 'a gzip file' },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'an xz file' },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], what: 'a zstd file' },
  { magic: [0x02, 0x21, 0x4c, 0x18], what: 'an lz4 file' },
  { magic: [0x4d, 0x5a], what: 'a PE/EFI executable without a Linux boot header' },
  { magic: [0x23, 0x21], what: 'a script' },
];

function formatError(file: string, what: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.KERNEL_FORMAT, `kernel ${file} is not a bootable bzImage: ${what}`, { path: file, ...details });
}

function describeStart(buf: Uint8Array): string {
  if (buf.byteLength === 0) return 'the file is empty';
  const bytes = Array.from(buf.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const known = LOOKALIKES.find(({ magic }) => magic.every((b, i) => buf[i] === b));
  return `starts with ${bytes}${buf.byteLength > 8 ? ' ...' : ''}${known ? `, ${known.what}` : ''}`;
}

/** Printable ASCII from `start` up to a NUL or newline, or null if there is none or it is not text. */
function textAt(buf: Uint8Array, start: number, end: number): string | null {
  let i = start;
  const stop = Math.min(end, start + MAX_VERSION_LENGTH);
  while (i < stop && buf[i] !== 0 && buf[i] !== 0x0a) {
    const c = buf[i]!;
    if (c < 0x20 || c > 0x7e) return null;
    i++;
  }
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, i - start).toString('latin1').trim();
  return text === '' ? null : text;
}

/**
 * The "Linux version <digit>..." banner of an uncompressed vmlinux. Since Linux 6.1 it holds two: an early one
 * with an empty build number ("# SMP ...", init/version.c) and the final one (init/version-timestamp.c) with
 * the number and the date, so the longest is taken.
 */
function elfVersion(buf: Uint8Array): string | null {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let best: string | null = null;
  for (let at = bytes.indexOf(BANNER, 0, 'latin1'); at >= 0; at = bytes.indexOf(BANNER, at + 1, 'latin1')) {
    const first = bytes[at + BANNER.length];
    if (first === undefined || first < 0x30 || first > 0x39) continue;
    const text = textAt(buf, at + BANNER.length, buf.byteLength);
    if (text !== null && text.length > (best?.length ?? 0)) best = text;
  }
  return best;
}

/** Checks a bzImage beyond the loader's parse: sane setup, payload inside the file; returns its version string. */
function checkBzImage(buf: Uint8Array, file: string): string | null {
  const { payloadOffset, payloadSize } = parseBzImage(buf, file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const setupSects = payloadOffset / 512 - 1;
  if (setupSects > MAX_SETUP_SECTS) {
    throw formatError(file, `setup_sects ${setupSects} puts the real-mode setup past 32 KiB (at most ${MAX_SETUP_SECTS}); the header is corrupt`, { setupSects });
  }
  const sysBytes = view.getUint32(SYSSIZE, true) * 16;
  if (sysBytes === 0 || sysBytes > payloadSize) {
    throw formatError(file, `syssize says the protected-mode kernel is ${sysBytes} bytes but the file holds ${payloadSize} after the setup; it is truncated or corrupt, fetch it again`, { sysBytes, payloadSize });
  }
  const offset = view.getUint32(PAYLOAD_OFFSET, true);
  const length = view.getUint32(PAYLOAD_LENGTH, true);
  if (length === 0 || offset + length > payloadSize) {
    throw formatError(file, `its compressed payload (offset ${offset}, ${length} bytes) does not lie inside the ${payloadSize}-byte kernel; it is truncated or corrupt, fetch it again`, { payloadOffset: offset, payloadLength: length });
  }
  const pointer = view.getUint16(KERNEL_VERSION, true);
  const start = pointer + 0x200;
  return pointer === 0 || start >= payloadOffset ? null : textAt(buf, start, payloadOffset);
}

/**
 * Checks that `buf` (the contents of `file`) is a kernel matchlock can boot and returns its format and version.
 * Anything else throws KERNEL_FORMAT naming the file and what was found.
 */
export function checkKernel(buf: Uint8Array, file: string): KernelFacts {
  switch (detectKernelFormat(buf)) {
    case 'elf':
      parseElf(buf, file);
      return { format: 'elf', version: elfVersion(buf) };
    case 'bzimage':
      return { format: 'bzimage', version: checkBzImage(buf, file) };
    case null:
      throw new MatchlockError(
        ErrorCodes.KERNEL_FORMAT,
        `kernel ${file} is not an ELF vmlinux or a bzImage (${describeStart(buf)}): pass an uncompressed x86_64 vmlinux or a bzImage`,
        { path: file },
      );
  }
}
