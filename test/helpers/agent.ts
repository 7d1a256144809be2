/**
 * The guest agent run as a process in its own PID, mount, UTS and network namespaces (as PID 1 there, so it
 * sets the system up and "powers off" as in a VM: a reboot by a namespace's init kills it with SIGHUP), with
 * a Unix socket in place of vsock and a stand-in runner script.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { GuestSession, dialGuest } from '../../src/runner/index.ts';
import { REPO } from './cli.ts';

/** The stand-in runner: what it does is chosen by MODE in the assignment's environment. */
export const STAND_IN_RUNNER = `#!/bin/sh
case "$MODE" in
ok)
  echo "runner user=$(id -un) uid=$(id -u) cwd=$(pwd) home=$HOME greeting=$GREETING"
  echo "groups=$(id -G)"
  echo "jit length=\${#ACTIONS_RUNNER_INPUT_JITCONFIG}"
  n=0; for f in /proc/[0-9]*/cmdline; do case "$(tr '\\0' ' ' < "$f" 2>/dev/null)" in *"$ACTIONS_RUNNER_INPUT_JITCONFIG"*) n=$((n+1)) ;; esac; done
  echo "on a command line: $n"
  echo "to stderr" >&2
  exit 0 ;;
code) echo "failing"; exit "$CODE" ;;
signal) kill -KILL $$ ;;
hang) trap '' TERM; echo "hanging"; while :; do sleep 1; done ;;
wait) echo "waiting"; while [ ! -e "$GO" ]; do sleep 0.05; done; echo "after the wait"; exit 4 ;;
spam) i=0; while [ $i -lt "$LINES" ]; do echo "line $i of output that is a little long to fill the buffer quickly"; i=$((i+1)); done; exit 0 ;;
cache) echo "written by the job" > "$CACHE/from-job"; stat -c "cache owner=%U mode=%a" "$CACHE"; exit 0 ;;
orphan) setsid sh -c 'sleep 0.3' </dev/null >/dev/null 2>&1 & echo "orphan started"; exit 0 ;;
ids) grep -E '^(Uid|Gid|Groups):' /proc/$$/status; exit 0 ;;
hostname) echo "hostname=$(cat /proc/sys/kernel/hostname) pid1=$(cat /proc/1/comm)"; exit 0 ;;
*) echo "unknown MODE $MODE" >&2; exit 99 ;;
esac
`;

export interface AgentUnderTest {
  readonly dir: string;
  readonly socket: string;
  readonly child: ChildProcess;
  stderr(): string;
  /** How the namespace ended: the agent's "power off" is a SIGHUP of unshare. */
  readonly ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const NODE = join(REPO, 'node_modules/.bin/node');

/** The agent's launcher as built here (its --run-as starts the runner); `buildLauncher` brings it up to date. */
export const LAUNCHER = join(REPO, 'src/guest/launcher/build/matchlock-agent');

/** Runs make for the launcher (it rebuilds only what changed); returns make's failure, or null. */
export function buildLauncher(): string | null {
  const make = spawnSync('make', ['-s', '-C', join(REPO, 'src/guest/launcher')], { encoding: 'utf8' });
  return make.status === 0 ? null : `make -C src/guest/launcher failed (run scripts/setup for the toolchain):\n${make.stdout}${make.stderr}`;
}

/**
 * Starts the agent; `args` are added to its command line. With `chroot`, the agent injected into that tree
 * (/opt/matchlock) runs chrooted there, on the tree's userland, and its socket and runner are inside the tree;
 * otherwise it is run from src/ and starts the runner through a copy of LAUNCHER. `etcGroup` is an /etc/group for the
 * agent's mount namespace, bind-mounted over the host's there (not for a chroot: write the tree's own).
 */
export function startAgent(args: readonly string[] = [], opts: { user?: string; chroot?: string; etcGroup?: string } = {}): AgentUnderTest {
  // Not under /tmp, /run or /dev: the agent mounts fresh file systems there in its namespace.
  const dir = opts.chroot === undefined ? mkdtempSync('/var/tmp/matchlock-agent-') : mkdtempSync(join(opts.chroot, 'agent-'));
  chmodSync(dir, 0o755);
  const inside = (p: string): string => (opts.chroot === undefined ? p : p.slice(opts.chroot.length));
  const runner = join(dir, 'run.sh');
  writeFileSync(runner, STAND_IN_RUNNER, { mode: 0o755 });
  const socket = join(dir, 'agent.sock');
  // A copy of the launcher beside the runner: the checkout may be under /tmp, which the agent covers before it runs a job.
  const launcher = join(dir, 'matchlock-agent');
  if (opts.chroot === undefined) copyFileSync(LAUNCHER, launcher);
  const agent = opts.chroot === undefined ? [NODE, join(REPO, 'src/guest/main.ts'), '--launcher', launcher] : ['chroot', opts.chroot, '/opt/matchlock/bin/matchlock-agent'];
  if (opts.etcGroup !== undefined) {
    const group = join(dir, 'group');
    writeFileSync(group, opts.etcGroup);
    agent.unshift('/bin/sh', '-c', 'mount --bind "$0" /etc/group && exec "$@"', group);
  }
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--mount', '--uts', '--net', '--kill-child', '--',
    ...agent, '--listen', `unix:${inside(socket)}`, '--runner', inside(runner), '--user', opts.user ?? 'nobody', '--kill-grace-ms', '300', ...args,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => { child.once('exit', (code, signal) => { resolve({ code, signal }); }); });
  return { dir, socket, child, stderr: () => err, ended };
}

export interface Session {
  readonly session: GuestSession;
  out(): string;
  err(): string;
}

/** Connects to the agent (waiting for it to listen) and collects the runner's output. */
export async function sessionWith(agent: AgentUnderTest, timeoutMs = 30_000): Promise<Session> {
  const socket = await dialGuest({ kind: 'unix', path: agent.socket }, timeoutMs);
  let out = '';
  let err = '';
  const session = new GuestSession(socket, pino({ level: 'silent' }), {
    onOutput: (stream, data) => { if (stream === 'STDOUT') out += data.toString(); else err += data.toString(); },
  });
  return { session, out: () => out, err: () => err };
}

export function assignment(env: Record<string, string>, extra: { timeoutSeconds?: number; ackTimeoutSeconds?: number; caches?: { device: string; path: string }[] } = {}) {
  return {
    jobId: 'job-42', jitConfig: JIT_CONFIG, env, timeoutSeconds: extra.timeoutSeconds ?? 60, caches: extra.caches ?? [],
    ...(extra.ackTimeoutSeconds === undefined ? {} : { ackTimeoutSeconds: extra.ackTimeoutSeconds }),
  };
}

/** A JIT configuration-shaped secret (base64 of JSON), unique to find it wherever it leaks. */
export const JIT_CONFIG = Buffer.from(JSON.stringify({ '.runner': 'c2VjcmV0LXJ1bm5lci1jb25maWc=', '.credentials': 'leak-canary-4d1f' })).toString('base64');
