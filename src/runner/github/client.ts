/**
 * The GitHub App, as the runner host uses it: one Octokit whose every request (the pages paginate follows too)
 * goes through one hook that picks the credential by path (the App's JWT for /app/* and installation lookups, an
 * installation token otherwise), sets the API version, user agent and a timeout, and retries by retry-policy.ts.
 * Logs name the operation, status, attempt and wait; no credential, JIT config or reply body reaches a log line
 * or an error. Octokit's own log is dropped: its debug line carries the request's headers.
 */
import type { KeyObject } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Octokit } from '@octokit/rest';
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { VERSION } from '../../version.ts';
import { AppJwt } from './app-jwt.ts';
import { credentialError, failureOf, githubError, statusOf, withHint } from './github-error.ts';
import { InstallationTokens, type IssuedToken } from './installation-tokens.ts';
import { getJob, listQueuedJobs } from './jobs.ts';
import { checkReply, FIELDS, type JitConfig, type Job, type Runner } from './replies.ts';
import { neededPermission, requestTarget, type RequestTarget } from './request-target.ts';
import { decide, DEFAULT_RETRY, type RequestFailure, type RetryOptions } from './retry-policy.ts';
import { deleteRunner, generateJitConfig, getRunner, listRunners, type JitConfigRequest } from './runners.ts';
import { scopeLabel, scopeRoute, type ResolvedScope, type Scope } from './scope.ts';
import { Secret } from './secret.ts';

export const API_VERSION = '2022-11-28';
export const USER_AGENT = `matchlock/${VERSION}`;

export interface GitHubAppOptions {
  /** The JWT's `iss`: the App ID, or the App's Client ID (`Iv…`), which GitHub recommends. */
  readonly appId: number | string;
  /** From loadAppKey(). */
  readonly privateKey: KeyObject;
  readonly logger: Logger;
  /** https://api.github.com unless given (GHES: https://HOST/api/v3); plain http only to the loopback address. */
  readonly baseUrl?: string;
  /** Per attempt; 30 s unless given. */
  readonly requestTimeoutMs?: number;
  readonly retry?: Partial<RetryOptions>;
  /** The clock, in ms since the epoch (tokens, JWTs, rate-limit resets). */
  readonly now?: () => number;
  /** How retries wait; tests pass one that does not. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** In [0, 1), for the backoff's jitter. */
  readonly random?: () => number;
}

type HookOptions = Required<Parameters<Octokit['request']['endpoint']['parse']>[0]>;
type HookResponse = Awaited<ReturnType<Octokit['request']>>;
type HookRequest = (options: HookOptions) => Promise<HookResponse>;
type Credential = { readonly header: string; readonly secret: Secret; readonly drop: () => void };

function configError(message: string): MatchlockError {
  return new MatchlockError(ErrorCodes.CONFIG, message);
}

function checkBaseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw configError(`the GitHub API URL ${JSON.stringify(raw)} is not a URL: use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server`);
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw configError(`the GitHub API URL ${raw} must be https (tokens travel in it)`);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') throw configError(`the GitHub API URL ${raw} must not have a query, fragment or credentials`);
  return url;
}

export class GitHubApp {
  readonly #octokit: Octokit;
  readonly #log: Logger;
  readonly #jwt: AppJwt;
  readonly #tokens: InstallationTokens;
  readonly #base: URL;
  readonly #basePath: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(o: GitHubAppOptions) {
    this.#base = checkBaseUrl(o.baseUrl ?? 'https://api.github.com');
    this.#basePath = this.#base.pathname.replace(/\/+$/, '');
    this.#timeoutMs = o.requestTimeoutMs ?? 30_000;
    this.#retry = Object.freeze({ ...DEFAULT_RETRY, ...o.retry });
    if (!(this.#timeoutMs > 0) || !(this.#retry.maxAttempts >= 1)) throw configError('the GitHub request timeout and attempts must be positive');
    this.#now = o.now ?? Date.now;
    this.#sleep = o.sleep ?? ((ms) => sleep(ms));
    this.#random = o.random ?? Math.random;
    this.#log = o.logger.child({ component: 'github' });
    this.#jwt = new AppJwt(o.privateKey, o.appId, this.#now);
    this.#tokens = new InstallationTokens({ findInstallation: (s) => this.#findInstallation(s), createToken: (id) => this.#createToken(id) }, this.#now);
    const noop = (): void => {};
    // An auth strategy, not a hook wrapped afterwards: Octokit wraps the strategy's hook innermost, so that it alone
    // gets the request function that sends the options it is given (an outer wrap's changes are lost).
    const hook = (request: HookRequest, options: HookOptions): Promise<HookResponse> => this.#send(request, options);
    const authStrategy = (): unknown => Object.assign(async () => ({ type: 'app' }), { hook });
    this.#octokit = new Octokit({ baseUrl: this.#base.href.replace(/\/+$/, ''), userAgent: USER_AGENT, authStrategy, log: { debug: noop, info: noop, warn: noop, error: noop } });
  }

  /** A JIT runner: its id, name and the encoded config the runner starts with (`run.sh --jitconfig`). */
  generateJitConfig(r: JitConfigRequest): Promise<JitConfig> {
    return generateJitConfig(this.#octokit, r);
  }

  /** True if deleted, false if it was already gone. */
  deleteRunner(scope: Scope, runnerId: number): Promise<boolean> {
    return deleteRunner(this.#octokit, scope, runnerId);
  }

  getRunner(scope: Scope, runnerId: number): Promise<Runner | null> {
    return getRunner(this.#octokit, scope, runnerId);
  }

  listRunners(scope: Scope, opts: { readonly namePrefix?: string } = {}): Promise<Runner[]> {
    return listRunners(this.#octokit, scope, opts);
  }

  getJob(repo: string, jobId: number): Promise<Job | null> {
    return getJob(this.#octokit, repo, jobId);
  }

  listQueuedJobs(repo: string, opts: { readonly runStatuses?: readonly ('queued' | 'in_progress')[] } = {}): Promise<Job[]> {
    return listQueuedJobs(this.#octokit, repo, opts);
  }

  async #send(request: HookRequest, options: HookOptions): Promise<HookResponse> {
    const { method, url } = this.#octokit.request.endpoint.parse(options);
    const path = this.#pathOf(url);
    const operation = `${method} ${path}`;
    const target = requestTarget(path);
    let reauthenticated = false;
    for (let attempt = 1; ; attempt++) {
      const credential = await this.#credential(target).catch((e: unknown) => { throw credentialError(e); });
      const started = this.#now();
      try {
        const response = await request({
          ...options,
          headers: { ...options.headers, authorization: credential.header, 'user-agent': USER_AGENT, 'x-github-api-version': API_VERSION },
          request: { ...options.request, signal: AbortSignal.timeout(this.#timeoutMs) },
        });
        this.#log.debug({ operation, status: response.status, attempt, ms: this.#now() - started }, 'GitHub request');
        return response;
      } catch (e: unknown) {
        const failure = redact(failureOf(e), credential.secret);
        const d = decide(failure, { attempt, reauthenticated, options: this.#retry, now: this.#now(), random: this.#random() });
        if (d.kind === 'reauthenticate') {
          this.#log.info({ operation, status: failure.status, attempt }, 'GitHub refused the credential; retrying with a new one');
          credential.drop();
          reauthenticated = true;
          continue;
        }
        if (d.kind === 'retry') {
          this.#log.warn({ operation, status: failure.status, attempt, reason: d.reason, waitMs: d.waitMs }, 'GitHub request failed; retrying');
          await this.#sleep(d.waitMs);
          continue;
        }
        const expected = failure.status === 404 || failure.status === 409 || failure.status === 422;
        this.#log[expected ? 'debug' : 'warn']({ operation, status: failure.status, attempt }, 'GitHub request failed');
        throw githubError(failure, { operation, hint: d.hint, permission: neededPermission(method, path), rateLimitResetMs: d.rateLimitResetMs, appJwt: target.auth === 'app' });
      }
    }
  }

  /** The path under the API's base URL; refuses another origin (a Link header must not take a token elsewhere). */
  #pathOf(url: string): string {
    const u = new URL(url);
    if (u.origin !== this.#base.origin || !u.pathname.startsWith(`${this.#basePath}/`)) {
      throw new MatchlockError(ErrorCodes.GITHUB, `GitHub sent matchlock to ${u.origin}${u.pathname}, outside ${this.#base.href}: refused`);
    }
    return u.pathname.slice(this.#basePath.length);
  }

  async #credential(target: RequestTarget): Promise<Credential> {
    if (target.auth === 'app') {
      const jwt = this.#jwt.get();
      return { header: `Bearer ${jwt.reveal()}`, secret: jwt, drop: () => this.#jwt.drop() };
    }
    const { installationId, token } = await this.#tokens.forScope(target.scope);
    return { header: `Bearer ${token.reveal()}`, secret: token, drop: () => this.#tokens.dropToken(installationId, token) };
  }

  async #findInstallation(scope: ResolvedScope): Promise<number> {
    const { prefix, params } = scopeRoute(scope);
    let data: unknown;
    try {
      ({ data } = await this.#octokit.request(`GET ${prefix}/installation`, params));
    } catch (e: unknown) {
      if (statusOf(e) !== 404) throw e;
      const where = scope.kind === 'repo' ? `on ${scope.name} (or on ${scope.owner} with this repository selected)` : `on the organisation ${scope.name}`;
      throw withHint(e as MatchlockError, `the GitHub App is not installed on ${scopeLabel(scope)}: install it ${where}`);
    }
    const i = checkReply<{ id: number; suspended_at?: string | null }>(FIELDS.installation, data, `GET installation of ${scope.name}`);
    if (typeof i.suspended_at === 'string') {
      throw new MatchlockError(ErrorCodes.GITHUB, `the GitHub App's installation ${i.id} on ${scopeLabel(scope)} is suspended since ${i.suspended_at}: unsuspend it in the account's settings (GitHub Apps)`, { installationId: i.id });
    }
    this.#log.info({ scope: scope.name, installationId: i.id }, 'GitHub App installation found');
    return i.id;
  }

  async #createToken(installationId: number): Promise<IssuedToken> {
    let data: unknown;
    try {
      ({ data } = await this.#octokit.request('POST /app/installations/{installation_id}/access_tokens', { installation_id: installationId }));
    } catch (e: unknown) {
      if (statusOf(e) !== 404) throw e;
      this.#tokens.dropInstallation(installationId);
      throw withHint(e as MatchlockError, `the GitHub App's installation ${installationId} is gone (was the App uninstalled?): install it again`);
    }
    const t = checkReply<{ token: string; expires_at: string }>(FIELDS.token, data, `POST access token of installation ${installationId}`);
    const expiresAt = Date.parse(t.expires_at);
    if (Number.isNaN(expiresAt)) throw new MatchlockError(ErrorCodes.GITHUB, `GitHub's reply to POST access token of installation ${installationId} cannot be used: reply.expires_at is not a time`);
    this.#log.debug({ installationId, expiresAt: new Date(expiresAt).toISOString() }, 'GitHub installation token issued');
    return { token: new Secret(t.token), expiresAt };
  }
}

/** A failure's message with the credential cut out, should GitHub ever quote it back. */
function redact(f: RequestFailure, secret: Secret): RequestFailure {
  const s = secret.reveal();
  return f.message.includes(s) ? { ...f, message: f.message.split(s).join('[redacted]') } : f;
}
