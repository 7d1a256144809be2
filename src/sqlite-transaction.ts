/** One transaction on a node:sqlite database, shared by the cache-disk leases and the runner host's store. */
import type { DatabaseSync } from 'node:sqlite';

/** Runs fn in one BEGIN IMMEDIATE transaction: committed when it returns, rolled back when it throws. */
export function immediate<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (e: unknown) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw e;
  }
}
