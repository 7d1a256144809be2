/**
 * Request bodies checked field by field before anything acts on them: unknown fields, missing required fields,
 * wrong types, values out of range or not in an enum each give a 400 naming the field, as Firecracker's
 * strict deserialisation does. The shapes are those of Firecracker's API description (firecracker-swagger.yaml);
 * the tests check our requests and responses against that file independently.
 */
import { apiError } from './api-error.ts';

export type FieldRule =
  | { readonly type: 'string'; readonly required?: boolean; readonly enum?: readonly string[] }
  | { readonly type: 'boolean'; readonly required?: boolean }
  | { readonly type: 'integer'; readonly required?: boolean; readonly min?: number; readonly max?: number }
  | { readonly type: 'object'; readonly required?: boolean; readonly fields: Fields }
  | { readonly type: 'string-map'; readonly required?: boolean };

export type Fields = Readonly<Record<string, FieldRule>>;

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkField(rule: FieldRule, value: unknown, at: string): void {
  switch (rule.type) {
    case 'string':
      if (typeof value !== 'string') throw apiError(`${at} must be a string, not ${kind(value)}`);
      if (rule.enum !== undefined && !rule.enum.includes(value)) {
        throw apiError(`${at} ${JSON.stringify(value)} is not one of ${rule.enum.join(', ')}`);
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw apiError(`${at} must be true or false, not ${kind(value)}`);
      return;
    case 'integer': {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw apiError(`${at} must be a whole number, not ${kind(value) === 'a number' ? value : kind(value)}`);
      const min = rule.min ?? 0;
      const max = rule.max ?? Number.MAX_SAFE_INTEGER;
      if (value < min || value > max) throw apiError(`${at} ${value} is out of range ${min} to ${max}`);
      return;
    }
    case 'object':
      checkFields(rule.fields, value, at);
      return;
    case 'string-map':
      if (!isPlainObject(value)) throw apiError(`${at} must be an object of strings, not ${kind(value)}`);
      for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') throw apiError(`${at}.${k} must be a string, not ${kind(v)}`);
      return;
  }
}

function checkFields(fields: Fields, body: unknown, at: string): void {
  if (!isPlainObject(body)) throw apiError(`${at} must be a JSON object, not ${kind(body)}`);
  for (const key of Object.keys(body)) {
    if (!Object.hasOwn(fields, key)) throw apiError(`${at}: unknown field "${key}" (known: ${Object.keys(fields).join(', ')})`);
  }
  for (const [key, rule] of Object.entries(fields)) {
    const value = body[key];
    if (value === undefined) {
      if (rule.required === true) throw apiError(`${at}: missing field "${key}"`);
      continue;
    }
    checkField(rule, value, `${at}.${key}`);
  }
}

/** Checks `body` against `fields` and returns it typed; throws a 400 naming the first problem. */
export function checkBody<T>(fields: Fields, body: unknown, what: string): T {
  checkFields(fields, body, what);
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
