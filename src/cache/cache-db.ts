/**
 * The cache's state: `DIR/cache.db` (node:sqlite, WAL, a busy timeout so that several processes can share it).
 * Every change that decides who holds a disk happens in one `BEGIN IMMEDIATE` transaction: SQLite lets one
 * writer in at a time, across processes, so two acquirers never see the same disk free.
 */
import { DatabaseSync, type SQLOutputValue } from 'node:sqlite';
import { join } from 'node:path';
import { cacheError, validatePool, type PoolConfig } from './pool-config.ts';
import { immediate } from '../sqlite-transaction.ts';

export type DiskState = 'free' | 'leased' | 'dirty' | 'broken';

export interface DiskRow {
  readonly pool: string;
  readonly key: string;
  readonly n: number;
  readonly path: string;
  readonly sizeMib: number;
  readonly created: string;
  readonly lastUsed: string | null;
  readonly state: DiskState;
  readonly holderPid: number | null;
  readonly holderStart: number | null;
  readonly leaseId: string | null;
  readonly leasedAt: string | null;
  /** How many times the disk's file system was made: 0 until the first mke2fs finished. */
  readonly generation: number;
}

export const DB_FILE = 'cache.db';
const BUSY_TIMEOUT_MS = 30_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pools (
  name TEXT PRIMARY KEY,
  size_mib INTEGER NOT NULL,
  max_disks INTEGER NOT NULL,
  per_repository INTEGER NOT NULL,
  mount_path TEXT NOT NULL,
  updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS disks (
  pool TEXT NOT NULL,
  key TEXT NOT NULL,
  n INTEGER NOT NULL,
  path TEXT NOT NULL UNIQUE,
  size_mib INTEGER NOT NULL,
  created TEXT NOT NULL,
  last_used TEXT,
  state TEXT NOT NULL CHECK (state IN ('free', 'leased', 'dirty', 'broken')),
  holder_pid INTEGER,
  holder_start INTEGER,
  lease_id TEXT UNIQUE,
  leased_at TEXT,
  generation INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pool, key, n),
  CHECK ((state = 'leased') = (lease_id IS NOT NULL))
);`;

export function openCacheDb(dir: string): DatabaseSync {
  const db = new DatabaseSync(join(dir, DB_FILE), { timeout: BUSY_TIMEOUT_MS });
  try {
    db.exec('PRAGMA journal_mode = WAL');
    immediate(db, () => db.exec(SCHEMA));
  } catch (e: unknown) {
    db.close();
    throw e;
  }
  return db;
}

export { immediate };

type Row = Record<string, SQLOutputValue>;

function str(row: Row, col: string): string {
  const v = row[col];
  if (typeof v !== 'string') throw cacheError(`cache.db: column ${col} is not text: the database is damaged, remove it with its disks`, { col });
  return v;
}

function int(row: Row, col: string): number {
  const v = row[col];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw cacheError(`cache.db: column ${col} is not an integer: the database is damaged, remove it with its disks`, { col });
  return v;
}

const optStr = (row: Row, col: string): string | null => (row[col] === null ? null : str(row, col));
const optInt = (row: Row, col: string): number | null => (row[col] === null ? null : int(row, col));

const STATES: readonly string[] = ['free', 'leased', 'dirty', 'broken'];

export function toDiskRow(row: Row): DiskRow {
  const state = str(row, 'state');
  if (!STATES.includes(state)) throw cacheError(`cache.db: unknown disk state "${state}"`, { state });
  return {
    pool: str(row, 'pool'), key: str(row, 'key'), n: int(row, 'n'), path: str(row, 'path'), sizeMib: int(row, 'size_mib'),
    created: str(row, 'created'), lastUsed: optStr(row, 'last_used'), state: state as DiskState,
    holderPid: optInt(row, 'holder_pid'), holderStart: optInt(row, 'holder_start'), leaseId: optStr(row, 'lease_id'),
    leasedAt: optStr(row, 'leased_at'), generation: int(row, 'generation'),
  };
}

export function toPool(row: Row): PoolConfig {
  return validatePool({
    name: str(row, 'name'), sizeMib: int(row, 'size_mib'), maxDisks: int(row, 'max_disks'),
    perRepository: int(row, 'per_repository') === 1, mountPath: str(row, 'mount_path'),
  });
}

/** Records a pool's configuration (the latest given wins); the CLI knows pools from here. */
export function savePool(db: DatabaseSync, pool: PoolConfig): void {
  db.prepare(`INSERT INTO pools (name, size_mib, max_disks, per_repository, mount_path, updated) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET size_mib = excluded.size_mib, max_disks = excluded.max_disks,
      per_repository = excluded.per_repository, mount_path = excluded.mount_path, updated = excluded.updated`)
    .run(pool.name, pool.sizeMib, pool.maxDisks, pool.perRepository ? 1 : 0, pool.mountPath, new Date().toISOString());
}

export function loadPool(db: DatabaseSync, name: string): PoolConfig | null {
  const row = db.prepare('SELECT * FROM pools WHERE name = ?').get(name);
  return row === undefined ? null : toPool(row);
}

export function disksOf(db: DatabaseSync, pool: string, key?: string): DiskRow[] {
  const rows = key === undefined
    ? db.prepare('SELECT * FROM disks WHERE pool = ? ORDER BY key, n').all(pool)
    : db.prepare('SELECT * FROM disks WHERE pool = ? AND key = ? ORDER BY n').all(pool, key);
  return rows.map(toDiskRow);
}

/** Clears a disk's lease, leaving it in state; only if leaseId still holds it. Returns whether it did. */
export function endLease(db: DatabaseSync, leaseId: string, state: Exclude<DiskState, 'leased'>, lastUsed: string | null): boolean {
  const r = db.prepare(`UPDATE disks SET state = ?, holder_pid = NULL, holder_start = NULL, lease_id = NULL, leased_at = NULL,
      last_used = COALESCE(?, last_used) WHERE lease_id = ? AND state = 'leased'`).run(state, lastUsed, leaseId);
  return r.changes === 1;
}
