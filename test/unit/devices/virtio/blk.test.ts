/**
 * virtio-blk without a guest: the mock driver writes requests into fake guest memory, the device serves them
 * from real files in a temporary directory.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../../../src/vmm/memory/index.ts';
import { SplitQueue, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from '../../../../src/vmm/devices/virtio/index.ts';
import { BlkBackend, blkDeviceInfo, VIRTIO_BLK_F_RO } from '../../../../src/vmm/devices/virtio/blk/blk-device.ts';
import {
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
} from '../../../../src/vmm/devices/virtio/blk/blk-request.ts';
import { COW_CLUSTER, openDisk, type DriveSpec } from '../../../../src/vmm/devices/virtio/blk/disk.ts';
import { isMatchlockError } from '../../../../src/errors.ts';
import { MockDriver, queueLayoutAt } from '../../../helpers/virtio-driver.ts';

const RING = 0x1000;
const HDR = 0x8000;
const STATUS = 0x8100;
const DATA = 0x10000;
const MEM = 0x400000;

interface Rig {
  readonly mem: GuestMemory;
  readonly driver: MockDriver;
  readonly blk: BlkBackend;
  /** Sends one request; returns the status byte and the used length. */
  request(type: number, sector: number, data: { gpa: number; len: number; write: boolean }[]): { status: number; used: number };
}

function rig(spec: DriveSpec): Rig {
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: MEM }]);
  const layout = queueLayoutAt(RING, 16);
  const driver = new MockDriver(mem, layout);
  const blk = new BlkBackend(mem, openDisk(spec));
  blk.activate([new SplitQueue(mem, layout, { eventIdx: false, indirect: true })]);
  return {
    mem, driver, blk,
    request(type, sector, data) {
      mem.writeU32(HDR, type);
      mem.writeU32(HDR + 4, 0);
      mem.writeU64(HDR + 8, BigInt(sector));
      mem.writeU8(STATUS, 0xee);
      driver.add([{ gpa: HDR, len: 16 }, ...data, { gpa: STATUS, len: 1, write: true }]);
      blk.process();
      const used = driver.takeUsed();
      if (used.length !== 1) throw new Error(`expected one used element, got ${used.length}`);
      return { status: mem.readU8(STATUS), used: used[0]!.len };
    },
  };
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-blk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const raw = (path: string, over: Partial<DriveSpec> = {}): DriveSpec => ({ path, readOnly: false, overlay: null, id: null, ...over });

test('reads and writes whole sectors, split across descriptors, and flushes', (t) => {
  const dir = tempDir(t);
  const image = join(dir, 'disk.img');
  const content = randomBytes(64 * 1024);
  writeFileSync(image, content);
  const r = rig(raw(image));
  // Read sectors 3..10 into two buffers of 1536 and 2560 bytes.
  const read = r.request(VIRTIO_BLK_T_IN, 3, [{ gpa: DATA, len: 1536, write: true }, { gpa: DATA + 0x4000, len: 2560, write: true }]);
  t.deepEqual(read, { status: VIRTIO_BLK_S_OK, used: 4097 });
  t.deepEqual(Buffer.concat([r.mem.read(DATA, 1536), r.mem.read(DATA + 0x4000, 2560)]), content.subarray(1536, 1536 + 4096));
  const fresh = randomBytes(1024);
  r.mem.write(DATA, fresh);
  t.deepEqual(r.request(VIRTIO_BLK_T_OUT, 100, [{ gpa: DATA, len: 512, write: false }, { gpa: DATA + 512, len: 512, write: false }]), { status: VIRTIO_BLK_S_OK, used: 1 });
  t.deepEqual(r.request(VIRTIO_BLK_T_FLUSH, 0, []), { status: VIRTIO_BLK_S_OK, used: 1 });
  r.blk.close();
  t.deepEqual(readFileSync(image).subarray(100 * 512, 102 * 512), fresh);
  t.like(r.blk.counters(), { reads: 1, writes: 1, flushes: 1, readBytes: 4096, writtenBytes: 1024, failed: 0 });
});

test('a read-only drive is offered as RO and refuses writes with IOERR, leaving the file as it was', (t) => {
  const dir = tempDir(t);
  const image = join(dir, 'ro.img');
  writeFileSync(image, Buffer.alloc(8192, 7));
  const spec = raw(image, { readOnly: true });
  const r = rig(spec);
  t.true((blkDeviceInfo('blk0', { size: 8192, readOnly: true }).features & (1n << BigInt(VIRTIO_BLK_F_RO))) !== 0n);
  r.mem.fill(DATA, 512, 1);
  t.is(r.request(VIRTIO_BLK_T_OUT, 0, [{ gpa: DATA, len: 512, write: false }]).status, VIRTIO_BLK_S_IOERR);
  t.is(r.request(VIRTIO_BLK_T_IN, 0, [{ gpa: DATA, len: 512, write: true }]).status, VIRTIO_BLK_S_OK);
  r.blk.close();
  t.deepEqual(readFileSync(image), Buffer.alloc(8192, 7));
});

test('GET_ID returns the configured serial, or one derived from the image, in at most 20 bytes', (t) => {
  const dir = tempDir(t);
  const image = join(dir, 'id.img');
  writeFileSync(image, Buffer.alloc(4096));
  const named = rig(raw(image, { id: 'cache-disk-0123456789abcdef' }));
  named.mem.fill(DATA, 32, 0xff);
  t.deepEqual(named.request(VIRTIO_BLK_T_GET_ID, 0, [{ gpa: DATA, len: 20, write: true }]), { status: VIRTIO_BLK_S_OK, used: 21 });
  t.is(Buffer.from(named.mem.read(DATA, 20)).toString(), 'cache-disk-012345678');
  t.is(named.mem.readU8(DATA + 20), 0xff, 'nothing written past the buffer');
  const derived = rig(raw(image));
  derived.request(VIRTIO_BLK_T_GET_ID, 0, [{ gpa: DATA, len: 20, write: true }]);
  t.regex(Buffer.from(derived.mem.read(DATA, 20)).toString(), /^ml[0-9a-f]+-[0-9a-f]+/);
  named.blk.close();
  derived.blk.close();
});

test('requests outside the disk, of partial sectors, or of unknown types fail without touching the file', (t) => {
  const dir = tempDir(t);
  const image = join(dir, 'small.img');
  writeFileSync(image, Buffer.alloc(4096, 3));
  const r = rig(raw(image));
  t.is(r.request(VIRTIO_BLK_T_IN, 8, [{ gpa: DATA, len: 512, write: true }]).status, VIRTIO_BLK_S_IOERR, 'one past the end');
  t.is(r.request(VIRTIO_BLK_T_IN, 7, [{ gpa: DATA, len: 1024, write: true }]).status, VIRTIO_BLK_S_IOERR, 'runs past the end');
  t.is(r.request(VIRTIO_BLK_T_OUT, 0xffff_ffff_ffff, [{ gpa: DATA, len: 512, write: false }]).status, VIRTIO_BLK_S_IOERR, 'a huge sector');
  t.is(r.request(VIRTIO_BLK_T_OUT, 0, [{ gpa: DATA, len: 100, write: false }]).status, VIRTIO_BLK_S_IOERR, 'a partial sector');
  t.is(r.request(99, 0, []).status, VIRTIO_BLK_S_UNSUPP);
  r.blk.close();
  t.deepEqual(readFileSync(image), Buffer.alloc(4096, 3));
  t.is(r.blk.counters().failed, 5);
});

test('a chain without a status byte or a whole header is completed with nothing written', (t) => {
  const dir = tempDir(t);
  const image = join(dir, 'm.img');
  writeFileSync(image, Buffer.alloc(4096));
  const r = rig(raw(image));
  r.driver.writeDesc(RING, 0, HDR, 16, 0, 0); // no writable status
  r.driver.publish(0);
  r.driver.writeDesc(RING, 1, HDR, 8, VRING_DESC_F_NEXT, 2); // a header of 8 bytes
  r.driver.writeDesc(RING, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
  r.driver.publish(1);
  r.mem.writeU8(STATUS, 0xee);
  r.blk.process();
  t.deepEqual(r.driver.takeUsed(), [{ id: 0, len: 0 }, { id: 1, len: 0 }]);
  t.is(r.mem.readU8(STATUS), 0xee);
  t.is(r.blk.counters().malformed, 2);
  r.blk.close();
});

test('copy-on-write: the base is never written, the overlay holds the writes, partial clusters keep the base around them', (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'golden.img');
  const content = randomBytes(16 * COW_CLUSTER);
  writeFileSync(base, content);
  const before = sha(readFileSync(base));
  const r = rig(raw(base, { overlay: join(dir, 'vm1.overlay') }));
  const mine = randomBytes(512);
  r.mem.write(DATA, mine);
  // One sector in the middle of cluster 2, and two whole clusters 5 and 6.
  t.is(r.request(VIRTIO_BLK_T_OUT, (2 * COW_CLUSTER + 1024) / 512, [{ gpa: DATA, len: 512, write: false }]).status, VIRTIO_BLK_S_OK);
  const whole = randomBytes(2 * COW_CLUSTER);
  r.mem.write(DATA + 0x1000, whole);
  t.is(r.request(VIRTIO_BLK_T_OUT, (5 * COW_CLUSTER) / 512, [{ gpa: DATA + 0x1000, len: 2 * COW_CLUSTER, write: false }]).status, VIRTIO_BLK_S_OK);
  // Read the whole disk back in one request: base, overlay and base again, run by run.
  t.is(r.request(VIRTIO_BLK_T_IN, 0, [{ gpa: 0x100000, len: content.length, write: true }]).status, VIRTIO_BLK_S_OK);
  const expected = Buffer.from(content);
  mine.copy(expected, 2 * COW_CLUSTER + 1024);
  whole.copy(expected, 5 * COW_CLUSTER);
  t.is(sha(r.mem.read(0x100000, content.length)), sha(expected));
  r.blk.close();
  t.is(sha(readFileSync(base)), before, 'the base image is unchanged');
  const overlay = statSync(join(dir, 'vm1.overlay'));
  t.is(overlay.size, content.length);
  t.true(overlay.blocks * 512 <= 3 * COW_CLUSTER + 4096, `the overlay is sparse (${overlay.blocks * 512} bytes allocated)`);
});

test('copy-on-write: two VMs on one base see only their own writes', (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'golden.img');
  writeFileSync(base, Buffer.alloc(8 * COW_CLUSTER, 0x11));
  const vms = [1, 2].map((n) => rig(raw(base, { overlay: join(dir, `vm${n}.overlay`) })));
  vms.forEach((r, i) => {
    r.mem.fill(DATA, 512, 0xa0 + i);
    t.is(r.request(VIRTIO_BLK_T_OUT, 9, [{ gpa: DATA, len: 512, write: false }]).status, VIRTIO_BLK_S_OK);
  });
  vms.forEach((r, i) => {
    r.request(VIRTIO_BLK_T_IN, 8, [{ gpa: DATA, len: 1024, write: true }]);
    t.deepEqual(Buffer.from(r.mem.read(DATA, 1024)), Buffer.concat([Buffer.alloc(512, 0x11), Buffer.alloc(512, 0xa0 + i)]));
    r.blk.close();
  });
  t.deepEqual(readFileSync(base), Buffer.alloc(8 * COW_CLUSTER, 0x11));
});

test('bad drives get one clear error and leave nothing behind', (t) => {
  const dir = tempDir(t);
  const odd = join(dir, 'odd.img');
  writeFileSync(odd, Buffer.alloc(1000));
  const empty = join(dir, 'empty.img');
  writeFileSync(empty, '');
  const good = join(dir, 'good.img');
  writeFileSync(good, Buffer.alloc(4096));
  writeFileSync(join(dir, 'taken.overlay'), 'x');
  const cases: [DriveSpec, RegExp][] = [
    [raw(join(dir, 'missing.img')), /cannot open drive image .*missing\.img: ENOENT/],
    [raw(odd), /1000 bytes, not a positive whole number of 512-byte sectors/],
    [raw(empty), /0 bytes/],
    [raw(dir), /not a regular file|EISDIR/],
    [raw(good, { overlay: join(dir, 'taken.overlay') }), /already exists: each VM needs a new overlay file/],
    [raw(good, { overlay: join(dir, 'no', 'such', 'dir.overlay') }), /cannot create copy-on-write overlay .*ENOENT/],
    [raw(odd, { overlay: join(dir, 'never.overlay') }), /not a positive whole number/],
  ];
  for (const [spec, why] of cases) {
    const e = t.throws(() => openDisk(spec));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_DRIVE'), String(e));
    t.regex(e.message, why);
  }
  t.false(existsSync(join(dir, 'never.overlay')));
  t.is(readFileSync(join(dir, 'taken.overlay'), 'utf8'), 'x');
});
