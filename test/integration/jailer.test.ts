/**
 * `matchlock jailer` on this host (root; no KVM needed): each check is made on the running, jailed VMM through
 * /proc, its cgroup, its API socket, or gdb making it call into libc; and after it exits nothing is left.
 */
import avaTest from 'ava';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { checked, faultOf, matchlockApi } from '../helpers/api-client.ts';
import { REPO, TEST_GUEST, runCli } from '../helpers/cli.ts';
import { NOBODY, dead, gdbCall, pidOf, startJailed } from '../helpers/jail.ts';
import { rootSuite } from '../helpers/root.ts';

const { test } = rootSuite(import.meta.url);
const api = matchlockApi();
const base = mkdtempSync(join(tmpdir(), 'matchlock-jails-'));
let n = 0;
const nextId = (): string => `jt${process.pid}-${n++}`;

const CG1 = '/sys/fs/cgroup';
const CG2 = '/sys/fs/cgroup/unified';

function status(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return line === undefined ? '' : line.slice(field.length + 1).trim();
}

/** Every path below a directory (relative, directories too), not crossing into /proc-like trees. */
function walk(root: string, dir = root, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(relative(root, p));
    if (e.isDirectory()) walk(root, p, out);
  }
  return out;
}

function nothingLeft(t: { false: (v: boolean, m: string) => void }, id: string, dir: string): void {
  t.false(existsSync(dir), `the jail ${dir} is removed`);
  for (const c of ['memory', 'pids', 'cpu']) t.false(existsSync(join(CG1, c, 'matchlock', id)), `no ${c} cgroup left`);
  t.false(existsSync(join(CG2, 'matchlock', id)), 'no cgroup2 directory left');
  t.false(readFileSync('/proc/mounts', 'utf8').includes(dir), 'no mount of the jail on the host');
  t.false(pidOf(`--id ${id} `) !== 0, 'no process left');
}

avaTest.after.always(() => rmSync(base, { recursive: true, force: true }));

test('the jailed VMM runs as the given uid/gid with no capabilities, no new privileges and seccomp on every thread, as PID 1 of its own namespaces', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, []);
  t.teardown(async () => { await jail.stop(); });
  const pid = jail.pid;
  t.not(pid, 0, jail.output());
  t.is(status(pid, 'Uid'), `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
  t.is(status(pid, 'Gid'), `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
  t.is(status(pid, 'Groups'), '');
  for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) t.is(status(pid, cap), '0000000000000000', cap);
  t.is(status(pid, 'NoNewPrivs'), '1');
  const threads = readdirSync(`/proc/${pid}/task`);
  t.true(threads.length > 3, 'Node and the VMM run several threads');
  for (const tid of threads) {
    t.is(status(Number(tid), 'Seccomp'), '2', `thread ${tid} is filtered`);
    t.is(status(Number(tid), 'Seccomp_filters'), '2', `thread ${tid} has the jail's filter and the seal`);
  }
  t.is(status(pid, 'NSpid').split('\t').at(-1), '1', 'PID 1 in its own PID namespace');
  for (const ns of ['pid', 'mnt']) t.not(readlinkSync(`/proc/${pid}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), `own ${ns} namespace`);
  t.is(readFileSync(`/proc/${pid}/environ`, 'utf8'), 'UV_USE_IO_URING=0\0', 'the environment is cleared');
  t.like((await checked(t, api, jail.client, 'GET', '/')).body, { id, state: 'Not started' });
  const { code } = await jail.stop();
  t.is(code, 0, jail.output());
  nothingLeft(t, id, jail.dir);
});

test('the jail holds only the runtime, our code, the bound files and three device nodes; read-only but for /run and rw binds', async (t) => {
  const id = nextId();
  const disk = join(base, `${id}.img`);
  writeFileSync(disk, Buffer.alloc(65536));
  chownSync(disk, NOBODY, NOBODY);
  const secret = join(base, `${id}.secret`);
  writeFileSync(secret, 'host secret');
  const inherited = openSync(secret, 'r'); // an fd the jailer inherits must not reach the VMM
  t.teardown(() => closeSync(inherited));
  const jail = await startJailed(base, id, ['--bind', `${TEST_GUEST}:/vm/kernel`, '--bind', `${disk}:/vm/disk.img,rw`]);
  t.teardown(async () => { await jail.stop(); });
  const root = `/proc/${jail.pid}/root`;
  const top = readdirSync(root).sort();
  t.deepEqual(top, ['dev', 'lib', 'lib64', 'run', 'vm', REPO.split('/')[1]!].sort(), 'nothing else at the top: no /etc, /home, /proc, /sys, /tmp');
  const all = walk(root);
  t.deepEqual(all.filter((p) => p.startsWith('dev')).sort(), ['dev', 'dev/kvm', 'dev/net', 'dev/net/tun', 'dev/urandom']);
  for (const [dev, major, minor] of [['dev/kvm', 10, 232], ['dev/net/tun', 10, 200], ['dev/urandom', 1, 9]] as const) {
    const st = statSync(join(root, dev));
    t.true(st.isCharacterDevice(), dev);
    t.is(st.rdev, (major << 8) | minor, `${dev} is ${major}:${minor}`);
    t.is(st.uid, NOBODY);
  }
  const modules = readdirSync(join(root, REPO, 'node_modules'));
  for (const dev of ['ava', 'typescript', 'eslint', 'yaml']) t.false(modules.includes(dev), `no dev package ${dev}`);
  t.true(modules.includes('koffi') && modules.includes('pino'));
  t.deepEqual(readdirSync(join(root, 'vm')).sort(), ['disk.img', 'kernel']);
  t.deepEqual(readdirSync(join(root, 'run')), ['api.sock']);
  t.throws(() => writeFileSync(join(root, 'x'), ''), { code: 'EROFS' }, 'the root is read-only, even to the host\'s root');
  t.throws(() => writeFileSync(join(root, 'vm/kernel'), ''), { code: 'EROFS' }, 'binds are read-only by default');
  t.throws(() => writeFileSync(join(root, REPO, 'src/cli/main.ts'), ''), { code: 'EROFS' }, 'our code is read-only');
  writeFileSync(join(root, 'vm/disk.img'), Buffer.alloc(512, 1), { flag: 'r+' });
  t.is(readFileSync(disk)[0], 1, 'an rw bind writes through to the host file');
  const fds = readdirSync(`/proc/${jail.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${jail.pid}/fd/${fd}`); } catch { return ''; } });
  t.false(fds.includes(secret), 'no inherited fd');
  // The VMM itself can use what it was given: a kernel and a writable drive.
  t.is((await checked(t, api, jail.client, 'PUT', '/boot-source', { kernel_image_path: '/vm/kernel' })).status, 204);
  t.is((await checked(t, api, jail.client, 'PUT', '/drives/root', { drive_id: 'root', is_root_device: true, path_on_host: '/vm/disk.img' })).status, 204);
  t.regex(faultOf(t, await checked(t, api, jail.client, 'PUT', '/boot-source', { kernel_image_path: secret })), /cannot open kernel image/, 'host files are not there');
  t.is((await jail.stop()).code, 0, jail.output());
  nothingLeft(t, id, jail.dir);
});

test('seccomp: an ioctl outside the list gets EPERM and the VMM goes on; a syscall outside the list (mount) kills it with SIGSYS', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, []);
  t.teardown(async () => { await jail.stop(); });
  const ioctl = await gdbCall(jail.pid, '(int)ioctl(0, 0x1234, 0) * 1000 + *((int*(*)(void))__errno_location)()');
  t.regex(ioctl, /\$1 = -999\b/, `ioctl → -1, errno 1 (EPERM): ${ioctl}`);
  t.like((await checked(t, api, jail.client, 'GET', '/')).body, { state: 'Not started' }, 'still serving');
  await gdbCall(jail.pid, '(int)mount("none", "/run", "tmpfs", 0, 0)', true);
  const { code } = await jail.exited;
  t.is(code, 128 + 31, 'the jailer reports 128 + SIGSYS');
  t.regex(jail.output(), /a system call outside its seccomp allow-list/);
  nothingLeft(t, id, jail.dir);
});

test('seccomp: the running VMM cannot start a program (execve kills it)', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, []);
  t.teardown(async () => { await jail.stop(); });
  await gdbCall(jail.pid, '(int)execve("/work/none", 0, 0)', true);
  t.is((await jail.exited).code, 128 + 31, jail.output());
  nothingLeft(t, id, jail.dir);
});

test('cgroup v1: the VMM is in its memory, pids and cpu cgroups with the values given; all removed after', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, ['--cgroup', 'memory.limit_in_bytes=536870912', '--cgroup', 'pids.max=200', '--cgroup', 'cpu.cfs_quota_us=50000']);
  t.teardown(async () => { await jail.stop(); });
  for (const [c, file, value] of [['memory', 'memory.limit_in_bytes', '536870912'], ['pids', 'pids.max', '200'], ['cpu', 'cpu.cfs_quota_us', '50000']] as const) {
    const dir = join(CG1, c, 'matchlock', id);
    t.is(readFileSync(join(dir, file), 'utf8').trim(), value);
    t.true(readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(jail.pid)), `the VMM is in its ${c} cgroup`);
  }
  t.is(Number(readFileSync(join(CG1, 'pids/matchlock', id, 'pids.current'), 'utf8')), readdirSync(`/proc/${jail.pid}/task`).length, 'every thread is counted');
  t.is((await jail.stop()).code, 0);
  nothingLeft(t, id, jail.dir);
});

test('cgroup v1 memory limit: a VMM that needs more memory than its cgroup allows is killed, not the host', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, ['--cgroup', 'memory.limit_in_bytes=16777216'], [], false);
  const { code } = await jail.exited;
  t.is(code, 128 + 9, `killed by the OOM killer of its cgroup: ${jail.output()}`);
  t.regex(jail.output(), /"signal":"SIGKILL"/);
  nothingLeft(t, id, jail.dir);
});

test('cgroup v1 pids limit: the VMM cannot make more tasks than pids.max; stopping it still cleans up', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, ['--cgroup', 'pids.max=3'], [], false);
  t.teardown(async () => { await jail.stop(); });
  const dir = join(CG1, 'pids/matchlock', id);
  // Node needs more threads than that: the cgroup refuses them (pids.events counts the refusals) and it never serves.
  const deadline = Date.now() + 60_000;
  const settled = (): boolean => /max [1-9]/.test(readFileSafe(join(dir, 'pids.events'))) && Number(readFileSafe(join(dir, 'pids.current'))) <= 3;
  while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.true(settled(), `pids.current ${readFileSafe(join(dir, 'pids.current'))}, events ${readFileSafe(join(dir, 'pids.events'))}: ${jail.output()}`);
  t.false(existsSync(join(jail.dir, 'root/run/api.sock')), 'no API socket: the VMM could not start');
  const { code, signal } = await jail.stop(); // the stuck VMM ignores SIGTERM (PID 1, no handler yet): killed after the grace
  t.true(code !== 0 || signal !== null, jail.output());
  nothingLeft(t, id, jail.dir);
});

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

test('cgroup v2 on the unified hierarchy: subtree_control, the value, the move of the process, and removal', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, ['--cgroup-version', '2', '--cgroup', 'hugetlb.2MB.max=0']);
  t.teardown(async () => { await jail.stop(); });
  const dir = join(CG2, 'matchlock', id);
  t.true(readFileSync(join(CG2, 'matchlock/cgroup.subtree_control'), 'utf8').includes('hugetlb'));
  t.is(readFileSync(join(dir, 'hugetlb.2MB.max'), 'utf8').trim(), '0');
  t.is(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim(), String(jail.pid));
  t.true(readFileSync(`/proc/${jail.pid}/cgroup`, 'utf8').includes(`0::/matchlock/${id}`));
  t.is((await jail.stop()).code, 0);
  nothingLeft(t, id, jail.dir);
});

test('--netns: the VMM joins the given network namespace', async (t) => {
  const id = nextId();
  const ns = `ml-jail-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => { execFileSync('ip', ['netns', 'delete', ns]); });
  const jail = await startJailed(base, id, ['--netns', `/var/run/netns/${ns}`]);
  t.teardown(async () => { await jail.stop(); });
  t.is(statSync(`/proc/${jail.pid}/ns/net`).ino, statSync(`/var/run/netns/${ns}`).ino);
  t.is((await jail.stop()).code, 0);
  nothingLeft(t, id, jail.dir);
});

test('bad jailer input: one clear line, status 1 or 2, nothing made', async (t) => {
  const id = nextId();
  const cases: [string[], RegExp, number][] = [
    [['--id', id, '--uid', '0', '--gid', '0', '--', '--api-sock', '/run/a'], /--uid "0" must be a number from 1/, 2],
    [['--id', 'bad/id', '--uid', '1', '--gid', '1', '--', '--api-sock', '/run/a'], /give --id/, 2],
    [['--id', id, '--uid', '1', '--gid', '1'], /give the VMM's arguments after "--"/, 2],
    [['--id', id, '--uid', '1', '--gid', '1', '--bind', '/nonexistent:/x', '--', '--api-sock', '/run/a'], /--bind \/nonexistent: no such file/, 1],
    [['--id', id, '--uid', '1', '--gid', '1', '--netns', '/var/run/netns/none-such', '--', '--api-sock', '/run/a'], /no such network namespace/, 1],
    [['--id', id, '--uid', '1', '--gid', '1', '--cgroup', 'nosuch.max=1', '--', '--api-sock', '/run/a'], /no cgroup v1 hierarchy has the nosuch controller/, 1],
  ];
  for (const [args, mention, status] of cases) {
    const r = await runCli(['jailer', '--chroot-base-dir', base, ...args]);
    t.is(r.code, status, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, mention);
  }
  nothingLeft(t, id, join(base, id));
  // An id in use: the existing jail is left alone.
  const jail = await startJailed(base, id, []);
  t.teardown(async () => { await jail.stop(); });
  const again = await runCli(['jailer', '--chroot-base-dir', base, '--id', id, '--uid', '1', '--gid', '1', '--', '--api-sock', '/run/a']);
  t.is(again.code, 1);
  t.regex(again.stderr, /exists already: another VM has id/);
  t.like((await checked(t, api, jail.client, 'GET', '/')).body, { state: 'Not started' }, 'the first jail is untouched');
});

test('a jailer killed outright takes its VMM with it (parent-death signal): no orphan VMM runs on', async (t) => {
  const id = nextId();
  const jail = await startJailed(base, id, []);
  const pid = jail.pid;
  t.not(pid, 0);
  jail.child.kill('SIGKILL');
  await jail.exited;
  const deadline = Date.now() + 10_000;
  while (!dead(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.true(dead(pid), 'the VMM is gone');
  // What only the jailer could remove is left for the agent's clean-up: the jail directory and the cgroup.
  rmSync(jail.dir, { recursive: true, force: true });
});
