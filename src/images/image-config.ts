/**
 * The parts of an image config (OCI `application/vnd.oci.image.config.v1+json`, Docker's
 * `application/vnd.docker.container.image.v1+json`) a golden image keeps: how the image meant to be run
 * (Env, Entrypoint, Cmd, User, WorkingDir), the platform, and the layers' diff IDs.
 */
import { imageError } from './source.ts';

export interface ImageConfig {
  readonly Env?: readonly string[];
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly User?: string;
  readonly WorkingDir?: string;
}

export interface ParsedConfig {
  readonly config: ImageConfig;
  /** `sha256:HEX` of each uncompressed layer, in order, when the config lists them. */
  readonly diffIds: readonly string[] | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

export function parseImageConfig(json: unknown, what: string): ParsedConfig {
  if (!isObject(json)) throw imageError(`${what}: the image config is not a JSON object`, { what });
  const os = json['os'];
  const arch = json['architecture'];
  if ((os !== undefined && os !== 'linux') || (arch !== undefined && arch !== 'amd64')) {
    throw imageError(`${what}: the image is for ${String(os)}/${String(arch)}; matchlock runs linux/amd64 images`, { what, os, architecture: arch });
  }
  const c = isObject(json['config']) ? json['config'] : {};
  const out: { -readonly [K in keyof ImageConfig]: ImageConfig[K] } = {};
  for (const key of ['Env', 'Entrypoint', 'Cmd'] as const) {
    const v = c[key];
    if (v === undefined || v === null) continue;
    if (!isStrings(v)) throw imageError(`${what}: the image config's ${key} is not a list of strings`, { what });
    out[key] = v;
  }
  for (const key of ['User', 'WorkingDir'] as const) {
    const v = c[key];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw imageError(`${what}: the image config's ${key} is not a string`, { what });
    out[key] = v;
  }
  const rootfs = json['rootfs'];
  const ids = isObject(rootfs) ? rootfs['diff_ids'] : undefined;
  if (ids !== undefined && !(isStrings(ids) && ids.every((d) => /^sha256:[0-9a-f]{64}$/.test(d)))) {
    throw imageError(`${what}: the image config's rootfs.diff_ids are not sha256 digests`, { what });
  }
  return { config: out, diffIds: ids ?? null };
}
