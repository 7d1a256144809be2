import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { errno, errnoName } from './libc.ts';

/** The error for a failed ioctl, naming the request and errno. Call right after the failing call. */
export function ioctlError(name: string, extra: Record<string, unknown> = {}): MatchlockError {
  const code = errno();
  const en = errnoName(code);
  return new MatchlockError(ErrorCodes.IOCTL, `ioctl ${name} failed: ${en}`, { ioctl: name, errno: en, ...extra });
}

/** The error for a failed system call other than ioctl. Call right after the failing call. */
export function syscallError(name: string, extra: Record<string, unknown> = {}): MatchlockError {
  const code = errno();
  const en = errnoName(code);
  return new MatchlockError(ErrorCodes.SYSCALL, `${name} failed: ${en}`, { syscall: name, errno: en, ...extra });
}
