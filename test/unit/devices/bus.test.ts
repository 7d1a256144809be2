import test from 'ava';
import { Bus, type BusDevice } from '../../../src/vmm/devices/index.ts';
import { isMatchlockError } from '../../../src/errors.ts';

function recorder(name: string): BusDevice & { log: string[] } {
  const log: string[] = [];
  return {
    name, log,
    read(offset, data) { log.push(`r${offset}:${data.length}`); data.fill(offset); },
    write(offset, data) { log.push(`w${offset}:${[...data].join(',')}`); },
  };
}

test('accesses reach the device with the offset inside its range', (t) => {
  const bus = new Bus('pio');
  const a = recorder('a');
  const b = recorder('b');
  bus.insert(0x3f8, 8, a);
  bus.insert(0x60, 5, b);
  const d = new Uint8Array(1);
  t.true(bus.read(0x3fd, d));
  t.is(d[0], 5);
  t.true(bus.write(0x64, Uint8Array.of(0xfe)));
  t.deepEqual(a.log, ['r5:1']);
  t.deepEqual(b.log, ['w4:254']);
});

test('misses and accesses running past a device end are refused', (t) => {
  const bus = new Bus('mmio');
  const a = recorder('a');
  bus.insert(0xc000_1000, 0x1000, a);
  t.false(bus.read(0xc000_0fff, new Uint8Array(1)));
  t.false(bus.read(0xc000_2000, new Uint8Array(4)));
  t.false(bus.write(0xc000_1ffe, new Uint8Array(4)));
  t.true(bus.write(0xc000_1ffc, new Uint8Array(4)));
  t.deepEqual(a.log, ['w4092:0,0,0,0']);
});

test('overlapping ranges are rejected with both names', (t) => {
  const bus = new Bus('pio');
  bus.insert(0x60, 5, recorder('i8042'));
  for (const [base, size] of [[0x64, 1], [0x5c, 5], [0x60, 1], [0x00, 0x100]] as const) {
    const e = t.throws(() => bus.insert(base, size, recorder('other')));
    t.true(isMatchlockError(e, 'MATCHLOCK_ERR_BUS_OVERLAP'));
    t.regex(e.message, /i8042/);
  }
  bus.insert(0x65, 1, recorder('next'));
  t.deepEqual(bus.devices.map((d) => d.name), ['i8042', 'next']);
  t.throws(() => bus.insert(0x10, 0, recorder('empty')), { instanceOf: RangeError });
});

test('lookups find the right device among many', (t) => {
  const bus = new Bus('mmio');
  for (let i = 0; i < 19; i++) bus.insert(0xc000_1000 + i * 0x1000, 0x1000, recorder(`dev${i}`));
  for (let i = 0; i < 19; i++) t.is(bus.find(0xc000_1000 + i * 0x1000 + 0x70)?.device.name, `dev${i}`);
  t.is(bus.find(0xc001_4000), undefined);
});
