/**
 * Preconditions. The benchmarks compare matchlock with QEMU, both on KVM; on a host without a usable /dev/kvm they
 * print one line and exit 2 rather than measure anything else (QEMU under TCG is no baseline for a KVM VMM).
 */
import { spawnSync } from 'node:child_process';
import { kvmUnusableReason } from '../../src/vmm/kvm/index.ts';

/** Exit status of a benchmark that cannot run on this host (no KVM, no QEMU). */
export const EXIT_CANNOT_RUN = 2;

export const KVM_DEVICE = '/dev/kvm';

function cannotRun(line: string): never {
  process.stderr.write(`bench: ${line}\n`);
  process.exit(EXIT_CANNOT_RUN);
}

/** Exits 2 with one line when /dev/kvm cannot be opened read-write. */
export function requireKvm(): void {
  const reason = kvmUnusableReason(KVM_DEVICE);
  if (reason !== null) {
    cannotRun(`${KVM_DEVICE} is not usable here (${reason}): these benchmarks compare against QEMU/KVM and need a KVM host`);
  }
}

export const QEMU = process.env['QEMU'] ?? 'qemu-system-x86_64';

/** Exits 2 with one line when QEMU cannot be started; returns its version line otherwise. */
export function requireQemu(): string {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? ((r.error as { code?: string }).code ?? r.error.message) : `exit ${r.status}`;
    cannotRun(`${QEMU} cannot be run (${why}): these benchmarks compare against QEMU/KVM (Debian package qemu-system-x86)`);
  }
  return r.stdout.split('\n')[0] ?? '';
}
