/**
 * A jailed VMM on real KVM (needs root as well): pre-started and waiting on its API socket, then configured and
 * started, so that KVM, the vCPU and device threads and the guest all run under the jail's seccomp filter and
 * the seal; and a guest given more memory than its cgroup allows is stopped, not the host.
 */
import test from 'ava';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checked, matchlockApi } from '../helpers/api-client.ts';
import { TEST_GUEST } from '../helpers/cli.ts';
import { NOBODY, startJailed } from '../helpers/jail.ts';
import { kvmSuite } from '../helpers/kvm.ts';

const kvm = kvmSuite(import.meta.url);
const api = matchlockApi();
const base = mkdtempSync(join(tmpdir(), 'matchlock-jails-kvm-'));
chmodSync(base, 0o755);
test.after.always(() => rmSync(base, { recursive: true, force: true }));

kvm.test('a pre-started jailed VMM boots the test guest through its API, under its seccomp filter, and leaves nothing', async (t) => {
  t.timeout(300_000);
  const disk = join(base, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  chownSync(disk, NOBODY, NOBODY);
  const jail = await startJailed(base, 'kvm-boot', ['--bind', `${TEST_GUEST}:/vm/kernel`, '--bind', `${disk}:/vm/disk.img,rw`, '--cgroup', 'pids.max=200']);
  t.teardown(async () => { await jail.stop(); });
  const c = jail.client;
  await checked(t, api, c, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 64 });
  await checked(t, api, c, 'PUT', '/boot-source', { kernel_image_path: '/vm/kernel', boot_args: 'console=ttyS0 ml.say=jailed ml.vblk.id ml.vblk.write=0:8:7 ml.vblk.verify=0:8:7 ml.exit=reset' });
  await checked(t, api, c, 'PUT', '/drives/data', { drive_id: 'data', is_root_device: false, path_on_host: '/vm/disk.img' });
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
  const { code, signal } = await jail.exited;
  t.is(code, 0, `${signal ?? ''} ${jail.output()}`);
  t.regex(jail.output(), /mltest: SAY jailed/, 'the console went to the jailer\'s stdout');
  t.regex(jail.output(), /mltest: VBLK VERIFY 0 8 ok/);
});

kvm.test('a guest given more memory than the cgroup allows is stopped (the VMM is killed), not the host', async (t) => {
  t.timeout(300_000);
  const jail = await startJailed(base, 'kvm-oom', ['--bind', `${TEST_GUEST}:/vm/kernel`, '--cgroup', 'memory.limit_in_bytes=268435456']);
  t.teardown(async () => { await jail.stop(); });
  const c = jail.client;
  await checked(t, api, c, 'PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 512 });
  await checked(t, api, c, 'PUT', '/boot-source', { kernel_image_path: '/vm/kernel', boot_args: 'console=ttyS0 ml.touch ml.exit=reset' });
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
  const { code } = await jail.exited;
  t.is(code, 128 + 9, `the memory cgroup's OOM killer stopped the VMM: ${jail.output().slice(-2000)}`);
  t.notRegex(jail.output(), /mltest: TOUCH/, 'the guest never finished touching its RAM');
});
