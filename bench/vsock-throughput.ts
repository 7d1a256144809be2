/**
 * virtio-vsock throughput, absolute (QEMU microvm has no vsock device to compare with here): a host client
 * connects through matchlock's Unix socket (`CONNECT 5000`), streams BYTES to the test guest's echo server and
 * reads them back; MiB/s one way, from the first byte written to the last byte echoed. The echo is checked.
 *
 *   node bench/vsock-throughput.ts [--runs 3] [--warmup 1] [--json FILE]
 *
 * Exit status: 0 measured, 2 cannot run here (no KVM), 3 a run failed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, writeJson } from './lib/args.ts';
import { requireKvm } from './lib/kvm.ts';
import { runOnce } from './lib/run.ts';
import { summarize } from './lib/stats.ts';
import { EXIT_RUN_FAILED, ensureGuest, hostDescription, matchlockCommand } from './lib/vmm.ts';

const USAGE = 'usage: node bench/vsock-throughput.ts [--runs N (3)] [--warmup N (1)] [--json FILE]';
const BYTES = 64 * 1024 * 1024;
const PORT = 5000;

const args = benchArgs(USAGE, { runs: 3, warmup: 1 });
requireKvm();
ensureGuest();
const dir = mkdtempSync(join(tmpdir(), 'matchlock-bench-vsock-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const data = randomBytes(BYTES);
const digest = createHash('sha256').update(data).digest('hex');

/** One attempt: null when the guest was not listening yet (no OK), else the MiB/s of a checked echo. */
function attempt(uds: string): Promise<number | null> {
  return new Promise((resolve) => {
    const s = connect(uds);
    const hash = createHash('sha256');
    let head = '';
    let ok = false;
    let got = 0;
    let start = 0n;
    s.on('connect', () => s.write(`CONNECT ${PORT}\n`));
    s.on('data', (d: Buffer) => {
      if (!ok) {
        head += d.toString('latin1');
        if (!head.includes('\n')) return;
        ok = true;
        start = process.hrtime.bigint();
        s.end(data);
        d = Buffer.from(head.slice(head.indexOf('\n') + 1), 'latin1');
      }
      hash.update(d);
      got += d.length;
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (!ok) return resolve(null);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      resolve(got === BYTES && hash.digest('hex') === digest ? BYTES / (1024 * 1024) / seconds : Number.NaN);
    });
  });
}

async function once(round: number): Promise<number> {
  const uds = join(dir, `v${round}.sock`);
  const base = matchlockCommand({ cmdline: `ml.vsock.echo=${PORT}:1 ml.exit=reset`, memMib: 128, vcpus: 1, serial: false });
  const vm = runOnce({ ...base, args: [...base.args, '--vsock', `cid=3,uds=${uds}`] }, 300_000);
  let result: number | null = null;
  for (let i = 0; i < 600 && result === null; i++) {
    await new Promise((r) => setTimeout(r, 100));
    result = await attempt(uds);
  }
  const r = await vm;
  if (result === null || Number.isNaN(result) || r.exitCode !== 0) {
    process.stderr.write(`bench: vsock run ${round} failed (VMM exit ${r.exitCode}, ${result === null ? 'never connected' : 'echo wrong'})\n`);
    process.exit(EXIT_RUN_FAILED);
  }
  return result;
}

process.stdout.write(`host: ${hostDescription('(no QEMU reference: it has no vsock device here)')}\n`);
const samples: number[] = [];
for (let i = 0; i < args.warmup + args.runs; i++) {
  const v = await once(i);
  if (i >= args.warmup) samples.push(v);
}
const s = summarize(samples);
process.stdout.write(`\nvirtio-vsock echo of ${BYTES / (1024 * 1024)} MiB through the guest: median ${s.median.toFixed(1)} MiB/s one way (min ${s.min.toFixed(1)}, ${args.runs} runs); no target\n`);
writeJson(args.json, { benchmark: 'vsock-throughput', host: hostDescription(''), bytes: BYTES, mibPerSec: samples, summary: s });
