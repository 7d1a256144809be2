/**
 * Failed requests as matchlock's errors: the operation, GitHub's status and message, and what to do, never the
 * request (Octokit's RequestError carries its headers, the Authorization one among them) nor its cause.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { isPlainObject } from '../../field-check.ts';
import type { RequestFailure } from './retry-policy.ts';

const MAX_MESSAGE = 300;

/** One line of at most 300 characters. */
const oneLine = (s: string): string => {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE)}…` : line;
};

/** What a rejection of Octokit's `request` says: an HTTP reply (a RequestError with `response`) or no reply at all. */
export function failureOf(e: unknown): RequestFailure {
  const response = isPlainObject(e) || e instanceof Error ? (e as { response?: unknown }).response : undefined;
  if (isPlainObject(response) && typeof response['status'] === 'number') {
    const headers = isPlainObject(response['headers']) ? response['headers'] : {};
    const data = response['data'];
    const message = isPlainObject(data) && typeof data['message'] === 'string' ? data['message'] : typeof data === 'string' ? data : '';
    const strings = Object.fromEntries(Object.entries(headers).filter((kv): kv is [string, string] => typeof kv[1] === 'string').map(([k, v]) => [k.toLowerCase(), v]));
    return { status: response['status'], headers: strings, message: oneLine(message) };
  }
  return { status: null, headers: {}, message: oneLine(e instanceof Error ? e.message : String(e)) };
}

export interface ErrorContext {
  /** `GET /repos/octo/hello/actions/runners`: method and path, no query. */
  readonly operation: string;
  /** What to do, when the policy or the caller knows. */
  readonly hint?: string | undefined;
  /** The installation permission the operation needs, for a 403 that says one is missing. */
  readonly permission?: string | null;
  readonly rateLimitResetMs?: number | undefined;
  /** Whether the request carried the App's JWT (else an installation token). */
  readonly appJwt?: boolean;
}

export function githubError(f: RequestFailure, c: ErrorContext): MatchlockError {
  const said = f.status === null ? `no reply (${f.message})` : `${f.status}${f.message === '' ? '' : ` ${f.message.replace(/\.$/, '')}`}`;
  let hint = c.hint;
  if (hint === undefined && f.status === 403 && /not accessible by integration/i.test(f.message)) {
    const accepted = f.headers['x-accepted-github-permissions'];
    hint = `the App's installation lacks the permission "${c.permission ?? 'unknown'}"${accepted === undefined ? '' : ` (GitHub accepts ${accepted})`}: `
      + "grant it in the App's settings (Permissions & events) and approve the new permission on the installation";
  }
  if (hint === undefined && f.status === 401 && c.appJwt === true) {
    hint = "GitHub refused the App's JWT: check the App ID and that the key is one of the App's current private keys, and the host's clock";
  }
  return new MatchlockError(ErrorCodes.GITHUB, `GitHub ${c.operation} failed: ${said}${hint === undefined ? '' : `; ${hint}`}`, {
    operation: c.operation, status: f.status, githubMessage: f.message, ...(c.rateLimitResetMs === undefined ? {} : { rateLimitReset: new Date(c.rateLimitResetMs).toISOString() }),
  });
}

/**
 * GitHub's status in an error from githubError for the request itself; undefined for any other error, and for
 * one met while getting the request's credential (a 404 there is not the request's 404).
 */
export function statusOf(e: unknown): number | null | undefined {
  if (!(e instanceof MatchlockError) || e.code !== ErrorCodes.GITHUB || !('status' in e.details) || e.details['credential'] === true) return undefined;
  const s = e.details['status'];
  return typeof s === 'number' ? s : null;
}

/** `e`, met while getting a request's credential, marked so that statusOf does not take it for the request's. */
export function credentialError(e: unknown): unknown {
  return e instanceof MatchlockError ? new MatchlockError(e.code, e.message, { ...e.details, credential: true }) : e;
}

/** `e` with a sentence on what to do added to its message; the same code and details. */
export function withHint(e: MatchlockError, hint: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(e.code, `${e.message.replace(/\.$/, '')}; ${hint}`, { ...e.details, ...details });
}
