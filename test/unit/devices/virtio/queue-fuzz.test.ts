/**
 * The queue parser against random rings: a million chains written by a driver that picks every field at random
 * (biased toward the edges: addresses around RAM's ends, lengths near 2^32, flags in every combination, next
 * indices just past the table). Nothing may escape but a driver error, and no chain may hold more buffers
 * than its tables allow.
 */
import test from 'ava';
import { GuestMemory } from '../../../../src/vmm/memory/index.ts';
import { MAX_INDIRECT_DESCRIPTORS, SplitQueue } from '../../../../src/vmm/devices/virtio/index.ts';
import { isMatchlockError } from '../../../../src/errors.ts';
import { MockDriver, queueLayoutAt } from '../../../helpers/virtio-driver.ts';

const ITERATIONS = 1_000_000;
const SIZE = 8;
const RING = 0x1000;
const TABLE = 0x2000; // where random indirect tables point, sometimes

/** A small deterministic PRNG (xorshift32), so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

test(`the queue parser survives ${ITERATIONS.toLocaleString('en')} random chains`, (t) => {
  const mem = GuestMemory.fromLayout([{ gpa: 0, size: 0x10000 }, { gpa: 0x20000, size: 0x1000 }]);
  const layout = queueLayoutAt(RING, SIZE);
  const driver = new MockDriver(mem, layout);
  const next = rng(0x6d6c7471);
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length]!;
  const addresses = (): bigint => BigInt(pick([0, 0xfff8, 0x10000, 0x1fff0, 0x20000, 0x20ff0, 0x21000, TABLE, RING, next() % 0x30000]))
    + (next() % 4 === 0 ? BigInt(next()) << 32n : 0n);
  const lengths = (): number => pick([0, 1, 8, 16, 32, 0x1000, 0x10000, 0xfffffff0, 0xffffffff, next()]);
  let faults = 0;
  let broken = 0;
  let served = 0;
  const maxBuffers = SIZE + MAX_INDIRECT_DESCRIPTORS;
  for (let i = 0; i < ITERATIONS; i++) {
    const queue = new SplitQueue(mem, layout, { eventIdx: next() % 2 === 0, indirect: next() % 4 !== 0 });
    for (let d = 0; d < SIZE; d++) driver.writeDesc(RING, d, addresses(), lengths(), next() & 7, next() % (SIZE + 2));
    for (let d = 0; d < 4; d++) driver.writeDesc(TABLE, d, addresses(), lengths(), next() & 7, next() % 6);
    for (let s = 0; s < SIZE; s++) mem.writeU16(layout.availAddr + 4 + 2 * s, next() % (SIZE + 1));
    driver.setAvailIdx(next() % 16 === 0 ? next() : next() % (SIZE + 1));
    try {
      for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
        if (chain.readable.length + chain.writable.length > maxBuffers) t.fail(`iteration ${i}: ${chain.readable.length + chain.writable.length} buffers`);
        if (chain.fault === null) {
          served++;
          for (const b of [...chain.readable, ...chain.writable]) {
            if (!mem.contains(b.gpa, b.len)) t.fail(`iteration ${i}: buffer 0x${b.gpa.toString(16)}+${b.len} escaped the checks`);
          }
        } else {
          faults++;
        }
        queue.addUsed(chain.head, 0);
        queue.needsInterrupt();
      }
    } catch (e: unknown) {
      if (!isMatchlockError(e, 'MATCHLOCK_ERR_VIRTIO_DRIVER')) throw e;
      broken++;
    }
    driver.setAvailIdx(0);
  }
  t.log(`${served} chains served, ${faults} failed alone, ${broken} queues broken`);
  // Every outcome must have been reached, or the generator is not exercising the parser.
  t.true(served > 1000 && faults > 1000 && broken > 1000);
});
