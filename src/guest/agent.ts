/**
 * The agent's protocol side (docs/guest-protocol.md): greets each host connection, takes exactly one assignment,
 * runs the runner, streams its output and reports its exit, then waits for the host's ACK (or a timeout) before
 * it is done. One host connection at a time: a new one replaces the old (the host reconnected). While no host is
 * connected, frames are kept (output up to a limit, oldest dropped and counted) and sent on the next connection,
 * so a host that restarts loses nothing but what it was sent just before its connection broke.
 */
import { accessSync, constants as fsc } from 'node:fs';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.ts';
import { VERSION } from '../version.ts';
import type { AgentConfig } from './agent-config.ts';
import { encodeJsonFrame, encodeOutput, FrameDecoder, FrameError, type Frame } from './frames.ts';
import { FROM_HOST, PROTOCOL_VERSION, readMessage, type AgentState, type Assignment, type Exited, type Refused } from './messages.ts';
import { checkLauncher, RunnerProcess } from './runner-process.ts';
import { findUser, mountCaches } from './system-setup.ts';
import type { Connection } from './transport.ts';

export const AGENT_VERSION = `matchlock-agent/${VERSION}`;

interface Pending { readonly bytes: Buffer; readonly output: number }

export class Agent {
  #config: AgentConfig;
  #log: Logger;
  #state: AgentState = 'idle';
  #jobId: string | undefined;
  #conn: Connection | null = null;
  #pending: Pending[] = [];
  #pendingOutput = 0;
  #dropped = 0;
  #runner: RunnerProcess | null = null;
  #ackTimer: NodeJS.Timeout | null = null;
  #finish: () => void = () => {};
  /** Settles once the runner's exit has been acknowledged by the host, or the wait for it timed out. */
  readonly done: Promise<void>;

  constructor(config: AgentConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.done = new Promise((resolve) => { this.#finish = resolve; });
  }

  get state(): AgentState {
    return this.#state;
  }

  /** The agent's own child processes, which Node collects (a PID 1 reaper must leave them alone). */
  get children(): ReadonlySet<number> {
    return new Set(this.#runner !== null && this.#state === 'running' ? [this.#runner.pid] : []);
  }

  connect(conn: Connection): void {
    if (this.#conn !== null) {
      this.#log.info('a new host connection replaces the old one');
      this.#conn.close();
    }
    this.#conn = conn;
    const decoder = new FrameDecoder();
    conn.start((chunk) => {
      if (this.#conn !== conn) return;
      try {
        for (const frame of decoder.push(chunk)) this.#onFrame(frame);
      } catch (e: unknown) {
        if (!(e instanceof FrameError)) throw e;
        this.#log.warn({ reason: e.message }, 'malformed frame from the host: connection closed');
        conn.write(encodeJsonFrame('ERROR', { code: 'malformed', message: e.message }));
        this.#drop(conn);
      }
    }, () => { this.#drop(conn); });
    conn.write(encodeJsonFrame('HELLO', { protocol: PROTOCOL_VERSION, agent: AGENT_VERSION, state: this.#state, ...(this.#jobId === undefined ? {} : { jobId: this.#jobId }) }));
    const waiting = this.#pending;
    this.#pending = [];
    this.#pendingOutput = 0;
    for (const p of waiting) conn.write(p.bytes);
  }

  #drop(conn: Connection): void {
    conn.close();
    if (this.#conn === conn) {
      this.#conn = null;
      this.#log.info({ state: this.#state }, 'host disconnected');
    }
  }

  #send(bytes: Buffer, output = 0): void {
    if (this.#conn !== null && !this.#conn.closed) {
      this.#conn.write(bytes);
      return;
    }
    this.#pending.push({ bytes, output });
    this.#pendingOutput += output;
    while (this.#pendingOutput > this.#config.maxBufferedBytes) {
      const i = this.#pending.findIndex((p) => p.output > 0);
      const [gone] = this.#pending.splice(i, 1);
      this.#pendingOutput -= gone!.output;
      this.#dropped += gone!.output;
    }
  }

  #onFrame(frame: Frame): void {
    const body = readMessage(frame, FROM_HOST);
    if (frame.type === 'ASSIGN') this.#assign(body as Assignment);
    else if (frame.type === 'CANCEL') {
      if (this.#runner !== null && this.#state === 'running') {
        this.#log.info('the host cancelled the job: stopping the runner');
        this.#runner.stop('cancel', this.#config.killGraceMs);
      }
    } else if (frame.type === 'ACK') {
      if (this.#state !== 'exited') throw new FrameError('ACK before the runner exited');
      this.#done('acknowledged');
    }
  }

  #refuse(code: Refused['code'], message: string): void {
    this.#log.warn({ code, reason: message }, 'assignment refused');
    this.#send(encodeJsonFrame('REFUSED', { code, message }));
  }

  #assign(a: Assignment): void {
    if (this.#state !== 'idle') return this.#refuse('busy', `this VM has taken job ${this.#jobId ?? '?'} already: one assignment per VM`);
    if (a.protocol !== PROTOCOL_VERSION) return this.#refuse('protocol', `protocol ${a.protocol} is not spoken here: this agent speaks ${PROTOCOL_VERSION}`);
    let user;
    try {
      user = findUser(this.#config.user);
      accessSync(this.#config.runner, fsc.X_OK);
      checkLauncher(this.#config.launcher);
      mountCaches(a.caches, this.#config.devDir, user);
    } catch (e: unknown) {
      return this.#refuse('setup', errorMessage(e));
    }
    this.#state = 'running';
    this.#jobId = a.jobId;
    const runner = new RunnerProcess({
      script: this.#config.runner, launcher: this.#config.launcher, user, jitConfig: a.jitConfig, env: a.env, timeoutMs: a.timeoutSeconds * 1000, killGraceMs: this.#config.killGraceMs,
      onOutput: (stream, data) => { for (const f of encodeOutput(stream, data)) this.#send(f, f.length - 5); },
    });
    this.#runner = runner;
    this.#log.info({ jobId: a.jobId, pid: runner.pid, caches: a.caches.length }, 'runner started');
    this.#send(encodeJsonFrame('STARTED', { pid: runner.pid, at: new Date().toISOString() }));
    void runner.exited.then((x) => {
      this.#state = 'exited';
      const exited: Exited = {
        code: x.code, ...(x.signal === null ? {} : { signal: x.signal }), timedOut: x.timedOut, cancelled: x.cancelled, durationMs: x.durationMs, droppedBytes: this.#dropped,
      };
      this.#log.info({ jobId: a.jobId, code: x.code, signal: x.signal, timedOut: x.timedOut, cancelled: x.cancelled, droppedBytes: this.#dropped }, 'runner exited');
      this.#send(encodeJsonFrame('EXITED', exited));
      this.#ackTimer = setTimeout(() => { this.#done('no ACK from the host in time'); }, (a.ackTimeoutSeconds ?? 60) * 1000);
    });
  }

  #done(why: string): void {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#log.info({ why }, 'job done');
    this.#finish();
  }
}
