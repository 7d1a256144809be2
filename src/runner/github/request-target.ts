/**
 * What a request to GitHub needs, read from its path alone (so that the pages Octokit's paginate follows by
 * their Link are treated as the first): the credential (the App's JWT for /app/* and the installation lookups,
 * else a token of the installation covering the repository or organisation), and the permission GitHub's docs
 * name for it (for a clear message when the installation lacks it).
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { resolveScope, type ResolvedScope } from './scope.ts';

export type RequestTarget = { readonly auth: 'app' } | { readonly auth: 'installation'; readonly scope: ResolvedScope };

export function requestTarget(path: string): RequestTarget {
  if (path.startsWith('/app/') || /^\/repos\/[^/]+\/[^/]+\/installation$/.test(path) || /^\/orgs\/[^/]+\/installation$/.test(path)) return { auth: 'app' };
  const repo = /^\/repos\/([^/]+)\/([^/]+)\//.exec(path);
  if (repo !== null) return { auth: 'installation', scope: resolveScope({ repo: `${decodeURIComponent(repo[1]!)}/${decodeURIComponent(repo[2]!)}` }) };
  const org = /^\/orgs\/([^/]+)\//.exec(path);
  if (org !== null) return { auth: 'installation', scope: resolveScope({ org: decodeURIComponent(org[1]!) }) };
  throw new MatchlockError(ErrorCodes.GITHUB, `GitHub ${path}: not an endpoint of a repository, an organisation or the App (a bug in matchlock)`);
}

/** The installation permission GitHub's docs name for a request, as the App's settings page words it. */
export function neededPermission(method: string, path: string): string | null {
  const access = method === 'GET' ? 'read' : 'write';
  if (/^\/repos\/[^/]+\/[^/]+\/actions\/runners(\/|$)/.test(path)) return `Administration: ${access}`;
  if (/^\/orgs\/[^/]+\/actions\/runner(s|-groups)(\/|$)/.test(path)) return `Self-hosted runners: ${access}`;
  if (/^\/repos\/[^/]+\/[^/]+\/actions\/(runs|jobs)(\/|$)/.test(path)) return `Actions: ${access}`;
  return null;
}
