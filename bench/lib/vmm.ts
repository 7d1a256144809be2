/** The two VMMs under test, the test guest they boot, and what they report. */
import { spawnSync } from 'node:child_process';
import { logLines } from '../../test/helpers/cli.ts';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { QEMU } from './kvm.ts';
import { describe, outcome, runOnce, tail, type Command } from './run.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const MATCHLOCK = fileURLToPath(new URL('../../bin/matchlock', import.meta.url));
export const GUEST_DIR = fileURLToPath(new URL('../../test/guests/', import.meta.url));
export const GUEST_ELF = fileURLToPath(new URL('../../test/guests/build/testguest.elf', import.meta.url));

/** Exit status when a VMM did not run the guest as expected (so there is nothing valid to report). */
export const EXIT_RUN_FAILED = 3;

export interface GuestRun {
  /** The guest's kernel command line (test/guests/README.md). */
  readonly cmdline: string;
  readonly memMib: number;
  readonly vcpus: number;
  /** true: the guest's COM1 goes to the VMM's stdout (for checking); false: it is discarded (for timing). */
  readonly serial: boolean;
  /** A raw image attached as the first virtio-blk device (modern virtio-mmio on both VMMs). */
  readonly drive?: string;
}

/** `bin/matchlock vm run` with info-level logs (the final "vm stopped" line carries the exit counts). */
export function matchlockCommand(g: GuestRun): Command {
  return {
    label: 'matchlock',
    file: MATCHLOCK,
    args: [
      'vm', 'run', '--kernel', GUEST_ELF, '--cmdline', g.cmdline,
      '--mem', String(g.memMib), '--vcpus', String(g.vcpus), '--serial-out', g.serial ? '-' : 'none',
      ...(g.drive === undefined ? [] : ['--drive', g.drive]),
    ],
    env: { MATCHLOCK_LOG_LEVEL: 'info' },
  };
}

/**
 * QEMU's microvm with exactly the options of test/guests/run-qemu.sh, on KVM (`-accel kvm -cpu host`), spawned
 * directly (no shell in between). `accel` exists only to exercise this plumbing on a host without KVM; the
 * benchmarks never pass it.
 */
export function qemuCommand(g: GuestRun, accel: { accel: string; cpu: string } = { accel: 'kvm', cpu: 'host' }): Command {
  return {
    label: 'qemu',
    file: QEMU,
    args: [
      '-M', 'microvm,acpi=off,pit=on,pic=on,rtc=off',
      '-accel', accel.accel, '-cpu', accel.cpu, '-m', String(g.memMib), '-smp', String(g.vcpus),
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
      '-serial', g.serial ? 'stdio' : 'null',
      '-device', 'i8042',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
      '-kernel', GUEST_ELF, '-append', g.cmdline,
      ...(g.drive === undefined ? [] : [
        '-global', 'virtio-mmio.force-legacy=false',
        '-drive', `id=d0,file=${g.drive},format=raw,if=none`, '-device', 'virtio-blk-device,drive=d0',
      ]),
    ],
  };
}

/** Builds the test guest (make is a no-op when it is up to date); exits 3 when that fails. */
export function ensureGuest(): void {
  const r = spawnSync('make', ['-s', '-C', GUEST_DIR], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error !== undefined || r.status !== 0) {
    process.stderr.write(`bench: building the test guest failed (make -C ${GUEST_DIR}): ${r.error?.message ?? `exit ${r.status}`}\n`);
    process.exit(EXIT_RUN_FAILED);
  }
}

/** Exit counts by reason name (KVM_EXIT_IO, ...) from matchlock's final `"msg":"vm stopped"` log line, or null. */
export function matchlockExits(stderr: string): Record<string, number> | null {
  const stopped = logLines(stderr).filter((rec) => rec['msg'] === 'vm stopped').pop();
  const exits = stopped?.['exits'];
  if (typeof exits !== 'object' || exits === null) return null;
  const counts: Record<string, number> = {};
  for (const [k, v] of Object.entries(exits)) if (typeof v === 'number') counts[k] = v;
  return counts;
}

/**
 * Runs `cmd` once (with the serial console on stdout) and checks that it exited 0 having printed every expected
 * line; on failure prints what happened and exits 3. Catches a broken setup before anything is timed.
 */
export async function checkGuestRun(cmd: Command, expectLines: readonly string[]): Promise<void> {
  const r = await runOnce(cmd);
  const lines = new Set(r.stdout.split('\n'));
  const missing = expectLines.filter((l) => !lines.has(l));
  if (r.exitCode === 0 && !r.timedOut && missing.length === 0) return;
  process.stderr.write(
    `bench: ${cmd.label} did not run the test guest as expected (${outcome(r)}` +
      `${missing.length > 0 ? `; missing ${missing.map((m) => JSON.stringify(m)).join(', ')}` : ''})\n` +
      `  command: ${describe(cmd)}\n  stdout:\n${tail(r.stdout)}\n  stderr:\n${tail(r.stderr)}\n`,
  );
  process.exit(EXIT_RUN_FAILED);
}

/** Dies (exit 3) when a timed run did not end cleanly: its time would measure something else. */
export function requireClean(cmd: Command, r: { exitCode: number | null; timedOut: boolean; signal: NodeJS.Signals | null; stderr: string; wallMs: number }): void {
  if (r.exitCode === 0 && !r.timedOut) return;
  process.stderr.write(`bench: a timed ${cmd.label} run failed (${outcome({ ...r, stdout: '' })})\n  command: ${describe(cmd)}\n  stderr:\n${tail(r.stderr)}\n`);
  process.exit(EXIT_RUN_FAILED);
}

/** One line describing the host, printed above the results. */
export function hostDescription(qemuVersion: string): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${cpus().length} CPUs, Linux ${release()}; node ${process.version}; ${qemuVersion}`;
}
