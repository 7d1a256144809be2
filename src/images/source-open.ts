/** Opens the image source `--from` names (see source.ts for the forms). */
import { openDockerArchive } from './source-docker-archive.ts';
import { openOci } from './source-oci.ts';
import { openRootfs } from './source-rootfs.ts';
import { parseFrom, type ImageSource } from './source.ts';

export async function openImageSource(from: string): Promise<ImageSource> {
  const ref = parseFrom(from);
  switch (ref.kind) {
    case 'rootfs':
      return openRootfs(ref.path);
    case 'oci':
      return openOci(ref.path, ref.ref);
    case 'docker-archive':
      return openDockerArchive(ref.path, ref.ref);
  }
}
