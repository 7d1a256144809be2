/**
 * Bodies from outside (API requests, guest protocol messages, GitHub's webhooks and replies) checked field by
 * field before anything acts on them: unknown fields, missing required fields, wrong types, values out of range,
 * not in an enum or not of the expected form each stop the check with one message naming the field. The caller
 * chooses the error. Objects are closed (an unknown field is a problem) unless marked `open`: a body someone else
 * defines and extends (GitHub's) is checked only for the fields we use.
 */
export type FieldRule =
  | { readonly type: 'string'; readonly required?: boolean; readonly enum?: readonly string[]; readonly pattern?: RegExp; readonly maxLength?: number; readonly nullable?: boolean }
  | { readonly type: 'boolean'; readonly required?: boolean }
  | { readonly type: 'integer'; readonly required?: boolean; readonly min?: number; readonly max?: number; readonly nullable?: boolean }
  | { readonly type: 'object'; readonly required?: boolean; readonly fields: Fields; readonly open?: boolean; readonly nullable?: boolean }
  | { readonly type: 'array'; readonly required?: boolean; readonly items: Fields; readonly maxItems: number; readonly open?: boolean }
  | { readonly type: 'string-array'; readonly required?: boolean; readonly maxItems: number; readonly pattern?: RegExp; readonly maxLength?: number }
  | { readonly type: 'string-map'; readonly required?: boolean; readonly keyPattern?: RegExp; readonly maxEntries?: number; readonly maxBytes?: number };

export type Fields = Readonly<Record<string, FieldRule>>;

/** Makes the error thrown for a problem (an API 400, a protocol error, ...). */
export type ProblemError = (message: string) => Error;

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkString(rule: Extract<FieldRule, { type: 'string' }>, value: unknown, at: string, fail: ProblemError): void {
  if (value === null && rule.nullable === true) return;
  if (typeof value !== 'string') throw fail(`${at} must be a string, not ${kind(value)}`);
  if (rule.enum !== undefined && !rule.enum.includes(value)) throw fail(`${at} ${JSON.stringify(value)} is not one of ${rule.enum.join(', ')}`);
  if (rule.maxLength !== undefined && value.length > rule.maxLength) throw fail(`${at} is ${value.length} characters, over ${rule.maxLength}`);
  if (rule.pattern !== undefined && !rule.pattern.test(value)) throw fail(`${at} is not of the form ${rule.pattern.source}`);
}

function checkStringMap(rule: Extract<FieldRule, { type: 'string-map' }>, value: unknown, at: string, fail: ProblemError): void {
  if (!isPlainObject(value)) throw fail(`${at} must be an object of strings, not ${kind(value)}`);
  const entries = Object.entries(value);
  if (rule.maxEntries !== undefined && entries.length > rule.maxEntries) throw fail(`${at} has ${entries.length} entries, over ${rule.maxEntries}`);
  let bytes = 0;
  for (const [k, v] of entries) {
    if (rule.keyPattern !== undefined && !rule.keyPattern.test(k)) throw fail(`${at}: the name ${JSON.stringify(k.slice(0, 64))} is not of the form ${rule.keyPattern.source}`);
    if (typeof v !== 'string') throw fail(`${at}.${k} must be a string, not ${kind(v)}`);
    bytes += k.length + v.length;
  }
  if (rule.maxBytes !== undefined && bytes > rule.maxBytes) throw fail(`${at} holds ${bytes} characters, over ${rule.maxBytes}`);
}

function checkField(rule: FieldRule, value: unknown, at: string, fail: ProblemError): void {
  switch (rule.type) {
    case 'string':
      checkString(rule, value, at, fail);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw fail(`${at} must be true or false, not ${kind(value)}`);
      return;
    case 'integer': {
      if (value === null && rule.nullable === true) return;
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw fail(`${at} must be a whole number, not ${kind(value) === 'a number' ? value : kind(value)}`);
      const min = rule.min ?? 0;
      const max = rule.max ?? Number.MAX_SAFE_INTEGER;
      if (value < min || value > max) throw fail(`${at} ${value} is out of range ${min} to ${max}`);
      return;
    }
    case 'object':
      if (value === null && rule.nullable === true) return;
      checkFieldsOf(rule.fields, value, at, fail, rule.open === true);
      return;
    case 'array':
      if (!Array.isArray(value)) throw fail(`${at} must be an array, not ${kind(value)}`);
      if (value.length > rule.maxItems) throw fail(`${at} has ${value.length} items, over ${rule.maxItems}`);
      value.forEach((item: unknown, i) => { checkFieldsOf(rule.items, item, `${at}[${i}]`, fail, rule.open === true); });
      return;
    case 'string-array':
      if (!Array.isArray(value)) throw fail(`${at} must be an array of strings, not ${kind(value)}`);
      if (value.length > rule.maxItems) throw fail(`${at} has ${value.length} items, over ${rule.maxItems}`);
      value.forEach((item: unknown, i) => { checkString({ type: 'string', ...(rule.pattern ? { pattern: rule.pattern } : {}), ...(rule.maxLength !== undefined ? { maxLength: rule.maxLength } : {}) }, item, `${at}[${i}]`, fail); });
      return;
    case 'string-map':
      checkStringMap(rule, value, at, fail);
      return;
  }
}

/** Checks `body` against `fields`; throws `fail(message)` for the first problem. `open`: other fields are let be. */
export function checkFieldsOf(fields: Fields, body: unknown, at: string, fail: ProblemError, open = false): void {
  if (!isPlainObject(body)) throw fail(`${at} must be a JSON object, not ${kind(body)}`);
  for (const key of open ? [] : Object.keys(body)) {
    if (!Object.hasOwn(fields, key)) throw fail(`${at}: unknown field "${key.slice(0, 64)}" (known: ${Object.keys(fields).join(', ')})`);
  }
  for (const [key, rule] of Object.entries(fields)) {
    const value = body[key];
    if (value === undefined) {
      if (rule.required === true) throw fail(`${at}: missing field "${key}"`);
      continue;
    }
    checkField(rule, value, `${at}.${key}`, fail);
  }
}
