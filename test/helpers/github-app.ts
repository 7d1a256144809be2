/**
 * A GitHubApp (src/runner/github) wired to the GitHub stand-in over real HTTP on 127.0.0.1: the App key written
 * to a 0600 file and loaded as `matchlock serve` loads it, one clock shared by both sides (tests move it), retry
 * waits that only record and move the clock, and every log line captured. `checkClean` holds a test to what every
 * test must show: no request or reply of the stand-in broke GitHub's description, and no token, JWT or JIT config
 * reached a log line or an error.
 */
import type { ExecutionContext } from 'ava';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import pino from 'pino';
import { GitHubApp, loadAppKey, type RetryOptions } from '../../src/runner/github/index.ts';
import { GitHubApi } from './github/index.ts';

export const APP_ID = 4242;
export const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

let loaded: Promise<KeyObject> | undefined;

/** The App key as matchlock loads it: from a PKCS#1 PEM file of mode 0600. */
export function appKey(): Promise<KeyObject> {
  loaded ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'matchlock-github-app-'));
    try {
      const path = join(dir, 'app.pem');
      writeFileSync(path, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
      return await loadAppKey(path);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return loaded;
}

export interface Rig {
  readonly api: GitHubApi;
  readonly app: GitHubApp;
  /** The shared clock, ms since the epoch. */
  readonly clock: { ms: number };
  /** Every wait the client asked for, in ms. */
  readonly waits: number[];
  /** Every log line, as written. */
  readonly lines: string[];
  /** Errors the test caught, checked for secrets. */
  readonly errors: unknown[];
  /** JIT configs the test was given, checked for in logs and errors. */
  readonly jits: string[];
  /** Violations the test expects (a reply it made the stand-in break on purpose). */
  expectedViolations: string[];
}

export interface RigOptions {
  readonly retry?: Partial<RetryOptions>;
  readonly appId?: number | string;
  /** Another GitHubApp over the same stand-in: its base URL. */
  readonly baseUrl?: string;
}

/** A started stand-in with installation 77 on octo-org (all repositories, the default permissions) and an App client. */
export async function rig(t: ExecutionContext<unknown>, o: RigOptions = {}): Promise<Rig> {
  const clock = { ms: Date.now() };
  const now = (): number => clock.ms;
  const api = await new GitHubApi({ appId: APP_ID, publicKey, now }).start();
  t.teardown(() => api.close());
  api.addInstallation({ id: 77, account: 'octo-org' });
  const lines: string[] = [];
  const waits: number[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => { lines.push(s); } });
  const app = new GitHubApp({
    appId: o.appId ?? APP_ID, privateKey: await appKey(), logger, baseUrl: o.baseUrl ?? api.url, now, random: () => 0.5,
    sleep: async (ms) => { waits.push(ms); clock.ms += ms; }, ...(o.retry === undefined ? {} : { retry: o.retry }),
  });
  return { api, app, clock, waits, lines, errors: [], jits: [], expectedViolations: [] };
}

/** The log lines, parsed. */
export const logs = (r: Rig): Record<string, unknown>[] => r.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

/** The stand-in's calls, as `operationId status`. */
export const calls = (r: Rig): string[] => r.api.requests.map((q) => `${q.operationId ?? q.path} ${q.status}`);

/** How many calls of an operation the stand-in answered. */
export const count = (r: Rig, operationId: string): number => r.api.requests.filter((q) => q.operationId === operationId).length;

/** `p`'s rejection, recorded to be checked for secrets. */
export async function rejection(t: ExecutionContext<unknown>, r: Rig, p: Promise<unknown>): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  const e = await t.throwsAsync(p);
  r.errors.push(e);
  return e!;
}

const JWT_HEADER = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url');

export function checkClean(t: ExecutionContext<unknown>, r: Rig): void {
  t.deepEqual(r.api.violations, r.expectedViolations, 'the stand-in saw requests and replies as GitHub describes them');
  const secrets = [...r.jits, ...r.api.runners().map((x) => x.jitConfig)];
  const texts = [...r.lines, ...r.errors.map((e) => `${inspect(e, { depth: 8 })} ${(e as Error).message} ${JSON.stringify((e as { details?: unknown }).details)}`)];
  for (const text of texts) {
    t.false(/ghs_[A-Za-z0-9]/.test(text), 'no installation token');
    t.false(text.includes(JWT_HEADER), 'no App JWT');
    t.false(secrets.some((s) => text.includes(s)), 'no JIT config');
    t.false(/authorization/i.test(text), 'no Authorization header');
  }
}
