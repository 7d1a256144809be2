/**
 * Cache disks: persistent ext4 files `DIR/<pool>/<key>/<n>.ext4`, leased to one VM at a time. Who holds a disk is
 * decided in one transaction of `DIR/cache.db` (see cache-db.ts), so concurrent acquirers, in this process or in
 * others, never get the same disk; when none is left the job gets none (never a shared writer). A disk whose
 * holder died, or that was released unclean, is checked with e2fsck before its next lease and made again when
 * e2fsck cannot repair it.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import type { Logger } from 'pino';
import { isMatchlockError, errorMessage } from '../errors.ts';
import { DB_FILE, disksOf, endLease, immediate, loadPool, openCacheDb, savePool, toDiskRow, type DiskRow } from './cache-db.ts';
import { checkDisk, diskLabel, formatDisk, fsckOutcome, type FsckResult } from './ext4.ts';
import { holderAlive, processStartTime } from './holder.ts';
import { cacheError, keyFor, validatePool, validatePoolName, type PoolConfig } from './pool-config.ts';
import { claimDisks, removeClaimed, resetClaimed, selectDisks, type AdminContext } from './cache-admin.ts';

export const DEFAULT_CACHE_DIR = '/var/lib/matchlock/cache';

export type CheckResult = 'clean' | 'repaired' | 'reset' | 'new';

export interface Lease {
  readonly id: string;
  readonly pool: string;
  readonly key: string;
  readonly n: number;
  readonly path: string;
  readonly mountPath: string;
  readonly sizeMib: number;
  readonly generation: number;
  /** clean: used as it was (or e2fsck found nothing); repaired: e2fsck fixed it; reset: made again, empty; new: first use. */
  readonly checked: CheckResult;
  /** What e2fsck said, when it ran (after an unclean end); null when the disk was taken as it was. */
  readonly fsck: FsckResult | null;
}

export interface AcquireRequest {
  readonly pool: string;
  /** `owner/repo`: needed by a per-repository pool, ignored by a shared one. */
  readonly repository?: string;
  /** The process whose death ends the lease uncleanly; it must outlive the acquire call. */
  readonly holderPid: number;
}

export interface CacheStoreOptions {
  readonly dir: string;
  readonly log: Logger;
  /** The configured pools; pools recorded in the database by earlier runs are known too. */
  readonly pools?: readonly PoolConfig[];
}

export interface DiskInfo extends DiskRow {
  /** For a leased disk: whether its holder still runs; null otherwise. */
  readonly holderAlive: boolean | null;
}

type Prep = 'none' | 'check' | 'reset' | 'format';

interface Plan {
  readonly disk: DiskRow;
  readonly leaseId: string;
  readonly prep: Prep;
}

const PREP_BY_STATE = { free: 'none', dirty: 'check', broken: 'reset' } as const;
const RANK = { free: 0, dirty: 1, broken: 2, leased: 3 } as const;

/** Free before dirty before broken; the most recently used first (its cache is warm); then by number. */
function byPreference(a: DiskRow, b: DiskRow): number {
  return RANK[a.state] - RANK[b.state] || (b.lastUsed ?? '').localeCompare(a.lastUsed ?? '') || a.n - b.n;
}

const where = (d: DiskRow): Record<string, unknown> => ({ pool: d.pool, key: d.key, n: d.n, disk: d.path });

export class CacheStore {
  readonly dir: string;
  private readonly db: DatabaseSync;
  private readonly log: Logger;
  private readonly configured: ReadonlyMap<string, PoolConfig>;

  private constructor(dir: string, db: DatabaseSync, log: Logger, pools: readonly PoolConfig[]) {
    this.dir = dir;
    this.db = db;
    this.log = log;
    this.configured = new Map(pools.map((p) => [p.name, p]));
  }

  static open(opts: CacheStoreOptions): CacheStore {
    const pools = (opts.pools ?? []).map(validatePool);
    const dup = pools.find((p, i) => pools.findIndex((q) => q.name === p.name) !== i);
    if (dup !== undefined) throw cacheError(`cache pool ${dup.name} is configured twice: give each pool once`, { pool: dup.name });
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    return new CacheStore(opts.dir, openCacheDb(opts.dir), opts.log, pools);
  }

  /** Whether DIR holds a cache (so that looking does not make one). */
  static exists(dir: string): boolean {
    return existsSync(join(dir, DB_FILE));
  }

  close(): void {
    this.db.close();
  }

  pool(name: string): PoolConfig {
    const pool = this.configured.get(validatePoolName(name)) ?? loadPool(this.db, name);
    if (pool === null) throw cacheError(`unknown cache pool ${name}: configure it, or see matchlock cache list for the pools in ${this.dir}`, { pool: name });
    return pool;
  }

  /** Leases a disk of the pool to holderPid, checked and ready to attach; null when all its disks are leased. */
  async acquire(req: AcquireRequest): Promise<Lease | null> {
    const pool = this.pool(req.pool);
    const key = keyFor(pool, req.repository);
    const holderStart = processStartTime(req.holderPid);
    if (holderStart === null) throw cacheError(`cache lease holder pid ${req.holderPid} is not running: give the pid of the process that holds the disk`, { holderPid: req.holderPid });
    const plan = immediate(this.db, () => this.pick(pool, key, req.holderPid, holderStart));
    if (plan === null) {
      this.log.info({ pool: pool.name, key, maxDisks: pool.maxDisks }, 'cache disks all leased, job runs without');
      return null;
    }
    try {
      return await this.prepare(plan, pool);
    } catch (e: unknown) {
      endLease(this.db, plan.leaseId, 'broken', null);
      this.log.error({ ...where(plan.disk), err: errorMessage(e) }, 'cache disk could not be made ready');
      if (isMatchlockError(e)) throw e;
      throw cacheError(`cache disk ${plan.disk.path} could not be made ready: ${errorMessage(e)}: check ${this.dir}`, where(plan.disk), e);
    }
  }

  /** Ends a lease: clean → free for the next job as it is; unclean (the VM crashed or was killed) → dirty, checked before reuse. */
  release(leaseId: string, opts: { readonly clean: boolean }): void {
    if (!endLease(this.db, leaseId, opts.clean ? 'free' : 'dirty', new Date().toISOString())) {
      throw cacheError(`cache lease ${leaseId} is not held (unknown, released already, or its disk was reset): release each lease once`, { leaseId });
    }
    this.log.info({ leaseId, clean: opts.clean }, 'cache disk released');
  }

  list(): DiskInfo[] {
    return this.db.prepare('SELECT * FROM disks ORDER BY pool, key, n').all().map((r) => {
      const d = toDiskRow(r);
      return { ...d, holderAlive: d.state === 'leased' ? holderAlive(d.holderPid, d.holderStart) : null };
    });
  }

  /** Makes disks' file systems again (empty). Refuses a leased disk whose holder still runs. */
  async reset(pool: string, repository?: string, n?: number): Promise<DiskRow[]> {
    const cfg = this.pool(pool);
    const claimed = claimDisks(this.admin(), selectDisks(cfg, repository, n), 'reset');
    return resetClaimed(this.admin(), cfg, claimed);
  }

  /** Removes disks (files and records), or a whole pool. Refuses a leased disk whose holder still runs. */
  async rm(pool: string, repository?: string): Promise<DiskRow[]> {
    const cfg = this.pool(pool);
    const claimed = claimDisks(this.admin(), selectDisks(cfg, repository, undefined), 'rm');
    return removeClaimed(this.admin(), cfg, claimed, repository === undefined);
  }

  private admin(): AdminContext {
    return { db: this.db, dir: this.dir, log: this.log };
  }

  private pick(pool: PoolConfig, key: string, holderPid: number, holderStart: number): Plan | null {
    savePool(this.db, pool);
    const disks = disksOf(this.db, pool.name, key);
    let disk = disks.filter((d) => d.state !== 'leased').sort(byPreference)[0];
    let prep: Prep;
    if (disk !== undefined) prep = PREP_BY_STATE[disk.state as keyof typeof PREP_BY_STATE];
    else {
      disk = disks.find((d) => !holderAlive(d.holderPid, d.holderStart));
      if (disk !== undefined) {
        prep = 'check'; // its holder died: an unclean end
        this.log.warn({ ...where(disk), deadHolderPid: disk.holderPid }, 'cache disk reclaimed from a dead holder');
      } else if (disks.length < pool.maxDisks) {
        disk = this.insertDisk(pool, key, disks);
        prep = 'format';
      } else return null;
    }
    if (disk.generation === 0) prep = 'format'; // its first mke2fs never finished
    const leaseId = randomUUID();
    this.db.prepare(`UPDATE disks SET state = 'leased', holder_pid = ?, holder_start = ?, lease_id = ?, leased_at = ?
      WHERE pool = ? AND key = ? AND n = ?`).run(holderPid, holderStart, leaseId, new Date().toISOString(), disk.pool, disk.key, disk.n);
    return { disk, leaseId, prep };
  }

  private insertDisk(pool: PoolConfig, key: string, existing: readonly DiskRow[]): DiskRow {
    let n = 0;
    while (existing.some((d) => d.n === n)) n++;
    const path = join(this.dir, pool.name, key, `${n}.ext4`);
    this.db.prepare(`INSERT INTO disks (pool, key, n, path, size_mib, created, state, generation) VALUES (?, ?, ?, ?, ?, ?, 'dirty', 0)`)
      .run(pool.name, key, n, path, pool.sizeMib, new Date().toISOString());
    const row = disksOf(this.db, pool.name, key).find((d) => d.n === n);
    if (row === undefined) throw cacheError(`cache disk ${path} vanished while being recorded`, { path });
    return row;
  }

  /** Outside the transaction: make, check or reset the disk's file system; the lease already keeps others off it. */
  private async prepare(plan: Plan, pool: PoolConfig): Promise<Lease> {
    const { disk } = plan;
    let prep = plan.prep;
    if (prep !== 'format' && !existsSync(disk.path)) {
      this.log.warn(where(disk), 'cache disk file missing, making it again');
      prep = 'reset';
    }
    let fsck: FsckResult | null = null;
    let checked: CheckResult = 'clean';
    if (prep === 'check') {
      fsck = await checkDisk(disk.path);
      const outcome = fsckOutcome(fsck.exitCode);
      if (outcome === 'corrupt') {
        this.log.warn({ ...where(disk), exitCode: fsck.exitCode, summary: fsck.summary }, 'cache disk corrupt, resetting it');
        prep = 'reset';
      } else {
        checked = outcome;
        this.log.info({ ...where(disk), exitCode: fsck.exitCode, summary: fsck.summary }, 'cache disk checked');
      }
    }
    let { generation, sizeMib } = disk;
    if (prep === 'format' || prep === 'reset') {
      await formatDisk(disk.path, pool.sizeMib, diskLabel(pool.name));
      checked = prep === 'format' ? 'new' : 'reset';
      generation += 1;
      sizeMib = pool.sizeMib;
    }
    const r = this.db.prepare('UPDATE disks SET generation = ?, size_mib = ? WHERE lease_id = ?').run(generation, sizeMib, plan.leaseId);
    if (r.changes !== 1) throw cacheError(`cache disk ${disk.path} was taken from its lease while being prepared: keep the holder process alive until acquire returns`, where(disk));
    this.log.info({ ...where(disk), leaseId: plan.leaseId, checked, generation }, 'cache disk leased');
    return { id: plan.leaseId, pool: pool.name, key: disk.key, n: disk.n, path: disk.path, mountPath: pool.mountPath, sizeMib, generation, checked, fsck };
  }
}
