/**
 * Where runners live and jobs run: a repository (`owner/name`) or an organisation. Names are checked once, as
 * GitHub spells them, before they go into a URL.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';

export type Scope = { readonly repo: string } | { readonly org: string };

export type ResolvedScope =
  | { readonly kind: 'repo'; readonly owner: string; readonly repo: string; readonly name: string }
  | { readonly kind: 'org'; readonly org: string; readonly name: string };

const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const REPO = /^[A-Za-z0-9._-]{1,100}$/;

function scopeError(what: string): MatchlockError {
  return new MatchlockError(ErrorCodes.GITHUB, `${what}: give a repository as owner/name or an organisation by its login`);
}

export function resolveScope(scope: Scope): ResolvedScope {
  if ('repo' in scope) {
    const [owner = '', repo = '', ...rest] = scope.repo.split('/');
    if (rest.length > 0 || !OWNER.test(owner) || !REPO.test(repo) || repo === '.' || repo === '..') {
      throw scopeError(`${JSON.stringify(scope.repo.slice(0, 200))} is not a repository`);
    }
    return { kind: 'repo', owner, repo, name: `${owner}/${repo}` };
  }
  if (!OWNER.test(scope.org)) throw scopeError(`${JSON.stringify(scope.org.slice(0, 200))} is not an organisation`);
  return { kind: 'org', org: scope.org, name: scope.org };
}

/** A repository `owner/name`, resolved. */
export function resolveRepo(repo: string): Extract<ResolvedScope, { kind: 'repo' }> {
  return resolveScope({ repo }) as Extract<ResolvedScope, { kind: 'repo' }>;
}

/** The key a scope is cached by: GitHub's names are case-insensitive. */
export const scopeKey = (s: ResolvedScope): string => `${s.kind}:${s.name.toLowerCase()}`;

/** `repository octo/hello` or `organisation octo`, for messages. */
export const scopeLabel = (s: ResolvedScope): string => `${s.kind === 'repo' ? 'repository' : 'organisation'} ${s.name}`;

/** The URL prefix of a scope's endpoints and its path parameters, for Octokit's `request`. */
export function scopeRoute(s: ResolvedScope): { readonly prefix: string; readonly params: Readonly<Record<string, string>> } {
  return s.kind === 'repo' ? { prefix: '/repos/{owner}/{repo}', params: { owner: s.owner, repo: s.repo } } : { prefix: '/orgs/{org}', params: { org: s.org } };
}
