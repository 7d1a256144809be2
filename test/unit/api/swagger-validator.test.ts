/**
 * The test helper that holds matchlock's Firecracker-shaped API to Firecracker's own description: it must accept
 * what the description allows and refuse what it does not, or the API tests built on it prove nothing.
 */
import test from 'ava';
import { SwaggerApi } from '../../helpers/swagger.ts';

const api = SwaggerApi.firecracker();

test('operations are found by method and concrete path, with their path parameters', (t) => {
  t.is(api.find('PUT', '/boot-source')?.operation.operationId, 'putGuestBootSource');
  const drive = api.find('PUT', '/drives/rootfs');
  t.is(drive?.operation.operationId, 'putGuestDriveByID');
  t.deepEqual(drive?.params, { drive_id: 'rootfs' });
  t.is(api.find('GET', '/')?.operation.operationId, 'describeInstance');
  t.is(api.find('DELETE', '/drives/rootfs'), null);
  t.is(api.find('GET', '/no-such-thing'), null);
  t.is(api.find('PUT', '/drives/a/b'), null);
});

test('request bodies the description allows pass', (t) => {
  t.deepEqual(api.requestProblems('PUT', '/boot-source', { kernel_image_path: '/k', boot_args: 'console=ttyS0' }), []);
  t.deepEqual(api.requestProblems('PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 128, smt: false, huge_pages: 'None' }), []);
  t.deepEqual(api.requestProblems('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: '/r.ext4', is_root_device: true, is_read_only: false }), []);
  t.deepEqual(api.requestProblems('PUT', '/actions', { action_type: 'InstanceStart' }), []);
  t.deepEqual(api.requestProblems('GET', '/', undefined), []);
});

test('request bodies the description refuses are reported with where', (t) => {
  t.deepEqual(api.requestProblems('PUT', '/boot-source', {}), ['body.kernel_image_path: required']);
  t.deepEqual(api.requestProblems('PUT', '/boot-source', { kernel_image_path: 7 }), ['body.kernel_image_path: not a string']);
  t.deepEqual(api.requestProblems('PUT', '/boot-source', { kernel_image_path: '/k', colour: 'red' }), ['body.colour: unknown field']);
  t.deepEqual(api.requestProblems('PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 128 }), ['body.vcpu_count: 0 is out of range']);
  t.deepEqual(api.requestProblems('PUT', '/machine-config', { vcpu_count: 1.5, mem_size_mib: 128 }), ['body.vcpu_count: not an integer']);
  t.deepEqual(api.requestProblems('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128, huge_pages: '1G' }), ['body.huge_pages: "1G" is not one of ["None","Transparent","2M"]']);
  t.is(api.requestProblems('PUT', '/actions', { action_type: 'Explode' }).length, 1);
  t.deepEqual(api.requestProblems('PUT', '/boot-source', undefined), ['putGuestBootSource needs a body']);
  t.deepEqual(api.requestProblems('PUT', '/boot-source', []), ['body: not an object']);
  t.deepEqual(api.requestProblems('POST', '/boot-source', {}), ['POST /boot-source is not an operation of the API']);
});

test('responses are held to the statuses and bodies each operation declares', (t) => {
  t.deepEqual(api.responseProblems('PUT', '/boot-source', 204, undefined), []);
  t.deepEqual(api.responseProblems('PUT', '/boot-source', 400, { fault_message: 'no kernel' }), []);
  t.deepEqual(api.responseProblems('PUT', '/boot-source', 400, { fault: 'no kernel' }), ['response.fault: unknown field']);
  t.deepEqual(api.responseProblems('PUT', '/boot-source', 200, undefined), ['status 200 is not a response of putGuestBootSource']);
  t.deepEqual(api.responseProblems('PUT', '/boot-source', 204, { x: 1 }), ['status 204 of putGuestBootSource has no body']);
  t.deepEqual(api.responseProblems('GET', '/', 200, { app_name: 'matchlock', id: 'vm-1', state: 'Not started', vmm_version: '0.1.0' }), []);
  t.deepEqual(api.responseProblems('GET', '/', 200, { app_name: 'matchlock', id: 'vm-1', state: 'Sleeping', vmm_version: '0.1.0' }),
    ['response.state: "Sleeping" is not one of ["Not started","Running","Paused"]']);
});
