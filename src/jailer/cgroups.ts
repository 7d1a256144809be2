/**
 * The VM's cgroup, v1 or v2, found through /proc/mounts: made (values written first), the VMM moved in, and
 * removed when it has exited.
 * - v1: `<controller mount>/<parent>/<id>/` for each controller a value names (cpuset's cpus and mems are
 *   copied from the parent when not given, or no task could join); the pid goes to `cgroup.procs`.
 * - v2: `<unified mount>/<parent>/<id>/`, always (so the VM is accounted even with no limits), with
 *   `+controller` written to `cgroup.subtree_control` from the root down to the parent first.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';

export interface CgroupMount {
  readonly path: string;
  readonly type: 'cgroup' | 'cgroup2';
  /** v1: the controllers bound to this hierarchy. */
  readonly controllers: readonly string[];
}

function cgroupError(message: string, details: Record<string, unknown>, cause?: unknown): MatchlockError {
  return new MatchlockError(ErrorCodes.CGROUP, message, details, cause === undefined ? {} : { cause });
}

/** cgroup hierarchies from /proc/mounts (octal escapes in paths decoded). */
export function cgroupMounts(mounts: string = readFileSync('/proc/mounts', 'utf8')): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mounts.split('\n')) {
    const [, path, type, options] = line.split(' ');
    if (path === undefined || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    const decoded = path.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ path: decoded, type, controllers: type === 'cgroup' ? (options ?? '').split(',').filter((o) => !o.includes('=') && o !== 'rw' && o !== 'ro' && !o.startsWith('relatime') && o !== 'nosuid' && o !== 'nodev' && o !== 'noexec') : [] });
  }
  return out;
}

function write(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch (e: unknown) {
    throw cgroupError(`cannot write ${JSON.stringify(value)} to ${file}: ${errorMessage(e)}`, { file, value }, e);
  }
}

function controllerOf(file: string): string {
  return file.slice(0, file.indexOf('.'));
}

export class VmCgroup {
  /** The directories made, deepest last; removed in reverse. */
  readonly dirs: readonly string[];
  readonly #procsFiles: readonly string[];

  private constructor(dirs: string[], procsFiles: string[]) {
    this.dirs = dirs;
    this.#procsFiles = procsFiles;
  }

  /** Makes the VM's cgroup and writes its values; on failure removes what it made. */
  static create(version: 1 | 2, parent: string, id: string, values: readonly { file: string; value: string }[], mounts: readonly CgroupMount[] = cgroupMounts()): VmCgroup {
    const made: string[] = [];
    const mkdir = (dir: string): void => {
      if (existsSync(dir)) throw cgroupError(`cgroup ${dir} exists already: another VM with id ${id}? remove it if not`, { dir });
      mkdirSync(join(dir, '..'), { recursive: true });
      mkdirSync(dir);
      made.push(dir);
    };
    try {
      if (version === 2) {
        const unified = mounts.find((m) => m.type === 'cgroup2');
        if (unified === undefined) throw cgroupError('no cgroup2 hierarchy is mounted: use --cgroup-version 1, or mount cgroup2', {});
        const controllers = [...new Set(values.map((v) => controllerOf(v.file)))];
        const parts = parent.split('/');
        for (let depth = 0; depth <= parts.length; depth++) {
          const dir = join(unified.path, ...parts.slice(0, depth));
          if (depth > 0) mkdirSync(dir, { recursive: true });
          for (const c of controllers) write(join(dir, 'cgroup.subtree_control'), `+${c}`);
        }
        const dir = join(unified.path, parent, id);
        mkdir(dir);
        for (const v of values) write(join(dir, v.file), v.value);
        return new VmCgroup(made, [join(dir, 'cgroup.procs')]);
      }
      const byController = new Map<string, { file: string; value: string }[]>();
      for (const v of values) byController.set(controllerOf(v.file), [...(byController.get(controllerOf(v.file)) ?? []), v]);
      const procs: string[] = [];
      for (const [controller, files] of byController) {
        const mount = mounts.find((m) => m.type === 'cgroup' && m.controllers.includes(controller));
        if (mount === undefined) throw cgroupError(`no cgroup v1 hierarchy has the ${controller} controller (for ${files[0]!.file}): use --cgroup-version 2?`, { controller });
        const dir = join(mount.path, parent, id);
        mkdir(dir);
        if (controller === 'cpuset') {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            if (!files.some((v) => v.file === f)) write(join(dir, f), readFileSync(join(dir, '..', f), 'utf8').trim() || readFileSync(join(mount.path, f), 'utf8').trim());
          }
        }
        for (const v of files) write(join(dir, v.file), v.value);
        procs.push(join(dir, 'cgroup.procs'));
      }
      return new VmCgroup(made, procs);
    } catch (e: unknown) {
      new VmCgroup(made, []).remove();
      if (e instanceof MatchlockError) throw e;
      throw cgroupError(`cannot make the VM's cgroup: ${errorMessage(e)}`, { id }, e);
    }
  }

  /** Moves a process (all its threads) into the cgroup. */
  add(pid: number): void {
    for (const f of this.#procsFiles) write(f, String(pid));
  }

  /** Removes the cgroup's directories; retries briefly while the exited VMM's tasks drain. Returns what is left. */
  remove(): string[] {
    const left: string[] = [];
    for (const dir of [...this.dirs].reverse()) {
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (e: unknown) {
          const code = (e as { code?: string }).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || attempt >= 100) {
            left.push(dir);
            break;
          }
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        }
      }
    }
    return left;
  }
}
