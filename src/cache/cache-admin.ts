/**
 * `matchlock cache reset | rm`: an operator's changes to disks. The disks are first claimed in one transaction
 * (leased to this process, so no job gets them meanwhile; refused if any is held by a running process), then
 * changed outside it. Should this process die half-way, its claims are leases of a dead holder: the next acquire
 * checks those disks (and makes a missing one again), and a later reset or rm takes them.
 */
import { randomUUID } from 'node:crypto';
import { rmSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.ts';
import { disksOf, endLease, immediate, type DiskRow } from './cache-db.ts';
import { diskLabel, formatDisk } from './ext4.ts';
import { holderAlive, processStartTime } from './holder.ts';
import { cacheError, repositoryKey, SHARED_KEY, type PoolConfig } from './pool-config.ts';

export interface AdminContext {
  readonly db: DatabaseSync;
  readonly dir: string;
  readonly log: Logger;
}

export interface DiskSelection {
  readonly pool: string;
  /** undefined: every key of the pool. */
  readonly key: string | undefined;
  readonly n: number | undefined;
}

interface Claimed {
  readonly disk: DiskRow;
  readonly leaseId: string;
}

const describe = (d: DiskRow): string => `${d.pool}/${d.key}/${d.n}`;

/** Which disks an operator means: a shared pool's (no repository then), one repository's, or all of a pool's. */
export function selectDisks(pool: PoolConfig, repository: string | undefined, n: number | undefined): DiskSelection {
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw cacheError(`cache disk number ${n} is not a disk: give a number from matchlock cache list`, { n });
  if (!pool.perRepository) {
    if (repository !== undefined) throw cacheError(`cache pool ${pool.name} is shared by all repositories: leave out the repository`, { pool: pool.name, repository });
    return { pool: pool.name, key: SHARED_KEY, n };
  }
  if (repository === undefined && n !== undefined) throw cacheError(`cache pool ${pool.name} keeps disks per repository: give the repository with the disk number`, { pool: pool.name, n });
  return { pool: pool.name, key: repository === undefined ? undefined : repositoryKey(repository), n };
}

/** Leases the selected disks to this process, all or none; refuses if a running process holds any of them. */
export function claimDisks(ctx: AdminContext, sel: DiskSelection, what: 'reset' | 'rm'): Claimed[] {
  const start = processStartTime(process.pid);
  return immediate(ctx.db, () => {
    const disks = disksOf(ctx.db, sel.pool, sel.key).filter((d) => sel.n === undefined || d.n === sel.n);
    if (disks.length === 0 && what === 'reset') {
      throw cacheError(`no cache disk matches pool ${sel.pool}${sel.key === undefined ? '' : ` key ${sel.key}`}${sel.n === undefined ? '' : ` disk ${sel.n}`}: see matchlock cache list`, { ...sel });
    }
    const busy = disks.filter((d) => d.state === 'leased' && holderAlive(d.holderPid, d.holderStart));
    if (busy.length > 0) {
      const held = busy.map((d) => `${describe(d)} (pid ${d.holderPid})`).join(', ');
      throw cacheError(`cannot ${what} leased cache disks ${held}: wait for their jobs to end, or stop them`, { disks: busy.map((d) => d.path) });
    }
    const now = new Date().toISOString();
    return disks.map((disk) => {
      const leaseId = `${what}-${randomUUID()}`;
      ctx.db.prepare(`UPDATE disks SET state = 'leased', holder_pid = ?, holder_start = ?, lease_id = ?, leased_at = ?
        WHERE pool = ? AND key = ? AND n = ?`).run(process.pid, start, leaseId, now, disk.pool, disk.key, disk.n);
      return { disk, leaseId };
    });
  });
}

/** Makes each claimed disk's file system again (the pool's current size), bumps its generation, frees it. */
export async function resetClaimed(ctx: AdminContext, pool: PoolConfig, claimed: readonly Claimed[]): Promise<DiskRow[]> {
  const done: DiskRow[] = [];
  const failed: string[] = [];
  for (const { disk, leaseId } of claimed) {
    try {
      await formatDisk(disk.path, pool.sizeMib, diskLabel(pool.name));
    } catch (e: unknown) {
      endLease(ctx.db, leaseId, 'broken', null);
      failed.push(`${describe(disk)}: ${errorMessage(e)}`);
      continue;
    }
    const generation = disk.generation + 1;
    immediate(ctx.db, () => {
      ctx.db.prepare('UPDATE disks SET generation = ?, size_mib = ? WHERE lease_id = ?').run(generation, pool.sizeMib, leaseId);
      endLease(ctx.db, leaseId, 'free', null);
    });
    ctx.log.info({ pool: disk.pool, key: disk.key, n: disk.n, disk: disk.path, generation }, 'cache disk reset');
    done.push({ ...disk, state: 'free', generation, sizeMib: pool.sizeMib, holderPid: null, holderStart: null, leaseId: null, leasedAt: null });
  }
  if (failed.length > 0) throw cacheError(`could not reset cache disks (left broken, reset again at next use): ${failed.join('; ')}`, { failed });
  return done;
}

/** Removes the claimed disks' files and records, their empty directories, and the pool's record when it was rm'd whole. */
export function removeClaimed(ctx: AdminContext, pool: PoolConfig, claimed: readonly Claimed[], wholePool: boolean): DiskRow[] {
  for (const { disk } of claimed) {
    rmSync(disk.path, { force: true });
    rmSync(`${disk.path}.new`, { force: true });
  }
  immediate(ctx.db, () => {
    for (const { leaseId } of claimed) ctx.db.prepare('DELETE FROM disks WHERE lease_id = ?').run(leaseId);
    if (wholePool && disksOf(ctx.db, pool.name).length === 0) ctx.db.prepare('DELETE FROM pools WHERE name = ?').run(pool.name);
  });
  for (const d of new Set(claimed.map(({ disk }) => dirname(disk.path)))) removeIfEmpty(d);
  removeIfEmpty(join(ctx.dir, pool.name));
  for (const { disk } of claimed) ctx.log.info({ pool: disk.pool, key: disk.key, n: disk.n, disk: disk.path }, 'cache disk removed');
  return claimed.map(({ disk }) => disk);
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty (another key's disks, or a disk made meanwhile), or gone already
  }
}
