/**
 * Builds a golden image from an image source (see source.ts: a root file system tarball, an OCI image layout, a
 * `docker save` archive): the layers are applied in order into a private scratch tree (see scratch.ts), the
 * optional injection hook adds to it, `mke2fs -d` makes the ext4 file from it (no loop mounts) and `e2fsck -fn`
 * checks it (mkfs.ts), every layer's digest check has passed, and the finished image (`rootfs.ext4` +
 * `image.json`) is published at once, so a failed or interrupted build leaves nothing visible under the image's
 * name. On a terminal, one line shows the progress.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import type { ImageConfig } from './image-config.ts';
import { applyLayer, DEFAULT_LIMITS, type DevicePolicy } from './layer-apply.ts';
import { publishImage } from './image-store.ts';
import { makeExt4 } from './mkfs.ts';
import { BuildProgress } from './progress.ts';
import { scratchDir } from './scratch.ts';
import { openImageSource } from './source-open.ts';
import type { ImageSource, OpenedLayer } from './source.ts';

export interface BuildRequest {
  readonly name: string;
  /** `rootfs:FILE.tar[.gz|.zst]`, `oci:DIR[:TAG]` or `docker-archive:FILE[:REF]`. */
  readonly from: string;
  readonly imagesDir: string;
  /** The file system's size; by default what the tree needs, plus a quarter, at least 64 MiB. */
  readonly sizeMib?: number;
  /** Where device nodes may be: under /dev/ only (the default), or nowhere (`--no-devices`). */
  readonly devices?: DevicePolicy;
  /** Called with the tree after the layers and before mke2fs (the guest agent's injection); its version goes into image.json. */
  readonly inject?: (tree: string) => Promise<{ agentVersion: string } | null>;
  /** Told of each step as it starts: "layer 1/3", …, "injecting", "mke2fs", "e2fsck", "verifying", "published". */
  readonly onStep?: (step: string) => void;
}

export interface ImageMetadata {
  readonly name: string;
  readonly source: string;
  readonly sourceSha256: string;
  readonly sizeBytes: number;
  readonly created: string;
  readonly agentVersion: string | null;
  /** How the image meant to be run (Env, Entrypoint, Cmd, User, WorkingDir), from its config; null for a rootfs tarball. */
  readonly config?: ImageConfig | null;
}

function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/**
 * Applies the source's layers in order onto `tree`. Each layer is checked against its descriptor on another
 * thread, which may still be at it when the next layer (or mke2fs) runs: the checks are returned, to be awaited
 * before anything is published.
 */
async function applyLayers(
  source: ImageSource, tree: string, devices: DevicePolicy, progress: BuildProgress, opened: OpenedLayer[],
): Promise<{ checks: Promise<void>[]; made: { bytes: number; entries: number } | null }> {
  const limits = { ...DEFAULT_LIMITS, devices };
  const count = source.layers.length;
  const checks: Promise<void>[] = [];
  let made: { bytes: number; entries: number } | null = null;
  for (const [i, layer] of source.layers.entries()) {
    progress.startLayer(i, count, layer.label, layer.sourceBytes);
    const onRead = (n: number): void => progress.bytes(n);
    const o = layer.open(onRead);
    opened.push(o);
    try {
      made = (await applyLayer(o.tar, tree, limits, o.file === null ? null : { ...o.file, onRead })).made ?? null;
    } catch (e: unknown) {
      if (count === 1 || !(e instanceof MatchlockError) || e.code !== ErrorCodes.IMAGE) throw e;
      throw imageError(`layer ${i + 1}/${count} (${layer.label}): ${e.message}`, { ...e.details, layer: i + 1 });
    }
    const check = o.verify().catch((e: unknown) => {
      if (count === 1 || !(e instanceof MatchlockError)) throw e;
      throw imageError(`layer ${i + 1}/${count} (${layer.label}): ${e.message}`, { ...e.details, layer: i + 1 });
    });
    check.catch(() => {}); // awaited before publishing; meanwhile a failure must not go unhandled
    checks.push(check);
  }
  return { checks, made: count === 1 ? made : null }; // the counts of one layer on an empty tree are the tree's
}

export async function buildImage(req: BuildRequest): Promise<ImageMetadata> {
  if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(req.name)) throw imageError(`image name "${req.name}" must be 1 to 64 of a-z, 0-9, "_", ".", "-"`, { name: req.name });
  const source = await openImageSource(req.from);
  const progress = new BuildProgress(req.onStep);
  const opened: OpenedLayer[] = [];
  mkdirSync(req.imagesDir, { recursive: true });
  const work = join(req.imagesDir, `.build-${req.name}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { mode: 0o700 });
  const estimate = source.layers.reduce<number | null>((sum, l) => (sum === null || l.expandedBytes === null ? null : sum + l.expandedBytes), 0);
  const scratch = scratchDir(req.name, estimate, work);
  const cleanUp = (): void => {
    rmSync(work, { recursive: true, force: true });
    if (scratch.inMemory) rmSync(scratch.dir, { recursive: true, force: true });
  };
  process.once('exit', cleanUp);
  try {
    const tree = join(scratch.dir, 'tree');
    mkdirSync(tree, { mode: 0o755 });
    const { checks, made } = await applyLayers(source, tree, req.devices ?? 'dev-only', progress, opened);
    let agentVersion: string | null = null;
    if (req.inject !== undefined) {
      progress.step('injecting');
      agentVersion = (await req.inject(tree))?.agentVersion ?? null;
    }
    const out = join(work, 'image');
    mkdirSync(out);
    const ext4 = join(out, 'rootfs.ext4');
    await makeExt4(tree, ext4, {
      sizeMib: req.sizeMib, step: (what) => progress.step(what), known: req.inject === undefined ? made : null,
      treeDone: () => rmSync(tree, { recursive: true, force: true }), // while e2fsck runs
    });
    progress.step('verifying');
    await Promise.all(checks);
    const meta: ImageMetadata = {
      name: req.name, source: req.from, sourceSha256: await source.digest(), sizeBytes: statSync(ext4).size, created: new Date().toISOString(),
      agentVersion, config: source.config,
    };
    writeFileSync(join(out, 'image.json'), `${JSON.stringify(meta, null, 2)}\n`);
    publishImage(req.imagesDir, req.name, out); // a new version, made current at once (rebuilding keeps the old until gc)
    progress.step('published');
    return meta;
  } finally {
    progress.done();
    for (const o of opened) o.close();
    source.close();
    cleanUp();
    process.off('exit', cleanUp);
  }
}
