export { OpenApi } from './open-api.ts';
export type { Example, HeaderMap, Match, Operation, Parameter, RequestParts, Response, ResponseOptions, Schema } from './types.ts';
