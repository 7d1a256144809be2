import { closeSync, constants, openSync, statSync } from 'node:fs';

/**
 * Why a KVM device node cannot be used, or null when it can: it must be a character device that this process
 * opens read-write. Touches nothing (no ioctl, no file created); for tests, benchmarks and diagnostics.
 */
export function kvmUnusableReason(device: string): string | null {
  try {
    if (!statSync(device).isCharacterDevice()) return 'not a character device';
    closeSync(openSync(device, constants.O_RDWR));
    return null;
  } catch (e: unknown) {
    const code = (e as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : String(e);
  }
}
