/**
 * An API request that cannot be carried out: its HTTP status and the one-line `fault_message` the client gets
 * (Firecracker's shape, `{"fault_message": …}`).
 */
import { ErrorCodes, MatchlockError, errorMessage, isMatchlockError } from '../../errors.ts';

export const HTTP_BAD_REQUEST = 400;
export const HTTP_NOT_FOUND = 404;
export const HTTP_PAYLOAD_TOO_LARGE = 413;

export function apiError(message: string, status: number = HTTP_BAD_REQUEST, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.API, message, { ...details, status });
}

/** The status and fault message for anything a handler threw: our errors keep their message and code. */
export function faultOf(e: unknown): { readonly status: number; readonly message: string } {
  if (isMatchlockError(e, ErrorCodes.API)) {
    const status = e.details['status'];
    return { status: typeof status === 'number' ? status : HTTP_BAD_REQUEST, message: e.message };
  }
  if (isMatchlockError(e)) return { status: HTTP_BAD_REQUEST, message: `${e.message} [${e.code}]` };
  return { status: HTTP_BAD_REQUEST, message: errorMessage(e) };
}
