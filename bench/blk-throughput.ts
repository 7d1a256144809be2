/**
 * virtio-blk throughput: matchlock against QEMU microvm's virtio-blk-device (modern virtio-mmio), both on KVM,
 * the same test guest driving the same raw image in the page cache. The guest moves the data without making or
 * checking it (`ml.vblk.wr` / `rd` / `randrd`), so the time is the VMM's. Each figure is
 * bytes / (median(with I/O) − median(the same guest doing no I/O)), so boot and teardown cancel out.
 *
 *   sequential write and read: 1 MiB requests over the image; random read: 4 KiB requests (IOPS)
 *   Target: matchlock / QEMU ≥ 1.0 for each.
 *
 *   node bench/blk-throughput.ts [--runs 5] [--warmup 1] [--json FILE]
 *
 * Exit status: 0 targets met, 1 a target missed, 2 cannot run here (no KVM / QEMU), 3 a run failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, writeJson } from './lib/args.ts';
import { ms, ratio, table } from './lib/format.ts';
import { requireKvm, requireQemu } from './lib/kvm.ts';
import { describe, runOnce, type Command } from './lib/run.ts';
import { summarize } from './lib/stats.ts';
import { checkGuestRun, ensureGuest, hostDescription, matchlockCommand, qemuCommand, requireClean, type GuestRun } from './lib/vmm.ts';

const USAGE = 'usage: node bench/blk-throughput.ts [--runs N (5)] [--warmup N (1)] [--json FILE]';
const TARGET = 1.0;
const IMAGE_MIB = 256;
const SECTORS = (IMAGE_MIB * 1024 * 1024) / 512;
const RANDOM_READS = 20_000;

const args = benchArgs(USAGE, { runs: 5, warmup: 1 });
requireKvm();
const qemuVersion = requireQemu();
ensureGuest();

const dir = mkdtempSync(join(tmpdir(), 'matchlock-bench-blk-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const image = join(dir, 'disk.img');
const chunk = randomBytes(1024 * 1024);
writeFileSync(image, Buffer.concat(Array.from({ length: IMAGE_MIB }, () => chunk)));

const WORKLOADS = {
  none: { cmdline: 'ml.vblk.info', bytes: 0, ops: 0, expect: `mltest: VBLK INFO sectors ${SECTORS} ro 0` },
  'seq write': { cmdline: `ml.vblk.wr=0:${SECTORS}`, bytes: SECTORS * 512, ops: 0, expect: `mltest: VBLK WR 0 ${SECTORS} status 0` },
  'seq read': { cmdline: `ml.vblk.rd=0:${SECTORS}`, bytes: SECTORS * 512, ops: 0, expect: `mltest: VBLK RD 0 ${SECTORS} status 0` },
  'rand read 4K': { cmdline: `ml.vblk.randrd=${RANDOM_READS}:7`, bytes: 0, ops: RANDOM_READS, expect: `mltest: VBLK RANDRD ${RANDOM_READS} status 0` },
} as const;
type Workload = keyof typeof WORKLOADS;
const VMMS = ['matchlock', 'qemu'] as const;
type Vmm = (typeof VMMS)[number];

const guest = (w: Workload, serial: boolean): GuestRun => ({ cmdline: `${WORKLOADS[w].cmdline} ml.exit=reset`, memMib: 256, vcpus: 1, serial, drive: image });
const command = (vmm: Vmm, w: Workload, serial: boolean): Command => (vmm === 'matchlock' ? matchlockCommand(guest(w, serial)) : qemuCommand(guest(w, serial)));

interface Config { readonly vmm: Vmm; readonly w: Workload; readonly cmd: Command; readonly wallMs: number[] }
const configs: Config[] = VMMS.flatMap((vmm) => (Object.keys(WORKLOADS) as Workload[]).map((w) => ({ vmm, w, cmd: command(vmm, w, false), wallMs: [] })));

process.stdout.write(`host: ${hostDescription(qemuVersion)}\nimage: ${IMAGE_MIB} MiB raw, in the page cache\n`);
for (const c of configs) process.stdout.write(`${c.vmm} ${c.w}: ${describe(c.cmd)}\n`);

// Before timing: every workload really completes on both VMMs.
for (const vmm of VMMS) {
  for (const w of Object.keys(WORKLOADS) as Workload[]) await checkGuestRun(command(vmm, w, true), [WORKLOADS[w].expect, 'mltest: DONE', 'mltest: EXIT reset']);
}

async function rounds(n: number, record: boolean): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < configs.length; j++) {
      const c = configs[(i + j) % configs.length]!;
      const r = await runOnce(c.cmd, 300_000);
      requireClean({ ...c.cmd, label: `${c.vmm} ${c.w}` }, r);
      if (record) c.wallMs.push(r.wallMs);
    }
  }
}
await rounds(args.warmup, false);
await rounds(args.runs, true);

const median = (vmm: Vmm, w: Workload): number => summarize(configs.find((c) => c.vmm === vmm && c.w === w)!.wallMs).median;
const rate = (vmm: Vmm, w: Workload): number => {
  const seconds = (median(vmm, w) - median(vmm, 'none')) / 1000;
  const { bytes, ops } = WORKLOADS[w];
  return (ops > 0 ? ops : bytes / (1024 * 1024)) / seconds;
};
const measured = (['seq write', 'seq read', 'rand read 4K'] as const).map((w) => {
  const m = rate('matchlock', w);
  const q = rate('qemu', w);
  const valid = Number.isFinite(m) && Number.isFinite(q) && m > 0 && q > 0;
  return { w, unit: WORKLOADS[w].ops > 0 ? 'IOPS' : 'MiB/s', matchlock: m, qemu: q, ratio: valid ? m / q : Number.NaN, pass: valid && m / q >= TARGET };
});

process.stdout.write(
  `\nvirtio-blk, ${args.runs} runs of each after ${args.warmup} warm-up(s), interleaved; medians\n` +
    table(['', 'matchlock', 'qemu', 'no-I/O run (m / q)', 'ratio m/q', `target ≥ ${TARGET}x`], measured.map((r) => [
      `${r.w} (${r.unit})`, r.matchlock.toFixed(0), r.qemu.toFixed(0), `${ms(median('matchlock', 'none'))} / ${ms(median('qemu', 'none'))}`,
      Number.isNaN(r.ratio) ? 'n/a' : ratio(r.ratio), r.pass ? 'PASS' : 'FAIL',
    ])) + '\n',
);

writeJson(args.json, {
  benchmark: 'blk-throughput',
  host: hostDescription(qemuVersion),
  imageMib: IMAGE_MIB,
  target: TARGET,
  pass: measured.every((r) => r.pass),
  results: measured,
  runs: configs.map((c) => ({ vmm: c.vmm, workload: c.w, command: describe(c.cmd), wallMs: c.wallMs, summary: summarize(c.wallMs) })),
});
process.exitCode = measured.every((r) => r.pass) ? 0 : 1;
