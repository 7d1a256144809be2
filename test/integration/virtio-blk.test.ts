/**
 * virtio-blk in our VMM on real KVM, driven by the test guest's ring-3 driver (the same driver that passes
 * against QEMU's virtio-blk-device in qemu-guest.test.ts): read, write, flush, GET_ID, read-only drives, data
 * integrity over hundreds of MiB, and ten copy-on-write VMs on one golden image at once.
 */
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmSuite } from '../helpers/kvm.ts';
import { logLines } from '../helpers/cli.ts';
import { boot } from '../helpers/boot.ts';
import { BASIC_BLK, fnv1a64, patternBytes } from '../helpers/vblk-pattern.ts';

const { test } = kvmSuite(import.meta.url);
const MiB = 1024 * 1024;
const SECTORS_PER_MIB = MiB / 512;

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-vblk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('the guest reads, writes, flushes and gets the ID of a raw drive; the data lands where it should', async (t) => {
  const dir = scratch(t);
  const disk = join(dir, 'disk.img');
  const before = randomBytes(BASIC_BLK.diskBytes);
  writeFileSync(disk, before);
  const { r, out } = await boot(t, BASIC_BLK.cmdline, ['--drive', `${disk},id=matchlock-disk-7`]);
  t.is(r.code, 0, r.stderr);
  t.true(out.cmdline?.endsWith(' virtio_mmio.device=4K@0xc0001000:5'), 'the device is announced on the command line');
  t.deepEqual(out.vblk, BASIC_BLK.expected(before, 'matchlock-disk-7'));
  t.deepEqual(BASIC_BLK.fileProblems(before, readFileSync(disk)), []);
  const devices = logLines(r.stderr).find((l) => l['msg'] === 'vm stopped')?.['devices'] as Record<string, Record<string, number>> | undefined;
  t.like(devices?.['virtio-blk0'], { flushes: 1, failed: 0, guestFaults: 0, writtenBytes: 8192 * 512 });
});

test('a read-only drive is offered RO and the guest\'s writes fail with IOERR, the file untouched', async (t) => {
  const dir = scratch(t);
  const disk = join(dir, 'ro.img');
  writeFileSync(disk, Buffer.alloc(MiB, 5));
  const { r, out } = await boot(t, 'ml.vblk.info ml.vblk.write=0:1:3 ml.vblk.sum=0:8', ['--drive', `${disk},ro`]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(out.vblk, [`INFO sectors ${MiB / 512} ro 1`, 'WRITE 0 1 status 1', `SUM 0 8 ${fnv1a64(Buffer.alloc(4096, 5))}`]);
  t.true(readFileSync(disk).equals(Buffer.alloc(MiB, 5)));
});

test('data integrity over 256 MiB: written by the guest, read back by the guest, and checked in the file', async (t) => {
  const dir = scratch(t);
  const disk = join(dir, 'big.img');
  const size = 256 * MiB;
  writeFileSync(disk, '');
  truncateSync(disk, size);
  const sectors = size / 512;
  const { r, out } = await boot(t, `ml.vblk.write=0:${sectors}:99 ml.vblk.verify=0:${sectors}:99 ml.vblk.flush`, ['--drive', disk], { timeoutMs: 600_000 });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(out.vblk, [`WRITE 0 ${sectors} status 0`, `VERIFY 0 ${sectors} ok`, 'FLUSH status 0']);
  // Check the file itself at the start, the end and a spread of places between.
  const file = readFileSync(disk);
  for (const mib of [0, 1, 63, 127, 128, 200, 255]) {
    const at = mib * SECTORS_PER_MIB;
    t.true(file.subarray(at * 512, (at + SECTORS_PER_MIB) * 512).equals(patternBytes(99, at, SECTORS_PER_MIB)), `MiB ${mib} of the file`);
  }
});

test('copy-on-write: ten VMs boot from one base at once, each reads back only its own writes, the base is unchanged', async (t) => {
  const dir = scratch(t);
  const base = join(dir, 'golden.img');
  writeFileSync(base, randomBytes(16 * MiB));
  const baseSum = sha(readFileSync(base));
  const baseHead = fnv1a64(readFileSync(base).subarray(0, 64 * 512));
  const runs = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const overlay = join(dir, `vm${i}.overlay`);
    // Each VM writes its own seed over the same sectors (and a partial cluster: one sector), then reads back.
    const cmdline = `ml.vblk.sum=0:64 ml.vblk.write=2048:2048:${i + 1} ml.vblk.write=9:1:${i + 1} ml.vblk.verify=2048:2048:${i + 1} ml.vblk.verify=9:1:${i + 1}`;
    return { i, overlay, ...(await boot(t, cmdline, ['--drive', `${base},cow=${overlay}`], { timeoutMs: 600_000 })) };
  }));
  for (const { i, r, out, overlay } of runs) {
    t.is(r.code, 0, `VM ${i}: ${r.stderr}`);
    t.deepEqual(out.vblk, [
      `SUM 0 64 ${baseHead}`,
      'WRITE 2048 2048 status 0', 'WRITE 9 1 status 0',
      'VERIFY 2048 2048 ok', 'VERIFY 9 1 ok',
    ], `VM ${i}`);
    const st = statSync(overlay);
    t.is(st.size, 16 * MiB, `VM ${i}: the overlay has the base's size`);
    t.true(st.blocks * 512 < 4 * MiB, `VM ${i}: the overlay is sparse (${st.blocks * 512} bytes allocated)`);
  }
  t.is(sha(readFileSync(base)), baseSum, 'the base image is unchanged');
  t.true(runs.every(({ overlay }) => existsSync(overlay)));
});

test('a hostile guest driver fails its own requests or breaks its own device; the VMM and the other device go on', async (t) => {
  const dir = scratch(t);
  const disks = [join(dir, 'a.img'), join(dir, 'b.img')];
  for (const d of disks) writeFileSync(d, Buffer.alloc(MiB));
  const steps = [
    'ml.vblk.write=0:8:1', 'ml.vblk.dev=1', 'ml.vblk.write=0:8:2', 'ml.vblk.dev=0',
    'ml.vblk.hostile=loop', 'ml.vblk.verify=0:8:1',
    'ml.vblk.hostile=outside', 'ml.vblk.verify=0:8:1',
    'ml.vblk.hostile=overflow', 'ml.vblk.verify=0:8:1',
    'ml.vblk.hostile=notify', 'ml.vblk.hostile=rowrite', 'ml.vblk.verify=0:8:1',
    'ml.vblk.hostile=availjump', 'ml.vblk.dev=1', 'ml.vblk.verify=0:8:2', 'ml.vblk.dev=0', 'ml.vblk.verify=0:8:1',
    'ml.vblk.hostile=usedmmio', 'ml.vblk.dev=1', 'ml.vblk.verify=0:8:2', 'ml.vblk.dev=0', 'ml.vblk.verify=0:8:1',
  ];
  const { r, out } = await boot(t, steps.join(' '), disks.flatMap((d) => ['--drive', d]));
  t.is(r.code, 0, r.stderr);
  const OK = 'VERIFY 0 8 ok'; // each device still holds its own seed's data (a wrong seed reads as bad)
  t.deepEqual(out.vblk, [
    'WRITE 0 8 status 0', 'WRITE 0 8 status 0',
    'HOSTILE loop used-len 0x0', OK,
    'HOSTILE outside used-len 0x0', 'HOSTILE outside status-byte 0xee', OK,
    'HOSTILE overflow used-len 0x0', 'HOSTILE overflow status-byte 0xee', OK,
    'HOSTILE notify device-status 0xf', 'HOSTILE rowrite magic-id-nummax 0x7472697600020100', OK,
    'HOSTILE availjump device-status 0x4f', OK, OK,
    'HOSTILE usedmmio device-status 0x4f', OK, OK,
  ]);
  const log = logLines(r.stderr);
  const faults = log.filter((l) => l['msg'] === 'guest driver fault');
  t.deepEqual(faults.map((l) => l['device']), ['virtio-blk0', 'virtio-blk0'], 'the two ring-level faults are logged, on the device that made them');
  t.regex(String(faults[0]?.['reason']), /available index .* ahead/);
  t.regex(String(faults[1]?.['reason']), /used ring at 0xc0000000 .* outside guest RAM/);
  const devices = log.find((l) => l['msg'] === 'vm stopped')?.['devices'] as Record<string, Record<string, number>> | undefined;
  t.like(devices?.['virtio-blk0'], { malformed: 3, guestFaults: 2 });
  t.like(devices?.['virtio-blk1'], { malformed: 0, guestFaults: 0 });
});

test('a drive\'s rate limit holds requests back in the ring without failing them', async (t) => {
  const dir = scratch(t);
  const disk = join(dir, 'slow.img');
  writeFileSync(disk, Buffer.alloc(4 * MiB, 1));
  const { r, out } = await boot(t, 'ml.vblk.randrd=150:3 ml.vblk.sum=0:8', ['--drive', `${disk},iops=50`]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(out.vblk, ['RANDRD 150 status 0', `SUM 0 8 ${fnv1a64(Buffer.alloc(4096, 1))}`]);
  const devices = logLines(r.stderr).find((l) => l['msg'] === 'vm stopped')?.['devices'] as Record<string, Record<string, number>> | undefined;
  t.like(devices?.['virtio-blk0'], { reads: 151, failed: 0 });
  t.true((devices?.['virtio-blk0']?.['throttled'] ?? 0) > 0, 'the limit made requests wait');
});
