/**
 * `oci:DIR[:TAG]`: an OCI image layout (oci-layout, index.json, blobs/sha256/HEX). The manifest is the one
 * index.json names TAG (annotation `org.opencontainers.image.ref.name`), or its only one; an image index (or a
 * Docker manifest list) on the way is resolved to its linux/amd64 manifest. Every blob is content-addressed:
 * its path is blobs/sha256/<64 hex> and nothing else, it is never read through a symlink, and its size and
 * sha256 are checked against the descriptor (JSON blobs before they are parsed, layers as they are streamed).
 * The source digest is the manifest's.
 */
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { decompress, expandedGuess, type Compression } from './decompress.ts';
import { parseImageConfig } from './image-config.ts';
import { Sha256Tap } from './sha256-tap.ts';
import { readBytes, readFileStream, sha256Hex } from './source-files.ts';
import { imageError, type ImageLayer, type ImageSource, type OpenedLayer } from './source.ts';

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly hex: string;
  readonly annotations: Readonly<Record<string, unknown>>;
  readonly platform: Readonly<Record<string, unknown>> | null;
}

const MAX_JSON_BYTES = 4 * 1024 * 1024;
const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
const LAYER_TYPES: ReadonlyMap<string, Compression> = new Map([
  ['application/vnd.oci.image.layer.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.v1.tar+zstd', 'zstd'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar', 'none'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'gzip'],
  ['application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'zstd'],
  ['application/vnd.docker.image.rootfs.diff.tar.gzip', 'gzip'],
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw imageError(`${where}: a descriptor is not a JSON object`, { where });
  const { mediaType, digest, size } = v;
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw imageError(`${where}: digest ${JSON.stringify(digest)} is not sha256:<64 hex> (the only blob path allowed is blobs/sha256/<64 hex>)`, { where });
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw imageError(`${where}: descriptor ${digest} has no valid size`, { where, digest });
  return {
    mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size, hex: digest.slice('sha256:'.length),
    annotations: isObject(v['annotations']) ? v['annotations'] : {}, platform: isObject(v['platform']) ? v['platform'] : null,
  };
}

function descriptors(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw imageError(`${where}: expected a list of descriptors`, { where });
  return v.map((d, i) => descriptor(d, `${where}[${i}]`));
}

class OciLayout {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  blobPath(d: Descriptor): string {
    const path = join(this.dir, 'blobs', 'sha256', d.hex);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      throw imageError(`oci ${this.dir}: blob ${d.digest} is missing (blobs/sha256/${d.hex})`, { digest: d.digest });
    }
    if (!st.isFile()) throw imageError(`oci ${this.dir}: blob ${d.digest} is not a regular file (a symlink or directory is refused)`, { digest: d.digest });
    if (st.size !== d.size) throw imageError(`oci ${this.dir}: blob ${d.digest} is ${st.size} bytes, its descriptor says ${d.size}: a corrupt or tampered layout`, { digest: d.digest });
    return path;
  }

  /** A JSON blob, checked against its descriptor before it is parsed. */
  json(d: Descriptor): unknown {
    const data = readBytes(this.blobPath(d), `blob ${d.digest}`, { max: MAX_JSON_BYTES, noFollow: true });
    if (data.length !== d.size || sha256Hex(data) !== d.hex) {
      throw imageError(`oci ${this.dir}: blob ${d.digest} does not match its digest: a corrupt or tampered layout`, { digest: d.digest });
    }
    return parseJson(data, `blob ${d.digest}`);
  }

  layer(d: Descriptor): ImageLayer {
    const compression = LAYER_TYPES.get(d.mediaType);
    if (compression === undefined) throw imageError(`oci ${this.dir}: layer ${d.digest} has the media type ${JSON.stringify(d.mediaType)}, which is not a tar, tar+gzip or tar+zstd layer`, { digest: d.digest });
    const path = this.blobPath(d);
    const open = (onRead: (bytes: number) => void): OpenedLayer => {
      const file = readFileStream(path, onRead, null, true);
      const tap = new Sha256Tap();
      file.on('error', (e: Error) => tap.destroy(e));
      return {
        tar: decompress(file.pipe(tap), compression, `layer ${d.digest}`),
        file: null, // the bytes applied must be the bytes hashed
        verify: async () => {
          await finished(tap, { readable: false });
          const hex = await tap.digest();
          if (tap.bytes !== d.size || hex !== d.hex) {
            throw imageError(`oci ${this.dir}: layer ${d.digest} does not match its digest (read ${tap.bytes} bytes, sha256:${hex}): a corrupt or tampered blob`, { digest: d.digest });
          }
        },
        close: () => tap.close(),
      };
    };
    return { label: `${d.digest.slice(0, 19)} (${d.mediaType.replace(/^.*\./, '')})`, sourceBytes: d.size, expandedBytes: expandedGuess(d.size, compression), open };
  }
}

function parseJson(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch {
    throw imageError(`${what} is not valid JSON`, { what });
  }
}

/** The descriptor index.json names `ref`, or its only one. */
function pickTagged(list: readonly Descriptor[], ref: string | null, dir: string): Descriptor {
  const tags = list.map((d) => d.annotations[REF_NAME]).filter((t): t is string => typeof t === 'string');
  if (ref !== null) {
    const hits = list.filter((d) => d.annotations[REF_NAME] === ref);
    if (hits.length !== 1) throw imageError(`oci ${dir}: ${hits.length === 0 ? 'no' : 'more than one'} manifest tagged ${JSON.stringify(ref)} (tags: ${tags.join(', ') || 'none'})`, { dir, ref });
    return hits[0]!;
  }
  if (list.length !== 1) throw imageError(`oci ${dir} holds ${list.length} manifests: name one as oci:${dir}:TAG (tags: ${tags.join(', ') || 'none'})`, { dir });
  return list[0]!;
}

/** Follows image indexes to the linux/amd64 manifest. */
function resolveManifest(layout: OciLayout, d: Descriptor, depth = 0): Descriptor {
  if (MANIFEST_TYPES.has(d.mediaType)) return d;
  if (!INDEX_TYPES.has(d.mediaType) || depth > 3) throw imageError(`oci ${layout.dir}: ${d.digest} has the media type ${JSON.stringify(d.mediaType)}, not an image manifest or index`, { digest: d.digest });
  const index = layout.json(d);
  const list = descriptors(isObject(index) ? index['manifests'] : undefined, `index ${d.digest}`);
  const amd64 = list.filter((m) => m.platform === null ? list.length === 1 : m.platform['os'] === 'linux' && m.platform['architecture'] === 'amd64');
  if (amd64.length === 0) throw imageError(`oci ${layout.dir}: index ${d.digest} has no linux/amd64 image`, { digest: d.digest });
  return resolveManifest(layout, amd64[0]!, depth + 1);
}

export function openOci(dir: string, ref: string | null): ImageSource {
  if (!existsSync(join(dir, 'oci-layout'))) throw imageError(`oci ${dir}: not an OCI image layout (no oci-layout file there); skopeo copy … oci:DIR:TAG or umoci make one`, { dir });
  const layoutFile = parseJson(readBytes(join(dir, 'oci-layout'), `oci ${dir}: oci-layout`, { max: MAX_JSON_BYTES }), `oci ${dir}: oci-layout`);
  if (!isObject(layoutFile) || typeof layoutFile['imageLayoutVersion'] !== 'string') throw imageError(`oci ${dir}: oci-layout has no imageLayoutVersion: not an OCI image layout`, { dir });
  const index = parseJson(readBytes(join(dir, 'index.json'), `oci ${dir}: index.json`, { max: MAX_JSON_BYTES }), `oci ${dir}: index.json`);
  const layout = new OciLayout(dir);
  const top = pickTagged(descriptors(isObject(index) ? index['manifests'] : undefined, `oci ${dir}: index.json manifests`), ref, dir);
  const manifestDesc = resolveManifest(layout, top);
  const manifest = layout.json(manifestDesc);
  if (!isObject(manifest)) throw imageError(`oci ${dir}: manifest ${manifestDesc.digest} is not a JSON object`, { dir });
  const configDesc = descriptor(manifest['config'], `manifest ${manifestDesc.digest} config`);
  const { config } = parseImageConfig(layout.json(configDesc), `oci ${dir}`);
  const layers = descriptors(manifest['layers'], `manifest ${manifestDesc.digest} layers`).map((d) => layout.layer(d));
  if (layers.length === 0) throw imageError(`oci ${dir}: manifest ${manifestDesc.digest} has no layers`, { dir });
  return { kind: 'oci', layers, config, digest: () => Promise.resolve(manifestDesc.hex), close: () => {} };
}
