/**
 * Reading a host file (kernel, initrd) with errors mapped by the caller: open, check it is a regular
 * file, read it whole into a buffer the caller provides.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Why a file could not be read: the errno code (`ENOENT`, `EACCES`, `EISDIR`, ...) and a readable reason. */
export interface FileProblem {
  readonly errno: string;
  readonly reason: string;
}

export type ProblemMapper = (problem: FileProblem, cause: unknown) => Error;

function problemOf(e: unknown): FileProblem {
  const errno = typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : 'EIO';
  const message = e instanceof Error ? e.message : String(e);
  // Node messages look like "ENOENT: no such file or directory, open '/x'": keep the middle part.
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(message);
  return { errno, reason: m?.[1] ?? message };
}

/**
 * Opens `path`, sizes it, lets `prepare(size)` return the buffer to fill (or throw), and reads the file into
 * it. A file that changes size while read is reported as EIO. Returns the filled buffer.
 */
export function readHostFile(path: string, mapProblem: ProblemMapper, prepare: (size: number) => Uint8Array): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e: unknown) {
    throw mapProblem(problemOf(e), e);
  }
  try {
    let size: number;
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) throw Object.assign(new Error('EISDIR: it is a directory'), { code: 'EISDIR' });
      if (!st.isFile()) throw Object.assign(new Error('EINVAL: it is not a regular file'), { code: 'EINVAL' });
      size = st.size;
    } catch (e: unknown) {
      throw mapProblem(problemOf(e), e);
    }
    const target = prepare(size);
    let done = 0;
    try {
      while (done < target.byteLength) {
        const n = readSync(fd, target, done, target.byteLength - done, done);
        if (n === 0) break;
        done += n;
      }
    } catch (e: unknown) {
      throw mapProblem(problemOf(e), e);
    }
    if (done !== size) {
      throw mapProblem({ errno: 'EIO', reason: `it was ${size} bytes but ${done} could be read; it changed while being read` }, undefined);
    }
    return target;
  } finally {
    closeSync(fd);
  }
}
