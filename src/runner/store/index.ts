/** The runner host's durable state: one node:sqlite file (WAL), schema versioned with PRAGMA user_version. */
export { RunnerStore, type StoreOptions } from './store.ts';
export { STORE_SCHEMA_VERSION } from './schema.ts';
export { DEFAULT_BUSY_TIMEOUT_MS } from './open.ts';
export * from './types.ts';
