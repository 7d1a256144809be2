/**
 * Duties of PID 1 the agent takes on when the kernel starts it: orphans of the job are re-parented to it and
 * must be collected (Node collects only its own children, so the agent looks for zombies whose parent it is,
 * leaving its own children to Node), and at the end the file systems are synced and the VM is ended.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as sys from '../vmm/sys/index.ts';

/** Pids of zombie processes whose parent is `parent`. */
export function zombieChildren(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone already
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' && Number(rest[1]) === parent) out.push(Number(name));
  }
  return out;
}

/** Collects orphaned zombies every `everyMs`, never one of `own()` (Node's children, which Node collects). */
export function startReaper(own: () => ReadonlySet<number>, everyMs = 1000): () => void {
  const timer = setInterval(() => {
    const mine = own();
    for (const pid of zombieChildren(process.pid)) if (!mine.has(pid)) sys.reapIfExited(pid);
  }, everyMs);
  timer.unref();
  return () => { clearInterval(timer); };
}

/** Syncs and ends the VM: a reset, which our VMM (and Firecracker, with reboot=k) takes as the VM's end. */
export function endVm(): never {
  sys.syncFileSystems();
  sys.rebootSystem(sys.LINUX_REBOOT_CMD_RESTART);
  process.exit(0); // not reached in a VM; a PID namespace's init is killed by the reboot instead
}
