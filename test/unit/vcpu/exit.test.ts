import test from 'ava';
import { Bus, type BusDevice } from '../../../src/vmm/devices/index.ts';
import { handleExit, type ExitCounters } from '../../../src/vmm/vcpu/exit.ts';
import { KVM_EXIT, KVM_RUN_OFFSETS as O, KvmRun } from '../../../src/vmm/sys/index.ts';

/** A synthetic kvm_run page: what KVM would leave after an exit. */
function page(reason: number, fill: (v: DataView) => void = () => {}): KvmRun {
  const bytes = new Uint8Array(4096);
  const v = new DataView(bytes.buffer);
  v.setUint32(O.exit_reason, reason, true);
  fill(v);
  return new KvmRun(bytes);
}

function io(dir: 0 | 1, port: number, size: number, count: number, data: number[] = []): KvmRun {
  return page(KVM_EXIT.IO, (v) => {
    v.setUint8(O.io_direction, dir);
    v.setUint8(O.io_size, size);
    v.setUint16(O.io_port, port, true);
    v.setUint32(O.io_count, count, true);
    v.setBigUint64(O.io_data_offset, 0x100n, true);
    data.forEach((b, i) => v.setUint8(0x100 + i, b));
  });
}

function setup() {
  const writes: string[] = [];
  const dev: BusDevice = {
    name: 'probe',
    read(offset, data) { data.fill(0x40 + offset); },
    write(offset, data) { writes.push(`${offset}:${[...data].join(',')}`); },
  };
  const pio = new Bus('pio');
  pio.insert(0x3f8, 8, dev);
  const mmio = new Bus('mmio');
  mmio.insert(0xc000_1000, 0x1000, dev);
  const counters: ExitCounters = { unclaimedPio: 0, unclaimedMmio: 0 };
  return { pio, mmio, counters, writes };
}

test('an OUT reaches the device; a rep OUTS of 3 bytes makes 3 accesses', (t) => {
  const { pio, mmio, counters, writes } = setup();
  t.deepEqual(handleExit(io(1, 0x3f8, 1, 1, [0x41]), pio, mmio, counters), { kind: 'continue' });
  t.deepEqual(handleExit(io(1, 0x3f9, 1, 3, [1, 2, 3]), pio, mmio, counters), { kind: 'continue' });
  t.deepEqual(writes, ['0:65', '1:1', '1:2', '1:3']);
});

test('an IN fills the run page; an unclaimed IN reads all ones and is counted', (t) => {
  const { pio, mmio, counters } = setup();
  const run = io(0, 0x3fd, 1, 1);
  handleExit(run, pio, mmio, counters);
  t.is(run.bytes[0x100], 0x45);
  const miss = io(0, 0x80, 2, 1);
  handleExit(miss, pio, mmio, counters);
  t.deepEqual([...miss.bytes.subarray(0x100, 0x102)], [0xff, 0xff]);
  t.is(counters.unclaimedPio, 1);
});

test('a PIO exit whose data would lie outside the run page stops the VM instead of reading out of bounds', (t) => {
  const { pio, mmio, counters } = setup();
  const run = page(KVM_EXIT.IO, (v) => {
    v.setUint8(O.io_size, 4);
    v.setUint32(O.io_count, 0xffffffff, true);
    v.setBigUint64(O.io_data_offset, 0x100n, true);
  });
  const out = handleExit(run, pio, mmio, counters);
  t.is(out.kind, 'stop');
  t.is(out.kind === 'stop' ? out.reason : '', 'unexpected-exit');
});

test('MMIO reads and writes go to the device; unclaimed MMIO is counted', (t) => {
  const { pio, mmio, counters, writes } = setup();
  const w = page(KVM_EXIT.MMIO, (v) => {
    v.setBigUint64(O.mmio_phys_addr, 0xc000_1050n, true);
    v.setUint32(O.mmio_len, 4, true);
    v.setUint8(O.mmio_is_write, 1);
    v.setUint32(O.mmio_data, 0x01020304, true);
  });
  handleExit(w, pio, mmio, counters);
  t.deepEqual(writes, ['80:4,3,2,1']);
  const r = page(KVM_EXIT.MMIO, (v) => {
    v.setBigUint64(O.mmio_phys_addr, 0xd000_0000n, true);
    v.setUint32(O.mmio_len, 8, true);
  });
  handleExit(r, pio, mmio, counters);
  t.deepEqual([...r.bytes.subarray(O.mmio_data, O.mmio_data + 8)], Array(8).fill(0xff));
  t.is(counters.unclaimedMmio, 1);
  const bad = page(KVM_EXIT.MMIO, (v) => v.setUint32(O.mmio_len, 9, true));
  t.is(handleExit(bad, pio, mmio, counters).kind, 'stop');
});

test('exit reasons map to the right stop reasons', (t) => {
  const { pio, mmio, counters } = setup();
  const reasonOf = (run: KvmRun): string => {
    const o = handleExit(run, pio, mmio, counters);
    return o.kind === 'stop' ? o.reason : 'continue';
  };
  t.is(reasonOf(page(KVM_EXIT.SHUTDOWN)), 'triple-fault');
  t.is(reasonOf(page(KVM_EXIT.INTR)), 'continue');
  t.is(reasonOf(page(KVM_EXIT.SYSTEM_EVENT, (v) => v.setUint32(O.system_event_type, 2, true))), 'reset');
  t.is(reasonOf(page(KVM_EXIT.SYSTEM_EVENT, (v) => v.setUint32(O.system_event_type, 1, true))), 'shutdown');
  t.is(reasonOf(page(KVM_EXIT.SYSTEM_EVENT, (v) => v.setUint32(O.system_event_type, 3, true))), 'guest-crash');
  t.is(reasonOf(page(KVM_EXIT.FAIL_ENTRY, (v) => v.setBigUint64(O.fail_entry_reason, 0x21n, true))), 'fail-entry');
  t.is(reasonOf(page(KVM_EXIT.DEBUG)), 'unexpected-exit');
  t.is(reasonOf(page(999)), 'unexpected-exit');
});

test('an emulation failure names itself and carries KVM data', (t) => {
  const { pio, mmio, counters } = setup();
  const out = handleExit(page(KVM_EXIT.INTERNAL_ERROR, (v) => {
    v.setUint32(O.internal_suberror, 1, true);
    v.setUint32(O.internal_ndata, 2, true);
    v.setBigUint64(O.internal_data, 0xdeadn, true);
    v.setBigUint64(O.internal_data + 8, 0xbeefn, true);
  }), pio, mmio, counters);
  t.is(out.kind, 'stop');
  if (out.kind !== 'stop') return;
  t.is(out.reason, 'internal-error');
  t.regex(out.detail, /EMULATION.*cannot emulate.*0xdead 0xbeef/);
});

test('a hostile ndata cannot make the decoder read past the union', (t) => {
  const { pio, mmio, counters } = setup();
  const out = handleExit(page(KVM_EXIT.INTERNAL_ERROR, (v) => v.setUint32(O.internal_ndata, 0xffffffff, true)), pio, mmio, counters);
  t.is(out.kind === 'stop' ? out.detail.split('0x').length - 1 : -1, 16);
});
