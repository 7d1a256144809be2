/**
 * Booting through the API and through --config-file, on real KVM: the test guest configured purely by API
 * requests (each checked against Firecracker's API description), the post-boot rules, pause and resume,
 * Ctrl+Alt+Del on the guest's keyboard, the metrics, and the API socket removed when the guest ends.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checked, faultOf, matchlockApi, startVmm } from '../helpers/api-client.ts';
import { TEST_GUEST, runCli } from '../helpers/cli.ts';
import { kvmSuite } from '../helpers/kvm.ts';

const { test } = kvmSuite(import.meta.url);
const api = matchlockApi();

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-api-boot-'));
  chmodSync(dir, 0o755);
  return dir;
}

async function waitFor(what: string, check: () => boolean, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');

test('the test guest boots purely through the API; pre-boot calls are refused after boot; Ctrl+Alt+Del reaches its keyboard', async (t) => {
  t.timeout(300_000);
  const dir = scratchDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'root.img');
  writeFileSync(image, Buffer.alloc(1024 * 1024));
  const serial = join(dir, 'serial.out');
  const metrics = join(dir, 'metrics.jsonl');
  const vmm = await startVmm(join(dir, 'api.sock'), ['--id', 'boot-test']);
  t.teardown(async () => { await vmm.stop(); });
  const c = vmm.client;
  const configure: [string, string, unknown][] = [
    ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 128 }],
    ['PUT', '/boot-source', { kernel_image_path: TEST_GUEST, boot_args: 'console=ttyS0 ml.say=api ml.kbd=11 ml.vblk.id ml.vblk.sum=0:8 ml.exit=reset' }],
    ['PUT', '/drives/rootfs', { drive_id: 'rootfs', is_root_device: true, path_on_host: image, cow_path: join(dir, 'root.cow') }],
    ['PUT', '/serial', { serial_out_path: serial }],
    ['PUT', '/metrics', { metrics_path: metrics }],
  ];
  for (const [method, path, body] of configure) t.is((await checked(t, api, c, method, path, body)).status, 204, path);
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
  await waitFor('KBD WAIT', () => read(serial).includes('KBD WAIT 11'));
  t.like((await checked(t, api, c, 'GET', '/')).body, { state: 'Running' });
  for (const [method, path, body] of configure.slice(0, 3)) {
    t.regex(faultOf(t, await checked(t, api, c, method, path, body)), /not supported after starting the microVM/, `${method} ${path} after boot`);
  }
  t.regex(faultOf(t, await checked(t, api, c, 'PUT', '/actions', { action_type: 'InstanceStart' })), /after starting/);
  t.is((await checked(t, api, c, 'PATCH', '/vm', { state: 'Paused' })).status, 204);
  t.like((await checked(t, api, c, 'GET', '/')).body, { state: 'Paused' });
  t.is((await checked(t, api, c, 'PATCH', '/vm', { state: 'Resumed' })).status, 204);
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'FlushMetrics' })).status, 204);
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' })).status, 204);
  const { code } = await vmm.exited;
  t.is(code, 0, vmm.stderr());
  const out = read(serial);
  t.regex(out, /mltest: SAY api/);
  t.regex(out, /mltest: KBD 14 11 e0 71 e0 f0 71 f0 11 f0 14/, 'Ctrl, Alt, Del pressed and released, in scancode set 2');
  t.regex(out, /mltest: VBLK ID rootfs/, 'the drive id is the disk serial');
  t.regex(out, /CMDLINE .*root=\/dev\/vda rw/, 'the root device is on the command line');
  const lines = read(metrics).trim().split('\n').map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>);
  t.true(lines.length >= 2, 'the flushed line and the last one');
  const last = lines.at(-1)!;
  t.true(Number(last['boot']!['instance_start_to_first_guest_exit_us']) > 0, JSON.stringify(last['boot']));
  t.true(Number(last['vcpu_exits']!['KVM_EXIT_IO']) > 0, JSON.stringify(last['vcpu_exits']));
  t.true(Number((last['devices']!['virtio-blk0'] as Record<string, number>)['reads']) > 0, JSON.stringify(last['devices']));
  t.false(existsSync(join(dir, 'api.sock')), 'the API socket is gone');
  t.true(existsSync(join(dir, 'root.cow')), 'the overlay outlives the VM: it is the caller\'s to remove (docs/virtio.md)');
});

test('a paused VM runs no guest code until it is resumed', async (t) => {
  t.timeout(300_000);
  const dir = scratchDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const serial = join(dir, 'serial.out');
  const vmm = await startVmm(join(dir, 'api.sock'));
  t.teardown(async () => { await vmm.stop(); });
  const c = vmm.client;
  await checked(t, api, c, 'PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 64 });
  await checked(t, api, c, 'PUT', '/boot-source', { kernel_image_path: TEST_GUEST, boot_args: 'ml.ticks=0' });
  await checked(t, api, c, 'PUT', '/serial', { serial_out_path: serial });
  t.is((await checked(t, api, c, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
  const ticks = (): number => (read(serial).match(/TICK \d+\n/g) ?? []).length;
  await waitFor('ticks', () => ticks() >= 5);
  t.is((await checked(t, api, c, 'PATCH', '/vm', { state: 'Paused' })).status, 204);
  await new Promise((r) => setTimeout(r, 100)); // a line the serial sink was still writing lands
  const held = ticks();
  await new Promise((r) => setTimeout(r, 1000));
  t.is(ticks(), held, 'no tick while paused');
  t.is((await checked(t, api, c, 'PATCH', '/vm', { state: 'Resumed' })).status, 204);
  await waitFor('ticks after resume', () => ticks() > held + 3);
  const { code } = await vmm.stop();
  t.is(code, 0, vmm.stderr());
});

test('--config-file (the shape of GET /vm/config) boots the test guest with no API at all', async (t) => {
  t.timeout(300_000);
  const dir = scratchDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'data.img');
  writeFileSync(image, Buffer.alloc(1024 * 1024));
  const config = {
    'machine-config': { vcpu_count: 1, mem_size_mib: 64 },
    'boot-source': { kernel_image_path: TEST_GUEST, boot_args: 'console=ttyS0 ml.say=from-file ml.vblk.id ml.exit=reset' },
    drives: [{ drive_id: 'data', is_root_device: false, path_on_host: image, is_read_only: true }],
    'network-interfaces': [],
  };
  t.deepEqual(api.problems({ $ref: '#/definitions/FullVmConfiguration' }, config, 'config'), [], 'the file conforms to FullVmConfiguration');
  const file = join(dir, 'vm.json');
  writeFileSync(file, JSON.stringify(config));
  const r = await runCli(['vmm', '--no-api', '--config-file', file], { timeoutMs: 240_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /mltest: SAY from-file/, 'the console goes to stdout when no serial is configured');
  t.regex(r.stdout, /mltest: VBLK ID data/);
});
