/**
 * The VMM's API, on a real `matchlock vmm` process and its Unix socket, before boot (no KVM needed): every
 * request and response here is checked against Firecracker's API description; bad input gets the right status
 * and a fault_message, changes nothing, and the VMM keeps serving.
 */
import test, { type ExecutionContext } from 'ava';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, checked, faultOf, matchlockApi, startVmm, type VmmProcess } from '../helpers/api-client.ts';
import { TEST_GUEST, runCli } from '../helpers/cli.ts';

const api = matchlockApi();
const scratch = mkdtempSync(join(tmpdir(), 'matchlock-api-'));
chmodSync(scratch, 0o755);
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const disk = join(scratch, 'disk.img');
writeFileSync(disk, Buffer.alloc(64 * 1024));
const disk2 = join(scratch, 'disk2.img');
writeFileSync(disk2, Buffer.alloc(64 * 1024));

let n = 0;
/** A VMM of its own for one test; never able to boot (its KVM device does not exist), and stopped after. */
async function vmm(t: ExecutionContext): Promise<VmmProcess> {
  const proc = await startVmm(join(scratch, `api-${n++}.sock`), ['--id', 'api-test'], { MATCHLOCK_KVM_DEVICE: join(scratch, 'no-kvm') });
  t.teardown(async () => {
    const { code, signal } = await proc.stop();
    if (code !== 0) t.log(`the VMM ended with ${code ?? signal}: ${proc.stderr()}`);
  });
  return proc;
}

test('GET /, /version, /machine-config and /vm/config answer in the described shapes', async (t) => {
  const { client } = await vmm(t);
  const info = await checked(t, api, client, 'GET', '/');
  t.is(info.status, 200);
  t.like(info.body, { id: 'api-test', state: 'Not started', app_name: 'matchlock' });
  t.is((await checked(t, api, client, 'GET', '/version')).status, 200);
  const mc = await checked(t, api, client, 'GET', '/machine-config');
  t.deepEqual(mc.body, { vcpu_count: 1, mem_size_mib: 128, smt: false, cpu_template: 'None', track_dirty_pages: false, huge_pages: 'None' });
  const full = await checked(t, api, client, 'GET', '/vm/config');
  t.deepEqual(full.body, { 'machine-config': mc.body, drives: [], 'network-interfaces': [] });
});

test('a configuration put before boot reads back from GET /vm/config, root drive first', async (t) => {
  const { client } = await vmm(t);
  const sock = join(scratch, `vsock-${n}.sock`);
  const puts: [string, string, unknown][] = [
    ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256 }],
    ['PATCH', '/machine-config', { vcpu_count: 2, mem_size_mib: 192 }],
    ['PUT', '/boot-source', { kernel_image_path: TEST_GUEST, boot_args: 'ml.say=hi' }],
    ['PUT', '/drives/data', { drive_id: 'data', is_root_device: false, path_on_host: disk2, is_read_only: true, rate_limiter: { bandwidth: { size: 1048576, refill_time: 100 } } }],
    ['PUT', '/drives/rootfs', { drive_id: 'rootfs', is_root_device: true, path_on_host: disk, cow_path: join(scratch, `cow-${n}.img`) }],
    ['PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'mltap0', guest_mac: '06:00:ac:10:00:02', mtu: 1500 }],
    ['PUT', '/vsock', { guest_cid: 3, uds_path: sock }],
    ['PUT', '/serial', { serial_out_path: join(scratch, 'serial.out') }],
  ];
  for (const [method, path, body] of puts) {
    const r = await checked(t, api, client, method, path, body);
    t.is(r.status, 204, `${method} ${path}: ${r.text}`);
  }
  const full = (await checked(t, api, client, 'GET', '/vm/config')).body as Record<string, unknown>;
  t.like(full['machine-config'], { vcpu_count: 2, mem_size_mib: 192 });
  t.deepEqual(full['boot-source'], { kernel_image_path: TEST_GUEST, boot_args: 'ml.say=hi' });
  t.deepEqual((full['drives'] as { drive_id: string }[]).map((d) => d.drive_id), ['rootfs', 'data']);
  t.deepEqual(full['network-interfaces'], [puts[5]![2]]);
  t.deepEqual(full['vsock'], { guest_cid: 3, uds_path: sock });
  // Putting a drive again with the same id replaces it (before boot), and keeps its place.
  t.is((await checked(t, api, client, 'PUT', '/drives/data', { drive_id: 'data', is_root_device: false, path_on_host: disk2 })).status, 204);
  const again = (await checked(t, api, client, 'GET', '/vm/config')).body as { drives: { drive_id: string; is_read_only?: boolean }[] };
  t.deepEqual(again.drives.map((d) => [d.drive_id, d.is_read_only]), [['rootfs', undefined], ['data', undefined]]);
  t.false(existsSync(sock), 'the vsock socket is made at boot, not before');
});

interface BadCase {
  readonly title: string;
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
  readonly status?: number;
  readonly mention: RegExp;
  /** Whether Firecracker's description itself refuses the request (a schema-level fault). */
  readonly invalidBySchema: boolean;
}

const BAD: readonly BadCase[] = [
  { title: 'malformed JSON', method: 'PUT', path: '/machine-config', body: Buffer.from('{"vcpu_count": 2,'), mention: /not valid JSON/, invalidBySchema: true },
  { title: 'an unknown field', method: 'PUT', path: '/machine-config', body: { vcpu_count: 2, mem_size_mib: 128, turbo: true }, mention: /unknown field "turbo"/, invalidBySchema: true },
  { title: 'a wrong type', method: 'PUT', path: '/machine-config', body: { vcpu_count: '2', mem_size_mib: 128 }, mention: /vcpu_count must be a whole number/, invalidBySchema: true },
  { title: 'a value out of range', method: 'PUT', path: '/machine-config', body: { vcpu_count: 33, mem_size_mib: 128 }, mention: /vcpu_count 33 is out of range/, invalidBySchema: true },
  { title: 'a missing required field', method: 'PUT', path: '/boot-source', body: { boot_args: 'x' }, mention: /missing field "kernel_image_path"/, invalidBySchema: true },
  { title: 'an enum value not in the list', method: 'PUT', path: '/logger', body: { level: 'Loud' }, mention: /"Loud" is not one of/, invalidBySchema: true },
  { title: 'a body that is not an object', method: 'PUT', path: '/vsock', body: [3, 'x'], mention: /must be a JSON object/, invalidBySchema: true },
  { title: 'a wrong method', method: 'DELETE', path: '/machine-config', mention: /invalid request method and\/or path: DELETE \/machine-config/, invalidBySchema: true },
  { title: 'an unknown path', method: 'GET', path: '/nothing-here', mention: /invalid request method and\/or path/, invalidBySchema: true },
  { title: 'a PUT without a body', method: 'PUT', path: '/boot-source', mention: /needs a JSON body/, invalidBySchema: true },
  { title: 'a body too large', method: 'PUT', path: '/boot-source', body: { kernel_image_path: 'k'.repeat(60_000) }, status: 413, mention: /larger than 51200 bytes/, invalidBySchema: false },
  { title: 'an id that does not match the path', method: 'PUT', path: '/drives/a', body: { drive_id: 'b', is_root_device: false, path_on_host: disk }, mention: /id from the path \[a\] does not match the id from the body \[b\]/, invalidBySchema: false },
  { title: 'an id with characters outside [A-Za-z0-9_]', method: 'PUT', path: '/drives/a-b', body: { drive_id: 'a-b', is_root_device: false, path_on_host: disk }, mention: /invalid drive id "a-b"/, invalidBySchema: false },
  { title: 'a kernel that does not exist', method: 'PUT', path: '/boot-source', body: { kernel_image_path: '/nonexistent/vmlinux' }, mention: /cannot open kernel image \/nonexistent\/vmlinux/, invalidBySchema: false },
  { title: 'a drive that does not exist', method: 'PUT', path: '/drives/d', body: { drive_id: 'd', is_root_device: false, path_on_host: '/nonexistent.img' }, mention: /cannot open drive \/nonexistent.img/, invalidBySchema: false },
  { title: 'a copy-on-write overlay that exists already', method: 'PUT', path: '/drives/d', body: { drive_id: 'd', is_root_device: false, path_on_host: disk, cow_path: disk2 }, mention: /overlay .* exists already/, invalidBySchema: false },
  { title: 'a multicast MAC', method: 'PUT', path: '/network-interfaces/e', body: { iface_id: 'e', host_dev_name: 'tap9', guest_mac: '01:00:5e:00:00:01' }, mention: /multicast/, invalidBySchema: false },
  { title: 'boot without a kernel', method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' }, mention: /without a kernel: PUT \/boot-source first/, invalidBySchema: false },
  { title: 'a post-boot action before boot', method: 'PUT', path: '/actions', body: { action_type: 'SendCtrlAltDel' }, mention: /not supported before starting the microVM/, invalidBySchema: false },
  { title: 'pausing before boot', method: 'PATCH', path: '/vm', body: { state: 'Paused' }, mention: /not supported before starting the microVM/, invalidBySchema: false },
  { title: 'flushing metrics that are not configured', method: 'PUT', path: '/actions', body: { action_type: 'FlushMetrics' }, mention: /metrics are not configured/, invalidBySchema: false },
  { title: 'a feature matchlock does not have', method: 'PUT', path: '/machine-config', body: { vcpu_count: 2, mem_size_mib: 128, track_dirty_pages: true }, mention: /track_dirty_pages .* not supported/, invalidBySchema: false },
];

for (const c of BAD) {
  test(`bad input, ${c.title}: ${c.status ?? 400} with a fault_message, nothing changed, still serving`, async (t) => {
    const { client } = await vmm(t);
    const before = await client.send('GET', '/vm/config');
    const asJson = c.body === undefined || Buffer.isBuffer(c.body) ? undefined : c.body;
    const schemaSays = Buffer.isBuffer(c.body) ? ['not JSON'] : api.requestProblems(c.method, c.path, asJson);
    if (c.invalidBySchema) t.not(schemaSays.length, 0, 'the API description refuses this request too');
    else t.deepEqual(schemaSays, [], 'the request is well-formed by the description: the fault is ours to find');
    const reply = await client.send(c.method, c.path, c.body);
    t.is(reply.status, c.status ?? 400, reply.text);
    t.regex(faultOf(t, reply), c.mention);
    if (api.find(c.method, c.path) !== null) t.deepEqual(api.responseProblems(c.method, c.path, reply.status, reply.body), []);
    const fresh = new ApiClient(client.sock); // a 413 closes its connection; the VMM goes on
    t.teardown(() => fresh.close());
    t.deepEqual((await fresh.send('GET', '/vm/config')).body, before.body, 'nothing changed');
    t.like((await checked(t, api, fresh, 'GET', '/')).body, { state: 'Not started' });
  });
}

test('a second root device and a second writer of one image are refused; a drive id may be re-put', async (t) => {
  const { client } = await vmm(t);
  t.is((await checked(t, api, client, 'PUT', '/drives/r1', { drive_id: 'r1', is_root_device: true, path_on_host: disk })).status, 204);
  const second = await checked(t, api, client, 'PUT', '/drives/r2', { drive_id: 'r2', is_root_device: true, path_on_host: disk2 });
  t.regex(faultOf(t, second), /a root device exists already \(drive r1\)/);
  const shared = await checked(t, api, client, 'PUT', '/drives/w2', { drive_id: 'w2', is_root_device: false, path_on_host: disk });
  t.regex(faultOf(t, shared), /another drive's image already/);
  t.is((await checked(t, api, client, 'PUT', '/drives/r1', { drive_id: 'r1', is_root_device: true, path_on_host: disk2 })).status, 204);
});

test('metrics: PUT /metrics once, FlushMetrics appends a JSON line with the id, properties and API counts', async (t) => {
  const { client } = await vmm(t);
  const path = join(scratch, `metrics-${n}.jsonl`);
  t.is((await checked(t, api, client, 'PUT', '/metrics', { metrics_path: path, emit_id: true, properties: { pool: 'linux-x64' } })).status, 204);
  t.regex(faultOf(t, await checked(t, api, client, 'PUT', '/metrics', { metrics_path: path })), /configured already/);
  t.is((await checked(t, api, client, 'PUT', '/actions', { action_type: 'FlushMetrics' })).status, 204);
  t.is((await checked(t, api, client, 'PUT', '/actions', { action_type: 'FlushMetrics' })).status, 204);
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.is(lines.length, 2);
  t.like(lines[1], { id: 'api-test', properties: { pool: 'linux-x64' }, state: 'Not started', api: { requests: 4, errors: 1 } });
  t.true(typeof (lines[1]!['boot'] as Record<string, unknown>)['process_start_to_api_ready_us'] === 'number');
});

test('the logger writes the VMM\'s log to the given file at the given level', async (t) => {
  const { client } = await vmm(t);
  const path = join(scratch, `log-${n}.jsonl`);
  writeFileSync(path, '');
  t.is((await checked(t, api, client, 'PUT', '/logger', { log_path: path, level: 'Debug' })).status, 204);
  t.is((await checked(t, api, client, 'PUT', '/boot-source', { kernel_image_path: TEST_GUEST })).status, 204);
  t.regex(faultOf(t, await checked(t, api, client, 'PUT', '/actions', { action_type: 'InstanceStart' })), /no-kvm/);
  t.regex(readFileSync(path, 'utf8'), /"msg":"guest prepared"/);
});

test('a failed InstanceStart leaves the VMM not started and serving, with nothing made on the host', async (t) => {
  const { client } = await vmm(t);
  const sock = join(scratch, `vsock-failed-${n}.sock`);
  const cow = join(scratch, `cow-failed-${n}.img`);
  await checked(t, api, client, 'PUT', '/boot-source', { kernel_image_path: TEST_GUEST });
  await checked(t, api, client, 'PUT', '/drives/root', { drive_id: 'root', is_root_device: true, path_on_host: disk, cow_path: cow });
  await checked(t, api, client, 'PUT', '/vsock', { guest_cid: 7, uds_path: sock });
  const r = await checked(t, api, client, 'PUT', '/actions', { action_type: 'InstanceStart' });
  t.regex(faultOf(t, r), /cannot open .*no-kvm/);
  t.false(existsSync(sock), 'no vsock socket left');
  t.false(existsSync(cow), 'no overlay left');
  t.like((await checked(t, api, client, 'GET', '/')).body, { state: 'Not started' });
});

test('SIGTERM before boot ends the VMM with status 0 and removes its socket', async (t) => {
  const proc = await vmm(t);
  const { code } = await proc.stop();
  t.is(code, 0);
  t.false(existsSync(proc.client.sock));
});

test('an API socket path in use is refused, and left alone', async (t) => {
  const taken = join(scratch, 'taken.sock');
  writeFileSync(taken, 'not ours');
  const r = await runCli(['vmm', '--api-sock', taken]);
  t.is(r.code, 1);
  t.regex(r.stderr, /API socket .*taken\.sock exists: another VMM may be using it.*\[MATCHLOCK_ERR_API_SOCKET\]/);
  t.is(readFileSync(taken, 'utf8'), 'not ours');
});

test('vmm usage errors: no socket, --no-api without a config file', async (t) => {
  const none = await runCli(['vmm']);
  t.is(none.code, 2);
  t.regex(none.stderr, /give --api-sock PATH/);
  const noFile = await runCli(['vmm', '--no-api']);
  t.is(noFile.code, 2);
  t.regex(noFile.stderr, /--no-api needs --config-file/);
});

interface FileCase {
  readonly title: string;
  readonly content: string;
  readonly mention: RegExp;
}

const FILE_CASES: readonly FileCase[] = [
  { title: 'not JSON', content: '{"boot-source": ', mention: /not valid JSON/ },
  { title: 'an unknown section', content: JSON.stringify({ balloon: { amount_mib: 1, deflate_on_oom: true } }), mention: /"balloon" is not supported/ },
  { title: 'duplicate drive ids', content: JSON.stringify({ 'boot-source': { kernel_image_path: TEST_GUEST }, drives: [{ drive_id: 'a', is_root_device: false, path_on_host: disk }, { drive_id: 'a', is_root_device: false, path_on_host: disk2 }] }), mention: /drive_id "a" is given twice/ },
  { title: 'a missing kernel', content: JSON.stringify({ 'boot-source': { kernel_image_path: '/nonexistent' } }), mention: /boot-source: cannot open kernel image \/nonexistent/ },
  { title: 'no kernel at all', content: JSON.stringify({ 'machine-config': { vcpu_count: 1, mem_size_mib: 64 } }), mention: /without a kernel/ },
  { title: 'a wrong type', content: JSON.stringify({ 'machine-config': { vcpu_count: 1, mem_size_mib: '64' } }), mention: /machine-config: machine-config.mem_size_mib must be a whole number/ },
];

for (const c of FILE_CASES) {
  test(`--config-file with ${c.title}: one clear line, status 1, nothing left`, async (t) => {
    const file = join(scratch, `bad-${n++}.json`);
    writeFileSync(file, c.content);
    const sock = join(scratch, `file-${n}.sock`);
    const r = await runCli(['vmm', '--api-sock', sock, '--config-file', file], { env: { MATCHLOCK_KVM_DEVICE: join(scratch, 'no-kvm') } });
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, c.mention);
    t.false(existsSync(sock), 'the API socket is removed');
  });
}
