/** Cache disks (issue 5): persistent ext4 files per pool (or per repository), leased to one VM at a time. */
export { CacheStore, DEFAULT_CACHE_DIR, type AcquireRequest, type CacheStoreOptions, type CheckResult, type DiskInfo, type Lease } from './cache-store.ts';
export { validatePool, repositoryKey, SHARED_KEY, MIN_SIZE_MIB, MAX_SIZE_MIB, MAX_DISKS, type PoolConfig } from './pool-config.ts';
export type { DiskRow, DiskState } from './cache-db.ts';
export type { FsckResult } from './ext4.ts';
export { processStartTime } from './holder.ts';
