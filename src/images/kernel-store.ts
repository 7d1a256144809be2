/**
 * The kernel store: `DIR/NAME/{kernel, kernel.json}`, one directory per imported kernel, published whole by a
 * rename (src/images/kernel-import.ts). Entries whose name starts with "." are imports in progress, or left
 * behind by an interrupted one, and are not kernels.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import type { KernelFormat } from '../vmm/index.ts';

export const DEFAULT_KERNELS_DIR = '/var/lib/matchlock/kernels';
export const KERNEL_FILE = 'kernel';
export const METADATA_FILE = 'kernel.json';

export interface KernelMetadata {
  readonly name: string;
  readonly format: KernelFormat;
  readonly sha256: string;
  readonly sizeBytes: number;
  /** The Linux version string the kernel carries ("6.1.0-56-cloud-amd64 (...) #1 SMP ..."), or null. */
  readonly version: string | null;
  /** When it was imported (ISO 8601). */
  readonly imported: string;
}

export interface KernelListing {
  readonly kernels: readonly KernelMetadata[];
  /** Directories under the store that are not a whole kernel, with why. */
  readonly broken: readonly { readonly name: string; readonly reason: string }[];
}

/** A name: 1 to 64 of a-z, 0-9, "_", ".", "-", starting with a letter or digit (the images' rule). */
export const KERNEL_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

function isMetadata(v: unknown): v is KernelMetadata {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  return typeof m['name'] === 'string' && (m['format'] === 'elf' || m['format'] === 'bzimage') &&
    typeof m['sha256'] === 'string' && /^[0-9a-f]{64}$/.test(m['sha256']) &&
    typeof m['sizeBytes'] === 'number' && Number.isSafeInteger(m['sizeBytes']) &&
    (m['version'] === null || typeof m['version'] === 'string') && typeof m['imported'] === 'string';
}

/**
 * The stored kernel `name` in `kernelsDir`: its metadata, null if there is no such entry, or why the entry is
 * not a whole kernel (unreadable or invalid kernel.json, kernel file missing or of another size).
 */
export function readKernelEntry(kernelsDir: string, name: string): KernelMetadata | null | { readonly broken: string } {
  const dir = join(kernelsDir, name);
  let text: string;
  try {
    if (!statSync(dir).isDirectory()) return { broken: 'not a directory' };
    text = readFileSync(join(dir, METADATA_FILE), 'utf8');
  } catch (e: unknown) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT' && !isDirectory(dir)) return null;
    return { broken: `${METADATA_FILE} cannot be read (${String(code ?? e)})` };
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (e: unknown) {
    return { broken: `${METADATA_FILE} is not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  if (!isMetadata(meta) || meta.name !== name) return { broken: `${METADATA_FILE} lacks a field or names another kernel` };
  try {
    const size = statSync(join(dir, KERNEL_FILE)).size;
    if (size !== meta.sizeBytes) return { broken: `${KERNEL_FILE} is ${size} bytes, ${METADATA_FILE} says ${meta.sizeBytes}` };
  } catch (e: unknown) {
    return { broken: `${KERNEL_FILE} cannot be read (${String((e as { code?: unknown }).code ?? e)})` };
  }
  return meta;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Every kernel in `kernelsDir`, by name; a missing directory holds none. */
export function listKernels(kernelsDir: string): KernelListing {
  let names: string[];
  try {
    names = readdirSync(kernelsDir).filter((n) => !n.startsWith('.')).sort();
  } catch (e: unknown) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT') return { kernels: [], broken: [] };
    throw new MatchlockError(ErrorCodes.KERNEL, `kernels directory ${kernelsDir} cannot be read (${String(code ?? e)}): check the path and its permissions`, { path: kernelsDir }, { cause: e });
  }
  const kernels: KernelMetadata[] = [];
  const broken: { name: string; reason: string }[] = [];
  for (const name of names) {
    const entry = readKernelEntry(kernelsDir, name);
    if (entry === null) continue; // removed meanwhile
    if ('broken' in entry) broken.push({ name, reason: entry.broken });
    else kernels.push(entry);
  }
  return { kernels, broken };
}
