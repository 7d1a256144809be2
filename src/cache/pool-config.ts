/**
 * Cache pools and the names that become paths: a pool's configuration is validated once and frozen; a
 * repository (`owner/repo`) becomes the key `owner__repo` (lower case, as GitHub's names are), a shared pool's
 * key is `_shared`. Nothing that reaches the file system can climb out of the cache directory.
 */
import { ErrorCodes, MatchlockError } from '../errors.ts';

export interface PoolConfig {
  /** 1 to 64 of a-z, 0-9, "_", "-", starting with a letter or digit. */
  readonly name: string;
  /** Size of each disk's file system, 64 MiB to 1 TiB. */
  readonly sizeMib: number;
  /** Disks per key (per repository for a per-repository pool), 1 to 64. */
  readonly maxDisks: number;
  /** One set of disks per repository, or one set shared by all repositories. */
  readonly perRepository: boolean;
  /** Where the guest mounts the disk. */
  readonly mountPath: string;
}

export const SHARED_KEY = '_shared';
export const MIN_SIZE_MIB = 64;
export const MAX_SIZE_MIB = 1_048_576;
export const MAX_DISKS = 64;

const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** GitHub's owner names: letters, digits and hyphens, not starting with a hyphen, at most 39. */
const OWNER = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}$/;
/** GitHub's repository names: letters, digits, ".", "_", "-", at most 100. */
const REPO = /^[A-Za-z0-9._-]{1,100}$/;
const MOUNT_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function cacheError(message: string, details: Record<string, unknown> = {}, cause?: unknown): MatchlockError {
  return new MatchlockError(ErrorCodes.CACHE, message, details, cause === undefined ? undefined : { cause });
}

export function validatePoolName(name: string): string {
  if (!POOL_NAME.test(name)) throw cacheError(`cache pool name "${name}": use 1 to 64 of a-z, 0-9, "_", "-", starting with a letter or digit`, { pool: name });
  return name;
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;

function validMountPath(p: string): boolean {
  if (!p.startsWith('/') || p.length > 4096) return false;
  const segments = p.slice(1).split('/');
  return segments.every((s) => MOUNT_SEGMENT.test(s) && s !== '.' && s !== '..');
}

/** A checked, frozen copy of a pool's configuration. */
export function validatePool(pool: PoolConfig): PoolConfig {
  const name = validatePoolName(pool.name);
  if (!isInt(pool.sizeMib, MIN_SIZE_MIB, MAX_SIZE_MIB)) {
    throw cacheError(`cache pool ${name}: sizeMib ${String(pool.sizeMib)} is out of range: give a whole number of MiB from ${MIN_SIZE_MIB} to ${MAX_SIZE_MIB}`, { pool: name, sizeMib: pool.sizeMib });
  }
  if (!isInt(pool.maxDisks, 1, MAX_DISKS)) {
    throw cacheError(`cache pool ${name}: maxDisks ${String(pool.maxDisks)} is out of range: give a whole number from 1 to ${MAX_DISKS}`, { pool: name, maxDisks: pool.maxDisks });
  }
  if (typeof pool.perRepository !== 'boolean') throw cacheError(`cache pool ${name}: perRepository must be true or false`, { pool: name });
  if (typeof pool.mountPath !== 'string' || !validMountPath(pool.mountPath)) {
    throw cacheError(`cache pool ${name}: mountPath "${String(pool.mountPath)}" must be an absolute path of letters, digits, ".", "_", "-" without "." or ".." parts`, { pool: name, mountPath: pool.mountPath });
  }
  return Object.freeze({ name, sizeMib: pool.sizeMib, maxDisks: pool.maxDisks, perRepository: pool.perRepository, mountPath: pool.mountPath });
}

/** `owner/repo` → `owner__repo` (lower case); refuses anything outside GitHub's character sets. */
export function repositoryKey(repository: string): string {
  const parts = repository.split('/');
  const [owner, repo] = parts;
  if (parts.length !== 2 || owner === undefined || repo === undefined || !OWNER.test(owner) || !REPO.test(repo) || repo === '.' || repo === '..') {
    throw cacheError(`repository "${repository}" is not a GitHub OWNER/REPO name: give it as owner/repo (letters, digits, "-" for the owner; letters, digits, ".", "_", "-" for the repository)`, { repository });
  }
  return `${owner}__${repo}`.toLowerCase();
}

/** The key of a job's disks in a pool: the repository's for a per-repository pool (which needs one), else `_shared`. */
export function keyFor(pool: PoolConfig, repository: string | undefined): string {
  if (!pool.perRepository) return SHARED_KEY;
  if (repository === undefined) throw cacheError(`cache pool ${pool.name} keeps disks per repository: give the job's repository (owner/repo)`, { pool: pool.name });
  return repositoryKey(repository);
}
