/**
 * Where an image comes from: an ordered list of layers, each opened as a decompressed tar stream and verified
 * against what describes it as it is read, and a source digest. `rootfs:FILE.tar[.gz|.zst]` (one layer),
 * `oci:DIR[:TAG]` (an OCI image layout) and `docker-archive:FILE[:REF]` (a `docker save` tarball).
 */
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import type { ImageConfig } from './image-config.ts';
import type { LayerFile } from './layer-writer.ts';

export interface OpenedLayer {
  /** The layer's tar bytes, decompressed. */
  readonly tar: Readable;
  /** When `tar` is exactly an uncompressed file's bytes from an offset on, and nothing checks them as they stream. */
  readonly file: LayerFile | null;
  /** After the tar was read to its end: resolves if the layer matched its descriptor (digest, size), rejects otherwise. */
  verify(): Promise<void>;
  /** Stops what reading the layer started (a hash worker, a decompressor); safe to call at any time, more than once. */
  close(): void;
}

export interface ImageLayer {
  /** For messages and progress, e.g. `sha256:0123456789ab (tar+gzip)`. */
  readonly label: string;
  /** How many bytes reading the layer takes from the source, when known. */
  readonly sourceBytes: number | null;
  /** A generous guess of the layer's size once decompressed (for where its tree goes), when there is one. */
  readonly expandedBytes: number | null;
  /** `onRead` is told of every chunk read from the source (compressed bytes). */
  open(onRead: (bytes: number) => void): OpenedLayer;
}

export interface ImageSource {
  readonly kind: 'rootfs' | 'oci' | 'docker-archive';
  readonly layers: readonly ImageLayer[];
  /** The image config's Env, Entrypoint, Cmd, User and WorkingDir, when the source has a config. */
  readonly config: ImageConfig | null;
  /** Hex sha256: of the manifest (oci), of the file (rootfs, docker-archive; then known once the layers were read). */
  digest(): Promise<string>;
  close(): void;
}

export function imageError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

export const FROM_FORMS = 'rootfs:FILE.tar[.gz|.zst], oci:DIR[:TAG] or docker-archive:FILE[:REF]';

export type SourceRef =
  | { readonly kind: 'rootfs'; readonly path: string }
  | { readonly kind: 'oci'; readonly path: string; readonly ref: string | null }
  | { readonly kind: 'docker-archive'; readonly path: string; readonly ref: string | null };

/** `PATH[:REF]`: the longest prefix that exists is the path (paths may hold ":", and so may REF, as in name:tag). */
function pathAndRef(rest: string): { path: string; ref: string | null } {
  if (existsSync(rest)) return { path: rest, ref: null };
  for (let i = rest.indexOf(':'); i > 0; i = rest.indexOf(':', i + 1)) {
    if (existsSync(rest.slice(0, i))) return { path: rest.slice(0, i), ref: rest.slice(i + 1) };
  }
  return { path: rest, ref: null };
}

export function parseFrom(from: string): SourceRef {
  const colon = from.indexOf(':');
  const kind = colon < 0 ? '' : from.slice(0, colon);
  const rest = from.slice(colon + 1);
  if (rest !== '' && kind === 'rootfs') return { kind, path: rest };
  if (rest !== '' && (kind === 'oci' || kind === 'docker-archive')) return { kind, ...pathAndRef(rest) };
  throw imageError(`--from ${JSON.stringify(from)}: give ${FROM_FORMS}`, { from });
}
