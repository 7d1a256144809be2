/**
 * A client for the VMM's API socket, and a VMM process to talk to: every request the tests send and every
 * response they get can be checked against Firecracker's API description (plus matchlock's documented
 * additions) with `checked`.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { MATCHLOCK } from './cli.ts';
import { SwaggerApi } from './swagger.ts';

export interface Reply {
  readonly status: number;
  /** The parsed JSON body; undefined when there was none. */
  readonly body: unknown;
  readonly text: string;
}

/** Firecracker's description with matchlock's additions (docs/api.md). */
export function matchlockApi(): SwaggerApi {
  return SwaggerApi.firecracker().extend('Drive', 'cow_path', { type: 'string' });
}

export class ApiClient {
  readonly sock: string;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(sock: string) {
    this.sock = sock;
  }

  /** Sends a request; `body` is sent as JSON, or as-is when it is a Buffer (for malformed bodies). */
  send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.sock, agent: this.#agent, method, path,
        headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(payload.length) }), ...headers },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            parsed = { unparsable: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * Sends a request that must conform to the API description, and checks that the response does: a status the
 * operation declares, and a body of its shape (errors: `{fault_message}`).
 */
export async function checked(t: ExecutionContext, api: SwaggerApi, client: ApiClient, method: string, path: string, body?: unknown): Promise<Reply> {
  t.deepEqual(api.requestProblems(method, path, body), [], `${method} ${path}: the request itself conforms`);
  const reply = await client.send(method, path, body);
  t.deepEqual(api.responseProblems(method, path, reply.status, reply.body), [], `${method} ${path} → ${reply.status} ${reply.text}`);
  return reply;
}

/** The fault message of an error reply (asserting it has one). */
export function faultOf(t: ExecutionContext, reply: Reply): string {
  const message = (reply.body as { fault_message?: unknown } | undefined)?.fault_message;
  t.is(typeof message, 'string', `a fault_message in ${reply.text}`);
  return String(message);
}

export interface VmmProcess {
  readonly child: ChildProcess;
  readonly client: ApiClient;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface LaunchOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** Wait for the API socket (default); false returns at once. */
  readonly waitForSocket?: boolean;
}

/** Starts a process that serves an API on `sock` and waits until the socket exists (then it accepts), or the process exits. */
export async function launch(file: string, args: readonly string[], sock: string, opts: LaunchOptions = {}): Promise<VmmProcess> {
  const child = spawn(file, args, {
    env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => { gone = true; });
  const deadline = Date.now() + 240_000; // seconds in the emulated KVM sandbox, milliseconds on a host
  while (opts.waitForSocket !== false && !existsSync(sock) && !gone) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`no API socket ${sock} in 240 s: ${stdout}${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const client = new ApiClient(sock);
  return {
    child, client, exited,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      client.close();
      if (!gone) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Starts `matchlock vmm --api-sock SOCK …` and waits until its socket exists, or it exits. */
export function startVmm(sock: string, extraArgs: readonly string[] = [], env: Record<string, string> = {}, cwd?: string): Promise<VmmProcess> {
  return launch(MATCHLOCK, ['vmm', '--api-sock', sock, ...extraArgs], sock, { env, ...(cwd === undefined ? {} : { cwd }) });
}
