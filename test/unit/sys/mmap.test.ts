import test from 'ava';
import { mapAnonymous, unmap } from '../../../src/vmm/sys/index.ts';

// Regression: koffi returns a 64-bit integer as a number when it fits in 53 bits; addresses must stay bigints.
test('mapAnonymous gives a bigint address and a view of the mapping', (t) => {
  const m = mapAnonymous(2 * 1024 * 1024);
  t.is(typeof m.address, 'bigint');
  t.true(m.address > 0n);
  t.is(m.bytes.length, 2 * 1024 * 1024);
  m.bytes[m.bytes.length - 1] = 0xa5;
  t.is(m.bytes[m.bytes.length - 1], 0xa5);
  unmap(m.address, m.size);
});
