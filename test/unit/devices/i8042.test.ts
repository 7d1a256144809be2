import test from 'ava';
import { I8042, createI8042Shared, type DeviceContext } from '../../../src/vmm/devices/index.ts';

function setup() {
  const irqs: number[] = [];
  const stops: string[] = [];
  const ctx: DeviceContext = { pulseIrq: (n) => irqs.push(n), requestStop: (r) => stops.push(r) };
  const dev = new I8042(createI8042Shared(), ctx);
  const rd = (off: number): number => { const d = new Uint8Array(1); dev.read(off, d); return d[0]!; };
  const wr = (off: number, v: number): void => dev.write(off, Uint8Array.of(v));
  return { dev, rd, wr, irqs, stops };
}

test('command 0xFE on port 0x64 asks the VM to reset', (t) => {
  const { wr, stops } = setup();
  wr(4, 0xfe);
  t.deepEqual(stops, ['reset']);
});

test('pulling the reset line through the output port resets too', (t) => {
  const { wr, stops } = setup();
  wr(4, 0xd1);
  wr(0, 0xfe);
  t.deepEqual(stops, ['reset']);
});

test('self test answers 0x55 through the output buffer', (t) => {
  const { rd, wr } = setup();
  t.is(rd(4) & 1, 0);
  wr(4, 0xaa);
  t.is(rd(4) & 1, 1);
  t.is(rd(0), 0x55);
  t.is(rd(4) & 1, 0);
});

test('the controller configuration byte is written and read back', (t) => {
  const { rd, wr, stops } = setup();
  wr(4, 0x60);
  wr(0, 0x65);
  wr(4, 0x20);
  t.is(rd(0), 0x65);
  t.deepEqual(stops, []);
});

test('keyboard commands are acknowledged, reset reports self-test passed, with an IRQ 1', (t) => {
  const { rd, wr, irqs } = setup();
  wr(0, 0xff);
  t.is(rd(0), 0xfa);
  t.is(rd(0), 0xaa);
  t.true(irqs.every((n) => n === 1) && irqs.length > 0);
});

test('host-queued scancodes are read in order', (t) => {
  const { dev, rd } = setup();
  t.true(dev.queue([0x14, 0x11, 0xe0, 0x71]));
  t.deepEqual([rd(0), rd(0), rd(0), rd(0)], [0x14, 0x11, 0xe0, 0x71]);
  t.is(rd(4) & 1, 0);
});
