import test from 'ava';
import { GuestMemory } from '../../../../src/vmm/memory/index.ts';
import {
  SplitQueue, VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY,
  MAX_INDIRECT_DESCRIPTORS, type QueueFeatures,
} from '../../../../src/vmm/devices/virtio/index.ts';
import { isMatchlockError } from '../../../../src/errors.ts';
import { MockDriver, queueLayoutAt } from '../../../helpers/virtio-driver.ts';

const RING = 0x1000;
const DATA = 0x10000;
const PLAIN: QueueFeatures = { eventIdx: false, indirect: false };
const ALL: QueueFeatures = { eventIdx: true, indirect: true };

function setup(size = 8, features: QueueFeatures = PLAIN): { mem: GuestMemory; driver: MockDriver; queue: SplitQueue } {
  // Two RAM regions with a hole between them, like guest RAM around the MMIO gap.
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x40000 }, { gpa: 0x100000, size: 0x10000 }]);
  const layout = queueLayoutAt(RING, size);
  const driver = new MockDriver(mem, layout);
  return { mem, driver, queue: new SplitQueue(mem, layout, features) };
}

const driverFault = (e: unknown): boolean => isMatchlockError(e, 'MATCHLOCK_ERR_VIRTIO_DRIVER');

test('a chain comes off the available ring with its readable and writable buffers, and goes back used', (t) => {
  const { driver, queue } = setup();
  t.is(queue.pop(), null);
  const head = driver.add([{ gpa: DATA, len: 16 }, { gpa: DATA + 0x100, len: 512 }, { gpa: DATA + 0x1000, len: 1, write: true }]);
  const chain = queue.pop();
  t.truthy(chain);
  t.is(chain!.head, head);
  t.is(chain!.fault, null);
  t.deepEqual(chain!.readable, [{ gpa: DATA, len: 16 }, { gpa: DATA + 0x100, len: 512 }]);
  t.deepEqual(chain!.writable, [{ gpa: DATA + 0x1000, len: 1 }]);
  t.is(chain!.readableBytes, 528);
  t.is(chain!.writableBytes, 1);
  t.is(queue.pop(), null);
  queue.addUsed(chain!.head, 1);
  t.deepEqual(driver.takeUsed(), [{ id: head, len: 1 }]);
  t.is(driver.usedIdx, 1);
});

test('indices wrap at 2^16 and ring slots at the queue size', (t) => {
  const { driver, queue } = setup(4);
  for (let i = 0; i < 70_000; i++) {
    const head = driver.add([{ gpa: DATA + (i % 7) * 64, len: 64, write: i % 2 === 0 }]);
    const chain = queue.pop()!;
    t.is(chain.head, head);
    queue.addUsed(chain.head, i % 64);
    const used = driver.takeUsed();
    if (used.length !== 1 || used[0]!.id !== head) t.fail(`round ${i}: ${JSON.stringify(used)}`);
  }
  t.is(driver.usedIdx, 70_000 & 0xffff);
});

test('a chain may span the two RAM regions, each buffer inside one', (t) => {
  const { driver, queue } = setup();
  driver.add([{ gpa: 0x3f000, len: 0x1000 }, { gpa: 0x100000, len: 0x10000, write: true }]);
  const chain = queue.pop()!;
  t.is(chain.fault, null);
  t.is(chain.writableBytes, 0x10000);
});

test('indirect descriptors are followed when negotiated', (t) => {
  const { driver, queue } = setup(8, ALL);
  const head = driver.add([{ gpa: DATA, len: 8 }, { gpa: DATA + 8, len: 8 }, { gpa: DATA + 16, len: 4, write: true }], { indirectAt: 0x8000 });
  const chain = queue.pop()!;
  t.is(chain.head, head);
  t.is(chain.fault, null);
  t.is(chain.readable.length, 2);
  t.deepEqual(chain.writable, [{ gpa: DATA + 16, len: 4 }]);
});

// Each hostile chain fails that request only: the head comes back with a fault and the next chain still works.
const hostileChains: [string, (d: MockDriver) => void, RegExp][] = [
  ['a descriptor loop', (d) => {
    d.writeDesc(RING, 0, DATA, 8, VRING_DESC_F_NEXT, 1);
    d.writeDesc(RING, 1, DATA, 8, VRING_DESC_F_NEXT, 0);
    d.publish(0);
  }, /loop/],
  ['a chain longer than the queue through a self loop', (d) => {
    d.writeDesc(RING, 0, DATA, 8, VRING_DESC_F_NEXT, 0);
    d.publish(0);
  }, /loop/],
  ['an address outside guest RAM (the MMIO gap)', (d) => {
    d.writeDesc(RING, 0, 0xc000_0000, 8, 0, 0);
    d.publish(0);
  }, /outside guest RAM/],
  ['a length that runs past the end of RAM', (d) => {
    d.writeDesc(RING, 0, 0x3ff00, 0xffffffff, 0, 0);
    d.publish(0);
  }, /outside guest RAM/],
  ['an address near 2^64', (d) => {
    d.writeDesc(RING, 0, 0xffff_ffff_ffff_f000n, 0x2000, 0, 0);
    d.publish(0);
  }, /outside guest RAM/],
  ['a readable buffer after a writable one', (d) => {
    d.writeDesc(RING, 0, DATA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    d.writeDesc(RING, 1, DATA, 8, 0, 0);
    d.publish(0);
  }, /follows a device-writable/],
  ['a next index outside the table', (d) => {
    d.writeDesc(RING, 0, DATA, 8, VRING_DESC_F_NEXT, 8);
    d.publish(0);
  }, /outside its table/],
  ['an indirect table inside an indirect table', (d) => {
    d.writeDesc(0x8000, 0, 0x9000, 16, VRING_DESC_F_INDIRECT, 0);
    d.writeDesc(RING, 0, 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /inside an indirect table/],
  ['an indirect descriptor with NEXT', (d) => {
    d.writeDesc(0x8000, 0, DATA, 8, 0, 0);
    d.writeDesc(RING, 0, 0x8000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    d.publish(0);
  }, /with NEXT/],
  ['an indirect table of a length not a multiple of 16', (d) => {
    d.writeDesc(RING, 0, 0x8000, 24, VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /multiple of 16/],
  ['an empty indirect table', (d) => {
    d.writeDesc(RING, 0, 0x8000, 0, VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /multiple of 16/],
  ['an indirect table too large', (d) => {
    d.writeDesc(RING, 0, 0x8000, 16 * (MAX_INDIRECT_DESCRIPTORS + 1), VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /more than/],
  ['an indirect table outside RAM', (d) => {
    d.writeDesc(RING, 0, 0x3fff0, 32, VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /outside guest RAM/],
  ['a loop inside an indirect table', (d) => {
    d.writeDesc(0x8000, 0, DATA, 8, VRING_DESC_F_NEXT, 1);
    d.writeDesc(0x8000, 1, DATA, 8, VRING_DESC_F_NEXT, 0);
    d.writeDesc(RING, 0, 0x8000, 32, VRING_DESC_F_INDIRECT, 0);
    d.publish(0);
  }, /loop/],
];

for (const [what, write, why] of hostileChains) {
  test(`a hostile chain fails alone: ${what}`, (t) => {
    const { driver, queue } = setup(8, ALL);
    write(driver);
    const bad = queue.pop()!;
    t.is(bad.head, 0);
    t.regex(bad.fault ?? '', why);
    queue.addUsed(bad.head, 0);
    driver.writeDesc(RING, 5, DATA, 64, VRING_DESC_F_WRITE, 0);
    driver.publish(5);
    const good = queue.pop()!;
    t.is(good.fault, null);
    t.is(good.head, 5);
    t.deepEqual(driver.takeUsed(), [{ id: 0, len: 0 }]);
  });
}

test('an indirect descriptor is refused when INDIRECT_DESC was not negotiated', (t) => {
  const { driver, queue } = setup(8, PLAIN);
  driver.add([{ gpa: DATA, len: 8 }], { indirectAt: 0x8000 });
  t.regex(queue.pop()!.fault ?? '', /not negotiated/);
});

test('an available index that jumps past the queue breaks the queue', (t) => {
  const { driver, queue } = setup(8);
  driver.setAvailIdx(9);
  const e = t.throws(() => queue.pop());
  t.true(driverFault(e));
  t.regex(e.message, /9 ahead/);
});

test('a head outside the queue breaks the queue', (t) => {
  const { driver, queue } = setup(8);
  driver.publish(8);
  const e = t.throws(() => queue.pop());
  t.true(driverFault(e));
  t.regex(e.message, /descriptor 8/);
});

test('unusable layouts are refused with the reason', (t) => {
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x40000 }]);
  const cases: [Parameters<typeof queueLayoutAt>, Partial<ReturnType<typeof queueLayoutAt>>, RegExp][] = [
    [[RING, 8], { size: 0 }, /power of two/],
    [[RING, 8], { size: 6 }, /power of two/],
    [[RING, 8], { size: 512 }, /power of two from 1 to 256/],
    [[RING, 8], { descAddr: RING + 8 }, /descriptor table .* aligned/],
    [[RING, 8], { availAddr: RING + 129 }, /available ring .* aligned/],
    [[RING, 8], { usedAddr: 0xc000_0000 }, /used ring at 0xc0000000 .* outside guest RAM/],
    [[0x3ff00, 64], {}, /outside guest RAM/],
  ];
  for (const [at, change, why] of cases) {
    const e = t.throws(() => new SplitQueue(mem, { ...queueLayoutAt(...at), ...change }, PLAIN, 256));
    t.true(driverFault(e));
    t.regex(e.message, why);
  }
});

test('without EVENT_IDX the driver NO_INTERRUPT flag and the device NO_NOTIFY flag are honoured', (t) => {
  const { driver, queue } = setup(8, PLAIN);
  driver.add([{ gpa: DATA, len: 8 }]);
  queue.addUsed(queue.pop()!.head, 0);
  t.true(queue.needsInterrupt());
  driver.setAvailFlags(VRING_AVAIL_F_NO_INTERRUPT);
  t.false(queue.needsInterrupt());
  t.false(queue.setNotification(false));
  t.is(driver.usedFlags, VRING_USED_F_NO_NOTIFY);
  driver.add([{ gpa: DATA, len: 8 }]);
  t.true(queue.setNotification(true), 'a buffer that arrived while notifications were off is reported');
  t.is(driver.usedFlags, 0);
});

test('with EVENT_IDX the driver is interrupted only when the used index passes used_event', (t) => {
  const { driver, queue } = setup(8, ALL);
  driver.setUsedEvent(2); // interrupt me when entry 2 (the third) is used
  const complete = (): boolean => {
    driver.add([{ gpa: DATA, len: 8 }]);
    queue.addUsed(queue.pop()!.head, 0);
    return queue.needsInterrupt();
  };
  t.false(complete());
  t.false(complete());
  t.true(complete());
  t.false(complete(), 'used_event was not moved on');
  t.is(driver.availEvent, 4, 'the device asks to be notified at the next available entry');
});
