/**
 * (d) Starting a VM the way the host agent will: through the jailer and the API.
 *   - jailed VMM start: `matchlock jailer … -- --api-sock` spawned → its API socket appears;
 *   - cold: spawn of the jailer → configuration (machine, boot source) → InstanceStart → first guest output;
 *   - warm: from a pre-started jailed VMM waiting on its socket, configuration + InstanceStart → first guest output
 *     (an upper bound of "→ first guest instruction": the test guest prints after its ring-0 set-up);
 *   - QEMU microvm: spawn → first guest output (the same test guest, the same first line).
 * "First guest output" is the first serial line of the test guest, the same observable for both VMMs.
 * Memory: each VMM's RSS minus the guest RAM it has touched (the RSS of its guest RAM mapping), with the guest
 * parked (`ml.exit=hang`), matchlock's as jailed.
 * Targets: warm configuration + start ≤ 10 ms to the first guest instruction; VMM memory ≤ QEMU's (ratio ≤ 1.0).
 *
 *   node bench/vmm-start.ts [--runs 20] [--warmup 2] [--json FILE]      (as root: the jailer needs it)
 *
 * Exit status: 0 targets met, 1 a target missed, 2 cannot run here, 3 a run failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../test/helpers/api-client.ts';
import { benchArgs, writeJson } from './lib/args.ts';
import { mib, ms, ratio, table, verdict } from './lib/format.ts';
import { EXIT_CANNOT_RUN, requireKvm, requireQemu } from './lib/kvm.ts';
import { median, summarize } from './lib/stats.ts';
import { EXIT_RUN_FAILED, GUEST_ELF, MATCHLOCK, ensureGuest, hostDescription, qemuCommand } from './lib/vmm.ts';

const USAGE = 'usage: node bench/vmm-start.ts [--runs N (20)] [--warmup N (2)] [--json FILE]';
const WARM_TARGET_MS = 10;
const MEMORY_TARGET = 1.0;
const MEM_MIB = 128;
const CMDLINE = 'ml.say=up ml.exit=reset';
const FIRST_LINE = 'mltest: BOOT';
const UID = '65534';

const args = benchArgs(USAGE, { runs: 20, warmup: 2 });
requireKvm();
const qemuVersion = requireQemu();
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: vmm-start needs root (the jailer makes namespaces, cgroups and device nodes)\n');
  process.exit(EXIT_CANNOT_RUN);
}
ensureGuest();
const base = mkdtempSync(join(tmpdir(), 'matchlock-bench-jails-'));
chmodSync(base, 0o755);
process.on('exit', () => rmSync(base, { recursive: true, force: true }));
const now = (): number => performance.now();
let seq = 0;

interface Spawned {
  readonly child: ChildProcess;
  readonly start: number;
  /** When the guest's first serial line arrived. */
  readonly firstOutput: Promise<number>;
  readonly exited: Promise<number | null>;
}

function spawnWatched(file: string, argv: readonly string[]): Spawned {
  const start = now();
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const firstOutput = new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes(FIRST_LINE)) resolve(now());
    });
    child.on('close', (code) => reject(new Error(`exited ${code} before the guest's first line: ${out.slice(-500)} ${err.slice(-1500)}`)));
  });
  firstOutput.catch(() => {});
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, start, firstOutput, exited };
}

async function waitFor(path: string, s: Spawned): Promise<number> {
  for (;;) {
    if (existsSync(path)) return now();
    if (s.child.exitCode !== null) throw new Error(`the jailer exited ${s.child.exitCode} before its API socket appeared`);
    await new Promise((r) => setImmediate(r));
  }
}

function startJail(extraVmm: readonly string[] = []): { s: Spawned; id: string; sock: string } {
  const id = `bench-${process.pid}-${seq++}`;
  const s = spawnWatched(MATCHLOCK, [
    'jailer', '--id', id, '--uid', UID, '--gid', UID, '--chroot-base-dir', base, '--bind', `${GUEST_ELF}:/vm/kernel`,
    '--', '--api-sock', '/run/api.sock', ...extraVmm,
  ]);
  return { s, id, sock: join(base, id, 'root/run/api.sock') };
}

async function configureAndStart(client: ApiClient, cmdline: string): Promise<void> {
  for (const [path, body] of [
    ['/machine-config', { vcpu_count: 1, mem_size_mib: MEM_MIB }],
    ['/boot-source', { kernel_image_path: '/vm/kernel', boot_args: cmdline }],
    ['/actions', { action_type: 'InstanceStart' }],
  ] as const) {
    const r = await client.send('PUT', path, body);
    if (r.status !== 204) throw new Error(`PUT ${path} → ${r.status} ${r.text}`);
  }
}

/** One jailed VMM: socket-ready time, then (warm) config+start → first output, or (cold) spawn → first output. */
async function jailedRun(): Promise<{ socketMs: number; coldMs: number; warmMs: number }> {
  const { s, sock } = startJail();
  const ready = await waitFor(sock, s);
  const client = new ApiClient(sock);
  const configStart = now();
  await configureAndStart(client, CMDLINE);
  const first = await s.firstOutput;
  const code = await s.exited;
  client.close();
  if (code !== 0) throw new Error(`jailed VMM exited ${code}`);
  return { socketMs: ready - s.start, coldMs: first - s.start, warmMs: first - configStart };
}

async function qemuRun(): Promise<number> {
  const q = qemuCommand({ cmdline: CMDLINE, memMib: MEM_MIB, vcpus: 1, serial: true });
  const s = spawnWatched(q.file, q.args);
  const first = await s.firstOutput;
  await s.exited;
  return first - s.start;
}

/** RSS of a process minus the RSS of its guest RAM mapping (the largest anonymous mapping of at least the guest's size). */
function vmmOwnRssKib(pid: number): number {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  let total = 0;
  let guest = 0;
  let size = 0;
  let anonymous = false;
  for (const line of smaps) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head !== null) {
      size = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      anonymous = head[3] === '0' && head[4] === '';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null) continue;
    total += Number(rss[1]);
    if (anonymous && size >= MEM_MIB * 1024 && Number(rss[1]) > guest) guest = Number(rss[1]);
  }
  return total - guest;
}

async function memory(): Promise<{ ours: number; qemu: number }> {
  const parked = 'ml.say=up ml.exit=hang';
  const { s, sock } = startJail();
  await waitFor(sock, s);
  const client = new ApiClient(sock);
  await configureAndStart(client, parked);
  await s.firstOutput;
  await new Promise((r) => setTimeout(r, 500));
  const vmmPid = Number(readFileSync(`/proc/${s.child.pid}/task/${s.child.pid}/children`, 'utf8').trim().split(' ')[0]);
  const ours = vmmOwnRssKib(vmmPid);
  client.close();
  s.child.kill('SIGTERM');
  await s.exited;
  const q = qemuCommand({ cmdline: parked, memMib: MEM_MIB, vcpus: 1, serial: true });
  const qs = spawnWatched(q.file, q.args);
  await qs.firstOutput;
  await new Promise((r) => setTimeout(r, 500));
  const qemu = vmmOwnRssKib(qs.child.pid!);
  qs.child.kill('SIGTERM');
  await qs.exited;
  return { ours, qemu };
}

process.stdout.write(`host: ${hostDescription(qemuVersion)}\n`);
const socket: number[] = [];
const cold: number[] = [];
const warm: number[] = [];
const qemu: number[] = [];
try {
  for (let i = 0; i < args.warmup + args.runs; i++) {
    const timed = i >= args.warmup;
    // Alternate which goes first, so drift hits both alike.
    const order = i % 2 === 0 ? ['ours', 'qemu'] : ['qemu', 'ours'];
    for (const which of order) {
      if (which === 'qemu') {
        const t = await qemuRun();
        if (timed) qemu.push(t);
      } else {
        const r = await jailedRun();
        if (timed) {
          socket.push(r.socketMs);
          cold.push(r.coldMs);
          warm.push(r.warmMs);
        }
      }
    }
  }
} catch (e: unknown) {
  process.stderr.write(`bench: a run failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(EXIT_RUN_FAILED);
}
const mem = await memory();
const rows = [
  ['jailed VMM: spawn → API socket ready', socket],
  ['jailed VMM cold: spawn → config → start → first guest line', cold],
  ['jailed VMM warm: config + InstanceStart → first guest line', warm],
  ['QEMU microvm: spawn → first guest line', qemu],
] as const;
process.stdout.write(`\n${MEM_MIB} MiB, 1 vCPU, ${args.runs} runs each after ${args.warmup} warm-up(s), interleaved\n`);
process.stdout.write(`${table(['', 'median', 'p90', 'min'], rows.map(([label, xs]) => {
  const x = summarize(xs);
  return [label, ms(x.median), ms(x.p90), ms(x.min)];
}))}\n`);
process.stdout.write(`VMM memory (RSS minus touched guest RAM): matchlock ${mib(mem.ours)}, QEMU ${mib(mem.qemu)}\n`);
const warmVerdict = verdict('warm config + start → first guest line (ms)', median(warm), WARM_TARGET_MS);
const memVerdict = verdict('VMM memory ratio matchlock/QEMU', mem.ours / mem.qemu, MEMORY_TARGET);
process.stdout.write(`${warmVerdict.line}\n${memVerdict.line}\n`);
process.stdout.write(`cold start ratio matchlock/QEMU: ${ratio(median(cold) / median(qemu))} (no target)\n`);
writeJson(args.json, {
  benchmark: 'vmm-start', host: hostDescription(qemuVersion), memMib: MEM_MIB,
  socketMs: socket, coldMs: cold, warmMs: warm, qemuMs: qemu, memoryKib: mem,
  targets: { warmMs: WARM_TARGET_MS, memoryRatio: MEMORY_TARGET }, pass: warmVerdict.pass && memVerdict.pass,
});
process.exitCode = warmVerdict.pass && memVerdict.pass ? 0 : 1;
