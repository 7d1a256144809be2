/**
 * The image store: `IMAGES/NAME/<id>/{rootfs.ext4,image.json}` is one version of an image, and `IMAGES/NAME/current`
 * a symlink to the version new VMs use. A version is never changed once published: a rebuild adds a new version
 * and points `current` at it (a symlink renamed over the old one), so VMs still using the old version are not
 * disturbed; `gc` removes old versions once no VM uses them (see image-in-use.ts). `IMAGES/NAME/rootfs.ext4` and
 * `IMAGES/NAME/image.json` are symlinks through `current`, for people and scripts.
 * Nothing appears half made: a new name appears by one rename of a whole staged directory, a new version by one
 * rename, and removal first renames what goes to `IMAGES/.trash-*`, then deletes it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import type { ImageMetadata } from './build.ts';
import { isAlive, markInUse, openHolders, readMarkers, unmarkInUse } from './image-in-use.ts';

export const ROOTFS = 'rootfs.ext4';
export const META = 'image.json';
const CURRENT = 'current';
const NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const VERSION = /^[0-9a-f]{16}$/;
/** Directories of builds and publications in progress, named with the pid of the process making them. */
const WORK_DIR = /^\.(build|publish)-.+-(\d+)$/;
const CURRENT_TEMP = /^\.current-(\d+)-[0-9a-f]+$/;

export interface ResolvedImage {
  readonly name: string;
  readonly id: string;
  readonly dir: string;
  readonly rootfs: string;
  readonly meta: ImageMetadata;
}

export interface ImageVersion {
  readonly id: string;
  readonly current: boolean;
  readonly dir: string;
  /** Null when image.json is missing or damaged; `problem` says what is wrong. */
  readonly meta: ImageMetadata | null;
  readonly problem: string | null;
  /** Processes holding the version's rootfs.ext4 open, or with a live in-use marker. */
  readonly inUse: readonly number[];
}

export interface ImageEntry {
  readonly name: string;
  readonly current: string;
  readonly versions: readonly ImageVersion[];
}

export interface InspectedImage extends ResolvedImage {
  readonly current: boolean;
  readonly inUse: readonly number[];
  readonly versions: readonly string[];
}

export interface Removed {
  readonly path: string;
  readonly what: 'name' | 'version' | 'build' | 'trash' | 'marker' | 'link';
  readonly bytes: number;
}

export interface GcResult {
  readonly removed: readonly Removed[];
  readonly bytesFreed: number;
}

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

function errno(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw imageError(`image name "${name}" must be 1 to 64 of a-z, 0-9, "_", ".", "-"`, { name });
}

function checkVersion(id: string): void {
  if (!VERSION.test(id)) throw imageError(`image version "${id}" is not one: give the 16 hex digits matchlock image list shows`, { version: id });
}

function isDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The subdirectories of `dir` whose names match `pattern`, sorted; none when `dir` does not exist. */
function dirsIn(dir: string, pattern: RegExp): string[] {
  try {
    return readdirSync(dir).filter((n) => pattern.test(n) && isDir(join(dir, n))).sort();
  } catch (e: unknown) {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  }
}

const namesIn = (imagesDir: string): string[] => dirsIn(imagesDir, NAME);
const versionsIn = (nameDir: string): string[] => dirsIn(nameDir, VERSION);

/** What `current` points at, checked or not; null when there is no `current` link. */
function currentLink(nameDir: string): string | null {
  try {
    return readlinkSync(join(nameDir, CURRENT));
  } catch {
    return null;
  }
}

/** The version `current` names, if it is a version that exists; null for a name without (a valid) one. */
function currentOf(nameDir: string): string | null {
  const target = currentLink(nameDir);
  return target !== null && VERSION.test(target) && isDir(join(nameDir, target)) ? target : null;
}

/** Reads and checks a version's image.json. */
export function readImageMeta(file: string, name: string): ImageMetadata {
  const damaged = (what: string): MatchlockError =>
    imageError(`${file}: ${what}, so the image is damaged or was edited: rebuild it, or remove it with matchlock image rm ${name}`, { path: file });
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e: unknown) {
    throw damaged(errno(e) === 'ENOENT' ? 'missing' : `not JSON (${errorMessage(e)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw damaged('not a JSON object');
  const m = value as Record<string, unknown>;
  if (m['name'] !== name) throw damaged(`"name" is ${JSON.stringify(m['name'])}, not "${name}"`);
  if (typeof m['source'] !== 'string' || m['source'] === '') throw damaged('"source" is not a non-empty string');
  if (typeof m['sourceSha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(m['sourceSha256'])) throw damaged('"sourceSha256" is not 64 hex digits');
  if (typeof m['sizeBytes'] !== 'number' || !Number.isSafeInteger(m['sizeBytes']) || m['sizeBytes'] <= 0) throw damaged('"sizeBytes" is not a positive integer');
  if (typeof m['created'] !== 'string' || Number.isNaN(Date.parse(m['created']))) throw damaged('"created" is not a date');
  if (m['agentVersion'] !== null && typeof m['agentVersion'] !== 'string') throw damaged('"agentVersion" is neither a string nor null');
  return value as ImageMetadata;
}

/** A version as the VMM uses it: image.json checked, and rootfs.ext4 present with the size image.json gives. */
function readVersion(imagesDir: string, name: string, id: string): ResolvedImage {
  const dir = join(imagesDir, name, id);
  const meta = readImageMeta(join(dir, META), name);
  const rootfs = join(dir, ROOTFS);
  let size: number;
  try {
    size = statSync(rootfs).size;
  } catch (e: unknown) {
    throw imageError(`${rootfs}: ${errorMessage(e)}: rebuild the image, or remove it with matchlock image rm ${name}`, { path: rootfs });
  }
  if (size !== meta.sizeBytes) throw imageError(`${rootfs} is ${size} bytes but image.json says ${meta.sizeBytes}: rebuild the image, or remove it with matchlock image rm ${name}`, { path: rootfs });
  return { name, id, dir, rootfs, meta };
}

/** The current version of an image, for a VM to use (mark it with markInUse until the VMM has opened rootfs). */
export function resolveImage(imagesDir: string, name: string): ResolvedImage {
  checkName(name);
  const nameDir = join(imagesDir, name);
  const link = currentLink(nameDir);
  if (link === null) throw imageError(`no image ${name} in ${imagesDir}: build it (matchlock image build) or see matchlock image list`, { name, imagesDir });
  const id = currentOf(nameDir);
  if (id === null) throw imageError(`${join(nameDir, CURRENT)} points at ${JSON.stringify(link)}, which is not a version of the image: rebuild it, or remove it with matchlock image rm ${name}`, { name, link });
  return readVersion(imagesDir, name, id);
}

/** Sets `link` to point at `target`, replacing what was there at once (a new symlink renamed over it). */
function pointAt(dir: string, link: string, target: string): void {
  const temp = join(dir, `.current-${process.pid}-${randomBytes(6).toString('hex')}`);
  symlinkSync(target, temp);
  try {
    renameSync(temp, join(dir, link));
  } catch (e: unknown) {
    rmSync(temp, { force: true });
    throw e;
  }
}

/** `NAME/rootfs.ext4` and `NAME/image.json`, through `current`. */
function linkShortcuts(nameDir: string): void {
  for (const file of [ROOTFS, META]) {
    try {
      symlinkSync(join(CURRENT, file), join(nameDir, file));
    } catch (e: unknown) {
      if (errno(e) !== 'EEXIST') throw e;
    }
  }
}

/**
 * Publishes a finished build (a directory with rootfs.ext4 and image.json, on the images directory's file system)
 * as the new current version of `name`; returns the version's directory. A new name appears whole (its staged
 * directory renamed into place); an existing one gets the version beside its others, then `current` points at it.
 */
export function publishImage(imagesDir: string, name: string, builtDir: string): string {
  checkName(name);
  const meta = readImageMeta(join(builtDir, META), name);
  const id = createHash('sha256').update(`${meta.sourceSha256}\n${meta.created}\n${randomBytes(16).toString('hex')}`).digest('hex').slice(0, 16);
  const nameDir = join(imagesDir, name);
  const stage = join(imagesDir, `.publish-${name}-${process.pid}`);
  let dir = join(stage, id);
  markInUse(builtDir); // gc leaves the version alone until `current` names it
  try {
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(stage, { mode: 0o755 });
    renameSync(builtDir, dir);
    symlinkSync(id, join(stage, CURRENT));
    linkShortcuts(stage);
    try {
      renameSync(stage, nameDir);
      dir = join(nameDir, id);
      return dir;
    } catch (e: unknown) {
      if (errno(e) !== 'ENOTEMPTY' && errno(e) !== 'EEXIST') throw e;
    }
    renameSync(dir, join(nameDir, id));
    dir = join(nameDir, id);
    try {
      pointAt(nameDir, CURRENT, id);
    } catch (e: unknown) {
      toTrash(imagesDir, dir);
      throw e;
    }
    linkShortcuts(nameDir);
    return dir;
  } catch (e: unknown) {
    throw imageError(`cannot publish image ${name} in ${imagesDir}: ${errorMessage(e)} (is ${nameDir} something other than an image?)`, { name, imagesDir });
  } finally {
    unmarkInUse(dir);
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Disk space a tree takes (allocated blocks). */
function diskBytes(path: string): number {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  let total = st.blocks * 512;
  if (st.isDirectory()) for (const e of readdirSync(path)) total += diskBytes(join(path, e));
  return total;
}

/** Takes `path` out of sight by one rename into IMAGES/.trash-*, then deletes it; returns the bytes freed. */
function toTrash(imagesDir: string, path: string): number {
  const trash = join(imagesDir, `.trash-${randomBytes(8).toString('hex')}`);
  renameSync(path, trash);
  const bytes = diskBytes(trash);
  rmSync(trash, { recursive: true, force: true });
  return bytes;
}

/** Who uses each version of the images named, in one scan of /proc. */
function usage(imagesDir: string, names: readonly string[]): Map<string, number[]> {
  const dirs = names.flatMap((name) => versionsIn(join(imagesDir, name)).map((id) => join(imagesDir, name, id)));
  const holders = openHolders(dirs.map((d) => join(d, ROOTFS)));
  const users = new Map<string, number[]>();
  for (const dir of dirs) {
    const pids = new Set([...(holders.get(join(dir, ROOTFS)) ?? []), ...readMarkers(dir).filter((m) => m.live).map((m) => m.pid)]);
    users.set(dir, [...pids].sort((a, b) => a - b));
  }
  return users;
}

/** Every image with a current version, with all its versions. */
export function listImages(imagesDir: string): ImageEntry[] {
  const names = namesIn(imagesDir).filter((n) => currentOf(join(imagesDir, n)) !== null);
  const users = usage(imagesDir, names);
  return names.map((name) => {
    const current = currentOf(join(imagesDir, name))!;
    const versions = versionsIn(join(imagesDir, name)).map((id): ImageVersion => {
      const dir = join(imagesDir, name, id);
      let meta: ImageMetadata | null = null;
      let problem: string | null = null;
      try {
        meta = readVersion(imagesDir, name, id).meta;
      } catch (e: unknown) {
        problem = errorMessage(e);
      }
      return { id, current: id === current, dir, meta, problem, inUse: users.get(dir) ?? [] };
    });
    return { name, current, versions };
  });
}

/** One version of an image (by default the current one): metadata, paths, and who uses it. */
export function inspectImage(imagesDir: string, name: string, version?: string): InspectedImage {
  checkName(name);
  const nameDir = join(imagesDir, name);
  const versions = versionsIn(nameDir);
  const current = currentOf(nameDir);
  const id = version ?? current;
  if (id === null) throw imageError(`no image ${name} in ${imagesDir}: see matchlock image list`, { name, imagesDir });
  checkVersion(id);
  if (!versions.includes(id)) throw imageError(`image ${name} has no version ${id}: see matchlock image list`, { name, version: id });
  const resolved = readVersion(imagesDir, name, id);
  return { ...resolved, current: id === current, inUse: usage(imagesDir, [name]).get(resolved.dir) ?? [], versions };
}

export interface RemoveOptions {
  /** One version; the current one removes the whole image. */
  readonly version?: string;
  /** An image or version that does not exist is no error (nothing is removed). In-use versions are still kept. */
  readonly force?: boolean;
}

/**
 * Removes an image (all its versions) or one version of it. Refuses when any version that would go is in use.
 */
export function removeImage(imagesDir: string, name: string, opts: RemoveOptions = {}): Removed[] {
  checkName(name);
  const nameDir = join(imagesDir, name);
  if (!isDir(nameDir)) {
    if (opts.force === true) return [];
    throw imageError(`no image ${name} in ${imagesDir}: see matchlock image list`, { name, imagesDir });
  }
  const versions = versionsIn(nameDir);
  if (opts.version !== undefined) {
    checkVersion(opts.version);
    if (!versions.includes(opts.version)) {
      if (opts.force === true) return [];
      throw imageError(`image ${name} has no version ${opts.version}: see matchlock image list`, { name, version: opts.version });
    }
  }
  const whole = opts.version === undefined || opts.version === currentOf(nameDir);
  const going = whole ? versions : [opts.version!];
  const users = usage(imagesDir, [name]);
  const busy = going.filter((id) => (users.get(join(nameDir, id)) ?? []).length > 0);
  if (busy.length > 0) {
    const pids = [...new Set(busy.flatMap((id) => users.get(join(nameDir, id)) ?? []))].sort((a, b) => a - b);
    const what = whole ? `image ${name}` : `image ${name} version ${opts.version!}`;
    throw imageError(`${what} is in use by pid ${pids.join(', ')} (version ${busy.join(', ')}): stop those VMs first, then remove it`, { name, versions: busy, pids });
  }
  if (whole) return [{ path: nameDir, what: 'name', bytes: toTrash(imagesDir, nameDir) }];
  const dir = join(nameDir, opts.version!);
  return [{ path: dir, what: 'version', bytes: toTrash(imagesDir, dir) }];
}

function remove(path: string, what: Removed['what'], bytes: number, into: Removed[]): void {
  try {
    rmSync(path, { recursive: true, force: true });
    into.push({ path, what, bytes });
  } catch {
    // removed by another process meanwhile, or not removable now: the next gc tries again
  }
}

/** Collects one image name: stale markers and temporary links, versions neither current nor in use. */
function collectName(imagesDir: string, name: string, users: Map<string, number[]>, removed: Removed[]): void {
  const nameDir = join(imagesDir, name);
  const current = currentOf(nameDir);
  for (const entry of readdirSync(nameDir)) {
    const temp = CURRENT_TEMP.exec(entry);
    if (temp !== null && !isAlive(Number(temp[1]))) remove(join(nameDir, entry), 'link', 0, removed);
  }
  for (const id of versionsIn(nameDir)) {
    const dir = join(nameDir, id);
    for (const m of readMarkers(dir)) if (!m.live) remove(m.path, 'marker', 0, removed);
    if (id === current || (users.get(dir) ?? []).length > 0) continue;
    if (readMarkers(dir).some((m) => m.live)) continue; // marked since the scan: a VM starting on it
    try {
      removed.push({ path: dir, what: 'version', bytes: toTrash(imagesDir, dir) });
    } catch {
      // gone meanwhile
    }
  }
  if (current !== null || versionsIn(nameDir).length > 0) return;
  // A name without a current version and with nothing left in use (an interrupted publication or removal).
  for (const link of [CURRENT, ROOTFS, META]) {
    try {
      if (lstatSync(join(nameDir, link)).isSymbolicLink()) unlinkSync(join(nameDir, link));
    } catch {
      // not there
    }
  }
  try {
    rmdirSync(nameDir);
    removed.push({ path: nameDir, what: 'name', bytes: 0 });
  } catch {
    // not empty (a publication adding to it now, or files that are not ours): left alone
  }
}

/**
 * Removes what no image needs: versions that are neither current nor in use, leftovers of builds and publications
 * whose process has died, trash left by an interrupted removal, and in-use markers of dead processes.
 */
export function gcImages(imagesDir: string): GcResult {
  const removed: Removed[] = [];
  let entries: string[];
  try {
    entries = readdirSync(imagesDir);
  } catch (e: unknown) {
    if (errno(e) === 'ENOENT') return { removed, bytesFreed: 0 };
    throw e;
  }
  for (const entry of entries) {
    const path = join(imagesDir, entry);
    if (entry.startsWith('.trash-')) remove(path, 'trash', diskBytes(path), removed);
    const work = WORK_DIR.exec(entry);
    if (work !== null && !isAlive(Number(work[2]))) remove(path, 'build', diskBytes(path), removed);
  }
  const names = namesIn(imagesDir);
  const users = usage(imagesDir, names);
  for (const name of names) collectName(imagesDir, name, users, removed);
  return { removed, bytesFreed: removed.reduce((sum, r) => sum + r.bytes, 0) };
}
