/**
 * A jailed VMM for tests: `matchlock jailer … -- --api-sock /run/api.sock`, waited for until its API socket
 * appears in the jail (or the jailer exits), with its host pid and a client for its API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from './api-client.ts';
import { MATCHLOCK } from './cli.ts';

export const NOBODY = 65534;

export interface Jailed {
  readonly child: ChildProcess;
  readonly client: ApiClient;
  /** The jail directory on the host, and the VMM's host pid (0 if it never started). */
  readonly dir: string;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
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
  const child = spawn(MATCHLOCK, ['jailer', '--id', id, '--uid', String(NOBODY), '--gid', String(NOBODY), '--chroot-base-dir', base, ...jailArgs, '--', '--api-sock', '/run/api.sock', ...vmmArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { output += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { output += c; });
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => { gone = true; resolve({ code, signal }); });
  });
  const dir = join(base, id);
  const sock = join(dir, 'root/run/api.sock');
  // Generous: Node starts in well under a second on a host, but takes tens of seconds in the emulated KVM sandbox.
  const deadline = Date.now() + 240_000;
  while (waitForSocket && !existsSync(sock) && !gone) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the jailed VMM made no API socket in 240 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (waitForSocket && gone) throw new Error(`the jailer exited before its VMM served: ${(await exited).code ?? ''} ${output}`);
  const client = new ApiClient(sock);
  return {
    child, client, dir, exited,
    pid: pidOf(`vmm --jailed --id ${id} `),
    output: () => output,
    async stop() {
      client.close();
      if (!gone) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Whether a process is gone or a zombie (dead, waiting to be reaped). */
function dead(pid: number): boolean {
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
