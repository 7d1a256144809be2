/** matchlock jailer's options and /proc/mounts parsing. */
import test from 'ava';
import { cgroupMounts, parseJailArgs } from '../../../src/jailer/index.ts';

const base = ['--id', 'vm-1', '--uid', '990', '--gid', '991'];

test('options parse with Firecracker-like defaults', (t) => {
  const s = parseJailArgs([...base, '--cgroup', 'memory.max=1G', '--bind', '/a/k:/vm/kernel', '--bind', '/a/d.img,rw', '--', '--api-sock', '/run/api.sock']);
  t.like(s, { id: 'vm-1', uid: 990, gid: 991, baseDir: '/srv/matchlock', cgroupVersion: 1, parentCgroup: 'matchlock', openFilesLimit: 2048, fileSizeLimit: null, netns: null });
  t.deepEqual(s.cgroups, [{ file: 'memory.max', value: '1G' }]);
  t.deepEqual(s.binds, [{ source: '/a/k', target: '/vm/kernel', writable: false }, { source: '/a/d.img', target: '/a/d.img', writable: true }]);
  t.deepEqual(s.vmmArgs, ['--api-sock', '/run/api.sock']);
});

for (const [args, mention] of [
  [['--id', 'a/b', '--uid', '1', '--gid', '1', '--', 'x'], /give --id/],
  [['--id', 'a', '--uid', '0', '--gid', '1', '--', 'x'], /not root/],
  [['--id', 'a', '--uid', '1', '--gid', '1'], /after "--"/],
  [[...base, '--bind', 'relative:/x', '--', 'x'], /absolute/],
  [[...base, '--bind', '/a:/..', '--', 'x'], /below \//],
  [[...base, '--bind', '/a,ro', '--', 'x'], /only option is ",rw"/],
  [[...base, '--cgroup', 'memory', '--', 'x'], /FILE=VALUE/],
  [[...base, '--cgroup-version', '3', '--', 'x'], /must be 1 or 2/],
  [[...base, '--parent-cgroup', '../x', '--', 'x'], /relative cgroup path/],
  [[...base, '--resource-limit', 'cpu=1', '--', 'x'], /fsize=BYTES or no-file=N/],
] as const) {
  test(`bad options are refused: ${args.join(' ')}`, (t) => {
    t.throws(() => parseJailArgs(args), { message: mention });
  });
}

test('cgroup hierarchies are read from /proc/mounts, v1 with their controllers', (t) => {
  const mounts = [
    'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
    'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0',
    'cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0',
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
    'proc /proc proc rw 0 0',
  ].join('\n');
  t.deepEqual(cgroupMounts(mounts), [
    { path: '/sys/fs/cgroup/memory', type: 'cgroup', controllers: ['memory'] },
    { path: '/sys/fs/cgroup/cpu,cpuacct', type: 'cgroup', controllers: ['cpu', 'cpuacct'] },
    { path: '/sys/fs/cgroup/systemd', type: 'cgroup', controllers: [] },
    { path: '/sys/fs/cgroup/unified', type: 'cgroup2', controllers: [] },
  ]);
});
