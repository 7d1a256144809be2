/** Network namespaces for tests, and the tap-peer helper (test/helpers/tap-peer.c) built with gcc. */
import type { ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

let peer: string | null = null;

/** Builds tap-peer once per process; the binary is removed at exit. */
export function tapPeer(): string {
  if (peer !== null) return peer;
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-tap-peer-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'tap-peer');
  execFileSync('gcc', ['-O2', '-Wall', '-o', exe, fileURLToPath(new URL('./tap-peer.c', import.meta.url))]);
  peer = exe;
  return exe;
}

/** A fresh network namespace, deleted when the test ends. */
export function netns(t: ExecutionContext, tag: string): string {
  const name = `mlt-${tag}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', name]);
  t.teardown(() => execFileSync('ip', ['netns', 'del', name]));
  return name;
}

export interface PeerRun {
  /** Resolves when tap-peer has bound its socket (it printed READY), for the modes that print it. */
  readonly ready: Promise<void>;
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Runs tap-peer inside `ns`. */
export function runPeer(ns: string, args: readonly string[]): PeerRun {
  const child = spawn('ip', ['netns', 'exec', ns, tapPeer(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => { markReady = resolve; });
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
    if (stdout.includes('READY\n')) markReady();
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      markReady();
      resolve({ code, stdout, stderr });
    });
  });
  return { ready, done };
}

/** Waits until interface `name` exists in `ns` (a VMM creating its TAP, say). */
export async function waitForInterface(ns: string, name: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'show', name], { stdio: 'ignore' });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`interface ${name} did not appear in ${ns} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
