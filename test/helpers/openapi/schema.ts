/**
 * Schemas: what is wrong with a value against one (`SchemaChecker`), and whether this validator understands one
 * at all (`auditSchema`, run when a document loads, so that nothing is skipped quietly).
 *
 * Semantics, where OpenAPI 3.0 leaves room:
 * - `nullable: true` admits null even when an `enum` lacks it (GitHub's `job.conclusion` is null while a job
 *   runs); a schema with a `type` and without `nullable: true` refuses null; an untyped one leaves it to its
 *   other keywords (so a null that several `oneOf` branches admit is ambiguous, as JSON Schema says).
 * - Objects are open, as in JSON Schema, unless the check is `closed`: then a property that neither the schema
 *   nor its `allOf` siblings declare is a violation.
 */
import type { Schema } from './types.ts';

/** Follows a schema's `$ref`s to the schema they name. */
export type Resolve = (s: Schema) => Schema;

const SCHEMA_KEYWORDS = new Set(['$ref', 'type', 'nullable', 'format', 'enum', 'properties', 'required', 'additionalProperties',
  'items', 'allOf', 'anyOf', 'oneOf', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum']);
const ANNOTATIONS = new Set(['description', 'title', 'example', 'default', 'deprecated', 'externalDocs']);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s"<>\\^`{|}]*$/;
const URI_TEMPLATE = /^(?:[^\s{}"<>\\^`|]|\{[+#./;?&]?[A-Za-z0-9_.%]+(?::[1-9]\d*|\*)?(?:,[A-Za-z0-9_.%]+(?::[1-9]\d*|\*)?)*\})*$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Each format: the type it applies to and the test a value must pass. */
const FORMATS: Readonly<Record<string, readonly [string, (v: string | number) => boolean]>> = {
  'date-time': ['string', (v) => DATE_TIME.test(String(v)) && !Number.isNaN(Date.parse(String(v)))],
  'uri': ['string', (v) => URI.test(String(v))],
  'uri-template': ['string', (v) => URI_TEMPLATE.test(String(v))],
  'email': ['string', (v) => EMAIL.test(String(v))],
  'int32': ['integer', (v) => Number(v) >= -(2 ** 31) && Number(v) <= 2 ** 31 - 1],
  'int64': ['integer', (v) => Math.abs(Number(v)) <= 2 ** 63],
};

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => { const s = JSON.stringify(v) ?? String(v); return s.length > 200 ? `${s.slice(0, 197)}...` : s; };

export class SchemaChecker {
  readonly #resolve: Resolve;

  constructor(resolve: Resolve) {
    this.#resolve = resolve;
  }

  /** What is wrong with a parameter or header, given as a string, once parsed as its schema's type says. */
  checkParam(schema: Schema, raw: string, at: string): string[] {
    const s = this.#resolve(schema);
    let value: unknown = raw;
    if (s.type === 'integer' || s.type === 'number') {
      const ok = s.type === 'integer' ? /^-?\d+$/.test(raw) : /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw);
      if (!ok) return [`${at}: ${show(raw)} is not ${s.type === 'integer' ? 'an integer' : 'a number'}`];
      value = Number(raw);
      if (s.type === 'integer' && !Number.isSafeInteger(value)) return [`${at}: ${raw} is out of range`];
    } else if (s.type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') return [`${at}: ${show(raw)} is not a boolean`];
      value = raw === 'true';
    }
    return this.check(s, value, at, true);
  }

  /** What is wrong with `value` against `schema`, each with where. `siblings`: property names an allOf declares. */
  check(schema: Schema, value: unknown, at: string, closed: boolean, siblings: ReadonlySet<string> = new Set()): string[] {
    const s = this.#resolve(schema);
    if (value === null) {
      if (s.nullable === true) return [];
      if (s.type !== undefined) return [`${at}: null but not nullable`];
    }
    const out: string[] = [];
    if (s.enum !== undefined && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) out.push(`${at}: ${show(value)} is not one of ${show(s.enum)}`);
    switch (s.type) {
      case undefined:
        break;
      case 'object':
        if (!isObject(value)) return [...out, `${at}: not an object`];
        break;
      case 'array':
        if (!Array.isArray(value)) return [...out, `${at}: not an array`];
        break;
      case 'string':
        if (typeof value !== 'string') return [...out, `${at}: not a string`];
        break;
      case 'boolean':
        if (typeof value !== 'boolean') return [...out, `${at}: not a boolean`];
        break;
      case 'integer':
        if (typeof value !== 'number' || !Number.isInteger(value)) return [...out, `${at}: not an integer`];
        break;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) return [...out, `${at}: not a number`];
        break;
      default:
        throw new Error(`${at}: schema type ${s.type} is not understood`);
    }
    const formatted = typeof value === 'string' || typeof value === 'number';
    if (s.format !== undefined && formatted && FORMATS[s.format]?.[1](value) === false) out.push(`${at}: ${show(value)} is not a valid ${s.format}`);
    if (typeof value === 'string') {
      if (s.minLength !== undefined && value.length < s.minLength) out.push(`${at}: shorter than ${s.minLength}`);
      if (s.maxLength !== undefined && value.length > s.maxLength) out.push(`${at}: longer than ${s.maxLength}`);
      if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(value)) out.push(`${at}: does not match ${s.pattern}`);
    }
    if (typeof value === 'number') {
      if (s.minimum !== undefined && value < s.minimum) out.push(`${at}: ${value} is below ${s.minimum}`);
      if (s.maximum !== undefined && value > s.maximum) out.push(`${at}: ${value} is above ${s.maximum}`);
    }
    if (Array.isArray(value)) {
      if (s.minItems !== undefined && value.length < s.minItems) out.push(`${at}: ${value.length} items, fewer than ${s.minItems}`);
      if (s.maxItems !== undefined && value.length > s.maxItems) out.push(`${at}: ${value.length} items, more than ${s.maxItems}`);
      if (s.items !== undefined) value.forEach((v, i) => out.push(...this.check(s.items!, v, `${at}[${i}]`, closed)));
    }
    const known = new Set([...siblings, ...this.#declared(s)]);
    if (isObject(value) && (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined)) {
      for (const r of s.required ?? []) if (value[r] === undefined) out.push(`${at}.${r}: required`);
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined) continue; // absent once serialised
        const prop = s.properties?.[k];
        if (prop !== undefined) out.push(...this.check(prop, v, `${at}.${k}`, closed));
        else if (typeof s.additionalProperties === 'object') out.push(...this.check(s.additionalProperties, v, `${at}.${k}`, closed));
        else if (s.additionalProperties === false || (closed && s.additionalProperties !== true && !known.has(k))) out.push(`${at}.${k}: unknown field`);
      }
    }
    for (const sub of s.allOf ?? []) out.push(...this.check(sub, value, at, closed, known).filter((p) => !out.includes(p))); // members share fields
    for (const [kind, subs] of [['anyOf', s.anyOf], ['oneOf', s.oneOf]] as const) {
      if (subs === undefined) continue;
      const results = subs.map((sub) => this.check(sub, value, at, closed, known));
      const passed = results.filter((r) => r.length === 0).length;
      if (passed === 0) out.push(`${at}: matches none of ${kind} (${results.map((r, i) => `#${i}: ${r[0] ?? ''}`).join('; ')})`);
      else if (kind === 'oneOf' && passed > 1) out.push(`${at}: matches ${passed} of oneOf, exactly one is allowed`);
    }
    return out;
  }

  /** The property names a schema declares, its allOf members' included. */
  #declared(schema: Schema): string[] {
    const s = this.#resolve(schema);
    return [...Object.keys(s.properties ?? {}), ...(s.allOf ?? []).flatMap((sub) => this.#declared(sub))];
  }
}

/** Throws on anything in a schema this validator would otherwise ignore. References are audited where they point. */
export function auditSchema(s: Schema, at: string, resolve: Resolve): void {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new Error(`${at}: not a schema`);
  if (s.$ref !== undefined) {
    if (Object.keys(s).length > 1) throw new Error(`${at}: $ref with sibling keywords is not supported`);
    resolve(s);
    return;
  }
  for (const k of Object.keys(s)) {
    if (!SCHEMA_KEYWORDS.has(k) && !ANNOTATIONS.has(k) && !k.startsWith('x-')) throw new Error(`${at}.${k}: keyword not supported by this validator`);
  }
  if (s.type !== undefined && !TYPES.has(s.type)) throw new Error(`${at}: type ${s.type} is not supported`);
  if (s.format !== undefined) {
    const f = FORMATS[s.format];
    if (f === undefined) throw new Error(`${at}: format ${s.format} is not supported`);
    if (f[0] !== s.type) throw new Error(`${at}: format ${s.format} on type ${String(s.type)} is not supported`);
  }
  if (s.pattern !== undefined) new RegExp(s.pattern, 'u');
  for (const [k, v] of Object.entries(s.properties ?? {})) auditSchema(v, `${at}.properties.${k}`, resolve);
  if (s.items !== undefined) auditSchema(s.items, `${at}.items`, resolve);
  if (typeof s.additionalProperties === 'object') auditSchema(s.additionalProperties, `${at}.additionalProperties`, resolve);
  for (const kind of ['allOf', 'anyOf', 'oneOf'] as const) s[kind]?.forEach((sub, i) => auditSchema(sub, `${at}.${kind}[${i}]`, resolve));
}
