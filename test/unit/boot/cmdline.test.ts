import test from 'ava';
import { Cmdline, virtioMmioDeviceArg, writeCmdline } from '../../../src/vmm/boot/index.ts';
import { GuestMemory } from '../../../src/vmm/memory/index.ts';
import { CMDLINE_MAX_SIZE, CMDLINE_START, MiB, ramRegions } from '../../../src/vmm/arch/x86_64/layout.ts';
import { isMatchlockError } from '../../../src/errors.ts';

test('2047 characters fit the 2048-byte limit; 2048 do not', (t) => {
  const ok = new Cmdline().push('a'.repeat(2047));
  t.is(ok.length, 2047);
  const bytes = ok.toBytes();
  t.is(bytes.length, CMDLINE_MAX_SIZE);
  t.is(bytes[2047], 0);
  t.is(bytes[2046], 0x61);

  const e = t.throws(() => new Cmdline().push('a'.repeat(2048)));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CMDLINE_TOO_LONG'), String(e));
  t.regex(e.message, /would be 2048 bytes plus its NUL, over the limit of 2048 bytes/);
});

test('the limit counts separators, and a rejected argument leaves the line unchanged', (t) => {
  const c = new Cmdline().push('a'.repeat(1000)).push('b'.repeat(1046));
  t.is(c.length, 2047);
  const e = t.throws(() => c.push('c'));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CMDLINE_TOO_LONG'), String(e));
  t.is(c.length, 2047);
  t.false(c.toString().includes('c'));
  const small = new Cmdline(16).push('console=ttyS0');
  t.throws(() => small.push('x=1'));
  t.is(small.toString(), 'console=ttyS0');
});

test('the limit is in UTF-8 bytes', (t) => {
  t.is(new Cmdline().push('é'.repeat(1023)).length, 2046);
  const e = t.throws(() => new Cmdline().push('é'.repeat(1024)));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CMDLINE_TOO_LONG'), String(e));
});

test('NUL bytes are rejected; arguments are trimmed and empty ones ignored', (t) => {
  const c = new Cmdline();
  const e = t.throws(() => c.push('root=/dev/vda\0init=/x'));
  t.true(isMatchlockError(e, 'MATCHLOCK_ERR_CONFIG'), String(e));
  t.throws(() => c.insert('init', 'a\0b'));
  c.push('  console=ttyS0  ').push('   ').push('reboot=k panic=1');
  t.is(c.toString(), 'console=ttyS0 reboot=k panic=1');
});

test('insert builds key=value and refuses malformed keys and unquoted spaces', (t) => {
  const c = new Cmdline().insert('console', 'ttyS0').insert('quiet').insert('mem', 512).insert('init', '"/bin/sh -c x"');
  t.is(c.toString(), 'console=ttyS0 quiet mem=512 init="/bin/sh -c x"');
  for (const key of ['', 'a=b', 'a b']) t.throws(() => c.insert(key, '1'), { message: /key is empty/ });
  t.throws(() => c.insert('init', '/bin/sh -c x'), { message: /not quoted/ });
});

test('virtio_mmio.device arguments use size suffixes, hex address and decimal IRQ', (t) => {
  t.is(virtioMmioDeviceArg(0xc0001000, 0x1000, 5), 'virtio_mmio.device=4K@0xc0001000:5');
  t.is(virtioMmioDeviceArg(0xc0002000, 0x1800, 23), 'virtio_mmio.device=6K@0xc0002000:23');
  t.is(virtioMmioDeviceArg(0xd0000000, 2 * MiB, 10), 'virtio_mmio.device=2M@0xd0000000:10');
  t.is(virtioMmioDeviceArg(0x100000000, 1024 * MiB, 6), 'virtio_mmio.device=1G@0x100000000:6');
  t.is(virtioMmioDeviceArg(0x1000, 100, 7), 'virtio_mmio.device=100@0x1000:7');
  t.throws(() => virtioMmioDeviceArg(0x1000, 0, 5));
  t.throws(() => virtioMmioDeviceArg(-1, 0x1000, 5));
});

test('writeCmdline puts the NUL-terminated line in guest memory', (t) => {
  const mem = GuestMemory.fromLayout(ramRegions(2 * MiB));
  mem.fill(CMDLINE_START, 64, 0xff);
  const c = new Cmdline().push('console=ttyS0').push(virtioMmioDeviceArg(0xc0001000, 0x1000, 5));
  t.is(writeCmdline(mem, CMDLINE_START, c), c.length + 1);
  t.is(mem.readCString(CMDLINE_START, CMDLINE_MAX_SIZE), 'console=ttyS0 virtio_mmio.device=4K@0xc0001000:5');
  t.is(mem.readU8(CMDLINE_START + c.length + 1), 0xff, 'nothing written past the NUL');
});
