/**
 * The jailer's second stage: PID 1 of the VM's new PID namespace, started by `matchlock jailer` with an empty
 * environment and its plan on fd 3. It waits for the go (the first stage has moved it into the VM's cgroup),
 * then on its main thread, in order: a private mount namespace, the network namespace, the jail's root with
 * only the bound files (read-only unless asked), device nodes, pivot_root, resource limits, no capabilities,
 * the unprivileged uid/gid, no new privileges, the seccomp allow-list, every fd but 0-2 closed on exec, and
 * execve of the VMM. Any failure is one line on fd 3 and exit status 1.
 * An entry point: importing this file runs it.
 */
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readSync, rmdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errorMessage } from '../errors.ts';
import * as sys from '../vmm/sys/index.ts';
import { JAIL_DEVICES } from './jail-fs.ts';
import { GO, PLAN_FD, type JailPlan } from './jail-plan.ts';
import { assemble, encode } from './seccomp-bpf.ts';
import { JAIL_POLICY } from './seccomp-policy.ts';

function readLine(fd: number): string {
  const bytes: number[] = [];
  const one = Buffer.alloc(1);
  for (;;) {
    const n = readSync(fd, one, 0, 1, null);
    if (n === 0 || one[0] === 0x0a) return Buffer.from(bytes).toString('utf8');
    bytes.push(one[0]!);
  }
}

/** Makes an empty file or directory at `target` (and its parents) for a bind of `source`. */
function placeholder(source: string, target: string): void {
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
  if (statSync(source).isDirectory()) mkdirSync(target, { recursive: true, mode: 0o755 });
  else if (!existsSync(target)) writeFileSync(target, '', { mode: 0o644 });
}

function confine(plan: JailPlan): never {
  const { root, uid, gid } = plan;
  sys.unshare(sys.CLONE_NEWNS);
  sys.mount(null, '/', null, sys.MS_REC | sys.MS_PRIVATE);
  if (plan.netns !== null) {
    const fd = openSync(plan.netns, 'r');
    sys.setns(fd, sys.CLONE_NEWNET);
    closeSync(fd);
  }
  sys.mount(root, root, null, sys.MS_BIND | sys.MS_REC);
  for (const b of plan.binds) {
    const target = join(root, b.target);
    placeholder(b.source, target);
    sys.bindMount(b.source, target, b.writable);
  }
  mkdirSync(join(root, 'dev/net'), { recursive: true, mode: 0o755 });
  for (const [path, major, minor] of JAIL_DEVICES) {
    sys.mknodChar(join(root, path), major, minor);
    chownSync(join(root, path), uid, gid);
  }
  const run = join(root, 'run');
  mkdirSync(run, { mode: 0o700 });
  chownSync(run, uid, gid);
  sys.mount(run, run, null, sys.MS_BIND); // stays writable when the root becomes read-only
  sys.chdir(root);
  mkdirSync(join(root, 'old_root'));
  sys.pivotRoot('.', 'old_root');
  sys.umountDetach('/old_root');
  rmdirSync('/old_root');
  sys.chdir('/');
  sys.mount(null, '/', null, sys.MS_BIND | sys.MS_REMOUNT | sys.MS_RDONLY | sys.MS_NOSUID);
  sys.setRlimit(sys.RLIMIT_NOFILE, plan.openFilesLimit);
  if (plan.fileSizeLimit !== null) sys.setRlimit(sys.RLIMIT_FSIZE, plan.fileSizeLimit);
  sys.dropBoundingCapabilities();
  sys.becomeUser(uid, gid);
  sys.dieWithParent(); // after the uid change, which clears it
  sys.noNewPrivileges();
  sys.installSeccomp(encode(assemble(JAIL_POLICY)), sys.SECCOMP_FILTER_FLAG_TSYNC);
  sys.onlyStdioAcrossExec();
  return sys.execve(plan.exec.path, plan.exec.argv, plan.exec.env);
}

try {
  const plan = JSON.parse(readLine(PLAN_FD)) as JailPlan;
  if (readLine(PLAN_FD) !== GO.trim()) process.exit(1); // the first stage gave up
  confine(plan);
} catch (e: unknown) {
  try {
    writeSync(PLAN_FD, `${JSON.stringify({ error: errorMessage(e), code: (e as { code?: unknown }).code ?? null })}\n`);
  } catch {
    // the first stage is gone
  }
  process.exit(1);
}
