/**
 * Runs every benchmark (each in its own process, one after the other) and ends with a one-line summary each.
 * `npm run bench` runs this. Exit status: the worst of the benchmarks' (0 all targets met, 1 a target missed,
 * 2 cannot run here, 3 a run failed); without a usable /dev/kvm it says so once and exits 2 straight away.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { requireKvm, requireQemu } from './lib/kvm.ts';

const BENCHMARKS = ['boot-to-exit.ts', 'pio-exits.ts', 'blk-throughput.ts', 'net-throughput.ts', 'vsock-throughput.ts', 'vmm-start.ts', 'image-build.ts'] as const;
const MEANING: Readonly<Record<number, string>> = { 0: 'PASS', 1: 'FAIL (target missed)', 2: 'could not run', 3: 'a run failed' };

requireKvm();
requireQemu();

const results: { name: string; status: number }[] = [];
for (const name of BENCHMARKS) {
  process.stdout.write(`\n=== ${name}\n`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(name, import.meta.url))], { stdio: 'inherit' });
  results.push({ name, status: r.status ?? 3 });
}
process.stdout.write('\n=== summary\n');
for (const { name, status } of results) process.stdout.write(`${name}: ${MEANING[status] ?? `exit ${status}`}\n`);
process.exitCode = Math.max(...results.map((r) => r.status));
