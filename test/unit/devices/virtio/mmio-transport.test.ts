import test from 'ava';
import * as V from '../../../../src/vmm/devices/virtio/index.ts';
import { TransportState, VirtioMmioTransport, createTransportShared, type VirtioDeviceInfo } from '../../../../src/vmm/devices/virtio/index.ts';

const FEATURE_X = 5n;
const INFO: VirtioDeviceInfo = {
  name: 'virtio-test',
  deviceId: V.VIRTIO_ID_BLOCK,
  features: (1n << FEATURE_X) | (1n << BigInt(V.VIRTIO_RING_F_EVENT_IDX)),
  queueMaxSizes: [256, 64],
  config: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
};
const VERSION_1 = 1n << BigInt(V.VIRTIO_F_VERSION_1);

function setup(): { dev: VirtioMmioTransport; state: TransportState; events: string[]; rd: (o: number) => number; wr: (o: number, v: number) => void } {
  const shared = createTransportShared();
  VirtioMmioTransport.initialise(INFO, shared);
  const events: string[] = [];
  const dev = new VirtioMmioTransport(INFO, shared, {
    notify: (q) => events.push(`notify ${q}`),
    activate: () => events.push('activate'),
    reset: () => events.push('reset'),
  });
  const rd = (o: number): number => {
    const b = new Uint8Array(4);
    dev.read(o, b);
    return new DataView(b.buffer).getUint32(0, true);
  };
  const wr = (o: number, v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    dev.write(o, b);
  };
  return { dev, state: new TransportState(shared, INFO.queueMaxSizes.length), events, rd, wr };
}

/** Linux's virtio_mmio probe and virtio_dev_probe, step by step, up to DRIVER_OK. */
function initialise(s: ReturnType<typeof setup>, features: bigint, queues: { size: number; desc: number; avail: number; used: number }[]): number {
  const { rd, wr } = s;
  wr(V.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE);
  wr(V.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE | V.VIRTIO_CONFIG_S_DRIVER);
  for (const sel of [0, 1]) {
    wr(V.VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
    wr(V.VIRTIO_MMIO_DRIVER_FEATURES, Number((features >> BigInt(32 * sel)) & 0xffffffffn));
  }
  let status = V.VIRTIO_CONFIG_S_ACKNOWLEDGE | V.VIRTIO_CONFIG_S_DRIVER | V.VIRTIO_CONFIG_S_FEATURES_OK;
  wr(V.VIRTIO_MMIO_STATUS, status);
  if ((rd(V.VIRTIO_MMIO_STATUS) & V.VIRTIO_CONFIG_S_FEATURES_OK) === 0) return rd(V.VIRTIO_MMIO_STATUS);
  queues.forEach((q, i) => {
    wr(V.VIRTIO_MMIO_QUEUE_SEL, i);
    wr(V.VIRTIO_MMIO_QUEUE_NUM, q.size);
    wr(V.VIRTIO_MMIO_QUEUE_DESC_LOW, q.desc);
    wr(V.VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    wr(V.VIRTIO_MMIO_QUEUE_AVAIL_LOW, q.avail);
    wr(V.VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    wr(V.VIRTIO_MMIO_QUEUE_USED_LOW, q.used);
    wr(V.VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
    wr(V.VIRTIO_MMIO_QUEUE_READY, 1);
  });
  status |= V.VIRTIO_CONFIG_S_DRIVER_OK;
  wr(V.VIRTIO_MMIO_STATUS, status);
  return rd(V.VIRTIO_MMIO_STATUS);
}

test('identification registers read as virtio-mmio version 2', (t) => {
  const { rd } = setup();
  t.is(rd(V.VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
  t.is(rd(V.VIRTIO_MMIO_VERSION), 2);
  t.is(rd(V.VIRTIO_MMIO_DEVICE_ID), V.VIRTIO_ID_BLOCK);
  t.is(rd(V.VIRTIO_MMIO_VENDOR_ID), 0);
});

test('device features are offered in two words, VERSION_1 always included', (t) => {
  const { rd, wr } = setup();
  wr(V.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  t.is(rd(V.VIRTIO_MMIO_DEVICE_FEATURES), Number(INFO.features & 0xffffffffn));
  wr(V.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  t.is(rd(V.VIRTIO_MMIO_DEVICE_FEATURES), 1);
  wr(V.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  t.is(rd(V.VIRTIO_MMIO_DEVICE_FEATURES), 0);
});

test('a driver initialises the device like Linux does and the device thread gets its queues', (t) => {
  const s = setup();
  const status = initialise(s, VERSION_1 | (1n << FEATURE_X), [{ size: 128, desc: 0x1000, avail: 0x2000, used: 0x3000 }, { size: 64, desc: 0x4000, avail: 0x5000, used: 0x6000 }]);
  t.is(status, 0xf);
  t.deepEqual(s.events, ['activate']);
  const active = s.state.active();
  t.truthy(active);
  t.is(active!.features, VERSION_1 | (1n << FEATURE_X));
  t.deepEqual(active!.queues, [
    { size: 128, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x1_0000_3000 },
    { size: 64, descAddr: 0x4000, availAddr: 0x5000, usedAddr: 0x1_0000_6000 },
  ]);
});

test('a queue the driver leaves unready is absent from the active configuration', (t) => {
  const s = setup();
  initialise(s, VERSION_1, [{ size: 128, desc: 0x1000, avail: 0x2000, used: 0x3000 }]);
  t.is(s.state.active()!.queues[1], null);
});

test('FEATURES_OK does not stick for features the device did not offer, or without VERSION_1', (t) => {
  for (const features of [VERSION_1 | (1n << 7n), 1n << FEATURE_X, VERSION_1 | (1n << 40n)]) {
    const s = setup();
    const status = initialise(s, features, []);
    t.is(status & V.VIRTIO_CONFIG_S_FEATURES_OK, 0, `features 0x${features.toString(16)}`);
    s.wr(V.VIRTIO_MMIO_STATUS, status | V.VIRTIO_CONFIG_S_DRIVER_OK);
    t.is(s.rd(V.VIRTIO_MMIO_STATUS) & V.VIRTIO_CONFIG_S_DRIVER_OK, 0, 'DRIVER_OK is refused without FEATURES_OK');
    t.deepEqual(s.events, []);
    t.is(s.state.active(), null);
  }
});

test('writes to read-only registers change nothing and are counted', (t) => {
  const s = setup();
  const ro = [V.VIRTIO_MMIO_MAGIC_VALUE, V.VIRTIO_MMIO_VERSION, V.VIRTIO_MMIO_DEVICE_ID, V.VIRTIO_MMIO_VENDOR_ID, V.VIRTIO_MMIO_DEVICE_FEATURES,
    V.VIRTIO_MMIO_QUEUE_NUM_MAX, V.VIRTIO_MMIO_INTERRUPT_STATUS, V.VIRTIO_MMIO_CONFIG_GENERATION, V.VIRTIO_MMIO_SHM_LEN_LOW, 0x0fc - 4];
  const before = ro.map((o) => s.rd(o));
  for (const o of ro) s.wr(o, 0xdeadbeef);
  t.deepEqual(ro.map((o) => s.rd(o)), before);
  t.is(s.dev.counters.refused, ro.length);
});

test('register accesses that are not 32-bit and aligned are refused', (t) => {
  const s = setup();
  const b = new Uint8Array(2);
  s.dev.read(V.VIRTIO_MMIO_MAGIC_VALUE, b);
  t.deepEqual([...b], [0, 0]);
  s.dev.write(V.VIRTIO_MMIO_STATUS, Uint8Array.of(1));
  s.dev.write(V.VIRTIO_MMIO_STATUS + 1, Uint8Array.of(1, 0, 0, 0));
  s.dev.write(V.VIRTIO_MMIO_QUEUE_SEL, new Uint8Array(8));
  t.is(s.rd(V.VIRTIO_MMIO_STATUS), 0);
  t.is(s.dev.counters.refused, 4);
});

test('the configuration space reads at any width and refuses writes', (t) => {
  const s = setup();
  const b = new Uint8Array(2);
  s.dev.read(V.VIRTIO_MMIO_CONFIG + 3, b);
  t.deepEqual([...b], [4, 5]);
  const past = new Uint8Array(4);
  s.dev.read(V.VIRTIO_MMIO_CONFIG + 6, past);
  t.deepEqual([...past], [7, 8, 0, 0]);
  s.dev.write(V.VIRTIO_MMIO_CONFIG, Uint8Array.of(9));
  s.dev.read(V.VIRTIO_MMIO_CONFIG, b);
  t.deepEqual([...b], [1, 2]);
  t.is(s.dev.counters.refused, 1);
});

test('queue registers: sizes above the maximum and changes while ready are refused', (t) => {
  const s = setup();
  s.wr(V.VIRTIO_MMIO_QUEUE_SEL, 1);
  t.is(s.rd(V.VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
  s.wr(V.VIRTIO_MMIO_QUEUE_NUM, 128);
  s.wr(V.VIRTIO_MMIO_QUEUE_NUM, 0);
  s.wr(V.VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
  s.wr(V.VIRTIO_MMIO_QUEUE_READY, 1);
  s.wr(V.VIRTIO_MMIO_QUEUE_DESC_LOW, 0x9000);
  t.is(s.state.get(s.state.queueWord(1, 2)), 0x1000);
  t.is(s.state.get(s.state.queueWord(1, 0)), 64);
  s.wr(V.VIRTIO_MMIO_QUEUE_SEL, 7); // no such queue
  t.is(s.rd(V.VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
  s.wr(V.VIRTIO_MMIO_QUEUE_READY, 1);
  t.is(s.dev.counters.refused, 4);
});

test('notifications name a queue; others are refused', (t) => {
  const s = setup();
  s.wr(V.VIRTIO_MMIO_QUEUE_NOTIFY, 1);
  s.wr(V.VIRTIO_MMIO_QUEUE_NOTIFY, 2);
  s.wr(V.VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
  t.deepEqual(s.events, ['notify 1']);
  t.is(s.dev.counters.refused, 2);
});

test('status bits only accumulate; writing 0 resets everything and moves the epoch', (t) => {
  const s = setup();
  initialise(s, VERSION_1, [{ size: 128, desc: 0x1000, avail: 0x2000, used: 0x3000 }]);
  const epoch = s.state.epoch;
  s.wr(V.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE);
  t.is(s.rd(V.VIRTIO_MMIO_STATUS), 0xf, 'clearing bits is refused');
  s.state.raise(V.VIRTIO_MMIO_INT_VRING);
  t.is(s.rd(V.VIRTIO_MMIO_INTERRUPT_STATUS), 1);
  s.wr(V.VIRTIO_MMIO_STATUS, 0);
  t.deepEqual(s.events, ['activate', 'reset']);
  t.is(s.rd(V.VIRTIO_MMIO_STATUS), 0);
  t.is(s.rd(V.VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  t.is(s.state.epoch, epoch + 1);
  t.is(s.state.active(), null);
  s.wr(V.VIRTIO_MMIO_QUEUE_SEL, 0);
  t.is(s.rd(V.VIRTIO_MMIO_QUEUE_READY), 0);
  t.is(s.state.get(s.state.queueWord(0, 0)), 256, 'queue size back to its maximum');
});

test('interrupt acknowledgement clears only the bits written', (t) => {
  const s = setup();
  s.state.raise(V.VIRTIO_MMIO_INT_VRING | V.VIRTIO_MMIO_INT_CONFIG);
  s.wr(V.VIRTIO_MMIO_INTERRUPT_ACK, V.VIRTIO_MMIO_INT_VRING);
  t.is(s.rd(V.VIRTIO_MMIO_INTERRUPT_STATUS), V.VIRTIO_MMIO_INT_CONFIG);
});

test('a broken ring marks the device NEEDS_RESET with a configuration interrupt, unless a reset came first', (t) => {
  const s = setup();
  initialise(s, VERSION_1, [{ size: 128, desc: 0x1000, avail: 0x2000, used: 0x3000 }]);
  const epoch = s.state.epoch;
  t.true(s.state.needsReset(epoch));
  t.is(s.rd(V.VIRTIO_MMIO_STATUS) & V.VIRTIO_CONFIG_S_NEEDS_RESET, V.VIRTIO_CONFIG_S_NEEDS_RESET);
  t.is(s.rd(V.VIRTIO_MMIO_INTERRUPT_STATUS), V.VIRTIO_MMIO_INT_CONFIG);
  s.wr(V.VIRTIO_MMIO_STATUS, 0);
  t.false(s.state.needsReset(epoch));
  t.is(s.rd(V.VIRTIO_MMIO_STATUS), 0);
});
