/**
 * Installation access tokens, one per installation, cached until five minutes before GitHub's `expires_at`, and
 * the installation that covers each repository or organisation, cached until GitHub says it is gone. Concurrent
 * callers share one request: a burst of jobs for a new repository makes one lookup and one token.
 */
import { scopeKey, type ResolvedScope } from './scope.ts';
import type { Secret } from './secret.ts';

/** Refresh this long before `expires_at` (tokens live an hour). */
export const REFRESH_BEFORE_MS = 5 * 60_000;

export interface IssuedToken {
  readonly token: Secret;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/** The two App-authenticated calls behind the cache. */
export interface TokenSource {
  /** GET /repos/{owner}/{repo}/installation or GET /orgs/{org}/installation: the installation id. */
  findInstallation(scope: ResolvedScope): Promise<number>;
  /** POST /app/installations/{id}/access_tokens. */
  createToken(installationId: number): Promise<IssuedToken>;
}

/** `fn()` unless a call for `key` is already running, in which case its promise. */
function singleFlight<K, V>(running: Map<K, Promise<V>>, key: K, fn: () => Promise<V>): Promise<V> {
  const current = running.get(key);
  if (current !== undefined) return current;
  const p = fn().finally(() => running.delete(key));
  running.set(key, p);
  return p;
}

export class InstallationTokens {
  readonly #source: TokenSource;
  readonly #now: () => number;
  readonly #installations = new Map<string, number>();
  readonly #tokens = new Map<number, IssuedToken>();
  readonly #lookups = new Map<string, Promise<number>>();
  readonly #issuing = new Map<number, Promise<IssuedToken>>();

  constructor(source: TokenSource, now: () => number = Date.now) {
    this.#source = source;
    this.#now = now;
  }

  /** The installation covering `scope` and a token of it good for at least five minutes. */
  async forScope(scope: ResolvedScope): Promise<{ readonly installationId: number; readonly token: Secret }> {
    const installationId = await this.installationOf(scope);
    return { installationId, token: await this.tokenOf(installationId) };
  }

  async installationOf(scope: ResolvedScope): Promise<number> {
    const key = scopeKey(scope);
    const known = this.#installations.get(key);
    if (known !== undefined) return known;
    return singleFlight(this.#lookups, key, async () => {
      const id = await this.#source.findInstallation(scope);
      this.#installations.set(key, id);
      return id;
    });
  }

  async tokenOf(installationId: number): Promise<Secret> {
    const cached = this.#tokens.get(installationId);
    if (cached !== undefined && this.#now() < cached.expiresAt - REFRESH_BEFORE_MS) return cached.token;
    const issued = await singleFlight(this.#issuing, installationId, async () => {
      const t = await this.#source.createToken(installationId);
      this.#tokens.set(installationId, t);
      return t;
    });
    return issued.token;
  }

  /** Forgets an installation's token (GitHub refused it), so that the next call gets a new one. */
  dropToken(installationId: number, token: Secret): void {
    if (this.#tokens.get(installationId)?.token === token) this.#tokens.delete(installationId);
  }

  /** Forgets an installation altogether (GitHub says it is gone): its token and the scopes it covered. */
  dropInstallation(installationId: number): void {
    this.#tokens.delete(installationId);
    for (const [key, id] of this.#installations) if (id === installationId) this.#installations.delete(key);
  }
}
