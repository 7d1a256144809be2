import test from 'ava';
import { ByteRing, Serial, createSerialShared, type DeviceContext } from '../../../src/vmm/devices/index.ts';

function setup() {
  const irqs: number[] = [];
  const stops: string[] = [];
  const ctx: DeviceContext = { pulseIrq: (n) => irqs.push(n), requestStop: (r) => stops.push(r) };
  const shared = createSerialShared(16, 16);
  const uart = new Serial(shared, ctx);
  const out = new ByteRing(shared.output);
  const input = new ByteRing(shared.input);
  const rd = (off: number): number => { const d = new Uint8Array(1); uart.read(off, d); return d[0]!; };
  const wr = (off: number, v: number): void => uart.write(off, Uint8Array.of(v));
  return { uart, out, input, rd, wr, irqs, stops };
}

test('bytes written to THR come out of the output ring, the transmitter is always empty', (t) => {
  const { out, rd, wr } = setup();
  for (const c of 'ok\n') wr(0, c.charCodeAt(0));
  t.is(new TextDecoder().decode(out.pull()!), 'ok\n');
  t.is(rd(5) & 0x60, 0x60);
});

test('DLAB switches ports 0 and 1 to the divisor latch', (t) => {
  const { out, rd, wr } = setup();
  wr(3, 0x80);
  wr(0, 0x01);
  wr(1, 0x00);
  t.is(rd(0), 1);
  t.is(out.length, 0, 'a divisor write is not output');
  wr(3, 0x03);
  t.is(rd(3), 0x03);
});

test('received bytes set data-ready and are read from RBR; an RX interrupt is reported in IIR', (t) => {
  const { input, rd, wr } = setup();
  t.is(rd(5) & 1, 0);
  input.pushByte(0x41);
  wr(1, 0x01);
  t.is(rd(5) & 1, 1);
  t.is(rd(2) & 0x0f, 0x04);
  t.is(rd(0), 0x41);
  t.is(rd(5) & 1, 0);
  t.is(rd(2) & 0x0f, 0x01);
});

test('THR-empty interrupt: raised on enable and after a write, acknowledged by reading IIR', (t) => {
  const { rd, wr, irqs } = setup();
  wr(1, 0x02);
  t.deepEqual(irqs, [4]);
  t.is(rd(2) & 0x0f, 0x02);
  t.is(rd(2) & 0x0f, 0x01);
  wr(0, 0x41);
  t.deepEqual(irqs, [4, 4]);
});

test('loopback mode reflects MCR in MSR and loops THR to RBR', (t) => {
  const { out, rd, wr } = setup();
  t.is(rd(6), 0xb0);
  wr(4, 0x10 | 0x0f);
  t.is(rd(6) & 0xf0, 0xf0);
  wr(0, 0x5a);
  t.is(out.length, 0);
  t.is(rd(0), 0x5a);
});

test('scratch register keeps its value; odd access sizes read all ones and write nothing', (t) => {
  const { uart, out, rd, wr } = setup();
  wr(7, 0xa5);
  t.is(rd(7), 0xa5);
  const d = new Uint8Array(2);
  uart.read(0, d);
  t.deepEqual([...d], [0xff, 0xff]);
  uart.write(0, Uint8Array.of(1, 2));
  t.is(out.length, 0);
});

test('a full output ring drops and counts instead of growing', (t) => {
  const ring = new ByteRing(16);
  for (let i = 0; i < 16; i++) t.true(ring.pushByte(i, 0));
  t.false(ring.pushByte(99, 0));
  t.is(ring.dropped, 1);
  t.deepEqual([...ring.pull()!], Array.from({ length: 16 }, (_, i) => i));
  t.is(ring.pull(), null);
});

test('host input waits in the ring and raises the receive interrupt only when the guest enabled it', (t) => {
  const { uart, rd, wr, irqs } = setup();
  uart.receive(Uint8Array.of(0x68));
  t.deepEqual(irqs, []);
  wr(1, 0x01);
  uart.receive(Uint8Array.of(0x69));
  t.deepEqual(irqs, [4]);
  t.deepEqual([rd(0), rd(0)], [0x68, 0x69]);
});
