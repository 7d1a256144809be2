/**
 * Loading a bzImage per the Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry only.
 * The protected-mode part of the image goes to 1 MiB (HIMEM_START), as Firecracker and QEMU do; the
 * caller copies `setupHeader` into the zero page at 0x1f1 and enters at `entry64` (load address + 0x200).
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { HIMEM_START } from '../arch/x86_64/layout.ts';
import type { GuestMemory } from '../memory/index.ts';

/** Offsets of setup-header fields in the image (and in the zero page). */
export const SetupHeaderOffsets = {
  SETUP_SECTS: 0x1f1,
  BOOT_FLAG: 0x1fe,
  JUMP: 0x200,
  HEADER: 0x202,
  VERSION: 0x206,
  LOADFLAGS: 0x211,
  CODE32_START: 0x214,
  INITRD_ADDR_MAX: 0x22c,
  KERNEL_ALIGNMENT: 0x230,
  RELOCATABLE_KERNEL: 0x234,
  XLOADFLAGS: 0x236,
  CMDLINE_SIZE: 0x238,
  PREF_ADDRESS: 0x258,
  INIT_SIZE: 0x260,
} as const;

const O = SetupHeaderOffsets;
const BOOT_FLAG = 0xaa55;
const HDRS_MAGIC = 0x53726448; // "HdrS" read little-endian
/** The zero page's setup header area ends here (`boot_params.hdr` is followed by padding up to 0x290). */
const ZERO_PAGE_HDR_END = 0x290;
/** Boot protocol 2.12: the first with xloadflags (Linux 3.8). */
export const MIN_BOOT_PROTOCOL = 0x020c;
const LOADED_HIGH = 0x01;
const XLF_KERNEL_64 = 0x01;
/** The 64-bit entry point is this far into the protected-mode kernel. */
const STARTUP_64_OFFSET = 0x200;
/** The header must at least reach init_size. */
const MIN_IMAGE_SIZE = O.INIT_SIZE + 4;

export interface BzImageKernel {
  readonly kind: 'bzimage';
  readonly entry64: number;
  /** Where the protected-mode kernel was copied (HIMEM_START). */
  readonly loadStart: number;
  /**
   * One past the highest address the kernel uses while booting: the copied payload, and the buffer the
   * decompressor works in (`init_size` bytes from the load address rounded up to `kernel_alignment`,
   * and no lower than `pref_address`). Nothing else may be placed below it.
   */
  readonly loadEnd: number;
  /** Image bytes 0x1f1 up to the end of the header (clamped to the zero page's header area). */
  readonly setupHeader: Uint8Array;
  readonly protocolVersion: number;
  readonly initSize: number;
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  readonly prefAddress: number;
  /** Longest command line the kernel accepts, not counting the NUL. */
  readonly cmdlineSize: number;
  /** Highest address the initrd may occupy. */
  readonly initrdAddrMax: number;
  readonly payloadSize: number;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

export function formatProtocolVersion(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

function formatError(source: string, what: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.KERNEL_FORMAT, `kernel ${source} is not a bootable bzImage: ${what}`, { path: source, ...details });
}

/** True when `buf` carries the boot sector flag and the "HdrS" setup header magic. */
export function isBzImage(buf: Uint8Array): boolean {
  if (buf.byteLength < O.HEADER + 4) return false;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return view.getUint16(O.BOOT_FLAG, true) === BOOT_FLAG && view.getUint32(O.HEADER, true) === HDRS_MAGIC;
}

type BzImageLayout = Omit<BzImageKernel, 'kind' | 'loadStart' | 'loadEnd' | 'entry64'> & { readonly payloadOffset: number };

/** Parses and validates the setup header of the bzImage in `buf`; `source` names it in errors. */
export function parseBzImage(buf: Uint8Array, source: string): BzImageLayout {
  if (!isBzImage(buf)) throw formatError(source, 'no boot sector flag 0xaa55 at 0x1fe and "HdrS" at 0x202; pass a bzImage or an uncompressed vmlinux');
  if (buf.byteLength < MIN_IMAGE_SIZE) throw formatError(source, `the file is only ${buf.byteLength} bytes; it is truncated, re-download it`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const protocolVersion = view.getUint16(O.VERSION, true);
  const version = formatProtocolVersion(protocolVersion);
  if (protocolVersion < MIN_BOOT_PROTOCOL) {
    throw formatError(source, `boot protocol ${version} is older than 2.12 (Linux 3.8); use a newer kernel`, { protocolVersion });
  }
  if ((view.getUint16(O.XLOADFLAGS, true) & XLF_KERNEL_64) === 0) {
    throw formatError(source, `boot protocol ${version} image without XLF_KERNEL_64 has no 64-bit entry point; use an x86_64 kernel`, { protocolVersion });
  }
  if ((view.getUint8(O.LOADFLAGS) & LOADED_HIGH) === 0) {
    throw formatError(source, 'it is a zImage (LOADED_HIGH clear), which loads below 1 MiB; use a bzImage', { protocolVersion });
  }
  const setupSects = view.getUint8(O.SETUP_SECTS) || 4;
  const payloadOffset = (setupSects + 1) * 512;
  if (payloadOffset >= buf.byteLength) {
    throw formatError(source, `its ${setupSects} setup sectors reach past the end of the ${buf.byteLength}-byte file, leaving no kernel; it is truncated, re-download it`, { setupSects });
  }
  const relocatable = view.getUint8(O.RELOCATABLE_KERNEL) !== 0;
  const kernelAlignment = view.getUint32(O.KERNEL_ALIGNMENT, true);
  if (relocatable && (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0)) {
    throw formatError(source, `kernel_alignment ${hex(kernelAlignment)} is not a power of two`, { kernelAlignment });
  }
  const prefAddress = view.getBigUint64(O.PREF_ADDRESS, true);
  if (prefAddress >= 1n << 48n) throw formatError(source, `pref_address ${hex(prefAddress)} is implausible`, { prefAddress: hex(prefAddress) });
  const headerEnd = Math.min(O.HEADER + view.getUint8(O.JUMP + 1), ZERO_PAGE_HDR_END, buf.byteLength);
  return {
    setupHeader: buf.slice(O.SETUP_SECTS, headerEnd),
    protocolVersion,
    initSize: view.getUint32(O.INIT_SIZE, true),
    kernelAlignment,
    relocatable,
    prefAddress: Number(prefAddress),
    cmdlineSize: view.getUint32(O.CMDLINE_SIZE, true),
    initrdAddrMax: view.getUint32(O.INITRD_ADDR_MAX, true),
    payloadOffset,
    payloadSize: buf.byteLength - payloadOffset,
  };
}

/**
 * Where the decompressor works (arch/x86/boot/compressed/head_64.S): from the load address rounded up
 * to kernel_alignment when relocatable, but never below pref_address (LOAD_PHYSICAL_ADDR), for init_size.
 */
function bootFootprint(layout: BzImageLayout, loadStart: number): { base: number; end: number } {
  const { relocatable, kernelAlignment, prefAddress, initSize, payloadSize } = layout;
  const aligned = relocatable ? Math.ceil(loadStart / kernelAlignment) * kernelAlignment : prefAddress;
  const base = Math.max(aligned, prefAddress);
  return { base, end: Math.max(loadStart + payloadSize, base + initSize) };
}

/**
 * Loads the bzImage in `buf` at HIMEM_START. The whole boot footprint must fit in the first RAM region
 * (below the 32-bit MMIO gap), else KERNEL_TOO_BIG with the sizes.
 */
export function loadBzImage(mem: GuestMemory, buf: Uint8Array, source: string): BzImageKernel {
  const layout = parseBzImage(buf, source);
  const loadStart = HIMEM_START;
  const { base, end: loadEnd } = bootFootprint(layout, loadStart);
  const first = mem.regions[0];
  const firstEnd = first ? first.gpa + first.size : 0;
  if (!mem.contains(loadStart, loadEnd - loadStart)) {
    const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new MatchlockError(
      ErrorCodes.KERNEL_TOO_BIG,
      `kernel ${source} needs guest memory up to ${hex(loadEnd)} (${mib(loadEnd)}: a ${mib(layout.payloadSize)} image at ${hex(loadStart)} that decompresses into ${mib(layout.initSize)} from ${hex(base)}) but RAM below the MMIO gap ends at ${hex(firstEnd)} (${mib(firstEnd)}): give the VM more memory`,
      { path: source, loadEnd, payloadSize: layout.payloadSize, initSize: layout.initSize, ramEnd: firstEnd },
    );
  }
  mem.write(loadStart, buf.subarray(layout.payloadOffset));
  return {
    kind: 'bzimage',
    entry64: loadStart + STARTUP_64_OFFSET,
    loadStart,
    loadEnd,
    setupHeader: layout.setupHeader,
    protocolVersion: layout.protocolVersion,
    initSize: layout.initSize,
    kernelAlignment: layout.kernelAlignment,
    relocatable: layout.relocatable,
    prefAddress: layout.prefAddress,
    cmdlineSize: layout.cmdlineSize,
    initrdAddrMax: layout.initrdAddrMax,
    payloadSize: layout.payloadSize,
  };
}
