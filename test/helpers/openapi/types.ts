/**
 * The parts of an OpenAPI 3.0 document this validator reads, as it holds them once loaded (every `$ref` of an
 * operation's parameters, request body and responses resolved; schemas keep theirs, followed when checked).
 */

export interface Schema {
  readonly $ref?: string;
  readonly type?: string;
  readonly nullable?: boolean;
  readonly format?: string;
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly allOf?: readonly Schema[];
  readonly anyOf?: readonly Schema[];
  readonly oneOf?: readonly Schema[];
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

export interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header';
  readonly required?: boolean;
  readonly schema: Schema;
}

export interface MediaType {
  readonly schema?: Schema;
  readonly examples?: Readonly<Record<string, { readonly $ref?: string; readonly value?: unknown }>>;
}

export interface Header {
  readonly required?: boolean;
  readonly schema: Schema;
}

export interface Response {
  readonly content?: Readonly<Record<string, MediaType>>;
  readonly headers?: Readonly<Record<string, Header>>;
}

export interface RequestBody {
  readonly required?: boolean;
  readonly content: Readonly<Record<string, MediaType>>;
}

/** An operation with every `$ref` of its parameters, request body and responses resolved. */
export interface Operation {
  readonly method: string;
  readonly template: string;
  readonly operationId: string;
  /** The operation's documentation page (`externalDocs.url`), as GitHub puts in its error bodies. */
  readonly docsUrl: string | undefined;
  readonly parameters: readonly Parameter[];
  readonly requestBody: RequestBody | undefined;
  readonly responses: Readonly<Record<string, Response>>;
  readonly xGithub: Readonly<Record<string, unknown>>;
}

export interface Match {
  readonly op: Operation;
  readonly pathParams: Readonly<Record<string, string>>;
}

export type HeaderMap = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface RequestParts {
  readonly pathParams?: Readonly<Record<string, string>>;
  readonly query?: URLSearchParams | Readonly<Record<string, string>>;
  readonly headers?: HeaderMap;
  readonly body?: unknown;
  readonly closed?: boolean;
}

export interface ResponseOptions {
  readonly headers?: HeaderMap;
  readonly contentType?: string;
  readonly closed?: boolean;
}

export interface Example {
  readonly op: Operation;
  readonly status: string | null; // null for the request body
  readonly contentType: string;
  readonly name: string;
  readonly value: unknown;
}
