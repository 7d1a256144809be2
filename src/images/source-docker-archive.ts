/**
 * `docker-archive:FILE[:REF]`: a `docker save` (or `skopeo copy … docker-archive:`) tarball. manifest.json names
 * the config and the layers, which are members of the same tarball, in no particular order (docker writes
 * manifest.json last). So the archive is read once with tar-stream to index its members (name → offset and
 * size), and each layer is then streamed straight from its byte range of the file: nothing is copied out, which
 * matters for layers of gigabytes. Plain and compressed layers are told apart by their first bytes.
 * Integrity: the config is checked against its content-addressed name, and each layer, as it is streamed,
 * against the config's rootfs.diff_ids (the sha256 of the uncompressed layer), so what is applied is what the
 * config describes even if the file changes between the passes. The source digest is the sha256 of the file,
 * taken alongside the layers on another thread.
 */
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { finished } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { MatchlockError } from '../errors.ts';
import { decompress, expandedGuess, sniffCompression } from './decompress.ts';
import { parseImageConfig } from './image-config.ts';
import { Sha256Tap } from './sha256-tap.ts';
import { readBytes, readFileStream, sha256Hex } from './source-files.ts';
import { imageError, type ImageLayer, type ImageSource, type OpenedLayer } from './source.ts';

interface Member {
  readonly offset: number;
  readonly size: number;
  readonly type: string;
  readonly linkname: string | null;
}

const MAX_JSON_BYTES = 16 * 1024 * 1024;
const MAX_MEMBERS = 100_000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const normal = (name: string): string => posix.normalize(name).replace(/^(\.\/)+/, '').replace(/\/$/, '');

/** The archive's members by normalized name (the data's offset in the file, its size, its type). */
async function indexMembers(path: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const tar = extract();
  const file = readFileStream(path, () => {});
  file.on('error', (e: Error) => tar.destroy(e));
  file.pipe(tar);
  try {
    for await (const entry of tar) {
      const h = entry.header as typeof entry.header & { byteOffset?: number };
      if (members.size >= MAX_MEMBERS) throw imageError(`docker-archive ${path} has more than ${MAX_MEMBERS} members`, { path });
      members.set(normal(h.name), { offset: h.byteOffset ?? -1, size: h.size ?? 0, type: h.type ?? 'file', linkname: h.linkname ?? null });
      entry.resume();
    }
  } catch (e: unknown) {
    file.destroy();
    if (e instanceof MatchlockError) throw e;
    throw imageError(`docker-archive ${path} cannot be read as a tar file: ${e instanceof Error ? e.message : String(e)}`, { path });
  }
  return members;
}

/** The regular member `name` stands for, following the symlinks and hard links docker uses for repeated layers. */
function member(members: ReadonlyMap<string, Member>, name: string, path: string): Member & { name: string } {
  let at = normal(name);
  for (let hops = 0; hops < 8; hops++) {
    const m = members.get(at);
    if (m === undefined) break;
    if (m.type === 'file' || m.type === 'contiguous-file') return { ...m, name: at };
    if ((m.type !== 'symlink' && m.type !== 'link') || m.linkname === null) break;
    at = normal(m.type === 'symlink' ? posix.join(posix.dirname(at), m.linkname) : m.linkname);
    if (at.startsWith('../') || at.startsWith('/')) break;
  }
  throw imageError(`docker-archive ${path}: ${name} is not a file in the archive`, { path, member: name });
}

function json(path: string, m: Member & { name: string }): unknown {
  const data = readBytes(path, `docker-archive member ${m.name}`, { offset: m.offset, length: m.size, max: MAX_JSON_BYTES });
  const named = /([0-9a-f]{64})(\.json)?$/.exec(m.name);
  if (named !== null && sha256Hex(data) !== named[1]) throw imageError(`docker-archive ${path}: ${m.name} does not match the digest in its name: a corrupt or tampered archive`, { path });
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch {
    throw imageError(`docker-archive ${path}: ${m.name} is not valid JSON`, { path });
  }
}

function layer(path: string, m: Member & { name: string }, diffId: string): ImageLayer {
  if (m.size === 0) throw imageError(`docker-archive ${path}: layer ${m.name} is empty (not even a tar end marker)`, { path, member: m.name });
  const compression = sniffCompression(readBytes(path, `docker-archive layer ${m.name}`, { offset: m.offset, length: Math.min(4, m.size), max: 4 }));
  const open = (onRead: (bytes: number) => void): OpenedLayer => {
    const file = readFileStream(path, onRead, { start: m.offset, end: m.offset + m.size - 1 });
    const tap = new Sha256Tap();
    const tar = decompress(file, compression, `layer ${m.name}`);
    tar.on('error', (e: Error) => tap.destroy(e));
    return {
      tar: tar.pipe(tap),
      file: null, // the bytes applied must be the bytes hashed
      verify: async () => {
        await finished(tap, { readable: false });
        const hex = await tap.digest();
        if (`sha256:${hex}` !== diffId) throw imageError(`docker-archive ${path}: layer ${m.name} is sha256:${hex} uncompressed, the config says ${diffId}: a corrupt or tampered archive`, { path, member: m.name });
      },
      close: () => tap.close(),
    };
  };
  return { label: `${m.name}${compression === 'none' ? '' : ` (${compression})`}`, sourceBytes: m.size, expandedBytes: expandedGuess(m.size, compression), open };
}

export async function openDockerArchive(path: string, ref: string | null): Promise<ImageSource> {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e: unknown) {
    throw imageError(`docker-archive ${path}: ${e instanceof Error && !('code' in e) ? e.message : 'no such file'}`, { path });
  }
  const members = await indexMembers(path);
  const manifest = json(path, member(members, 'manifest.json', path));
  if (!Array.isArray(manifest) || !manifest.every(isObject)) throw imageError(`docker-archive ${path}: manifest.json is not a list of images`, { path });
  const tagsOf = (img: Record<string, unknown>): string[] => (Array.isArray(img['RepoTags']) ? img['RepoTags'].filter((t): t is string => typeof t === 'string') : []);
  const all = manifest.flatMap(tagsOf).join(', ') || 'none';
  const names = (tag: string): string[] => [tag, tag.replace(/^docker\.io\/(library\/)?/, ''), tag.replace(/^docker\.io\//, '')];
  const picked = ref === null ? manifest : manifest.filter((img) => tagsOf(img).some((t) => names(t).includes(ref)));
  if (picked.length !== 1) {
    throw imageError(ref === null ? `docker-archive ${path} holds ${manifest.length} images: name one as docker-archive:${path}:NAME:TAG (tags: ${all})` : `docker-archive ${path}: no image tagged ${ref} (tags: ${all})`, { path });
  }
  const img = picked[0]!;
  const layerNames = img['Layers'];
  if (typeof img['Config'] !== 'string' || !Array.isArray(layerNames) || !layerNames.every((l) => typeof l === 'string') || layerNames.length === 0) {
    throw imageError(`docker-archive ${path}: manifest.json names no Config or no Layers`, { path });
  }
  const { config, diffIds } = parseImageConfig(json(path, member(members, img['Config'], path)), `docker-archive ${path}`);
  if (diffIds === null || diffIds.length !== layerNames.length) {
    throw imageError(`docker-archive ${path}: the config lists ${diffIds?.length ?? 0} layer digests (rootfs.diff_ids) for ${layerNames.length} layers`, { path });
  }
  const layers = layerNames.map((name, i) => layer(path, member(members, name, path), diffIds[i]!));
  // The file's digest, read alongside the layers (another thread hashes; the page cache serves both reads).
  const whole = new Sha256Tap();
  const reading = readFileStream(path, () => {});
  reading.on('error', (e: Error) => whole.destroy(e));
  reading.pipe(whole).resume();
  const digest = finished(whole, { readable: false }).then(async () => {
    const hex = await whole.digest();
    if (whole.bytes !== size) throw imageError(`docker-archive ${path} changed while it was read`, { path });
    return hex;
  });
  digest.catch(() => {}); // awaited by the build; an early failure must not be unhandled meanwhile
  return {
    kind: 'docker-archive', layers, config, digest: () => digest,
    close: () => {
      reading.destroy();
      whole.close();
    },
  };
}
