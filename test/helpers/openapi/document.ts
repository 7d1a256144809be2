/**
 * An OpenAPI 3.0 document loaded for validation: its operations (`paths`) and webhooks (`x-webhooks`) with their
 * `$ref`s resolved, found by method and concrete path or by event and action. Loading throws, naming where, on a
 * keyword, format, parameter location or media type the validator does not understand.
 */
import type { Header, MediaType, Match, Operation, Parameter, RequestBody, Response, Schema } from './types.ts';
import { auditSchema, isObject } from './schema.ts';

const OPERATION_KEYS = new Set(['summary', 'description', 'operationId', 'tags', 'externalDocs', 'parameters', 'requestBody', 'responses', 'deprecated']);
const PARAMETER_KEYS = new Set(['name', 'in', 'description', 'required', 'schema', 'example', 'examples', 'deprecated']);
const REQUEST_BODY_KEYS = new Set(['description', 'required', 'content']);
const RESPONSE_KEYS = new Set(['description', 'content', 'headers']);
const HEADER_KEYS = new Set(['description', 'required', 'schema', 'example', 'examples', 'deprecated']);
const MEDIA_KEYS = new Set(['schema', 'example', 'examples']);
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const MEDIA_TYPES = new Set(['application/json', 'application/scim+json', 'application/x-www-form-urlencoded']);

export class Document {
  readonly #doc: Readonly<Record<string, unknown>>;
  readonly #ops: { op: Operation; re: RegExp; names: string[] }[] = [];
  readonly #webhooks = new Map<string, Operation>();

  constructor(doc: unknown) {
    if (!isObject(doc) || typeof doc['openapi'] !== 'string' || !doc['openapi'].startsWith('3.0.')) throw new Error('not an OpenAPI 3.0 document');
    this.#doc = doc;
    for (const [template, ops] of Object.entries((doc['paths'] ?? {}) as Record<string, Record<string, unknown>>)) {
      for (const [method, raw] of Object.entries(ops)) {
        if (!METHODS.has(method)) throw new Error(`paths.${template}.${method}: not supported by this validator`);
        const op = this.#operation(method, template, raw, `paths.${template}.${method}`);
        const names: string[] = [];
        const re = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_m, n: string) => { names.push(n); return '([^/]+)'; })}$`);
        this.#ops.push({ op, re, names });
      }
    }
    // A literal segment wins over a template (…/runners/generate-jitconfig before …/runners/{runner_id}).
    this.#ops.sort((a, b) => a.names.length - b.names.length);
    for (const [name, ops] of Object.entries((doc['x-webhooks'] ?? {}) as Record<string, Record<string, unknown>>)) {
      for (const [method, raw] of Object.entries(ops)) this.#webhooks.set(name, this.#operation(method, name, raw, `x-webhooks.${name}.${method}`));
    }
    for (const [name, s] of Object.entries(this.#components('schemas'))) this.#audit(s as Schema, `components.schemas.${name}`);
  }

  get operations(): readonly Operation[] {
    return this.#ops.map((o) => o.op);
  }

  /** The operation for a method and a concrete path (a query string is ignored), with its path parameters. */
  operation(method: string, path: string): Match | null {
    const pathname = path.split('?')[0] ?? '';
    for (const { op, re, names } of this.#ops) {
      if (op.method !== method.toUpperCase()) continue;
      const m = re.exec(pathname);
      if (m === null) continue;
      const pathParams: Record<string, string> = {};
      names.forEach((n, i) => {
        const raw = m[i + 1] ?? '';
        try { pathParams[n] = decodeURIComponent(raw); } catch { pathParams[n] = raw; }
      });
      return { op, pathParams };
    }
    return null;
  }

  /** The webhook definition for an `X-GitHub-Event` and payload `action` (none for ping), e.g. workflow-job-queued. */
  webhook(event: string, action: string | null | undefined): { readonly name: string; readonly op: Operation } | null {
    const found = [...this.#webhooks].filter(([, op]) => {
      if (op.xGithub['subcategory'] !== event) return false;
      const schema = this.resolve(op.requestBody?.content['application/json']?.schema ?? {});
      const actions = schema.properties?.['action'] === undefined ? undefined : this.resolve(schema.properties['action']).enum;
      return action === null || action === undefined ? actions === undefined : actions?.includes(action) === true;
    });
    if (found.length > 1) throw new Error(`${event}/${String(action)} matches webhooks ${found.map(([n]) => n).join(', ')}`);
    return found[0] === undefined ? null : { name: found[0][0], op: found[0][1] };
  }

  /** Follows `$ref`s (`#/components/<kind>/<name>`) to the object they name. */
  deref<T>(x: T): T {
    let cur: unknown = x;
    for (let depth = 0; isObject(cur) && typeof cur['$ref'] === 'string'; depth++) {
      const ref = cur['$ref'];
      const m = /^#\/components\/(schemas|parameters|responses|examples|headers|requestBodies)\/([^/]+)$/.exec(ref);
      const next = m === null ? undefined : this.#components(m[1]!)[m[2]!.replace(/~1/g, '/').replace(/~0/g, '~')];
      if (next === undefined || depth > 32) throw new Error(`unresolvable $ref ${ref}`);
      cur = next;
    }
    return cur as T;
  }

  readonly resolve = (s: Schema): Schema => this.deref(s);

  #operation(method: string, template: string, raw: unknown, at: string): Operation {
    if (!isObject(raw)) throw new Error(`${at}: not an operation`);
    onlyKeys(raw, OPERATION_KEYS, at);
    const parameters = ((raw['parameters'] ?? []) as unknown[]).map((p, i) => {
      const param = this.deref(p) as Record<string, unknown>;
      const where = `${at}.parameters[${i}]`;
      onlyKeys(param, PARAMETER_KEYS, where);
      if (!['path', 'query', 'header'].includes(String(param['in']))) throw new Error(`${where}: parameters in ${String(param['in'])} are not supported`);
      const type = this.resolve(param['schema'] as Schema).type;
      if (!['string', 'integer', 'number', 'boolean'].includes(String(type))) throw new Error(`${where}: parameters of type ${String(type)} are not supported`);
      this.#audit(param['schema'] as Schema, `${where}.schema`);
      return param as unknown as Parameter;
    });
    const requestBody = raw['requestBody'] === undefined ? undefined : this.deref(raw['requestBody']) as RequestBody;
    if (requestBody !== undefined) {
      onlyKeys(requestBody, REQUEST_BODY_KEYS, `${at}.requestBody`);
      this.#auditContent(requestBody.content, `${at}.requestBody`);
    }
    const responses: Record<string, Response> = {};
    for (const [status, r] of Object.entries(raw['responses'] as Record<string, unknown>)) {
      const resp = this.deref(r) as Response & { headers?: Record<string, unknown> };
      onlyKeys(resp, RESPONSE_KEYS, `${at}.responses.${status}`);
      const headers: Record<string, Header> = {};
      for (const [name, h] of Object.entries(resp.headers ?? {})) {
        headers[name] = this.deref(h) as Header;
        onlyKeys(headers[name], HEADER_KEYS, `${at}.responses.${status}.headers.${name}`);
        this.#audit(headers[name].schema, `${at}.responses.${status}.headers.${name}.schema`);
      }
      this.#auditContent(resp.content, `${at}.responses.${status}`);
      responses[status] = { ...resp, headers };
    }
    return {
      method: method.toUpperCase(), template, operationId: String(raw['operationId']), parameters, requestBody, responses,
      docsUrl: (raw['externalDocs'] as { url?: string } | undefined)?.url,
      xGithub: (raw['x-github'] ?? {}) as Record<string, unknown>,
    };
  }

  #auditContent(content: Readonly<Record<string, MediaType>> | undefined, at: string): void {
    for (const [type, media] of Object.entries(content ?? {})) {
      if (!MEDIA_TYPES.has(type)) throw new Error(`${at}: media type ${type} is not supported`);
      onlyKeys(media, MEDIA_KEYS, `${at}.content.${type}`);
      if (media.schema !== undefined) this.#audit(media.schema, `${at}.content.${type}.schema`);
    }
  }

  #audit(s: Schema, at: string): void {
    auditSchema(s, at, this.resolve);
  }

  #components(kind: string): Readonly<Record<string, unknown>> {
    return ((this.#doc['components'] as Record<string, unknown> | undefined)?.[kind] ?? {}) as Record<string, unknown>;
  }
}

/** Throws on a key outside `allowed` (extensions, `x-…`, aside): what this validator does not read it must not accept. */
function onlyKeys(obj: object, allowed: ReadonlySet<string>, at: string): void {
  for (const k of Object.keys(obj)) if (!allowed.has(k) && !k.startsWith('x-')) throw new Error(`${at}.${k}: not supported by this validator`);
}
