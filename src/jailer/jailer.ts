/**
 * `matchlock jailer`: the first stage, as root in the host's namespaces. It makes the jail directory and the
 * VM's cgroup, starts the second stage (jail-exec.ts) as PID 1 of a new PID namespace with an empty
 * environment and only fds 0-2, moves it into the cgroup, lets it confine itself and exec the VMM, forwards
 * SIGTERM and SIGINT to it, and when it has exited removes the cgroup and the jail directory. Its exit status
 * is the VMM's (128 + signal when the VMM was killed, e.g. 159 for SIGSYS from the seccomp filter).
 */
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { existsSync, mkdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import * as sys from '../vmm/sys/index.ts';
import { VmCgroup } from './cgroups.ts';
import { GO, PLAN_FD, type JailPlan } from './jail-plan.ts';
import { MAIN, runtimeBinds } from './jail-fs.ts';
import type { JailSpec } from './jail-spec.ts';

const STAGE_TWO = new URL('./jail-exec.ts', import.meta.url).pathname;
const FORWARDED = ['SIGTERM', 'SIGINT'] as const;
/** How long a VMM has to end after a forwarded signal before it is killed (PID 1 ignores signals it has no handler for). */
export const STOP_GRACE_MS = 5000;

function jailError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.JAIL, message, details);
}

/** The jail directory of a VM, and its root. */
export function jailPaths(spec: Pick<JailSpec, 'baseDir' | 'id'>): { dir: string; root: string } {
  const dir = join(spec.baseDir, spec.id);
  return { dir, root: join(dir, 'root') };
}

function checkBinds(spec: JailSpec): void {
  for (const b of spec.binds) {
    if (!existsSync(b.source)) throw jailError(`--bind ${b.source}: no such file or directory`, { path: b.source });
  }
}

/** Runs the VMM confined; resolves with its exit status once everything made for it is removed. */
export async function runJailed(spec: JailSpec, log: Logger): Promise<number> {
  if (process.getuid?.() !== 0) throw jailError('the jailer must run as root (it makes namespaces, mounts, device nodes and cgroups)');
  checkBinds(spec);
  const { dir, root } = jailPaths(spec);
  const nodePath = realpathSync(process.execPath);
  const plan: JailPlan = {
    root,
    uid: spec.uid,
    gid: spec.gid,
    netns: spec.netns,
    binds: [...runtimeBinds(nodePath), ...spec.binds],
    fileSizeLimit: spec.fileSizeLimit,
    openFilesLimit: spec.openFilesLimit,
    exec: {
      path: nodePath,
      argv: [nodePath, MAIN, 'vmm', '--jailed', '--id', spec.id, ...spec.vmmArgs],
      env: ['UV_USE_IO_URING=0'],
    },
  };
  if (spec.netns !== null && !statSync(spec.netns, { throwIfNoEntry: false })) throw jailError(`--netns ${spec.netns}: no such network namespace`, { netns: spec.netns });
  mkdirSync(spec.baseDir, { recursive: true, mode: 0o755 });
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (e: unknown) {
    if ((e as { code?: string }).code === 'EEXIST') throw jailError(`jail ${dir} exists already: another VM has id ${spec.id} (or a crashed one left it: remove it)`, { dir });
    throw e;
  }
  mkdirSync(root, { mode: 0o755 });
  const jailLog = log.child({ jail: spec.id });
  let cgroup: VmCgroup | null = null;
  try {
    cgroup = VmCgroup.create(spec.cgroupVersion, spec.parentCgroup, spec.id, spec.cgroups);
    return await runStageTwo(plan, cgroup, jailLog);
  } finally {
    const left = cgroup?.remove() ?? [];
    if (left.length > 0) jailLog.error({ cgroups: left }, 'cgroup not removed');
    rmSync(dir, { recursive: true, force: true });
    jailLog.info({ dir }, 'jail removed');
  }
}

async function runStageTwo(plan: JailPlan, cgroup: VmCgroup, log: Logger): Promise<number> {
  // The next child is PID 1 of a new PID namespace (unshare applies to this thread's children; spawn forks here).
  sys.unshare(sys.CLONE_NEWPID);
  const child = spawn(process.execPath, [STAGE_TWO], { env: {}, stdio: ['inherit', 'inherit', 'inherit', 'pipe'], cwd: '/' });
  const channel = child.stdio[PLAN_FD] as unknown as Duplex; // a socketpair: the plan goes in, a failure comes out
  let failure = '';
  channel.setEncoding('utf8');
  channel.on('data', (chunk: string) => { failure += chunk; });
  channel.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  let killer: NodeJS.Timeout | null = null;
  const forward = (s: NodeJS.Signals): void => {
    child.kill(s);
    killer ??= setTimeout(() => {
      log.warn({ graceMs: STOP_GRACE_MS }, 'vmm did not stop: killing it');
      child.kill('SIGKILL');
    }, STOP_GRACE_MS);
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    if (child.pid === undefined) throw jailError('cannot start the jail process');
    cgroup.add(child.pid);
    channel.write(`${JSON.stringify(plan)}\n${GO}`);
    log.info({ pid: child.pid, root: plan.root }, 'vmm jailed');
    const { code, signal } = await exited;
    if (failure !== '') {
      const reported = JSON.parse(failure.split('\n')[0]!) as { error: string };
      throw jailError(`the jail could not be set up: ${reported.error}`);
    }
    if (signal !== null) {
      const number = constants.signals[signal];
      log.error({ signal, seccomp: signal === 'SIGSYS' }, signal === 'SIGSYS' ? 'vmm killed: a system call outside its seccomp allow-list' : 'vmm killed');
      return 128 + number;
    }
    return code ?? 1;
  } finally {
    if (killer !== null) clearTimeout(killer);
    for (const s of FORWARDED) process.off(s, forward);
  }
}
