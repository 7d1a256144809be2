/**
 * Loading a guest kernel from a host file: an uncompressed ELF vmlinux or a bzImage, told apart by magic.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import type { GuestMemory } from '../memory/index.ts';
import { isBzImage, loadBzImage } from './bzimage.ts';
import type { BzImageKernel } from './bzimage.ts';
import { loadElf } from './elf.ts';
import type { ElfKernel } from './elf.ts';
import { readHostFile } from './host-file.ts';

export type KernelFormat = 'elf' | 'bzimage';
export type LoadedKernel = ElfKernel | BzImageKernel;

/** The kernel format by magic: ELF `\x7fELF`, or bzImage (0xaa55 at 0x1fe and "HdrS" at 0x202); null if neither. */
export function detectKernelFormat(buf: Uint8Array): KernelFormat | null {
  if (buf.byteLength >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46) return 'elf';
  if (isBzImage(buf)) return 'bzimage';
  return null;
}

function firstBytes(buf: Uint8Array): string {
  if (buf.byteLength === 0) return 'the file is empty';
  const shown = Array.from(buf.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `first bytes ${shown}${buf.byteLength > 8 ? ' ...' : ''}`;
}

/** Loads a kernel image already in memory; `source` names it in errors. */
export function loadKernelImage(mem: GuestMemory, buf: Uint8Array, source: string): LoadedKernel {
  switch (detectKernelFormat(buf)) {
    case 'elf':
      return loadElf(mem, buf, source);
    case 'bzimage':
      return loadBzImage(mem, buf, source);
    case null:
      throw new MatchlockError(
        ErrorCodes.KERNEL_FORMAT,
        `kernel ${source} is neither an ELF vmlinux nor a bzImage (${firstBytes(buf)}): pass an uncompressed vmlinux or a bzImage`,
        { path: source },
      );
  }
}

/**
 * Reads the kernel at `path` and loads it into guest memory. A missing file throws KERNEL_NOT_FOUND, one
 * that cannot be read KERNEL_UNREADABLE (with the errno code), one larger than guest RAM KERNEL_TOO_BIG.
 */
export function loadKernel(mem: GuestMemory, path: string): LoadedKernel {
  const buf = readHostFile(
    path,
    ({ errno, reason }, cause) =>
      errno === 'ENOENT' || errno === 'ENOTDIR'
        ? new MatchlockError(ErrorCodes.KERNEL_NOT_FOUND, `kernel ${path} not found (${errno}): pass the path of a vmlinux or bzImage`, { path, errno }, { cause })
        : new MatchlockError(ErrorCodes.KERNEL_UNREADABLE, `kernel ${path} cannot be read (${errno}: ${reason}): check the path and its permissions`, { path, errno }, { cause }),
    (size) => {
      if (size > mem.size) {
        throw new MatchlockError(
          ErrorCodes.KERNEL_TOO_BIG,
          `kernel ${path} is ${size} bytes, more than the guest's ${mem.size} bytes of RAM: give the VM more memory or pass a smaller kernel`,
          { path, size, ramSize: mem.size },
        );
      }
      return new Uint8Array(size);
    },
  );
  return loadKernelImage(mem, buf, path);
}
