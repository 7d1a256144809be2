/** Runs a command to completion and times it: wall clock from just before spawn() to the child's exit. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Command {
  /** Short name for tables and messages. */
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface RunResult {
  readonly wallMs: number;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

export const DEFAULT_TIMEOUT_MS = 60_000;

export function describe(cmd: Command): string {
  return [cmd.file, ...cmd.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/**
 * Spawns `cmd` once (stdin closed, stdout and stderr collected through pipes) and resolves when it has exited.
 * `wallMs` spans spawn() to the 'exit' event; a run that outlives `timeoutMs` is killed with SIGKILL.
 */
export function runOnce(cmd: Command, timeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null; end: bigint } | null = null;
    let closed = false;
    const start = process.hrtime.bigint();
    const child = spawn(cmd.file, cmd.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...cmd.env },
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const finish = (): void => {
      if (exited === null || !closed) return;
      clearTimeout(timer);
      resolve({
        wallMs: Number(exited.end - start) / 1e6,
        exitCode: exited.code,
        signal: exited.signal,
        timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    };
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal, end: process.hrtime.bigint() };
      finish();
    });
    child.on('close', () => {
      closed = true;
      finish();
    });
  });
}

/** One line saying how a run ended, for error messages. */
export function outcome(r: RunResult): string {
  if (r.timedOut) return `timed out after ${(r.wallMs / 1000).toFixed(1)} s`;
  if (r.signal !== null) return `killed by ${r.signal}`;
  return `exit ${r.exitCode}`;
}

/** The last `n` lines of a text, indented, for error messages. */
export function tail(text: string, n: number = 8): string {
  if (text.trim() === '') return '    (empty)';
  const lines = text.trimEnd().split('\n').slice(-n);
  return lines.map((l) => `    ${l}`).join('\n');
}

export const GNU_TIME = '/usr/bin/time';

export function haveGnuTime(): boolean {
  return existsSync(GNU_TIME);
}

/**
 * Runs `cmd` under GNU time and returns its peak resident set size (`%M`, KiB) with the run itself. GNU time
 * writes into its own file (-o) so the child's stderr is left alone. Not for timing: time adds a fork and exec.
 */
export async function runWithPeakRss(cmd: Command, timeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<{ run: RunResult; peakRssKib: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-bench-'));
  try {
    const file = join(dir, 'rss');
    const run = await runOnce({ ...cmd, file: GNU_TIME, args: ['-f', '%M', '-o', file, '--', cmd.file, ...cmd.args] }, timeoutMs);
    const last = readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '';
    const kib = Number(last);
    if (!/^\d+$/.test(last) || kib <= 0) throw new Error(`${GNU_TIME} gave no peak RSS for ${cmd.label}: ${JSON.stringify(last)}`);
    return { run, peakRssKib: kib };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
