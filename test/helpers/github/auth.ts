/**
 * GitHub's authentication, as the stand-in applies it: /app/* and …/installation take an RS256 App JWT (iss = app
 * id, exp - iat ≤ 600 s, 60 s of clock skew, verified with node:crypto); the rest take an installation token
 * (`token …` or `Bearer …`) the stand-in issued, for an installation that covers the repository or organisation
 * and grants the permission GitHub's docs name (Administration for repository runners, Self-hosted runners for
 * organisation runners, Actions for jobs and runs; the description itself names none).
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import type { Operation } from '../openapi/index.ts';
import { Refusal } from './objects.ts';
import { lower, type Installation, type State } from './state.ts';

const SKEW_S = 60;
const TOKEN_LIFETIME_MS = 3600_000;
const JWT_OPERATIONS = new Set(['apps/list-installations', 'apps/create-installation-access-token', 'apps/get-repo-installation',
  'apps/get-org-installation', 'apps/list-webhook-deliveries', 'apps/redeliver-webhook-delivery']);

/** Whether a permission `granted` (read, write or none) allows `needed`. */
export const permits = (granted: string | undefined, needed: 'read' | 'write'): boolean => granted === 'write' || (granted === 'read' && needed === 'read');

/** The App's public key as a KeyObject; throws unless it is RSA, as a GitHub App key is. */
export function appKey(publicKey: KeyObject | string): KeyObject {
  const key = typeof publicKey !== 'string' && publicKey.type === 'public' ? publicKey : createPublicKey(publicKey);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`a GitHub App key is RSA, not ${String(key.asymmetricKeyType)}`);
  return key;
}

/**
 * Who a request to `op` comes from: null for the App itself (an App JWT), or the installation whose token it
 * carries. Throws the Refusal GitHub answers: 401 without good credentials, 404 for what the installation does
 * not cover, 403 for a permission it lacks.
 */
export function authenticate(s: State, key: KeyObject, op: Operation, p: Readonly<Record<string, string>>, credential: string | undefined): Installation | null {
  if (credential === undefined) throw new Refusal(401, 'Requires authentication');
  if (JWT_OPERATIONS.has(op.operationId)) {
    const problem = jwtProblem(s, key, credential);
    if (problem !== null) throw new Refusal(401, problem);
    return null;
  }
  const token = s.tokens.get(credential);
  const inst = token === undefined || token.expires <= s.now() ? undefined : s.installations.get(token.installation);
  if (token === undefined || inst === undefined) throw new Refusal(401, 'Bad credentials');
  if (p['enterprise'] !== undefined) throw new Refusal(403, 'Resource not accessible by integration', op.docsUrl); // not for Apps
  const [permission, account, repo] = p['org'] !== undefined ? ['organization_self_hosted_runners', p['org'], null] as const
    : [op.template.includes('/runners') ? 'administration' : 'actions', p['owner']!, p['repo']!] as const;
  const covered = repo === null ? lower(inst.account) === lower(account) && inst.accountType !== 'User'
    : s.covers(inst, account, repo) && (token.repositories === null || token.repositories.some((n) => lower(n) === lower(repo)));
  if (!covered) throw new Refusal(404, 'Not Found', op.docsUrl);
  if (!permits(token.permissions[permission], op.method === 'GET' ? 'read' : 'write')) {
    throw new Refusal(403, 'Resource not accessible by integration', op.docsUrl);
  }
  return inst;
}

/** A new installation token (`ghs_…`, an hour long), recorded as issued and as a secret. */
export function issueToken(s: State, installation: number, repositories: readonly string[] | null,
  permissions: Readonly<Record<string, string>>): { readonly token: string; readonly expires: number } {
  const token = `ghs_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x')}`;
  const expires = s.now() + TOKEN_LIFETIME_MS;
  s.tokens.set(token, { installation, expires, repositories, permissions });
  s.secrets.add(token);
  return { token, expires };
}

/** Why an App JWT is refused, in GitHub's words; null when it is good. */
function jwtProblem(s: State, key: KeyObject, jwt: string): string | null {
  const undecodable = 'A JSON web token could not be decoded';
  const [h, p, sig, ...rest] = jwt.split('.');
  if (h === undefined || p === undefined || sig === undefined || rest.length > 0) return undecodable;
  let header: unknown;
  let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return undecodable;
  }
  if ((header as { alg?: unknown } | null)?.alg !== 'RS256' || typeof claims !== 'object' || claims === null) return undecodable;
  if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url'))) return undecodable;
  if (String(claims.iss) !== String(s.appId)) return 'Integration not found';
  const now = Math.floor(s.now() / 1000);
  const iat = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.";
  const exp = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.";
  if (!Number.isInteger(claims.iat) || (claims.iat as number) > now + SKEW_S) return iat;
  if (typeof claims.exp !== 'number' || claims.exp < now - SKEW_S) return exp;
  if (claims.exp - (claims.iat as number) > 600) return "'Expiration time' claim ('exp') is too far in the future.";
  return null;
}
