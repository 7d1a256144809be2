/**
 * `matchlock kernel import`: checks a kernel file (src/images/kernel-check.ts) and stores it as
 * `DIR/NAME/{kernel, kernel.json}`. The bytes stored are the bytes checked (read once), identified by their
 * sha256. The entry is built in a hidden directory beside it and renamed into place, so an import that fails or
 * is interrupted leaves nothing under NAME. Importing the same bytes under the same name again changes nothing;
 * other bytes under a taken name are refused unless `force`, which swaps the new entry in by two renames (for
 * that instant NAME is absent) and then removes the old one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { checkKernel } from './kernel-check.ts';
import { DEFAULT_KERNELS_DIR, KERNEL_FILE, KERNEL_NAME, METADATA_FILE, readKernelEntry, type KernelMetadata } from './kernel-store.ts';

export interface KernelImportRequest {
  /** The vmlinux or bzImage to import. */
  readonly file: string;
  readonly kernelsDir?: string;
  /** By default from the kernel's release ("6.1.0-56-cloud-amd64"), else from the file name. */
  readonly name?: string;
  /** Replace a different kernel stored under the same name. */
  readonly force?: boolean;
}

export interface ImportedKernel {
  readonly metadata: KernelMetadata;
  /** The stored kernel file, to pass to `vm run --kernel`. */
  readonly path: string;
  /** `unchanged`: these very bytes were already stored under this name. */
  readonly outcome: 'imported' | 'replaced' | 'unchanged';
}

/** Larger than any guest kernel (a vmlinux with full debug info is a few hundred MiB). */
export const MAX_KERNEL_BYTES = 1024 * 2 ** 20;

const errnoOf = (e: unknown): string => String((e as { code?: unknown }).code ?? 'EIO');
/** Node's "EFBIG: file too large, write '/x'" as "file too large". */
const reasonOf = (e: unknown): string => {
  const message = e instanceof Error ? e.message : String(e);
  return /^[A-Z0-9]+: ([^,]+)/.exec(message)?.[1] ?? message;
};

function storeError(message: string, details: Record<string, unknown>, cause?: unknown): MatchlockError {
  return new MatchlockError(ErrorCodes.KERNEL, message, details, { cause });
}

/** Lower case, runs of anything outside the name alphabet as "-", no leading punctuation, at most 64. */
function toName(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 64).replace(/[-.]+$/, '');
}

function chooseName(req: KernelImportRequest, version: string | null): string {
  if (req.name !== undefined) {
    if (!KERNEL_NAME.test(req.name)) throw storeError(`kernel name "${req.name}" must be 1 to 64 of a-z, 0-9, "_", ".", "-", starting with a letter or digit: pick another --name`, { name: req.name });
    return req.name;
  }
  const fromVersion = version === null ? '' : toName(version.split(' ')[0] ?? '');
  const name = fromVersion !== '' ? fromVersion : toName(basename(req.file));
  if (!KERNEL_NAME.test(name)) throw storeError(`no name can be made for kernel ${req.file} (no version string, and its file name has no usable characters): give --name`, { path: req.file });
  return name;
}

async function readKernelFile(file: string): Promise<Buffer> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw Object.assign(new Error(st.isDirectory() ? 'it is a directory' : 'it is not a regular file'), { code: st.isDirectory() ? 'EISDIR' : 'EINVAL' });
    if (st.size > MAX_KERNEL_BYTES) {
      throw new MatchlockError(ErrorCodes.KERNEL_FORMAT, `kernel ${file} is ${st.size} bytes, more than any guest kernel (${MAX_KERNEL_BYTES}): check that it is the right file`, { path: file, size: st.size });
    }
    return await readFile(file);
  } catch (e: unknown) {
    if (e instanceof MatchlockError) throw e;
    const errno = errnoOf(e);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') {
      throw new MatchlockError(ErrorCodes.KERNEL_NOT_FOUND, `kernel ${file} not found (${errno}): pass the path of a vmlinux or bzImage`, { path: file, errno }, { cause: e });
    }
    throw new MatchlockError(ErrorCodes.KERNEL_UNREADABLE, `kernel ${file} cannot be read (${errno}: ${reasonOf(e)}): check the path and its permissions`, { path: file, errno }, { cause: e });
  }
}

/** Writes `data` to a new file at `path` and flushes it to disk. */
async function writeDurably(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Renames the finished entry `staged` to `final`; with `replace`, the entry there is moved aside first and removed after. */
function publish(kernelsDir: string, staged: string, final: string, replace: boolean): void {
  const aside = replace ? join(kernelsDir, `.replaced-${basename(final)}-${process.pid}-${randomBytes(4).toString('hex')}`) : null;
  if (aside !== null) renameSync(final, aside);
  try {
    renameSync(staged, final); // the entry appears whole, or not at all
  } catch (e: unknown) {
    if (aside !== null) renameSync(aside, final);
    throw e;
  }
  if (aside !== null) rmSync(aside, { recursive: true, force: true });
}

export async function importKernel(req: KernelImportRequest): Promise<ImportedKernel> {
  const kernelsDir = req.kernelsDir ?? DEFAULT_KERNELS_DIR;
  const bytes = await readKernelFile(req.file);
  const { format, version } = checkKernel(bytes, req.file);
  const name = chooseName(req, version);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const final = join(kernelsDir, name);
  const path = join(final, KERNEL_FILE);

  const existing = readKernelEntry(kernelsDir, name);
  if (existing !== null && !('broken' in existing) && existing.sha256 === sha256) return { metadata: existing, path, outcome: 'unchanged' };
  if (existing !== null && req.force !== true) {
    const what = 'broken' in existing ? `a broken entry (${existing.broken})` : `another kernel (${existing.format} ${existing.version?.split(' ')[0] ?? 'without a version string'}, sha256 ${existing.sha256.slice(0, 12)})`;
    throw storeError(`kernel name ${name} is taken by ${what} in ${kernelsDir}: pick another --name, or pass --force to replace it`, { name, kernelsDir });
  }

  let staged: string;
  try {
    mkdirSync(kernelsDir, { recursive: true, mode: 0o755 });
    staged = mkdtempSync(join(kernelsDir, `.import-${name}-`));
  } catch (e: unknown) {
    throw storeError(`kernels directory ${kernelsDir} cannot be written (${errnoOf(e)}): check the path and its permissions, or give --kernels-dir`, { path: kernelsDir }, e);
  }
  const cleanUp = (): void => { rmSync(staged, { recursive: true, force: true }); };
  process.once('exit', cleanUp);
  try {
    const metadata: KernelMetadata = { name, format, sha256, sizeBytes: bytes.byteLength, version, imported: new Date().toISOString() };
    await writeDurably(join(staged, KERNEL_FILE), bytes);
    await writeDurably(join(staged, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    chmodSync(staged, 0o755);
    await syncDir(staged);
    try {
      publish(kernelsDir, staged, final, existing !== null);
    } catch (e: unknown) {
      const errno = errnoOf(e);
      if (errno === 'ENOTEMPTY' || errno === 'EEXIST') throw storeError(`kernel name ${name} was taken in ${kernelsDir} by another import meanwhile: pick another --name, or pass --force`, { name, kernelsDir }, e);
      throw e;
    }
    await syncDir(kernelsDir);
    return { metadata, path, outcome: existing === null ? 'imported' : 'replaced' };
  } catch (e: unknown) {
    if (e instanceof MatchlockError) throw e;
    throw storeError(`kernel ${req.file} cannot be stored in ${kernelsDir} (${errnoOf(e)}: ${reasonOf(e)}): check free space and permissions`, { path: kernelsDir }, e);
  } finally {
    cleanUp();
    process.off('exit', cleanUp);
  }
}
