/**
 * Validation against an OpenAPI 3.0 description (GitHub's, test/fixtures/github/): which operation a method and
 * path are, whether a request's parameters and body, a response's status, headers and body, or a webhook
 * payload match what the description declares. Written for what GitHub's two documents use, and nothing is
 * skipped quietly: loading a document that uses something this validator does not understand throws, naming
 * where (document.ts). Schema semantics are in schema.ts. Requests and responses are checked closed by default
 * (a misspelt optional field, or a field the stand-in made up, is caught); webhooks open (GitHub adds fields).
 */
import { readFileSync } from 'node:fs';
import { Document } from './document.ts';
import { SchemaChecker } from './schema.ts';
import type { Example, HeaderMap, Match, MediaType, Operation, RequestParts, ResponseOptions } from './types.ts';

const fixture = (name: string): string => new URL(`../../fixtures/github/${name}`, import.meta.url).pathname;

export class OpenApi {
  readonly #doc: Document;
  readonly #schemas: SchemaChecker;

  constructor(doc: unknown) {
    this.#doc = new Document(doc);
    this.#schemas = new SchemaChecker(this.#doc.resolve);
  }

  static load(file: string): OpenApi {
    return new OpenApi(JSON.parse(readFileSync(file, 'utf8')));
  }

  /** GitHub's REST description, the subset matchlock uses. */
  static github(): OpenApi {
    return OpenApi.load(fixture('openapi-subset.json'));
  }

  /** GitHub's webhook definitions (`x-webhooks`) for the events matchlock receives. */
  static githubWebhooks(): OpenApi {
    return OpenApi.load(fixture('openapi-webhooks-subset.json'));
  }

  get operations(): readonly Operation[] {
    return this.#doc.operations;
  }

  /** The operation for a method and a concrete path (a query string is ignored), with its path parameters. */
  operation(method: string, path: string): Match | null {
    return this.#doc.operation(method, path);
  }

  /** What is wrong with a request: parameters (path, query, header) by their schemas, and the JSON body. */
  checkRequest(op: Operation, parts: RequestParts): string[] {
    return [...this.checkParameters(op, parts), ...this.checkBody(op, parts.body, parts.closed)];
  }

  /** What is wrong with a request's parameters (path, query, header), its body aside. */
  checkParameters(op: Operation, parts: Omit<RequestParts, 'body' | 'closed'>): string[] {
    const out: string[] = [];
    const query = parts.query instanceof URLSearchParams ? parts.query : new URLSearchParams(parts.query ?? {});
    for (const p of op.parameters) {
      let values: readonly string[];
      if (p.in === 'path') values = parts.pathParams?.[p.name] === undefined ? [] : [parts.pathParams[p.name]!];
      else if (p.in === 'query') values = query.getAll(p.name);
      else values = headerValues(parts.headers, p.name);
      const at = `${p.in}.${p.name}`;
      if (values.length === 0) { if (p.required === true) out.push(`${at}: required`); continue; }
      if (values.length > 1) { out.push(`${at}: given ${values.length} times`); continue; }
      out.push(...this.#schemas.checkParam(p.schema, values[0]!, at));
    }
    const known = new Set(op.parameters.filter((p) => p.in === 'query').map((p) => p.name));
    for (const k of new Set(query.keys())) if (!known.has(k)) out.push(`query.${k}: not a parameter of ${op.operationId}`);
    return out;
  }

  /** What is wrong with a request's JSON body (undefined: none was sent). */
  checkBody(op: Operation, body: unknown, closed = true): string[] {
    const rb = op.requestBody;
    if (rb === undefined) return body === undefined ? [] : [`${op.operationId} takes no body`];
    if (body === undefined) return rb.required === true ? [`${op.operationId} needs a body`] : [];
    const media = rb.content['application/json'];
    if (media === undefined) return [`${op.operationId} takes no application/json body`];
    return this.#schemas.check(media.schema ?? {}, body, 'body', closed);
  }

  /** What is wrong with a response: a status the operation does not declare, a declared header or the body. */
  checkResponse(op: Operation, status: number, body: unknown, opts: ResponseOptions = {}): string[] {
    const declared = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses['default'];
    if (declared === undefined) return [`status ${status} is not a response of ${op.operationId}`];
    const out: string[] = [];
    for (const [name, h] of Object.entries(declared.headers ?? {})) {
      const values = headerValues(opts.headers, name);
      if (values.length === 0) { if (h.required === true) out.push(`header.${name}: required`); continue; }
      out.push(...this.#schemas.checkParam(h.schema, values.join(', '), `header.${name}`));
    }
    const content = declared.content ?? {};
    if (Object.keys(content).length === 0) return body === undefined ? out : [...out, `status ${status} of ${op.operationId} has no body`];
    const contentType = opts.contentType ?? 'application/json';
    const media = content[contentType];
    if (media === undefined) return [...out, `status ${status} of ${op.operationId} has no ${contentType} body`];
    if (body === undefined) return [...out, `status ${status} of ${op.operationId} needs a body`];
    return [...out, ...this.#schemas.check(media.schema ?? {}, body, 'response', opts.closed ?? true)];
  }

  /** The webhook definition for an `X-GitHub-Event` and payload `action` (none for ping), e.g. workflow-job-queued. */
  webhookName(event: string, action: string | null | undefined): string | null {
    return this.#doc.webhook(event, action)?.name ?? null;
  }

  /** What is wrong with a webhook payload against the definition for its event and action. */
  checkWebhook(event: string, action: string | null | undefined, payload: unknown,
    opts: { readonly closed?: boolean; readonly headers?: HeaderMap } = {}): string[] {
    const op = this.#doc.webhook(event, action)?.op;
    if (op === undefined) return [`${event}${action === null || action === undefined ? '' : `.${action}`} is not a webhook of the description`];
    return this.checkRequest(op, { body: payload, closed: opts.closed ?? false, ...(opts.headers === undefined ? {} : { headers: opts.headers }) });
  }

  /** What is wrong with a value against a named component schema (e.g. `basic-error`). */
  checkSchema(name: string, value: unknown, at = 'value', closed = true): string[] {
    return this.#schemas.check({ $ref: `#/components/schemas/${name}` }, value, at, closed);
  }

  /** The description's own examples: request bodies and responses, `$ref`s resolved. */
  examples(): Example[] {
    const out: Example[] = [];
    const collect = (op: Operation, status: string | null, content: Readonly<Record<string, MediaType>> | undefined): void => {
      for (const [contentType, media] of Object.entries(content ?? {})) {
        for (const [name, ex] of Object.entries(media.examples ?? {})) out.push({ op, status, contentType, name, value: this.#doc.deref(ex).value });
      }
    };
    for (const op of this.operations) {
      collect(op, null, op.requestBody?.content);
      for (const [status, r] of Object.entries(op.responses)) collect(op, status, r.content);
    }
    return out;
  }
}

function headerValues(headers: HeaderMap | undefined, name: string): readonly string[] {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() !== lower || v === undefined) continue;
    return typeof v === 'string' ? [v] : v;
  }
  return [];
}
