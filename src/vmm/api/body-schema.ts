/**
 * Request bodies checked field by field before anything acts on them: unknown fields, missing required fields,
 * wrong types, values out of range or not in an enum each give a 400 naming the field, as Firecracker's
 * strict deserialisation does. The shapes are those of Firecracker's API description (firecracker-swagger.yaml);
 * the tests check our requests and responses against that file independently.
 */
import { apiError } from './api-error.ts';
import { checkFieldsOf, type Fields } from '../../field-check.ts';

export type { FieldRule, Fields } from '../../field-check.ts';

/** Checks `body` against `fields` and returns it typed; throws a 400 naming the first problem. */
export function checkBody<T>(fields: Fields, body: unknown, what: string): T {
  checkFieldsOf(fields, body, what, apiError);
  return body as T;
}

const BUCKET: Fields = {
  size: { type: 'integer', required: true },
  refill_time: { type: 'integer', required: true },
  one_time_burst: { type: 'integer' },
};

export const RATE_LIMITER: Fields = {
  bandwidth: { type: 'object', fields: BUCKET },
  ops: { type: 'object', fields: BUCKET },
};

export const TOKEN_BUCKET_FIELDS = BUCKET;
