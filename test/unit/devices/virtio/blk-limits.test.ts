import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../../../src/vmm/memory/index.ts';
import { SplitQueue } from '../../../../src/vmm/devices/virtio/index.ts';
import { BlkBackend } from '../../../../src/vmm/devices/virtio/blk/blk-device.ts';
import { VIRTIO_BLK_T_IN } from '../../../../src/vmm/devices/virtio/blk/blk-request.ts';
import { TokenBucket } from '../../../../src/vmm/devices/virtio/blk/token-bucket.ts';
import { openDisk } from '../../../../src/vmm/devices/virtio/blk/disk.ts';
import { parseDriveSpec } from '../../../../src/vmm/drive-spec.ts';
import { isMatchlockError } from '../../../../src/errors.ts';
import { MockDriver, queueLayoutAt } from '../../../helpers/virtio-driver.ts';

test('a token bucket gives a one-second burst, then its rate; a cost above the burst passes once the bucket is full', (t) => {
  const b = new TokenBucket(100, 0);
  t.true(b.take(100, 0));
  t.false(b.take(1, 0));
  t.is(b.waitMs(1, 0), 10);
  t.true(b.take(1, 10));
  t.is(b.waitMs(500, 10), 1000, 'a cost above the burst waits for a full bucket');
  t.true(b.take(500, 1010));
  t.false(b.take(1, 1010), 'and leaves it in debt');
  t.is(b.waitMs(1, 1010), 4010);
});

function throttledRig(limits: { bytesPerSec: number | null; opsPerSec: number | null }): { driver: MockDriver; blk: BlkBackend; clock: { now: number }; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-limits-'));
  const image = join(dir, 'd.img');
  writeFileSync(image, Buffer.alloc(1024 * 1024));
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x400000 }]);
  const layout = queueLayoutAt(0x1000, 64);
  const driver = new MockDriver(mem, layout);
  const clock = { now: 1_000_000 };
  const blk = new BlkBackend(mem, openDisk({ path: image, readOnly: true, overlay: null, id: null }), limits, () => clock.now);
  blk.activate([new SplitQueue(mem, layout, { eventIdx: false, indirect: false })]);
  for (let i = 0; i < 20; i++) {
    const hdr = 0x10000 + i * 32;
    mem.writeU32(hdr, VIRTIO_BLK_T_IN);
    mem.writeU64(hdr + 8, 0n);
    driver.add([{ gpa: hdr, len: 16 }, { gpa: 0x100000, len: 4096, write: true }, { gpa: hdr + 16, len: 1, write: true }]);
  }
  return { driver, blk, clock, cleanup: () => { blk.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test('an iops limit lets the burst through, then one request per period, as time passes', (t) => {
  const { driver, blk, clock, cleanup } = throttledRig({ bytesPerSec: null, opsPerSec: 5 });
  t.teardown(cleanup);
  blk.process();
  t.is(driver.takeUsed().length, 5, 'the one-second burst');
  t.is(blk.nextDeadline(clock.now), 200);
  clock.now += 100;
  t.false(blk.tick(clock.now));
  t.is(driver.takeUsed().length, 0, 'not before its time');
  clock.now += 100;
  blk.tick(clock.now);
  t.is(driver.takeUsed().length, 1);
  clock.now += 1000;
  blk.tick(clock.now);
  t.is(driver.takeUsed().length, 5);
  t.true((blk.counters()['throttled'] ?? 0) >= 2);
});

test('a bandwidth limit counts the bytes each request moves', (t) => {
  const { driver, blk, clock, cleanup } = throttledRig({ bytesPerSec: 8192, opsPerSec: null });
  t.teardown(cleanup);
  blk.process();
  t.is(driver.takeUsed().length, 2, '8 KiB of burst: two 4 KiB reads');
  clock.now += 500;
  blk.tick(clock.now);
  t.is(driver.takeUsed().length, 1);
});

test('--drive bps= and iops= are parsed, with K/M/G; bad values are refused', (t) => {
  t.like(parseDriveSpec('a.img,bps=10M,iops=200'), { bytesPerSec: 10 * 1024 * 1024, opsPerSec: 200 });
  t.like(parseDriveSpec('a.img'), { bytesPerSec: null, opsPerSec: null });
  for (const bad of ['a.img,bps=0', 'a.img,bps=1T', 'a.img,iops=1K', 'a.img,iops=-3']) {
    const e = t.throws(() => parseDriveSpec(bad));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CONFIG'), bad);
  }
});
