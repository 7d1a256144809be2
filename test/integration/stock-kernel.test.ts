/**
 * A stock distribution kernel (Debian's linux-image-cloud-amd64, fetched by scripts/fetch-test-kernel) boots in
 * matchlock far enough to print its banner and the command line it received, and the VMM then stops cleanly on
 * SIGTERM. Needs KVM (test/helpers/kvm.ts); slow: minutes on hosts whose KVM emulates guest ring 0 (PVM).
 *
 * Only the ELF vmlinux is booted (Linux 64-bit entry). Booting the bzImage (.cache/kernels/vmlinuz) too would
 * add the kernel's own in-guest lz4 decompression and relocation of ~50 MB before the first line of output, which
 * under PVM's instruction emulation costs several more minutes for no new VMM coverage past the bzImage loader,
 * and that loader is covered by test/unit/boot (including against this very kernel, MATCHLOCK_TEST_KERNEL).
 */
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kvmSuite } from '../helpers/kvm.ts';

const { test: kvmTest } = kvmSuite(import.meta.url);

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MATCHLOCK = `${ROOT}bin/matchlock`;
const VMLINUX = `${ROOT}.cache/kernels/vmlinux`;

const TEST_TIMEOUT_MS = 6 * 60_000;
/** Our own deadline for the banner, inside ava's, so the VMM is killed and its output shown before ava gives up. */
const BANNER_DEADLINE_MS = TEST_TIMEOUT_MS - 30_000;
/** How long the VMM may take to stop after SIGTERM. */
const STOP_DEADLINE_MS = 5_000;

/**
 * Why each argument is there:
 *   console=ttyS0               kernel console on COM1: our 8250 UART, which the VMM copies to stdout.
 *   earlyprintk=serial,ttyS0,115200
 *                               print to COM1 from the first instant, before the console driver registers, so a
 *                               kernel that stops early still shows how far it got (the banner comes out at once).
 *   reboot=k                    reboot through the i8042 (port 0x64, 0xfe): the reset path the VMM implements.
 *   panic=0                     on panic (there is no root file system here, so boot ends in one) wait forever
 *                               rather than reboot: the VM then stays up until our SIGTERM, whatever the timing,
 *                               so the stop is always by signal (reason "signal"), never a racing reset.
 *   nokaslr                     no randomised memory layout, so register dumps of failed runs compare across runs.
 *   ml.marker=<token>           a fresh random token: the command line we see must be this run's, not stale text;
 *                               the kernel ignores it (it only hands unknown arguments to init).
 */
function commandLine(token: string): string {
  return `console=ttyS0 earlyprintk=serial,ttyS0,115200 reboot=k panic=0 nokaslr ml.marker=${token}`;
}

function isElf(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

/** Live processes in a process group (from /proc; zombies count as gone). */
function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may contain spaces and parentheses, so parse after the last ')'
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/** The pino JSON lines of the VMM's stderr (other lines are ignored). */
function logRecords(stderr: string): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) records.push(value as Record<string, unknown>);
    } catch {
      // not JSON after all
    }
  }
  return records;
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

async function bootStockKernel(t: ExecutionContext): Promise<void> {
  t.timeout(TEST_TIMEOUT_MS);
  if (!isElf(VMLINUX)) {
    t.fail(`${VMLINUX} is missing or not an ELF file: run scripts/fetch-test-kernel first`);
    return;
  }
  const token = randomBytes(8).toString('hex');
  const cmdline = commandLine(token);
  const args = ['vm', 'run', '--kernel', VMLINUX, '--boot-protocol', 'linux', '--mem', '512', '--cpu-template', 'pvm-safe', '--cmdline', cmdline];
  t.log(`${MATCHLOCK} ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);

  // own process group, so that after the VMM exits we can check nothing it started is left
  const child = spawn(MATCHLOCK, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pgid = child.pid;
  if (pgid === undefined) {
    t.fail(`could not start ${MATCHLOCK}`);
    return;
  }
  t.teardown(() => {
    for (const pid of processGroupMembers(pgid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  let serial = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  /** stdout and stderr fully read (only waited for briefly: a process left holding them would block it). */
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));

  // Read the serial console as it streams: "Linux version ..." and, after it, "Command line: <cmdline>".
  // The 8250 console ends lines with \r\n and Debian prefixes them with a [ timestamp ].
  const t0 = performance.now();
  const banner = await new Promise<{ ok: true; ms: number } | { ok: false; why: string }>((resolve) => {
    let sawVersion = false;
    let scanned = 0;
    const timer = setTimeout(() => resolve({ ok: false, why: `no banner within ${BANNER_DEADLINE_MS / 1000} s` }), BANNER_DEADLINE_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      serial += chunk;
      const end = serial.lastIndexOf('\n');
      if (end < scanned) return;
      for (const raw of serial.slice(scanned, end).split('\n')) {
        const line = raw.replace(/\r+$/, '');
        if (!sawVersion && line.includes('Linux version ')) sawVersion = true;
        const at = line.indexOf('Command line: ');
        if (sawVersion && at >= 0 && !line.includes('Kernel command line: ')) {
          const got = line.slice(at + 'Command line: '.length);
          clearTimeout(timer);
          resolve(got === cmdline ? { ok: true, ms: performance.now() - t0 } : { ok: false, why: `the kernel got the command line ${JSON.stringify(got)}, not ${JSON.stringify(cmdline)}` });
          return;
        }
      }
      scanned = end + 1;
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      resolve({ ok: false, why: `the VMM exited (status ${code}, signal ${signal}) before the banner` });
    });
  });

  const show = (): string => `--- serial (last lines)\n${tail(serial)}\n--- VMM stderr (last lines)\n${tail(stderr, 20)}`;
  if (!banner.ok) {
    child.kill('SIGKILL');
    await exited;
    t.fail(`${banner.why}\n${show()}`);
    return;
  }
  t.log(`banner and command line after ${(banner.ms / 1000).toFixed(1)} s`);

  const stopStart = performance.now();
  child.kill('SIGTERM');
  const stopped = await Promise.race([exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), STOP_DEADLINE_MS))]);
  if (stopped === null) {
    child.kill('SIGKILL');
    await exited;
    t.fail(`the VMM did not exit within ${STOP_DEADLINE_MS / 1000} s of SIGTERM\n${show()}`);
    return;
  }
  t.log(`stopped ${(performance.now() - stopStart).toFixed(0)} ms after SIGTERM`);
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
  t.is(stopped.signal, null, `the VMM died of a signal\n${show()}`);
  t.is(stopped.code, 0, `exit status after SIGTERM\n${show()}`);

  const end = logRecords(stderr).find((r) => r['msg'] === 'vm stopped' || r['msg'] === 'vm failed');
  t.truthy(end, `no "vm stopped"/"vm failed" log line\n${show()}`);
  t.is(end?.['msg'], 'vm stopped', show());
  t.is(end?.['reason'], 'signal', show());
  t.is(end?.['exitCode'], 0, show());

  t.deepEqual(processGroupMembers(pgid), [], 'processes of the VMM left running after it exited');
}

kvmTest('stock Debian cloud kernel (ELF vmlinux, Linux 64-bit entry) prints its banner and command line; SIGTERM stops the VMM', bootStockKernel);
