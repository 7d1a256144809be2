/**
 * Validation against a Swagger 2.0 API description (Firecracker's, test/fixtures/firecracker/): is this
 * method and path an operation of the API, does a request body match its schema, does a response's status and
 * body match what the operation declares. Covers what that description uses: $ref into definitions, object
 * (properties, required, additionalProperties), array, string, integer (int32/int64 bounds), number, boolean,
 * enum, minimum and maximum. Unknown fields are errors unless a schema allows them, as Firecracker's server
 * refuses them.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

interface Schema {
  readonly $ref?: string;
  readonly type?: string;
  readonly format?: string;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
}

interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'body' | 'query';
  readonly required?: boolean;
  readonly schema?: Schema;
  readonly type?: string;
}

interface Operation {
  readonly operationId: string;
  readonly parameters?: readonly Parameter[];
  readonly responses: Readonly<Record<string, { readonly schema?: Schema }>>;
}

interface Spec {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly definitions: Readonly<Record<string, Schema>>;
}

export interface Found {
  readonly operation: Operation;
  readonly template: string;
  readonly params: Readonly<Record<string, string>>;
}

const INT_BOUNDS: Readonly<Record<string, [number, number]>> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

export class SwaggerApi {
  readonly #spec: Spec;

  constructor(file: string) {
    this.#spec = parse(readFileSync(file, 'utf8')) as Spec;
  }

  static firecracker(): SwaggerApi {
    return new SwaggerApi(new URL('../fixtures/firecracker/firecracker-swagger.yaml', import.meta.url).pathname);
  }

  /**
   * Adds a property of our own to a definition (matchlock's documented additions, e.g. Drive.cow_path), so
   * requests that use it are still checked field by field against everything else.
   */
  extend(definition: string, property: string, schema: Schema): this {
    const def = this.#spec.definitions[definition] as { properties?: Record<string, Schema> } | undefined;
    if (def === undefined) throw new Error(`no definition ${definition}`);
    def.properties = { ...def.properties, [property]: schema };
    return this;
  }

  /** The operation for a method and a concrete path, with its path parameters; null when the API has none. */
  find(method: string, path: string): Found | null {
    for (const [template, ops] of Object.entries(this.#spec.paths)) {
      const names: string[] = [];
      const re = new RegExp(`^${template.replace(/\{([^}]+)\}/g, (_m, n: string) => { names.push(n); return '([^/]+)'; })}$`);
      const m = re.exec(path);
      const operation = ops[method.toLowerCase()];
      if (m === null || operation === undefined) continue;
      const params: Record<string, string> = {};
      names.forEach((n, i) => {
        const raw = m[i + 1]!;
        try {
          params[n] = decodeURIComponent(raw);
        } catch {
          params[n] = raw; // not valid percent-encoding: the id as sent
        }
      });
      return { operation, template, params };
    }
    return null;
  }

  /** What is wrong with a request: an unknown operation, a missing or ill-shaped body. Empty when it is valid. */
  requestProblems(method: string, path: string, body: unknown): string[] {
    const found = this.find(method, path);
    if (found === null) return [`${method} ${path} is not an operation of the API`];
    const bodyParam = found.operation.parameters?.find((p) => p.in === 'body');
    if (bodyParam === undefined) return body === undefined ? [] : [`${found.operation.operationId} takes no body`];
    if (body === undefined) return bodyParam.required === true ? [`${found.operation.operationId} needs a body`] : [];
    return this.problems(bodyParam.schema ?? {}, body, 'body');
  }

  /** What is wrong with a response: a status the operation does not declare, or a body of the wrong shape. */
  responseProblems(method: string, path: string, status: number, body: unknown): string[] {
    const found = this.find(method, path);
    if (found === null) return [`${method} ${path} is not an operation of the API`];
    const declared = found.operation.responses[String(status)] ?? (status >= 400 ? found.operation.responses['default'] : undefined);
    if (declared === undefined) return [`status ${status} is not a response of ${found.operation.operationId}`];
    if (declared.schema === undefined) return body === undefined ? [] : [`status ${status} of ${found.operation.operationId} has no body`];
    return this.problems(declared.schema, body, 'response');
  }

  /** What is wrong with `value` against `schema`, each with where. */
  problems(schema: Schema, value: unknown, at: string): string[] {
    const s = this.#resolve(schema);
    const out: string[] = [];
    if (s.enum !== undefined && !s.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
    switch (s.type) {
      case undefined:
        break;
      case 'object': {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) return [...out, `${at}: not an object`];
        const obj = value as Record<string, unknown>;
        for (const r of s.required ?? []) if (!(r in obj)) out.push(`${at}.${r}: required`);
        for (const [k, v] of Object.entries(obj)) {
          const prop = s.properties?.[k];
          if (prop !== undefined) out.push(...this.problems(prop, v, `${at}.${k}`));
          else if (typeof s.additionalProperties === 'object') out.push(...this.problems(s.additionalProperties, v, `${at}.${k}`));
          else if (s.additionalProperties !== true) out.push(`${at}.${k}: unknown field`);
        }
        break;
      }
      case 'array':
        if (!Array.isArray(value)) return [...out, `${at}: not an array`];
        value.forEach((v, i) => out.push(...this.problems(s.items ?? {}, v, `${at}[${i}]`)));
        break;
      case 'string':
        if (typeof value !== 'string') out.push(`${at}: not a string`);
        break;
      case 'boolean':
        if (typeof value !== 'boolean') out.push(`${at}: not a boolean`);
        break;
      case 'integer':
      case 'number': {
        if (typeof value !== 'number' || (s.type === 'integer' && !Number.isInteger(value))) return [...out, `${at}: not ${s.type === 'integer' ? 'an integer' : 'a number'}`];
        const [lo, hi] = INT_BOUNDS[s.format ?? ''] ?? [-Infinity, Infinity];
        if (value < Math.max(lo, s.minimum ?? -Infinity) || value > Math.min(hi, s.maximum ?? Infinity)) out.push(`${at}: ${value} is out of range`);
        break;
      }
      default:
        out.push(`${at}: schema type ${s.type} is not understood by this validator`);
    }
    return out;
  }

  #resolve(s: Schema): Schema {
    let cur = s;
    for (let depth = 0; cur.$ref !== undefined; depth++) {
      const name = /^#\/definitions\/(.+)$/.exec(cur.$ref)?.[1];
      const next = name === undefined ? undefined : this.#spec.definitions[name];
      if (next === undefined || depth > 32) throw new Error(`unresolvable $ref ${cur.$ref}`);
      cur = next;
    }
    return cur;
  }
}
