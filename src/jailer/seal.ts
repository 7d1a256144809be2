/**
 * The last step of confinement, taken by the jailed VMM itself as it starts (`matchlock vmm --jailed`): a
 * second seccomp filter, on every thread, that kills the process if it tries to start a program. The jail's
 * filter had to allow execve to start the VMM; from here on nothing can.
 */
import { ErrorCodes, MatchlockError } from '../errors.ts';
import * as sys from '../vmm/sys/index.ts';
import { assemble, encode } from './seccomp-bpf.ts';
import { SEALED_POLICY } from './seccomp-policy.ts';

export function sealVmm(): void {
  if (!sys.hasNoNewPrivileges()) {
    throw new MatchlockError(ErrorCodes.JAIL, '--jailed is for a VMM started by `matchlock jailer` (no new privileges is not set)', {});
  }
  sys.installSeccomp(encode(assemble(SEALED_POLICY)), sys.SECCOMP_FILTER_FLAG_TSYNC);
}
