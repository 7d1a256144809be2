/**
 * Opens the runner host's state file: its directory made 0700 and the file 0600 when they are new, the schema
 * version checked before anything is written (a file from a newer matchlock is refused untouched), then WAL,
 * a busy timeout so that other processes (the CLI) can share it, and the pending migrations in one transaction.
 */
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ErrorCodes, MatchlockError, errorMessage } from '../../errors.ts';
import { MIGRATIONS, STORE_SCHEMA_VERSION } from './schema.ts';
import { immediate } from '../../sqlite-transaction.ts';

export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

export function storeError(path: string, doing: string, e: unknown): MatchlockError {
  return new MatchlockError(ErrorCodes.STORE, `${path}: cannot ${doing} the runner host's state database: ${errorMessage(e)}`, { path }, { cause: e });
}

export { immediate };

function userVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get();
  const v = row?.['user_version'];
  if (typeof v !== 'number') throw new Error('PRAGMA user_version gave no number');
  return v;
}

function refuseNewer(path: string, version: number): void {
  if (version > STORE_SCHEMA_VERSION) {
    throw new MatchlockError(ErrorCodes.STORE,
      `${path}: the runner host's state database has schema version ${version}, newer than this matchlock knows (${STORE_SCHEMA_VERSION}): run the matchlock that wrote it, or another state file`,
      { path, version, known: STORE_SCHEMA_VERSION });
  }
}

function migrate(path: string, db: DatabaseSync): void {
  immediate(db, () => {
    const version = userVersion(db); // again, inside the lock: another process may have migrated meanwhile
    refuseNewer(path, version);
    for (let v = version; v < STORE_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    if (version < STORE_SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${STORE_SCHEMA_VERSION}`);
  });
}

export function openStoreDb(path: string, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS): DatabaseSync {
  let db: DatabaseSync;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600));
    db = new DatabaseSync(path, { timeout: busyTimeoutMs, enableForeignKeyConstraints: true });
  } catch (e: unknown) {
    throw storeError(path, 'open', e);
  }
  try {
    refuseNewer(path, userVersion(db));
    const mode = db.prepare('PRAGMA journal_mode = WAL').get()?.['journal_mode'];
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
    // FULL: a transaction is on disk when COMMIT returns, so a delivery acknowledged to GitHub survives a power cut.
    db.exec('PRAGMA synchronous = FULL');
    migrate(path, db);
    return db;
  } catch (e: unknown) {
    db.close();
    if (e instanceof MatchlockError) throw e;
    throw storeError(path, 'open', e);
  }
}
