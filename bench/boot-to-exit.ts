/**
 * (a) Boot to exit: process start → first guest instruction → guest resets → process exit, matchlock against
 * QEMU microvm, both on KVM, same test guest (`ml.exit=reset`), 128 MiB, 1 vCPU, serial console discarded.
 * Target: median(matchlock) / median(QEMU) ≤ 1.5. Also the peak RSS of each (measured in separate runs).
 *
 *   node bench/boot-to-exit.ts [--runs 30] [--warmup 3] [--json FILE]
 *
 * Exit status: 0 target met, 1 target missed, 2 cannot run here (no KVM / QEMU), 3 a run failed.
 */
import { benchArgs, writeJson } from './lib/args.ts';
import { mib, ms, ratio, table, verdict } from './lib/format.ts';
import { requireKvm, requireQemu } from './lib/kvm.ts';
import { describe, haveGnuTime, GNU_TIME, runOnce, runWithPeakRss, type Command } from './lib/run.ts';
import { median, summarize } from './lib/stats.ts';
import { checkGuestRun, ensureGuest, hostDescription, matchlockCommand, qemuCommand, requireClean, type GuestRun } from './lib/vmm.ts';

const USAGE = 'usage: node bench/boot-to-exit.ts [--runs N (30)] [--warmup N (3)] [--json FILE]';
const BOOT_TARGET = 1.5;
const RSS_RUNS = 5;

const args = benchArgs(USAGE, { runs: 30, warmup: 3 });
requireKvm();
const qemuVersion = requireQemu();
ensureGuest();

const guest: Omit<GuestRun, 'serial'> = { cmdline: 'ml.exit=reset', memMib: 128, vcpus: 1 };
const ours = matchlockCommand({ ...guest, serial: false });
const qemu = qemuCommand({ ...guest, serial: false });
const pair: readonly Command[] = [ours, qemu];

process.stdout.write(`host: ${hostDescription(qemuVersion)}\n`);
for (const c of pair) process.stdout.write(`${c.label}: ${describe(c)}\n`);

// Before timing anything: both VMMs really boot the guest and leave through its reset.
const expected = ['mltest: CMDLINE ml.exit=reset', 'mltest: DONE', 'mltest: EXIT reset'];
await checkGuestRun(matchlockCommand({ ...guest, serial: true }), expected);
await checkGuestRun(qemuCommand({ ...guest, serial: true }), expected);

/** Runs both, alternating which goes first, so drift (thermal, page cache, other load) hits both alike. */
async function interleaved(rounds: number, each: (c: Command) => Promise<void>): Promise<void> {
  for (let i = 0; i < rounds; i++) for (const c of i % 2 === 0 ? pair : [...pair].reverse()) await each(c);
}

const wall = new Map<Command, number[]>(pair.map((c) => [c, []]));
await interleaved(args.warmup, async (c) => requireClean(c, await runOnce(c)));
await interleaved(args.runs, async (c) => {
  const r = await runOnce(c);
  requireClean(c, r);
  wall.get(c)!.push(r.wallMs);
});

const rss = new Map<Command, number[]>(pair.map((c) => [c, []]));
if (haveGnuTime()) {
  await interleaved(RSS_RUNS, async (c) => {
    const { run, peakRssKib } = await runWithPeakRss(c);
    requireClean(c, run);
    rss.get(c)!.push(peakRssKib);
  });
}
const peak = (c: Command): number | null => (rss.get(c)!.length > 0 ? median(rss.get(c)!) : null);

const s = new Map(pair.map((c) => [c, summarize(wall.get(c)!)]));
process.stdout.write(
  `\nboot to exit (spawn → guest reset → process exit), ${guest.memMib} MiB, ${guest.vcpus} vCPU, ` +
    `${args.runs} runs each after ${args.warmup} warm-up(s), interleaved\n` +
    table(
      ['', 'median', 'p90', 'min', `peak RSS (median of ${RSS_RUNS})`],
      pair.map((c) => {
        const x = s.get(c)!;
        const p = peak(c);
        return [c.label, ms(x.median), ms(x.p90), ms(x.min), p === null ? 'n/a' : mib(p)];
      }),
    ) +
    '\n',
);
const v = verdict('median ratio matchlock/QEMU', s.get(ours)!.median / s.get(qemu)!.median, BOOT_TARGET);
process.stdout.write(`${v.line}\n`);
const po = peak(ours);
const pq = peak(qemu);
process.stdout.write(
  po !== null && pq !== null
    ? `peak RSS ratio matchlock/QEMU: ${ratio(po / pq)}  (no target)\n`
    : `peak RSS: n/a (${GNU_TIME} not found; Debian package "time")\n`,
);

writeJson(args.json, {
  benchmark: 'boot-to-exit',
  host: hostDescription(qemuVersion),
  guest,
  target: BOOT_TARGET,
  pass: v.pass,
  commands: Object.fromEntries(pair.map((c) => [c.label, describe(c)])),
  wallMs: Object.fromEntries(pair.map((c) => [c.label, wall.get(c)])),
  summary: Object.fromEntries(pair.map((c) => [c.label, s.get(c)])),
  peakRssKib: Object.fromEntries(pair.map((c) => [c.label, rss.get(c)])),
});
process.exitCode = v.pass ? 0 : 1;
