/**
 * The actions runner as a child of the agent: started as the unprivileged user with the groups initgroups(3)
 * would give it (through the launcher's --run-as; Node's spawn with uid/gid would drop them all), in its own
 * process group, with the JIT configuration in its environment (ACTIONS_RUNNER_INPUT_JITCONFIG, which the runner
 * reads as its --jitconfig argument), never on a command line where every process in the VM could read it.
 * Stopped as a group (SIGTERM, then SIGKILL after a grace) on timeout or cancel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import type { RunnerUser } from './system-setup.ts';

export interface RunnerExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  readonly durationMs: number;
}

export interface RunnerOptions {
  readonly script: string;
  /** The agent's launcher, whose `--run-as` drops to the user and its groups, then execs the script. */
  readonly launcher: string;
  readonly user: RunnerUser;
  readonly jitConfig: string;
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly killGraceMs: number;
  readonly onOutput: (stream: 'STDOUT' | 'STDERR', data: Buffer) => void;
}

/** Refuses a launcher that cannot be run, before the runner is started through it. */
export function checkLauncher(launcher: string): void {
  try {
    accessSync(launcher, fsc.X_OK);
  } catch (e: unknown) {
    throw new MatchlockError(ErrorCodes.GUEST, `the agent's launcher ${launcher}, which starts the runner as its user, cannot be run (${errorMessage(e)}): inject the agent again (matchlock image build) or give --launcher`, { launcher });
  }
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class RunnerProcess {
  readonly pid: number;
  readonly exited: Promise<RunnerExit>;
  #child: ChildProcess;
  #stopping: 'timeout' | 'cancel' | null = null;
  #killTimer: NodeJS.Timeout | null = null;

  constructor(opts: RunnerOptions) {
    const started = Date.now();
    const { uid, gid, groups } = opts.user;
    this.#child = spawn(opts.launcher, ['--run-as', String(uid), String(gid), groups.join(','), '--', opts.script], {
      cwd: dirname(opts.script),
      detached: true, // its own process group, so that a stop reaches everything it started
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: BASE_PATH, ...opts.env,
        HOME: opts.user.home, USER: opts.user.name, LOGNAME: opts.user.name,
        ACTIONS_RUNNER_INPUT_JITCONFIG: opts.jitConfig,
      },
    });
    const pid = this.#child.pid;
    this.#child.stdout!.on('data', (c: Buffer) => { opts.onOutput('STDOUT', c); });
    this.#child.stderr!.on('data', (c: Buffer) => { opts.onOutput('STDERR', c); });
    const timeout = setTimeout(() => { this.stop('timeout', opts.killGraceMs); }, opts.timeoutMs);
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timeout);
        if (this.#killTimer !== null) clearTimeout(this.#killTimer);
        resolve({ code, signal, timedOut: this.#stopping === 'timeout', cancelled: this.#stopping === 'cancel', durationMs: Date.now() - started });
      };
      this.#child.once('error', (e) => {
        opts.onOutput('STDERR', Buffer.from(`matchlock-agent: cannot start the runner through ${opts.launcher}: ${e.message}\n`));
        finish(127, null);
      });
      // What the runner left behind in its group goes with it, so that its output pipes close and 'close' comes.
      this.#child.once('exit', () => { signalGroup(pid ?? 0, 'SIGKILL'); });
      this.#child.once('close', finish);
    });
    this.pid = pid ?? 0;
  }

  /** Stops the runner's whole process group: SIGTERM now, SIGKILL after `graceMs`. */
  stop(why: 'timeout' | 'cancel', graceMs: number): void {
    if (this.#stopping !== null || this.pid === 0) return;
    this.#stopping = why;
    signalGroup(this.pid, 'SIGTERM');
    this.#killTimer = setTimeout(() => { signalGroup(this.pid, 'SIGKILL'); }, graceMs);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}
