/**
 * Proof of the test guest against QEMU's microvm machine (KVM when /dev/kvm is a usable character device, TCG
 * otherwise): the checks that the KVM boot tests make against our VMM, run where a reference VMM is known to be
 * right, so a failure there points at the VMM and not at the guest. Both images are booted: testguest.elf through
 * PVH, testguest-linuxshim.elf through the Linux 64-bit entry (QEMU enters it via PVH and a test-only shim).
 *
 * Needs qemu-system-x86_64 (scripts/setup installs it) and builds the guest with make. Runs QEMU at most
 * QEMU_SLOTS at a time; each run takes well under a second under TCG.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryProblems, parseGuestOutput, type BootPath, type GuestOutput } from '../helpers/guest-output.ts';
import { BASIC_BLK } from '../helpers/vblk-pattern.ts';

const GUESTS = fileURLToPath(new URL('../guests/', import.meta.url));
const RUN_QEMU = join(GUESTS, 'run-qemu.sh');
const IMAGES: Record<BootPath, string> = {
  pvh: join(GUESTS, 'build/testguest.elf'),
  linux: join(GUESTS, 'build/testguest-linuxshim.elf'),
};
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const QEMU_SLOTS = 2;
const RUN_TIMEOUT_MS = 60_000;

function onPath(cmd: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return join(dir, cmd);
    } catch {
      // not here
    }
  }
  return null;
}

/** KVM only when /dev/kvm is a character device that opens: a stray regular file there must not select it. */
function pickAccel(): 'kvm' | 'tcg' {
  const forced = process.env['ACCEL'];
  if (forced === 'kvm' || forced === 'tcg') return forced;
  try {
    if (!statSync('/dev/kvm').isCharacterDevice()) return 'tcg';
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return 'kvm';
  } catch {
    return 'tcg';
  }
}
const ACCEL = pickAccel();

/** At most QEMU_SLOTS QEMUs at once (ava runs this file's tests concurrently). */
let running = 0;
const waiting: Array<() => void> = [];
async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= QEMU_SLOTS) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
  out: GuestOutput;
}

interface RunOptions {
  cmdline: string;
  image: BootPath;
  mem?: number;
  smp?: number;
  cpu?: string;
  /** Send SIGTERM once this exact line has appeared on stdout (for `ml.exit=hang`). */
  termAfterLine?: string;
  /** More QEMU options (devices); QEMU then appends `virtio_mmio.device=…` to the command line. */
  qemuExtra?: string;
}

function runGuest(o: RunOptions): Promise<Run> {
  return withSlot(
    () =>
      new Promise<Run>((resolve, reject) => {
        const env: NodeJS.ProcessEnv = { ...process.env, ACCEL, GUEST_ELF: IMAGES[o.image] };
        if (o.cpu !== undefined) env['QEMU_CPU'] = o.cpu;
        if (o.qemuExtra !== undefined) env['QEMU_EXTRA'] = o.qemuExtra;
        const t0 = performance.now();
        const child = spawn(RUN_QEMU, [o.cmdline, String(o.mem ?? 128), String(o.smp ?? 1)], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        let termSent = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, RUN_TIMEOUT_MS);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (o.termAfterLine !== undefined && !termSent && stdout.includes(`${o.termAfterLine}\n`)) {
            termSent = true;
            child.kill('SIGTERM');
          }
        });
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          stderr += chunk;
        });
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.on('close', (status, signal) => {
          clearTimeout(timer);
          resolve({ status, signal, stdout, stderr, timedOut, ms: performance.now() - t0, out: parseGuestOutput(stdout) });
        });
      }),
  );
}

/** The checks every run gets: it ended in time, the output is well formed, BOOT and CMDLINE are right. */
function checkRun(t: ExecutionContext, r: Run, o: RunOptions, want: { status: number; exit: string }): GuestOutput {
  const show = `qemu ${o.image} -m ${o.mem ?? 128} -smp ${o.smp ?? 1} (${ACCEL}, ${r.ms.toFixed(0)} ms)\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
  t.false(r.timedOut, `QEMU still running after ${RUN_TIMEOUT_MS} ms\n${show}`);
  t.is(r.status, want.status, `exit status\n${show}`);
  t.deepEqual(r.out.errors, [], `output breaks the contract\n${show}`);
  t.is(r.out.partial, '', `unterminated last line\n${show}`);
  t.is(r.out.boot, o.image, show);
  t.is(r.out.bootCount, 1, `the guest booted more than once\n${show}`);
  if (o.qemuExtra === undefined) t.is(r.out.cmdline, o.cmdline, show);
  else t.true(r.out.cmdline?.startsWith(`${o.cmdline} virtio_mmio.device=`), show);
  t.true(r.out.done, `no DONE line\n${show}`);
  t.is(r.out.exit, want.exit, show);
  return r.out;
}

test.before('qemu-system-x86_64 is installed and the test guest builds', (t) => {
  t.truthy(onPath('qemu-system-x86_64'), 'qemu-system-x86_64 not found on PATH: run scripts/setup (it installs qemu-system-x86)');
  const make = spawnSync('make', ['-s', '-C', GUESTS], { encoding: 'utf8' });
  t.is(make.status, 0, `make -C test/guests failed (run scripts/setup for the toolchain):\n${make.stdout}${make.stderr}`);
  for (const elf of Object.values(IMAGES)) t.true(statSync(elf, { throwIfNoEntry: false })?.isFile() ?? false, `${elf} not built`);
  t.log(`QEMU accelerator: ${ACCEL}`);
});

// --- the parser itself must reject what breaks the contract (else the checks below could pass on garbage)

test('parseGuestOutput reads every report of a well-formed run', (t) => {
  const text = [
    'BOOT pvh',
    'CMDLINE a  "b c" ml.say= ml.e820',
    'SAY ',
    'SAY x=y',
    'E820 0x0 0x9fc00 1',
    'E820 0x100000 0x7f00000 1',
    'E820 0x0 0x0 0',
    'RAM 133823488',
    'MEM SKIP 0x0 0x9fc00',
    'MEM OK 0x100000 0x8000000',
    'MEMTEST OK 1',
    'MPTABLE cpus=2 apic_ids=0,1 ioapic=3@0xfec00000',
    'PIO 10 done',
    'UNKNOWN ml.what',
    'DONE',
    'EXIT debugexit=1',
  ]
    .map((l) => `mltest: ${l}\n`)
    .join('');
  const out = parseGuestOutput(text);
  t.deepEqual(out.errors, []);
  t.is(out.boot, 'pvh');
  t.is(out.cmdline, 'a  "b c" ml.say= ml.e820');
  t.deepEqual(out.says, ['', 'x=y']);
  t.deepEqual(out.e820[1], { start: 0x100000, size: 0x7f00000, type: 1 });
  t.is(out.e820.length, 3);
  t.is(out.ram, 133823488);
  t.deepEqual(out.mem, { ok: [{ start: 0x100000, end: 0x8000000 }], fail: [], skip: [{ start: 0, end: 0x9fc00 }] });
  t.deepEqual(out.memtest, { ok: true, regions: 1 });
  t.deepEqual(memoryProblems(out), []);
  t.deepEqual(out.mptable, { cpus: 2, apicIds: [0, 1], ioapic: { id: 3, addr: 0xfec00000 } });
  t.deepEqual(out.pio, [10]);
  t.deepEqual(out.unknown, ['ml.what']);
  t.true(out.done);
  t.is(out.exit, 'debugexit=1');
  t.is(out.partial, '');
});

test('parseGuestOutput reports contract violations and bad memory results', (t) => {
  const out = parseGuestOutput(
    'noise\nmltest: CMDLINE x\nmltest: E820 0x100000 12 1\nmltest: RAM 4096\r\nmltest: MPTABLE BAD pcmp-checksum\n' +
      'mltest: EXIT reset\nmltest: SAY late\nmltest: DON',
  );
  t.is(out.errors.length, 6, out.errors.join('\n'));
  t.regex(out.errors[0] ?? '', /line 1: not an "mltest: " line/);
  t.regex(out.errors[1] ?? '', /line 3: malformed report/); // size must be hex
  t.regex(out.errors[2] ?? '', /line 4: malformed report/); // \r is not allowed
  t.regex(out.errors[3] ?? '', /line 6: EXIT before DONE/);
  t.regex(out.errors[4] ?? '', /line 7: output after the EXIT line/);
  t.is(out.errors[5], 'no BOOT line');
  t.deepEqual(parseGuestOutput('mltest: CMDLINE x\nmltest: BOOT pvh\n').errors, [
    'line 1: the first line is not BOOT: "mltest: CMDLINE x"',
    'line 2: the second line is not CMDLINE: "mltest: BOOT pvh"',
  ]);
  t.is(out.mptable, null);
  t.is(out.mptableRaw, 'BAD pcmp-checksum');
  t.is(out.partial, 'mltest: DON');
  t.is(out.boot, null);

  const mem = parseGuestOutput(
    'mltest: BOOT linux\nmltest: CMDLINE \nmltest: E820 0x100000 0x1000000 1\nmltest: E820 0x800000 0x1000000 1\n' +
      'mltest: RAM 1\nmltest: MEM OK 0x100000 0x1100000\nmltest: MEM FAIL 0x800000\nmltest: MEMTEST FAIL\n',
  );
  t.deepEqual(mem.errors, []);
  t.is(mem.cmdline, '');
  const problems = memoryProblems(mem);
  t.true(problems.some((p) => p.startsWith('RAM 1 != sum')), problems.join('\n'));
  t.true(problems.some((p) => p.startsWith('e820 RAM entries overlap')), problems.join('\n'));
  t.true(problems.includes('MEM FAIL at 0x800000'), problems.join('\n'));
  t.true(problems.includes('MEMTEST FAIL'), problems.join('\n'));
});

// --- the guest under QEMU, both entry paths

const images: BootPath[] = ['pvh', 'linux'];

for (const image of images) {
  test(`${image}: the command line arrives intact, tokens are handled in order`, async (t) => {
    t.timeout(RUN_TIMEOUT_MS * 2);
    const o: RunOptions = {
      image,
      cmdline: 'console=ttyS0  root=/dev/vda   "quoted arg  with spaces" ml.say=hello ml.say= ml.say=a=b ml.bogus ml.pio=x ml.exit=debugexit=1',
    };
    const out = checkRun(t, await runGuest(o), o, { status: 3, exit: 'debugexit=1' });
    t.deepEqual(out.says, ['hello', '', 'a=b']);
    t.deepEqual(out.unknown, ['ml.bogus', 'ml.pio=x']);
  });

  test(`${image}: a 4000-byte command line arrives intact`, async (t) => {
    t.timeout(RUN_TIMEOUT_MS * 2);
    const word = 'y'.repeat(3960);
    const head = `ml.say=${word} ml.exit=debugexit=1 pad`;
    const o: RunOptions = { image, cmdline: head + 'z'.repeat(4000 - head.length) };
    t.is(o.cmdline.length, 4000);
    const out = checkRun(t, await runGuest(o), o, { status: 3, exit: 'debugexit=1' });
    t.deepEqual(out.says, [word]);
  });

  for (const [mem, cpu] of [
    [128, undefined],
    [3584, undefined],
    [8192, undefined],
    [8192, 'qemu64'], // no 1 GiB pages: the guest maps with 2 MiB pages
  ] as const) {
    test(`${image}: e820 and memtest with -m ${mem}${cpu ? ` -cpu ${cpu}` : ''}`, async (t) => {
      t.timeout(RUN_TIMEOUT_MS * 2);
      const o: RunOptions = { image, mem, cmdline: 'ml.e820 ml.memtest ml.exit=debugexit=1', ...(cpu ? { cpu } : {}) };
      const out = checkRun(t, await runGuest(o), o, { status: 3, exit: 'debugexit=1' });
      t.deepEqual(memoryProblems(out), [], JSON.stringify(out.e820));
      // qboot's map: all of -m is RAM except the holes below 1 MiB (0x9fc00..0x100000)
      const ram = out.ram ?? 0;
      t.true(ram <= mem * MiB && ram >= mem * MiB - MiB, `RAM ${ram} for -m ${mem}`);
      t.true(
        out.mem.ok.some((r) => r.start === 0x100000),
        'the region at 1 MiB was tested',
      );
      if (mem > 3072) {
        t.true(
          out.mem.ok.some((r) => r.start === 4 * GiB && r.end === 4 * GiB + (mem - 3072) * MiB),
          `RAM above 4 GiB tested: ${JSON.stringify(out.mem.ok)}`,
        );
      }
    });
  }

  for (const smp of [1, 2, 4]) {
    test(`${image}: MP table with -smp ${smp}`, async (t) => {
      t.timeout(RUN_TIMEOUT_MS * 2);
      const o: RunOptions = { image, smp, cmdline: 'ml.mptable ml.exit=debugexit=1' };
      const out = checkRun(t, await runGuest(o), o, { status: 3, exit: 'debugexit=1' });
      t.deepEqual(out.mptable, {
        cpus: smp,
        apicIds: Array.from({ length: smp }, (_, i) => i),
        ioapic: { id: smp + 1, addr: 0xfec00000 },
      });
    });
  }

  test(`${image}: ml.pio=100000 finishes`, async (t) => {
    t.timeout(RUN_TIMEOUT_MS * 2);
    const o: RunOptions = { image, cmdline: 'ml.pio=100000 ml.exit=debugexit=1' };
    t.deepEqual(checkRun(t, await runGuest(o), o, { status: 3, exit: 'debugexit=1' }).pio, [100000]);
  });

  // With -no-reboot both a reset and a triple fault make QEMU exit 0; isa-debug-exit exits (code << 1) | 1.
  for (const [cmdline, status, exit] of [
    ['ml.exit=reset', 0, 'reset'],
    ['quiet', 0, 'reset'],
    ['ml.exit=triple', 0, 'triple'],
    ['ml.exit=debugexit=1', 3, 'debugexit=1'],
    ['ml.exit=triple ml.exit=debugexit=0x20', 65, 'debugexit=32'],
  ] as const) {
    test(`${image}: "${cmdline}" exits with status ${status}`, async (t) => {
      t.timeout(RUN_TIMEOUT_MS * 2);
      const o: RunOptions = { image, cmdline };
      checkRun(t, await runGuest(o), o, { status, exit });
    });
  }

  test(`${image}: ml.exit=hang spins until SIGTERM`, async (t) => {
    t.timeout(RUN_TIMEOUT_MS * 2);
    const o: RunOptions = { image, cmdline: 'ml.exit=hang', termAfterLine: 'mltest: EXIT hang' };
    const r = await runGuest(o);
    const out = checkRun(t, r, o, { status: 0, exit: 'hang' });
    t.regex(r.stderr, /terminating on signal 15/);
    t.true(out.done);
  });
}

// --- virtio-blk: the guest's driver against QEMU's virtio-blk-device (modern virtio-mmio)

function blkOptions(image: string, extra = ''): string {
  return `-global virtio-mmio.force-legacy=false -drive id=d0,file=${image},format=raw,if=none${extra} -device virtio-blk-device,drive=d0,serial=qemu-disk-7`;
}

test('virtio-blk: the guest driver reads, writes, flushes and gets the ID of a QEMU disk', async (t) => {
  t.timeout(RUN_TIMEOUT_MS * 2);
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-qblk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.img');
  const before = randomBytes(BASIC_BLK.diskBytes);
  writeFileSync(disk, before);
  const o: RunOptions = { image: 'pvh', cmdline: BASIC_BLK.cmdline, qemuExtra: blkOptions(disk) };
  const out = checkRun(t, await runGuest(o), o, { status: 0, exit: 'reset' });
  t.deepEqual(out.vblk, BASIC_BLK.expected(before, 'qemu-disk-7'));
  t.deepEqual(BASIC_BLK.fileProblems(before, readFileSync(disk)), []);
});

test('virtio-blk: a read-only QEMU disk is offered RO and refuses the guest\'s writes', async (t) => {
  t.timeout(RUN_TIMEOUT_MS * 2);
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-qblk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'ro.img');
  writeFileSync(disk, Buffer.alloc(MiB, 5));
  const o: RunOptions = { image: 'pvh', cmdline: 'ml.vblk.info ml.vblk.write=0:1:3', qemuExtra: blkOptions(disk, ',readonly=on') };
  const out = checkRun(t, await runGuest(o), o, { status: 0, exit: 'reset' });
  t.deepEqual(out.vblk, [`INFO sectors ${MiB / 512} ro 1`, 'WRITE 0 1 status 1']);
  t.true(readFileSync(disk).equals(Buffer.alloc(MiB, 5)));
});
