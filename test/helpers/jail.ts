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
  const deadline = Date.now() + 60_000;
  while (waitForSocket && !existsSync(sock) && !gone) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the jailed VMM made no API socket in 60 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
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

/** Runs gdb against a process to make it call `expr` (a libc function), as if the VMM had made that call; `killed` when the call should end it. */
export function gdbCall(pid: number, expr: string, killed = false): Promise<string> {
  return new Promise((resolve) => {
    // A call that gets the process killed leaves gdb waiting (and the process a zombie only gdb may reap): cut it short.
    const gdb = spawn('gdb', ['-nx', '-batch', '-p', String(pid), '-ex', 'set confirm off', '-ex', `print ${expr}`, '-ex', 'detach'], {
      stdio: ['ignore', 'pipe', 'pipe'], timeout: killed ? 5000 : 60_000, killSignal: 'SIGKILL',
    });
    let out = '';
    gdb.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    gdb.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    gdb.on('close', () => resolve(out));
  });
}
