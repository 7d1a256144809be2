/**
 * A jailed VMM for tests: `matchlock jailer … -- --api-sock /run/api.sock`, waited for until its API socket
 * appears in the jail (or the jailer exits), with its host pid and a client for its API.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, type VmmProcess } from './api-client.ts';
import { MATCHLOCK } from './cli.ts';

export const NOBODY = 65534;

export interface Jailed extends VmmProcess {
  /** The jail directory on the host, and the VMM's host pid (0 if it never started). */
  readonly dir: string;
  readonly pid: number;
  /** The jailer's stdout (the guest's console) and stderr (the logs). */
  output(): string;
}

/** The host pid of the process whose command line contains `needle` (the jailed VMM's: `vmm --jailed --id ID`). */
export function pidOf(needle: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').includes(needle)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return 0;
}

export async function startJailed(base: string, id: string, jailArgs: readonly string[], vmmArgs: readonly string[] = [], waitForSocket = true): Promise<Jailed> {
  const dir = join(base, id);
  const proc = await launch(MATCHLOCK, [
    'jailer', '--id', id, '--uid', String(NOBODY), '--gid', String(NOBODY), '--chroot-base-dir', base, ...jailArgs,
    '--', '--api-sock', '/run/api.sock', ...vmmArgs,
  ], join(dir, 'root/run/api.sock'), { waitForSocket });
  const output = (): string => proc.stdout() + proc.stderr();
  if (waitForSocket && (proc.child.exitCode !== null || proc.child.signalCode !== null)) throw new Error(`the jailer exited before its VMM served: ${proc.child.exitCode} ${output()}`);
  return { ...proc, dir, pid: pidOf(`vmm --jailed --id ${id} `), output };
}

/** Whether a process is gone or a zombie (dead, waiting to be reaped). */
export function dead(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * Runs gdb against a process to make it call `expr` (a libc function), as if the VMM had made that call.
 * `killed`: the call should end the process; gdb, its tracer, would then wait for ever (and the process stay a
 * zombie only gdb may reap), so gdb is killed as soon as the process is dead.
 */
export function gdbCall(pid: number, expr: string, killed = false): Promise<string> {
  return new Promise((resolve) => {
    const gdb = spawn('gdb', ['-nx', '-batch', '-p', String(pid), '-ex', 'set confirm off', '-ex', `print ${expr}`, '-ex', 'detach'], {
      stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000, killSignal: 'SIGKILL',
    });
    let out = '';
    gdb.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    gdb.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const watch = killed ? setInterval(() => { if (dead(pid)) gdb.kill('SIGKILL'); }, 100) : null;
    gdb.on('close', () => {
      if (watch !== null) clearInterval(watch);
      resolve(out);
    });
  });
}
