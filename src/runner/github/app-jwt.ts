/**
 * The App's JSON Web Token, as GitHub's docs describe it: RS256, `iat` 60 s in the past (clock drift), `exp` 9
 * minutes ahead (GitHub refuses more than 10 minutes between them), `iss` the App ID or its Client ID (GitHub
 * takes either; a numeric App ID is sent as a number). One token is reused until a minute before it expires.
 */
import { sign, type KeyObject } from 'node:crypto';
import { Secret } from './secret.ts';

const BACKDATE_S = 60;
const LIFETIME_S = 540;
const RENEW_BEFORE_S = 60;

export interface AppJwtClaims {
  readonly iat: number;
  readonly exp: number;
  readonly iss: number | string;
}

const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

export class AppJwt {
  readonly #key: KeyObject;
  readonly #iss: number | string;
  readonly #now: () => number;
  #cached: { readonly jwt: Secret; readonly exp: number } | null = null;

  /** `issuer`: the App ID (a number, or its decimal string) or the Client ID (`Iv…`); `now`: ms since the epoch. */
  constructor(key: KeyObject, issuer: number | string, now: () => number = Date.now) {
    this.#key = key;
    this.#iss = typeof issuer === 'string' && /^\d+$/.test(issuer) ? Number(issuer) : issuer;
    this.#now = now;
  }

  /** A JWT good for at least another minute. */
  get(): Secret {
    const now = Math.floor(this.#now() / 1000);
    if (this.#cached !== null && now < this.#cached.exp - RENEW_BEFORE_S) return this.#cached.jwt;
    const claims: AppJwtClaims = { iat: now - BACKDATE_S, exp: now + LIFETIME_S, iss: this.#iss };
    const data = `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}`;
    const jwt = new Secret(`${data}.${sign('sha256', Buffer.from(data), this.#key).toString('base64url')}`);
    this.#cached = { jwt, exp: claims.exp };
    return jwt;
  }

  /** Forgets the cached JWT (GitHub refused it: the next one is made afresh). */
  drop(): void {
    this.#cached = null;
  }
}
