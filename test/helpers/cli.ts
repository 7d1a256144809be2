import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const MATCHLOCK = `${REPO}bin/matchlock`;
export const TEST_GUEST = `${REPO}test/guests/build/testguest.elf`;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Record<string, string>;
  readonly uid?: number;
  readonly gid?: number;
  readonly timeoutMs?: number;
  /** A command that runs matchlock (e.g. `ip netns exec NS`). */
  readonly wrap?: readonly string[];
  /** Called with each chunk of stdout, with the child, e.g. to signal it once some output appeared. */
  readonly onStdout?: (chunk: string, all: string, child: ReturnType<typeof spawn>) => void;
}

/** Runs bin/matchlock and collects its output. */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [file, ...pre] = opts.wrap === undefined || opts.wrap.length === 0 ? [MATCHLOCK] : [...opts.wrap, MATCHLOCK];
    const child = spawn(file!, [...pre, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid }),
      ...(opts.gid === undefined ? {} : { gid: opts.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      opts.onStdout?.(c, stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The pino JSON lines of a run's stderr (anything else, and lines that are not whole JSON objects, skipped). */
export function logLines(stderr: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec: unknown = JSON.parse(line);
      if (typeof rec === 'object' && rec !== null) out.push(rec as Record<string, unknown>);
    } catch {
      // a line cut short, or not ours
    }
  }
  return out;
}
