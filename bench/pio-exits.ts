/**
 * (b) The cost of one PIO exit: the test guest does `ml.pio=N` one-byte `out`s to port 0x80 from ring 3, each a
 * KVM_EXIT_IO handled by the VMM in user space. Per-exit cost = (median(N=100000) − median(N=0)) / 100000, so
 * boot and teardown cancel out. matchlock against QEMU microvm, both on KVM, 128 MiB, 1 vCPU, serial discarded.
 * Target: cost(matchlock) / cost(QEMU) ≤ 1.2. matchlock's own exit counter must show ≥ 100000 KVM_EXIT_IO.
 *
 *   node bench/pio-exits.ts [--runs 10] [--warmup 1] [--json FILE]
 *
 * Exit status: 0 target met, 1 target missed, 2 cannot run here (no KVM / QEMU), 3 a run failed.
 */
import { benchArgs, writeJson } from './lib/args.ts';
import { ms, table, us, verdict } from './lib/format.ts';
import { requireKvm, requireQemu } from './lib/kvm.ts';
import { describe, runOnce, type Command } from './lib/run.ts';
import { summarize } from './lib/stats.ts';
import {
  checkGuestRun, ensureGuest, EXIT_RUN_FAILED, hostDescription, matchlockCommand, matchlockExits, qemuCommand, requireClean,
  type GuestRun,
} from './lib/vmm.ts';

const USAGE = 'usage: node bench/pio-exits.ts [--runs N (10)] [--warmup N (1)] [--json FILE]';
const PIO_TARGET = 1.2;
const EXITS = 100_000;

const args = benchArgs(USAGE, { runs: 10, warmup: 1 });
requireKvm();
const qemuVersion = requireQemu();
ensureGuest();

const guest = (pio: number, serial: boolean): GuestRun => ({ cmdline: `ml.pio=${pio} ml.exit=reset`, memMib: 128, vcpus: 1, serial });

interface Config {
  readonly vmm: 'matchlock' | 'qemu';
  readonly pio: number;
  readonly cmd: Command;
  readonly wallMs: number[];
  /** matchlock only: KVM_EXIT_IO of each timed run, from its "vm stopped" log line. */
  readonly ioExits: number[];
}
const configs: Config[] = [];
for (const vmm of ['matchlock', 'qemu'] as const) {
  for (const pio of [0, EXITS]) {
    const cmd = vmm === 'matchlock' ? matchlockCommand(guest(pio, false)) : qemuCommand(guest(pio, false));
    configs.push({ vmm, pio, cmd, wallMs: [], ioExits: [] });
  }
}
const find = (vmm: Config['vmm'], pio: number): Config => configs.find((c) => c.vmm === vmm && c.pio === pio)!;

process.stdout.write(`host: ${hostDescription(qemuVersion)}\n`);
for (const c of configs) process.stdout.write(`${c.vmm} pio=${c.pio}: ${describe(c.cmd)}\n`);

// Before timing anything: both VMMs really run the loop to the end and leave through the guest's reset.
for (const pio of [0, EXITS]) {
  const expected = [`mltest: PIO ${pio} done`, 'mltest: DONE', 'mltest: EXIT reset'];
  await checkGuestRun(matchlockCommand(guest(pio, true)), expected);
  await checkGuestRun(qemuCommand(guest(pio, true)), expected);
}

async function timed(c: Config, record: boolean): Promise<void> {
  const r = await runOnce(c.cmd);
  requireClean({ ...c.cmd, label: `${c.vmm} pio=${c.pio}` }, r);
  if (!record) return;
  c.wallMs.push(r.wallMs);
  if (c.vmm === 'matchlock') {
    const io = matchlockExits(r.stderr)?.['KVM_EXIT_IO'];
    if (io === undefined) {
      process.stderr.write(`bench: matchlock pio=${c.pio} logged no "vm stopped" line with exits.KVM_EXIT_IO\n`);
      process.exit(EXIT_RUN_FAILED);
    }
    c.ioExits.push(io);
  }
}

/** Round i runs all four configurations, starting at a different one each round, so drift hits all alike. */
async function rounds(n: number, record: boolean): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < configs.length; j++) await timed(configs[(i + j) % configs.length]!, record);
  }
}
await rounds(args.warmup, false);
await rounds(args.runs, true);

const perExitUs = (vmm: Config['vmm']): number =>
  ((summarize(find(vmm, EXITS).wallMs).median - summarize(find(vmm, 0).wallMs).median) * 1000) / EXITS;
const cost = { matchlock: perExitUs('matchlock'), qemu: perExitUs('qemu') };

process.stdout.write(
  `\nPIO exits (one-byte out to port 0x80 from ring 3), ${args.runs} runs of each after ${args.warmup} warm-up(s), interleaved\n` +
    table(
      ['', 'median pio=0', `median pio=${EXITS}`, 'p90 pio=0', `p90 pio=${EXITS}`, 'per exit'],
      (['matchlock', 'qemu'] as const).map((vmm) => {
        const z = summarize(find(vmm, 0).wallMs);
        const h = summarize(find(vmm, EXITS).wallMs);
        return [vmm, ms(z.median), ms(h.median), ms(z.p90), ms(h.p90), us(cost[vmm])];
      }),
    ) +
    '\n',
);

// Cross-check: the guest's loop really went through matchlock's exit path once per `out`.
const io0 = find('matchlock', 0).ioExits;
const ioN = find('matchlock', EXITS).ioExits;
const fewest = Math.min(...ioN);
const counterOk = fewest >= EXITS;
process.stdout.write(
  `matchlock exit counter: KVM_EXIT_IO ${Math.min(...io0)}–${Math.max(...io0)} at pio=0, ${fewest}–${Math.max(...ioN)} ` +
    `at pio=${EXITS} (must be ≥ ${EXITS}): ${counterOk ? 'OK' : 'WRONG'}\n`,
);
const v = verdict('per-exit cost ratio matchlock/QEMU', cost.matchlock / cost.qemu, PIO_TARGET);
process.stdout.write(`${v.line}\n`);
if (!(cost.qemu > 0)) process.stdout.write(`  (QEMU's per-exit cost came out ${us(cost.qemu)}: too noisy; try more --runs)\n`);

writeJson(args.json, {
  benchmark: 'pio-exits',
  host: hostDescription(qemuVersion),
  exits: EXITS,
  target: PIO_TARGET,
  pass: v.pass && counterOk,
  perExitUs: cost,
  runs: configs.map((c) => ({ vmm: c.vmm, pio: c.pio, command: describe(c.cmd), wallMs: c.wallMs, summary: summarize(c.wallMs), ioExits: c.ioExits })),
});
process.exitCode = !counterOk ? EXIT_RUN_FAILED : v.pass ? 0 : 1;
