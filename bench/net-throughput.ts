/**
 * virtio-net throughput through a TAP: matchlock against QEMU microvm's virtio-net-device (modern virtio-mmio),
 * both on KVM, the same test guest, the TAP in a network namespace of this benchmark's own. Timed by the host's
 * end (test/helpers/tap-peer.c, AF_PACKET, clock_gettime), so VMM start-up is not in the figures:
 *
 *   guest → host: the guest sends FRAMES frames of 1514 bytes; MiB/s from the first frame received to the last
 *   host → guest → host: the host sends FRAMES frames with at most 48 unanswered, the guest echoes each;
 *                        MiB/s (one way) from the first echo back to the last
 *
 * Every frame is checked (order, length, bytes) on the way, so a lost frame fails the run. Target: matchlock /
 * QEMU ≥ 1.0 for both. Needs root (namespaces, TAP devices).
 *
 *   node bench/net-throughput.ts [--runs 3] [--warmup 1] [--json FILE]
 *
 * Exit status: 0 targets met, 1 a target missed, 2 cannot run here (no KVM / QEMU / root), 3 a run failed.
 */
import { execFileSync } from 'node:child_process';
import { benchArgs, writeJson } from './lib/args.ts';
import { ratio, table } from './lib/format.ts';
import { EXIT_CANNOT_RUN, requireKvm, requireQemu } from './lib/kvm.ts';
import { describe, runOnce, type Command } from './lib/run.ts';
import { summarize } from './lib/stats.ts';
import { EXIT_RUN_FAILED, ensureGuest, hostDescription, matchlockCommand, qemuCommand, type GuestRun } from './lib/vmm.ts';
import { runPeer } from '../test/helpers/netns.ts';

const USAGE = 'usage: node bench/net-throughput.ts [--runs N (3)] [--warmup N (1)] [--json FILE]';
const TARGET = 1.0;
const FRAMES = 20_000;
const SIZE = 1514;
const WINDOW = 48;
const TAP = 'mlbench0';

const args = benchArgs(USAGE, { runs: 3, warmup: 1 });
requireKvm();
const qemuVersion = requireQemu();
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: the network benchmark needs root (a network namespace and a TAP device)\n');
  process.exit(EXIT_CANNOT_RUN);
}
ensureGuest();

const ns = `mlbench-${process.pid}`;
execFileSync('ip', ['netns', 'add', ns]);
process.on('exit', () => execFileSync('ip', ['netns', 'del', ns]));
execFileSync('ip', ['netns', 'exec', ns, 'ip', 'tuntap', 'add', TAP, 'mode', 'tap']);
execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', TAP, 'up']);

const VMMS = ['matchlock', 'qemu'] as const;
type Vmm = (typeof VMMS)[number];
const DIRECTIONS = { 'guest → host': `ml.vnet.info ml.vnet.send=${FRAMES}:${SIZE}:5`, 'host → guest → host': `ml.vnet.info ml.vnet.echo=${FRAMES}:6` } as const;
type Direction = keyof typeof DIRECTIONS;

function command(vmm: Vmm, d: Direction): Command {
  const g: GuestRun = { cmdline: `${DIRECTIONS[d]} ml.exit=reset`, memMib: 128, vcpus: 1, serial: true };
  const base = vmm === 'matchlock' ? matchlockCommand(g) : qemuCommand(g);
  const extra = vmm === 'matchlock'
    ? ['--net', `tap=${TAP}`]
    : ['-global', 'virtio-mmio.force-legacy=false', '-netdev', `tap,id=n0,ifname=${TAP},script=no,downscript=no`, '-device', 'virtio-net-device,netdev=n0'];
  return { ...base, file: 'ip', args: ['netns', 'exec', ns, base.file, ...base.args, ...extra] };
}

/** One run: the VMM and its peer; returns MiB/s as the peer timed it. */
async function once(vmm: Vmm, d: Direction): Promise<number> {
  const cmd = command(vmm, d);
  const recv = d === 'guest → host' ? runPeer(ns, ['recv', TAP, String(FRAMES), '5', '120000']) : null;
  if (recv !== null) await recv.ready;
  const vm = runOnce(cmd, 300_000);
  // The echo peer starts once the VMM has the TAP open (frames sent to a TAP nobody holds are dropped); what it
  // sends before the guest's driver is up waits in the TAP's queue (48 frames at most), and its clock starts at
  // the first echo.
  let peer = recv;
  if (peer === null) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    peer = runPeer(ns, ['echo', TAP, String(FRAMES), String(SIZE), '6', String(WINDOW), '120000']);
  }
  const [r, p] = await Promise.all([vm, peer.done]);
  const us = Number(/TIME_US (\d+)/.exec(p.stderr)?.[1] ?? Number.NaN);
  if (r.exitCode !== 0 || p.code !== 0 || !(us > 0)) {
    process.stderr.write(`bench: ${vmm} ${d} failed (VMM exit ${r.exitCode}, peer exit ${p.code}: ${p.stdout.trim()})\n  command: ${describe(cmd)}\n`);
    process.exit(EXIT_RUN_FAILED);
  }
  return (FRAMES * SIZE) / (1024 * 1024) / (us / 1e6);
}

process.stdout.write(`host: ${hostDescription(qemuVersion)}\nTAP ${TAP} in namespace ${ns}; ${FRAMES} frames of ${SIZE} bytes\n`);
const samples = new Map<string, number[]>();
for (let round = 0; round < args.warmup + args.runs; round++) {
  for (const d of Object.keys(DIRECTIONS) as Direction[]) {
    for (const vmm of round % 2 === 0 ? VMMS : [...VMMS].reverse()) {
      const v = await once(vmm, d);
      if (round >= args.warmup) samples.set(`${vmm} ${d}`, [...(samples.get(`${vmm} ${d}`) ?? []), v]);
    }
  }
}
const results = (Object.keys(DIRECTIONS) as Direction[]).map((d) => {
  const m = summarize(samples.get(`matchlock ${d}`)!).median;
  const q = summarize(samples.get(`qemu ${d}`)!).median;
  return { direction: d, matchlock: m, qemu: q, ratio: m / q, pass: m / q >= TARGET };
});
process.stdout.write(`\nvirtio-net, MiB/s (median of ${args.runs})\n` + table(['', 'matchlock', 'qemu', 'ratio m/q', `target ≥ ${TARGET}x`],
  results.map((x) => [x.direction, x.matchlock.toFixed(1), x.qemu.toFixed(1), ratio(x.ratio), x.pass ? 'PASS' : 'FAIL'])) + '\n');
writeJson(args.json, { benchmark: 'net-throughput', host: hostDescription(qemuVersion), frames: FRAMES, size: SIZE, target: TARGET, results, samples: Object.fromEntries(samples) });
process.exitCode = results.every((x) => x.pass) ? 0 : 1;
