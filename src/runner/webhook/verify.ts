/**
 * `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the App's webhook secret, `sha256=` and lowercase hex),
 * checked with @octokit/webhooks' verification (constant-time). It takes the body as a string and hashes its
 * UTF-8 encoding, so the body is decoded strictly first: a decoding that refuses invalid UTF-8 and keeps a BOM
 * gives back exactly the bytes GitHub signed. Only SHA-256: the legacy `X-Hub-Signature` (SHA-1) is not accepted.
 */
import { Webhooks } from '@octokit/webhooks';
import { ErrorCodes, MatchlockError } from '../../errors.ts';

export const SIGNATURE_HEADER = 'x-hub-signature-256';
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body as text, or null when it is not valid UTF-8 (it cannot be JSON, nor the body GitHub signed). */
export function decodeBody(body: Uint8Array): string | null {
  try {
    return utf8.decode(body);
  } catch {
    return null;
  }
}

export function isSignatureForm(header: string | undefined): header is string {
  return header !== undefined && SIGNATURE.test(header);
}

export type VerifySignature = (text: string, signature: string) => Promise<boolean>;

/** A checker for one secret. The secret stays in the closure: it is never logged, thrown or returned. */
export function createVerifier(secret: string): VerifySignature {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new MatchlockError(ErrorCodes.WEBHOOK, 'the webhook secret is empty: set the same secret on the GitHub App and in matchlock');
  }
  const webhooks = new Webhooks({ secret });
  return async (text, signature) => {
    if (!isSignatureForm(signature) || text.length === 0) return false;
    return webhooks.verify(text, signature);
  };
}
