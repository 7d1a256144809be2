/**
 * Is a lease's holder still running? A pid alone is not enough (pids are reused), so a holder is the pid and
 * the process's start time: field 22 of /proc/PID/stat, in clock ticks since boot. A zombie counts as dead.
 */
import { readFileSync } from 'node:fs';

/** The start time of a running process, or null when there is none (or only its zombie). */
export function processStartTime(pid: number): number | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // no such process
  }
  // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = Number(fields[22 - 3]);
  if (state === 'Z' || state === 'X' || !Number.isSafeInteger(start)) return null;
  return start;
}

export function holderAlive(pid: number | null, start: number | null): boolean {
  return pid !== null && start !== null && processStartTime(pid) === start;
}
