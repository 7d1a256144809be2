/**
 * What to do after a failed request, as a plain function of the failure: retry server errors and requests that
 * got no reply with exponential backoff and jitter, wait out a primary rate limit (until `x-ratelimit-reset`) or
 * a secondary one (`retry-after`, else a minute) if that is within the longest wait allowed, get a new
 * credential once after a 401, and give up on anything else. Every kind of retry counts towards `maxAttempts`.
 */
export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** The backoff before the second attempt; doubled for each further one. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** The longest a rate limit is waited out; a later reset fails the request at once. */
  readonly maxRateLimitWaitMs: number;
}

export const DEFAULT_RETRY: RetryOptions = Object.freeze({ maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000, maxRateLimitWaitMs: 5 * 60_000 });

/** A request that failed: GitHub's status (null when there was no reply), headers and message. */
export interface RequestFailure {
  readonly status: number | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly message: string;
}

export type RetryReason = 'server-error' | 'no-reply' | 'rate-limit' | 'secondary-rate-limit';

export type Decision =
  | { readonly kind: 'retry'; readonly waitMs: number; readonly reason: RetryReason }
  | { readonly kind: 'reauthenticate' }
  | { readonly kind: 'fail'; readonly hint?: string; readonly rateLimitResetMs?: number };

/** GitHub's guidance for a secondary rate limit without `retry-after`: wait at least a minute. */
const SECONDARY_DEFAULT_MS = 60_000;
/** Past `x-ratelimit-reset`, for the clocks' disagreement. */
const RESET_MARGIN_MS = 1000;

export interface DecideContext {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** Whether this request already got a new credential after a 401. */
  readonly reauthenticated: boolean;
  readonly options: RetryOptions;
  readonly now: number;
  /** In [0, 1). */
  readonly random: number;
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function waitOrFail(waitMs: number, reason: RetryReason, c: DecideContext, resetMs: number): Decision {
  if (waitMs > c.options.maxRateLimitWaitMs) {
    const limit = reason === 'rate-limit' ? "GitHub's API rate limit" : "GitHub's secondary rate limit";
    return { kind: 'fail', rateLimitResetMs: resetMs,
      hint: `${limit} is used up until ${iso(resetMs)}, ${Math.ceil(waitMs / 1000)} s from now, longer than the ${Math.round(c.options.maxRateLimitWaitMs / 1000)} s matchlock waits: try again after ${iso(resetMs)}` };
  }
  return c.attempt >= c.options.maxAttempts ? { kind: 'fail', hint: `gave up after ${c.attempt} attempts` } : { kind: 'retry', waitMs, reason };
}

export function decide(f: RequestFailure, c: DecideContext): Decision {
  const { status, headers } = f;
  if (status === 401) return c.reauthenticated ? { kind: 'fail' } : { kind: 'reauthenticate' };
  if (status === 403 || status === 429) {
    const reset = Number(headers['x-ratelimit-reset']);
    if (headers['x-ratelimit-remaining'] === '0' && Number.isFinite(reset)) {
      const resetMs = reset * 1000 + RESET_MARGIN_MS;
      return waitOrFail(Math.max(0, resetMs - c.now), 'rate-limit', c, resetMs);
    }
    const after = Number(headers['retry-after']);
    if (headers['retry-after'] !== undefined && Number.isFinite(after) && after >= 0) return waitOrFail(after * 1000, 'secondary-rate-limit', c, c.now + after * 1000);
    if (status === 429 || /secondary rate limit/i.test(f.message)) return waitOrFail(SECONDARY_DEFAULT_MS, 'secondary-rate-limit', c, c.now + SECONDARY_DEFAULT_MS);
    return { kind: 'fail' };
  }
  if (status === null || status >= 500) {
    if (c.attempt >= c.options.maxAttempts) return { kind: 'fail', hint: `gave up after ${c.attempt} attempts` };
    const full = Math.min(c.options.maxDelayMs, c.options.baseDelayMs * 2 ** (c.attempt - 1));
    return { kind: 'retry', waitMs: Math.round(full / 2 + (c.random * full) / 2), reason: status === null ? 'no-reply' : 'server-error' };
  }
  return { kind: 'fail' };
}
