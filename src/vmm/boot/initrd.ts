/**
 * Placing the initrd: page-aligned at the top of the first RAM region (which ends at the 32-bit MMIO gap
 * or, for small guests, at the end of RAM), under the kernel's `initrd_addr_max` and above the kernel.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import type { RamRegion } from '../arch/x86_64/layout.ts';
import type { GuestMemory } from '../memory/index.ts';
import { readHostFile } from './host-file.ts';

export const INITRD_ALIGN = 0x1000;
/** Highest initrd address a kernel accepts when it says nothing else (boot protocol before 2.03). */
export const DEFAULT_INITRD_ADDR_MAX = 0x7fff_ffff;

export interface LoadedInitrd {
  readonly gpa: number;
  readonly size: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Guest-physical address for an initrd of `size` bytes: the highest page-aligned address such that it
 * ends within the first RAM region and at or below `addrMax`, starting at or above `kernelEnd`.
 * Throws INITRD when there is no such address; `source` names the initrd in the message.
 */
export function placeInitrd(
  regions: readonly RamRegion[],
  size: number,
  kernelEnd: number,
  addrMax: number = DEFAULT_INITRD_ADDR_MAX,
  source = 'initrd',
): number {
  const first = [...regions].sort((a, b) => a.gpa - b.gpa)[0];
  if (!first) throw new RangeError('guest memory has no RAM region');
  const limit = Math.min(first.gpa + first.size, addrMax + 1);
  const lowest = Math.ceil(Math.max(kernelEnd, first.gpa) / INITRD_ALIGN) * INITRD_ALIGN;
  const gpa = Math.floor((limit - size) / INITRD_ALIGN) * INITRD_ALIGN;
  if (gpa < lowest) {
    throw new MatchlockError(
      ErrorCodes.INITRD,
      `${source} is ${size} bytes but only ${Math.max(limit - lowest, 0)} bytes are free between the kernel end ${hex(kernelEnd)} and ${hex(limit)}: give the VM more memory or use a smaller initrd`,
      { path: source, size, kernelEnd, limit },
    );
  }
  return gpa;
}

/** Reads the initrd at `path` straight into guest memory, placed by `placeInitrd`. */
export function loadInitrd(mem: GuestMemory, path: string, kernelEnd: number, addrMax: number = DEFAULT_INITRD_ADDR_MAX): LoadedInitrd {
  let gpa = 0;
  const bytes = readHostFile(
    path,
    ({ errno, reason }, cause) =>
      new MatchlockError(
        ErrorCodes.INITRD,
        errno === 'ENOENT' || errno === 'ENOTDIR'
          ? `initrd ${path} not found (${errno}): pass the path of an initramfs cpio archive`
          : `initrd ${path} cannot be read (${errno}: ${reason}): check the path and its permissions`,
        { path, errno },
        { cause },
      ),
    (size) => {
      if (size === 0) throw new MatchlockError(ErrorCodes.INITRD, `initrd ${path} is empty: pass an initramfs cpio archive`, { path });
      gpa = placeInitrd(mem.regions, size, kernelEnd, addrMax, `initrd ${path}`);
      return mem.subarray(gpa, size);
    },
  );
  return { gpa, size: bytes.byteLength };
}
