/**
 * Builds a golden image from a root filesystem tarball (`rootfs:FILE.tar[.gz|.zst]`): the layer is applied into a
 * private build directory, `mke2fs -d` makes the ext4 file from it (no loop mounts), `e2fsck -fn` checks it, and
 * the finished image (`rootfs.ext4` + `image.json`) is published by one rename, so a failed or interrupted build
 * leaves nothing visible under the image's name. OCI and Docker sources, the guest agent's injection and the
 * image commands come next (issue 5).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { applyLayer, DEFAULT_LIMITS } from './layer-apply.ts';

export interface BuildRequest {
  readonly name: string;
  /** `rootfs:PATH` to a .tar, .tar.gz/.tgz or .tar.zst file. */
  readonly from: string;
  readonly imagesDir: string;
  /** The file system's size; by default what the tree needs, plus a quarter, at least 64 MiB. */
  readonly sizeMib?: number;
}

export interface ImageMetadata {
  readonly name: string;
  readonly source: string;
  readonly sourceSha256: string;
  readonly sizeBytes: number;
  readonly created: string;
  readonly agentVersion: string | null;
}

const MIN_SIZE_MIB = 64;

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** Runs a tool; rejects with its stderr when it fails. */
function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.on('error', (e) => reject(imageError(`cannot run ${file}: ${e.message} (install e2fsprogs / zstd)`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(imageError(`${file} failed (exit ${code}): ${out.trim().split('\n').slice(-3).join(' / ')}`))));
  });
}

/** The tarball as a stream of tar bytes, decompressed by its name's suffix; the sha256 of the file as read. */
function openSource(path: string): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  const file = createReadStream(path);
  file.on('data', (c) => hash.update(c as Buffer));
  let stream: Readable = file;
  if (/\.(tar\.gz|tgz)$/.test(path)) stream = file.pipe(createGunzip());
  else if (/\.tar\.zst$/.test(path)) {
    const zstd = spawn('zstd', ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
    file.pipe(zstd.stdin);
    const out = new PassThrough();
    zstd.stdout.pipe(out);
    zstd.on('close', (code) => { if (code !== 0) out.destroy(imageError(`zstd could not decompress ${path} (exit ${code})`)); });
    stream = out;
  } else if (!path.endsWith('.tar')) throw imageError(`rootfs ${path}: give a .tar, .tar.gz, .tgz or .tar.zst file`, { path });
  file.on('error', (e) => stream.destroy(e));
  return { stream, digest: () => hash.digest('hex') };
}

/** Bytes the tree takes (apparent sizes, rounded up to 4 KiB per file). */
function treeBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += 4096 + (e.isDirectory() ? treeBytes(p) : Math.ceil(lstatSync(p).size / 4096) * 4096);
  }
  return total;
}

export async function buildImage(req: BuildRequest): Promise<ImageMetadata> {
  if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(req.name)) throw imageError(`image name "${req.name}" must be 1 to 64 of a-z, 0-9, "_", ".", "-"`, { name: req.name });
  if (!req.from.startsWith('rootfs:')) throw imageError(`--from ${req.from}: only rootfs:FILE.tar[.gz|.zst] is supported so far`, { from: req.from });
  const source = req.from.slice('rootfs:'.length);
  if (!existsSync(source) || !statSync(source).isFile()) throw imageError(`rootfs ${source}: no such file`, { path: source });
  const final = join(req.imagesDir, req.name);
  if (existsSync(final)) throw imageError(`image ${req.name} exists already (${final}): remove it first`, { name: req.name });
  mkdirSync(req.imagesDir, { recursive: true });
  const work = join(req.imagesDir, `.build-${req.name}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { mode: 0o700 });
  const cleanUp = (): void => { rmSync(work, { recursive: true, force: true }); };
  process.once('exit', cleanUp);
  try {
    const tree = join(work, 'tree');
    mkdirSync(tree, { mode: 0o755 });
    const { stream, digest } = openSource(source);
    await applyLayer(stream, tree, DEFAULT_LIMITS);
    const sizeMib = req.sizeMib ?? Math.max(MIN_SIZE_MIB, Math.ceil((treeBytes(tree) * 1.25) / 2 ** 20));
    const out = join(work, 'image');
    mkdirSync(out);
    const ext4 = join(out, 'rootfs.ext4');
    await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'rootfs', '-E', 'root_owner=0:0', '-d', tree, ext4, `${sizeMib}M`]);
    await run('e2fsck', ['-fn', ext4]);
    const meta: ImageMetadata = {
      name: req.name, source: req.from, sourceSha256: digest(), sizeBytes: statSync(ext4).size, created: new Date().toISOString(), agentVersion: null,
    };
    writeFileSync(join(out, 'image.json'), `${JSON.stringify(meta, null, 2)}\n`);
    renameSync(out, final); // the image appears whole, or not at all
    return meta;
  } finally {
    cleanUp();
    process.off('exit', cleanUp);
  }
}
