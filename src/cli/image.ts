/** `matchlock image build`: a golden image from a rootfs tarball, an OCI layout or a docker archive (see src/images/build.ts). */
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { buildImage, FROM_FORMS, injectAgent } from '../images/index.ts';
import { gcImages, inspectImage, listImages, removeImage, type ImageEntry } from '../images/index.ts';

const BUILD_USAGE = `usage: matchlock image build NAME --from SOURCE [--size MiB] [--no-devices] [--no-agent] [--images-dir DIR]

  SOURCE: rootfs:FILE.tar[.gz|.tgz|.zst]   a root file system tarball (debootstrap, tar --numeric-owner -cpf)
          oci:DIR[:TAG]                     an OCI image layout (umoci, skopeo copy … oci:DIR:TAG); TAG needed if several
          docker-archive:FILE[:NAME:TAG]    a docker save / skopeo docker-archive tarball
  Applies the layers in order (whiteouts, owners, modes, links, xattrs), each verified against its digest as it is
  read, with no path leaving the tree; device nodes only under /dev/ (--no-devices: none at all). Injects the guest
  agent and its runtime at /opt/matchlock (replacing what the image had there) and runs its self-check in a chroot
  of the tree (--no-agent: an image without it, which cannot take jobs). Then makes an ext4
  file with mke2fs -d, checks it with e2fsck -fn, and publishes DIR/NAME at once (default DIR:
  ${'/var/lib/matchlock/images'}). A terminal shows the progress on one line.`;

export const DEFAULT_IMAGES_DIR = '/var/lib/matchlock/images';

const STORE_USAGE = `usage: matchlock image list [--json] [--images-dir DIR]
       matchlock image inspect NAME [--version ID] [--json] [--images-dir DIR]
       matchlock image rm NAME [--version ID] [--images-dir DIR]
       matchlock image gc [--json] [--images-dir DIR]

  Each build of NAME is a version DIR/NAME/ID; DIR/NAME/current names the one new VMs use, so rebuilding never
  disturbs running VMs. list shows every version and the pids using it; inspect one version (by default the
  current one); rm removes an image (all versions) or one version, and refuses what a process holds open or has
  marked as in use; gc removes old versions nobody uses and what interrupted builds and removals left behind.`;

export const IMAGE_USAGE = `${BUILD_USAGE}\n\n${STORE_USAGE}`;

export async function image(args: string[], log: Logger): Promise<number> {
  const [sub, ...rest] = args;
  const store = STORE_COMMANDS.get(sub ?? '');
  if (store !== undefined) return store(rest);
  if (sub !== 'build') throw new MatchlockError(ErrorCodes.USAGE, `unknown image command "${sub ?? ''}": try matchlock image --help`, {});
  const { values, positionals } = parseArgs({
    args: rest, strict: true, allowPositionals: true,
    options: {
      from: { type: 'string' }, size: { type: 'string' }, 'images-dir': { type: 'string' }, 'no-devices': { type: 'boolean' }, 'no-agent': { type: 'boolean' },
    },
  });
  const name = positionals[0];
  if (name === undefined || positionals.length > 1 || values.from === undefined) throw new MatchlockError(ErrorCodes.USAGE, `give one NAME and --from ${FROM_FORMS}`, {});
  const size = values.size === undefined ? undefined : /^\d{1,7}$/.test(values.size) ? Number(values.size) : Number.NaN;
  if (size !== undefined && !(size >= 8)) throw new MatchlockError(ErrorCodes.USAGE, `--size ${values.size}: give MiB, at least 8`, {});
  const meta = await buildImage({
    name, from: values.from, imagesDir: values['images-dir'] ?? DEFAULT_IMAGES_DIR, devices: values['no-devices'] === true ? 'none' : 'dev-only',
    ...(values['no-agent'] === true ? {} : { inject: injectAgent }),
    ...(size === undefined ? {} : { sizeMib: size }),
  });
  log.info({ image: meta.name, sizeBytes: meta.sizeBytes, sourceSha256: meta.sourceSha256, source: meta.source, agentVersion: meta.agentVersion }, 'image built');
  return 0;
}

// The image store: list, inspect, rm, gc (see src/images/image-store.ts). Tables for people, --json for scripts.

const out = (text: string): void => { process.stdout.write(`${text}\n`); };
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const pids = (list: readonly number[]): string => (list.length === 0 ? '-' : list.join(','));

/** Columns padded to their widest cell; the last one is not padded. */
function table(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

interface StoreArgs {
  readonly dir: string;
  readonly name: string;
  readonly json: boolean;
  readonly version?: string;
}

function storeArgs(args: string[], names: 0 | 1, allowed: { readonly version?: boolean; readonly json?: boolean }): StoreArgs {
  const { values, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: { 'images-dir': { type: 'string' }, version: { type: 'string' }, json: { type: 'boolean' } },
  });
  const usage = (what: string): MatchlockError => new MatchlockError(ErrorCodes.USAGE, `${what}: see matchlock image --help`, {});
  if (positionals.length !== names) throw usage(names === 0 ? `unexpected ${positionals.join(' ')}` : 'give one image NAME');
  if (values.version !== undefined && allowed.version !== true) throw usage('--version is for inspect and rm');
  if (values.json !== undefined && allowed.json !== true) throw usage('--json is for list, inspect and gc');
  return {
    dir: values['images-dir'] ?? DEFAULT_IMAGES_DIR, name: positionals[0] ?? '', json: values.json === true,
    ...(values.version === undefined ? {} : { version: values.version }),
  };
}

function list(args: string[]): number {
  const { dir, json } = storeArgs(args, 0, { json: true });
  const images: ImageEntry[] = listImages(dir);
  if (json) out(JSON.stringify(images, null, 2));
  else if (images.length === 0) out(`no images in ${dir}`);
  else {
    out(table([
      ['NAME', 'VERSION', 'CURRENT', 'CREATED', 'SIZE', 'AGENT', 'IN USE BY', 'SOURCE'],
      ...images.flatMap((img) => img.versions.map((v) => [
        img.name, v.id, v.current ? 'yes' : '', v.meta?.created ?? '-', v.meta === null ? '-' : mib(v.meta.sizeBytes), v.meta?.agentVersion ?? '-',
        pids(v.inUse), v.meta?.source ?? `damaged: ${v.problem ?? ''}`,
      ])),
    ]));
  }
  return 0;
}

function inspect(args: string[]): number {
  const { dir, name, json, version } = storeArgs(args, 1, { json: true, version: true });
  const img = inspectImage(dir, name, version);
  if (json) {
    out(JSON.stringify(img, null, 2));
    return 0;
  }
  out(table([
    ['name:', img.name],
    ['version:', `${img.id}${img.current ? ' (current)' : ''}`],
    ['created:', img.meta.created],
    ['source:', img.meta.source],
    ['source sha256:', img.meta.sourceSha256],
    ['size:', `${mib(img.meta.sizeBytes)} (${img.meta.sizeBytes} bytes)`],
    ['agent:', img.meta.agentVersion ?? '-'],
    ['in use by:', img.inUse.length === 0 ? 'nobody' : `pid ${img.inUse.join(', ')}`],
    ['directory:', img.dir],
    ['rootfs:', img.rootfs],
    ['versions:', img.versions.join(', ')],
  ]));
  return 0;
}

function rm(args: string[]): number {
  const { dir, name, version } = storeArgs(args, 1, { version: true });
  for (const r of removeImage(dir, name, version === undefined ? {} : { version })) {
    out(`removed ${r.what === 'name' ? `image ${name}` : `version ${version ?? ''} of image ${name}`} (${mib(r.bytes)} freed)`);
  }
  return 0;
}

function gc(args: string[]): number {
  const { dir, json } = storeArgs(args, 0, { json: true });
  const result = gcImages(dir);
  if (json) out(JSON.stringify(result, null, 2));
  else if (result.removed.length === 0) out(`nothing to remove in ${dir}`);
  else {
    out(table(result.removed.map((r) => [r.what, mib(r.bytes), r.path])));
    out(`${mib(result.bytesFreed)} freed`);
  }
  return 0;
}

const STORE_COMMANDS: ReadonlyMap<string, (args: string[]) => number> = new Map([['list', list], ['inspect', inspect], ['rm', rm], ['gc', gc]]);
