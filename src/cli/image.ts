/** `matchlock image build`: a golden image from a root filesystem tarball (see src/images/build.ts). */
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { buildImage } from '../images/index.ts';

export const IMAGE_USAGE = `usage: matchlock image build NAME --from rootfs:FILE.tar[.gz|.zst] [--size MiB] [--images-dir DIR]

  Applies the tarball safely (no path may leave the tree), makes an ext4 file with mke2fs -d, checks it with
  e2fsck -fn, and publishes DIR/NAME/{rootfs.ext4,image.json} at once (default DIR: ${'/var/lib/matchlock/images'}).`;

export const DEFAULT_IMAGES_DIR = '/var/lib/matchlock/images';

export async function image(args: string[], log: Logger): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'build') throw new MatchlockError(ErrorCodes.USAGE, `unknown image command "${sub ?? ''}": try matchlock image build --help`, {});
  const { values, positionals } = parseArgs({
    args: rest, strict: true, allowPositionals: true,
    options: { from: { type: 'string' }, size: { type: 'string' }, 'images-dir': { type: 'string' } },
  });
  const name = positionals[0];
  if (name === undefined || positionals.length > 1 || values.from === undefined) throw new MatchlockError(ErrorCodes.USAGE, 'give one NAME and --from rootfs:FILE', {});
  const size = values.size === undefined ? undefined : /^\d{1,7}$/.test(values.size) ? Number(values.size) : Number.NaN;
  if (size !== undefined && !(size >= 8)) throw new MatchlockError(ErrorCodes.USAGE, `--size ${values.size}: give MiB, at least 8`, {});
  const meta = await buildImage({ name, from: values.from, imagesDir: values['images-dir'] ?? DEFAULT_IMAGES_DIR, ...(size === undefined ? {} : { sizeMib: size }) });
  log.info({ image: meta.name, sizeBytes: meta.sizeBytes, sourceSha256: meta.sourceSha256 }, 'image built');
  return 0;
}
