/**
 * A stand-in for api.github.com on 127.0.0.1, for the operations of GitHub's description that matchlock uses
 * (test/fixtures/github/openapi-subset.json), with state in memory. It is the one stand-in the tests allow, so it
 * holds both sides to the description: every request is checked against it and every violation recorded, and
 * every reply it sends is checked too (a violation there is a bug in the stand-in). Statuses GitHub sends for any
 * endpoint (401, 403, 404, 422, 429, 5xx) but the description declares only for some are held to `basic-error`.
 *
 * A request is answered in GitHub's order: an unknown route 404; then credentials (auth.ts: 401, and 403/404 for
 * what the installation may not reach); only then the request's own faults (404 for a bad path parameter, 400 for
 * a body that is not JSON, 422 for one the description refuses); then an injected failure, if any; then the
 * operation (routes.ts). The faults are still found and recorded first, for a request refused 401/403 too.
 * Credentials and JIT configs never appear in `requests` or in `violations`.
 */
import type { KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenApi, type Operation } from '../openapi/index.ts';
import { appKey, authenticate } from './auth.ts';
import { basicError, reason, Refusal, validationFailed, type Reply } from './objects.ts';
import { route } from './routes.ts';
import { State, type DeliverySeed, type Installation, type InstallationSeed, type Json, type RunnerGroupSeed, type RunnerRecord } from './state.ts';

export interface GitHubApiOptions {
  readonly appId: number;
  /** The App's public key (PEM or KeyObject); App JWTs must verify against it. */
  readonly publicKey: KeyObject | string;
  readonly appSlug?: string;
  /** The clock, in ms since the epoch (token and JWT expiry). */
  readonly now?: () => number;
}

/** An injected failure: the reply of the next calls of an operation. */
export interface Failure {
  readonly status: number;
  readonly message?: string;
  /** A primary rate limit: `x-ratelimit-remaining: 0` and `x-ratelimit-reset` a minute ahead. */
  readonly rateLimit?: boolean;
  /** A secondary rate limit: `retry-after` in seconds. */
  readonly retryAfter?: number;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly operationId: string | null;
}

const CROSS_CUTTING = new Set([400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504]);

export class GitHubApi {
  readonly violations: string[] = [];
  readonly requests: RequestRecord[] = [];
  readonly #api = OpenApi.github();
  readonly #key: KeyObject;
  readonly #state: State;
  readonly #server: Server;
  readonly #failures = new Map<string, { left: number; readonly failure: Failure }[]>();
  #url = '';

  constructor(opts: GitHubApiOptions) {
    this.#key = appKey(opts.publicKey);
    this.#state = new State(opts.appId, opts.appSlug ?? 'matchlock-test', opts.now ?? Date.now);
    this.#server = createServer((req, res) => {
      this.#serve(req, res).catch(() => res.destroy()); // the client went away mid-request
    });
  }

  get url(): string {
    if (this.#url === '') throw new Error('the GitHub stand-in is not started');
    return this.#url;
  }

  /** Delivery ids asked to be redelivered, in order. */
  get redeliveries(): readonly number[] {
    return this.#state.redeliveries;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  addInstallation(seed: InstallationSeed): void {
    this.#state.addInstallation(seed);
  }

  /** A runner group of an organisation; every organisation already has group 1, "Default". */
  addRunnerGroup(org: string, group: RunnerGroupSeed): void {
    this.#state.groupsOf(org).push(group);
  }

  /** A job as GitHub's REST `job` object (a webhook's `workflow_job` is one) in a repository `owner/repo`. */
  seedJob(repo: string, job: Json): void {
    this.#state.seedJob(repo, job);
  }

  /** A run as GitHub's REST `workflow-run` object (a webhook's `workflow_run` is one). */
  seedRun(repo: string, run: Json): void {
    this.#state.seedRun(repo, run);
  }

  /** The job or run of a `workflow_job` or `workflow_run` webhook payload, in the payload's repository. */
  seedWebhook(payload: Json): void {
    const repo = (payload['repository'] as { full_name: string }).full_name;
    if (payload['workflow_job'] !== undefined) this.seedJob(repo, payload['workflow_job'] as Json);
    else if (payload['workflow_run'] !== undefined) this.seedRun(repo, payload['workflow_run'] as Json);
    else throw new Error('not a workflow_job or workflow_run payload');
  }

  /** A delivery in the App's hook delivery log; returns its id. */
  addDelivery(d: DeliverySeed): number {
    return this.#state.addDelivery(d);
  }

  /** The runners created through the API and not deleted, by id. */
  runners(): RunnerRecord[] {
    return [...this.#state.runners.values()];
  }

  runner(id: number): RunnerRecord | undefined {
    return this.#state.runners.get(id);
  }

  /** Removes a runner as GitHub does when an ephemeral runner has finished its job. */
  removeRunner(id: number): boolean {
    return this.#state.runners.delete(id);
  }

  /** The next `times` well-formed, authenticated calls of an operation (by operationId) get `failure` instead of their answer. */
  failNext(operationId: string, times: number, failure: Failure): void {
    if (!this.#api.operations.some((op) => op.operationId === operationId)) throw new Error(`no operation ${operationId}`);
    const queue = this.#failures.get(operationId) ?? [];
    queue.push({ left: times, failure });
    this.#failures.set(operationId, queue);
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const credential = /^\s*(?:bearer|token)\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1];
    const match = this.#api.operation(method, url.pathname);
    let reply: Reply;
    try {
      if (match === null) {
        this.#violation(`${method} ${url.pathname}: not an operation of the description`, credential);
        throw new Refusal(404, 'Not Found');
      }
      reply = this.#handle(match.op, match.pathParams, url, Buffer.concat(chunks), credential);
    } catch (e: unknown) {
      if (!(e instanceof Refusal)) this.#violation(`stand-in failure on ${method} ${url.pathname}: ${e instanceof Error ? e.message : String(e)}`, credential);
      const refusal = e instanceof Refusal ? e : new Refusal(500, 'Server Error');
      reply = { status: refusal.status, body: basicError(refusal.status, refusal.message, refusal.docs) };
    }
    if (match !== null) this.#checkReply(match.op, reply, credential);
    this.requests.push({ method, path: this.#redact(url.pathname + url.search, credential), status: reply.status, operationId: match?.op.operationId ?? null });
    const text = reply.body === undefined ? '' : JSON.stringify(reply.body);
    res.writeHead(reply.status, { ...(text === '' ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...reply.headers });
    res.end(text);
  }

  #handle(op: Operation, pathParams: Readonly<Record<string, string>>, url: URL, raw: Buffer, credential: string | undefined): Reply {
    const request = this.#validate(op, pathParams, url, raw, credential); // first, so that a refused request's faults are recorded too
    const installation = authenticate(this.#state, this.#key, op, pathParams, credential);
    if (request.problems.some((p) => p.startsWith('path.'))) throw new Refusal(404, 'Not Found', op.docsUrl);
    if (!request.json) throw new Refusal(400, 'Problems parsing JSON', op.docsUrl);
    if (request.problems.length > 0) return validationFailed(this.#api, op, request.problems);
    const failure = this.#failure(op.operationId);
    if (failure !== null) return this.#injected(failure, installation);
    return route(this.#state, { op, p: pathParams, query: url.searchParams, url, body: (request.body ?? {}) as Json, installation, base: this.url });
  }

  /** The request's body and what is wrong with it by the description, each fault recorded as a violation. */
  #validate(op: Operation, pathParams: Readonly<Record<string, string>>, url: URL, raw: Buffer,
    credential: string | undefined): { readonly body: unknown; readonly json: boolean; readonly problems: readonly string[] } {
    let body: unknown;
    let json = true;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        json = false;
      }
    }
    const problems = json ? this.#api.checkRequest(op, { pathParams, query: url.searchParams, body })
      : this.#api.checkParameters(op, { pathParams, query: url.searchParams });
    for (const p of problems) this.#violation(`${op.operationId}: ${p}`, credential);
    if (!json) this.#violation(`${op.operationId}: the body is not JSON`, credential);
    return { body, json, problems };
  }

  #failure(operationId: string): Failure | null {
    const queue = this.#failures.get(operationId);
    const head = queue?.[0];
    if (queue === undefined || head === undefined) return null;
    if (--head.left <= 0) queue.shift();
    return head.failure;
  }

  #injected(f: Failure, installation: Installation | null): Reply {
    const headers: Record<string, string> = {};
    let message = f.message ?? reason(f.status);
    if (f.rateLimit === true) {
      Object.assign(headers, { 'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-used': '5000', 'x-ratelimit-resource': 'core',
        'x-ratelimit-reset': String(Math.floor(this.#state.now() / 1000) + 60) });
      message = f.message ?? `API rate limit exceeded for ${installation === null ? `app ID ${this.#state.appId}` : `installation ID ${installation.id}`}.`;
    }
    if (f.retryAfter !== undefined) {
      headers['retry-after'] = String(f.retryAfter);
      message = f.message ?? 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';
    }
    return { status: f.status, body: basicError(f.status, message), headers };
  }

  /** Holds a reply to the operation's declared responses, or to `basic-error` for a status GitHub sends anywhere. */
  #checkReply(op: Operation, reply: Reply, credential: string | undefined): void {
    const declared = op.responses[String(reply.status)] !== undefined;
    const problems = declared ? this.#api.checkResponse(op, reply.status, reply.body, { headers: reply.headers ?? {} })
      : CROSS_CUTTING.has(reply.status) ? this.#api.checkSchema('basic-error', reply.body, 'response')
        : [`status ${reply.status} is not a response of ${op.operationId}`];
    for (const p of problems) this.#violation(`stand-in reply to ${op.operationId} (${reply.status}): ${p}`, credential);
  }

  #violation(message: string, credential: string | undefined): void {
    this.violations.push(this.#redact(message, credential));
  }

  /** `text` with every credential and JIT config the stand-in knows of replaced. */
  #redact(text: string, credential: string | undefined): string {
    let out = text;
    for (const s of [...this.#state.secrets, ...(credential === undefined ? [] : [credential])]) out = out.split(s).join('[REDACTED]');
    return out;
  }
}
