/** `matchlock cache list | reset | rm`: the cache disks of this host (see src/cache/ and docs/cache-disks.md). */
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { CacheStore, DEFAULT_CACHE_DIR, type DiskInfo } from '../cache/index.ts';

export const CACHE_USAGE = `usage: matchlock cache list [--cache-dir DIR]
       matchlock cache reset POOL [--repository OWNER/REPO] [--disk N] [--cache-dir DIR]
       matchlock cache rm POOL [--repository OWNER/REPO] [--cache-dir DIR]

  list   every cache disk: pool, key (_shared or owner__repo), number, size, state, generation, holder, last use
  reset  make the disks' file systems again, empty (all of the pool's, one repository's, or one disk)
  rm     remove the disks' files and records (all of the pool's, or one repository's)

  reset and rm refuse disks leased to a running process. Default DIR: ${DEFAULT_CACHE_DIR}`;

const COLUMNS = ['POOL', 'KEY', 'N', 'SIZE', 'STATE', 'GEN', 'HOLDER', 'LAST USED'] as const;

function holder(d: DiskInfo): string {
  if (d.state !== 'leased' || d.holderPid === null) return '-';
  return d.holderAlive === true ? `pid ${d.holderPid}` : `pid ${d.holderPid} (dead)`;
}

function table(disks: readonly DiskInfo[]): string {
  const rows = disks.map((d) => [d.pool, d.key, String(d.n), `${d.sizeMib} MiB`, d.state, String(d.generation), holder(d), d.lastUsed ?? '-']);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(COLUMNS), ...rows.map(line)].join('\n');
}

function diskNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,2}$/.test(text)) throw new MatchlockError(ErrorCodes.USAGE, `--disk ${text}: give a disk number from matchlock cache list`, {});
  return Number(text);
}

export async function cache(args: string[], log: Logger): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list' && sub !== 'reset' && sub !== 'rm') {
    throw new MatchlockError(ErrorCodes.USAGE, `unknown cache command "${sub ?? ''}": try matchlock cache --help`, {});
  }
  const { values, positionals } = parseArgs({
    args: rest, strict: true, allowPositionals: true,
    options: { 'cache-dir': { type: 'string' }, repository: { type: 'string' }, disk: { type: 'string' } },
  });
  const dir = values['cache-dir'] ?? DEFAULT_CACHE_DIR;
  if (sub === 'list') {
    if (positionals.length > 0 || values.repository !== undefined || values.disk !== undefined) throw new MatchlockError(ErrorCodes.USAGE, 'matchlock cache list takes only --cache-dir', {});
    if (!CacheStore.exists(dir)) {
      process.stdout.write(`no cache disks in ${dir}\n`);
      return 0;
    }
    const store = CacheStore.open({ dir, log });
    try {
      process.stdout.write(`${table(store.list())}\n`);
    } finally {
      store.close();
    }
    return 0;
  }
  const pool = positionals[0];
  if (pool === undefined || positionals.length > 1) throw new MatchlockError(ErrorCodes.USAGE, `give one POOL: matchlock cache ${sub} POOL`, {});
  if (sub === 'rm' && values.disk !== undefined) throw new MatchlockError(ErrorCodes.USAGE, 'matchlock cache rm removes a pool or a repository\'s disks, not one disk: leave out --disk', {});
  if (!CacheStore.exists(dir)) throw new MatchlockError(ErrorCodes.CACHE, `no cache in ${dir}: give the --cache-dir the host agent uses`, { dir });
  const store = CacheStore.open({ dir, log });
  try {
    const disks = sub === 'reset'
      ? await store.reset(pool, values.repository, diskNumber(values.disk))
      : await store.rm(pool, values.repository);
    const verb = sub === 'reset' ? 'reset' : 'removed';
    for (const d of disks) process.stdout.write(`${verb} ${d.pool}/${d.key}/${d.n} ${d.path}\n`);
    if (disks.length === 0) process.stdout.write(`no disks to remove; pool ${pool} ${values.repository === undefined ? 'removed' : 'kept'}\n`);
  } finally {
    store.close();
  }
  return 0;
}
