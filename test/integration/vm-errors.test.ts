/**
 * Bad input to `matchlock vm run`: one clear line on stderr naming the error code, a non-zero exit, and nothing
 * left behind. None of these needs KVM: input is checked before /dev/kvm is opened.
 */
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_GUEST, runCli } from '../helpers/cli.ts';
import { buildElf } from '../unit/boot/elf-writer.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-errors-'));
chmodSync(scratch, 0o755);
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const notKernel = join(scratch, 'not-a-kernel');
writeFileSync(notKernel, 'root:x:0:0:root:/root:/bin/bash\n'.repeat(64));
const hugeElf = join(scratch, 'huge.elf');
writeFileSync(hugeElf, buildElf({ entry: 0x100000, segments: [{ paddr: 0x100000, data: new Uint8Array(4096), memsz: 200 * 1024 * 1024 }] }));
const aDirectory = join(scratch, 'a-directory');
mkdirSync(aDirectory);
const oddDrive = join(scratch, 'odd.img');
writeFileSync(oddDrive, Buffer.alloc(1000));
const goodDrive = join(scratch, 'good.img');
writeFileSync(goodDrive, Buffer.alloc(4096));
const takenOverlay = join(scratch, 'taken.overlay');
writeFileSync(takenOverlay, 'x');

interface Case {
  readonly title: string;
  readonly args: string[];
  readonly code: string;
  readonly exit?: number;
  readonly mention: RegExp;
  readonly env?: Record<string, string>;
}

const hostMib = Math.floor(totalmem() / 2 ** 20);
const cases: Case[] = [
  { title: 'missing kernel', args: ['--kernel', join(scratch, 'nope')], code: 'MATCHLOCK_ERR_KERNEL_NOT_FOUND', mention: /nope.*not found/ },
  { title: 'kernel that is a directory', args: ['--kernel', aDirectory], code: 'MATCHLOCK_ERR_KERNEL_UNREADABLE', mention: /a-directory/ },
  { title: 'neither ELF nor bzImage', args: ['--kernel', notKernel], code: 'MATCHLOCK_ERR_KERNEL_FORMAT', mention: /neither an ELF vmlinux nor a bzImage/ },
  { title: 'kernel that does not fit in memory', args: ['--kernel', hugeElf, '--mem', '64'], code: 'MATCHLOCK_ERR_KERNEL_TOO_BIG', mention: /huge\.elf/ },
  { title: 'overlong command line', args: ['--kernel', TEST_GUEST, '--cmdline', 'x'.repeat(2048)], code: 'MATCHLOCK_ERR_CMDLINE_TOO_LONG', mention: /2048/ },
  { title: 'memory of 0', args: ['--kernel', TEST_GUEST, '--mem', '0'], code: 'MATCHLOCK_ERR_CONFIG', mention: /0 MiB/ },
  { title: 'memory above the host', args: ['--kernel', TEST_GUEST, '--mem', String(hostMib + 1)], code: 'MATCHLOCK_ERR_CONFIG', mention: /more than this host has/ },
  { title: 'memory that is not a number', args: ['--kernel', TEST_GUEST, '--mem', '12x'], code: 'MATCHLOCK_ERR_CONFIG', mention: /12x/ },
  { title: '0 vCPUs', args: ['--kernel', TEST_GUEST, '--vcpus', '0'], code: 'MATCHLOCK_ERR_CONFIG', mention: /0 vCPUs/ },
  { title: '33 vCPUs', args: ['--kernel', TEST_GUEST, '--vcpus', '33'], code: 'MATCHLOCK_ERR_CONFIG', mention: /33 vCPUs/ },
  { title: 'unknown CPU template', args: ['--kernel', TEST_GUEST, '--cpu-template', 'T9'], code: 'MATCHLOCK_ERR_CPU_TEMPLATE', mention: /T9/ },
  { title: 'PVH asked of a kernel without the note', args: ['--kernel', hugeElf, '--mem', '512', '--boot-protocol', 'pvh'], code: 'MATCHLOCK_ERR_KERNEL_FORMAT', mention: /PVH/ },
  { title: 'missing drive image', args: ['--kernel', TEST_GUEST, '--drive', join(scratch, 'nope.img')], code: 'MATCHLOCK_ERR_DRIVE', mention: /nope\.img: ENOENT/ },
  { title: 'drive of a partial sector', args: ['--kernel', TEST_GUEST, '--drive', oddDrive], code: 'MATCHLOCK_ERR_DRIVE', mention: /1000 bytes, not a positive whole number of 512-byte sectors/ },
  { title: 'copy-on-write overlay that exists', args: ['--kernel', TEST_GUEST, '--drive', `${goodDrive},cow=${takenOverlay}`], code: 'MATCHLOCK_ERR_DRIVE', mention: /already exists/ },
  { title: 'unknown drive option', args: ['--kernel', TEST_GUEST, '--drive', `${goodDrive},rw`], code: 'MATCHLOCK_ERR_CONFIG', mention: /unknown option "rw"/ },
  { title: 'read-only copy-on-write drive', args: ['--kernel', TEST_GUEST, '--drive', `${goodDrive},ro,cow=${join(scratch, 'x.overlay')}`], code: 'MATCHLOCK_ERR_CONFIG', mention: /ro and cow= together/ },
  { title: '20 drives', args: ['--kernel', TEST_GUEST, ...Array.from({ length: 20 }, () => ['--drive', goodDrive]).flat()], code: 'MATCHLOCK_ERR_CONFIG', mention: /20 drives and 0 network devices are more than the 19/ },
  { title: 'TAP name that is not an interface name', args: ['--kernel', TEST_GUEST, '--net', 'tap=a/b'], code: 'MATCHLOCK_ERR_CONFIG', mention: /tap= must name an interface/ },
  { title: 'multicast MAC', args: ['--kernel', TEST_GUEST, '--net', 'tap=t0,mac=01:00:5e:00:00:01'], code: 'MATCHLOCK_ERR_CONFIG', mention: /multicast/ },
  { title: 'one TAP twice', args: ['--kernel', TEST_GUEST, '--net', 'tap=t0', '--net', 'tap=t0'], code: 'MATCHLOCK_ERR_CONFIG', mention: /TAP t0 is given twice/ },
  { title: 'vsock CID of the host', args: ['--kernel', TEST_GUEST, '--vsock', `cid=2,uds=${join(scratch, 'v.sock')}`], code: 'MATCHLOCK_ERR_CONFIG', mention: /cid= must be 3/ },
  { title: 'vsock socket path that exists', args: ['--kernel', TEST_GUEST, '--vsock', `cid=3,uds=${takenOverlay}`], code: 'MATCHLOCK_ERR_VSOCK', mention: /already exists: remove it/ },
  { title: 'vsock socket in a missing directory', args: ['--kernel', TEST_GUEST, '--vsock', `cid=3,uds=${join(scratch, 'no', 'v.sock')}`], code: 'MATCHLOCK_ERR_VSOCK', mention: /cannot listen .*ENOENT/ },
  { title: 'no kernel', args: [], code: 'MATCHLOCK_ERR_USAGE', exit: 2, mention: /--kernel/ },
  {
    title: '/dev/kvm missing', args: ['--kernel', TEST_GUEST], code: 'MATCHLOCK_ERR_KVM_UNAVAILABLE', mention: /no-such-kvm.*ENOENT/,
    env: { MATCHLOCK_KVM_DEVICE: join(scratch, 'no-such-kvm') },
  },
  {
    title: 'a KVM device path that is not KVM', args: ['--kernel', TEST_GUEST], code: 'MATCHLOCK_ERR_KVM_UNAVAILABLE', mention: /not a KVM device/,
    env: { MATCHLOCK_KVM_DEVICE: notKernel },
  },
];

for (const c of cases) {
  test(`bad input: ${c.title}`, async (t) => {
    const serial = join(scratch, `serial-${c.title.replace(/\W+/g, '-')}`);
    const r = await runCli(['vm', 'run', ...c.args, '--serial-out', serial], c.env ? { env: c.env } : {});
    t.is(r.code, c.exit ?? 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('{'));
    t.is(lines.length, 1, `expected one line, got:\n${r.stderr}`);
    t.true(lines[0]!.startsWith('matchlock: '));
    t.true(lines[0]!.includes(`[${c.code}]`), lines[0]);
    t.regex(lines[0]!, c.mention);
    t.is(r.stdout, '');
    t.false(existsSync(serial), 'no serial output file is created for a VM that never ran');
  });
}

test('no permission on /dev/kvm says how to get it (run as an unprivileged user)', async (t) => {
  const node = join(scratch, 'kvm-node');
  execFileSync('mknod', ['-m', '0600', node, 'c', '10', '232']);
  const r = await runCli(['vm', 'run', '--kernel', TEST_GUEST, '--serial-out', 'none'], {
    env: { MATCHLOCK_KVM_DEVICE: node }, uid: 65534, gid: 65534,
  });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /cannot open .*kvm-node \(EACCES\): run as root or as a user in the group that owns it/);
});

test('a VM that cannot start removes the overlay, TAP and vsock socket it created, and leaves the base alone', async (t) => {
  const overlay = join(scratch, 'vm.overlay');
  const sock = join(scratch, 'vm.vsock');
  const tap = `mlterr${process.pid % 10000}`;
  const r = await runCli(['vm', 'run', '--kernel', TEST_GUEST, '--drive', `${goodDrive},cow=${overlay}`, '--net', `tap=${tap}`, '--vsock', `cid=3,uds=${sock}`, '--serial-out', 'none'], {
    env: { MATCHLOCK_KVM_DEVICE: join(scratch, 'no-such-kvm') },
  });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /MATCHLOCK_ERR_KVM_UNAVAILABLE/);
  t.false(existsSync(overlay), 'the overlay is gone');
  t.false(existsSync(sock), 'the vsock socket is gone');
  t.false(existsSync(`/sys/class/net/${tap}`), 'the TAP is gone');
  t.regex(r.stderr, /"msg":"tap opened"/, 'the TAP had been made');
  t.true(readFileSync(goodDrive).equals(Buffer.alloc(4096)));
  t.is(readFileSync(takenOverlay, 'utf8'), 'x', 'an overlay that was there before is never touched');
});
