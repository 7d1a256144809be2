/**
 * Golden image build throughput: `matchlock image build` (buildImage, in this process) against the same job done
 * by hand with the standard tools, on the same root file system tarball in the same run:
 *
 *   matchlock: layer applied (its own tar reader and a writer thread, into its scratch tree: tmpfs when it fits,
 *              the tree counted as it is made) + mke2fs -d + e2fsck -fn (the tree removed meanwhile) + sha256 of
 *              the tarball (on the applier's thread, while mke2fs runs) + image.json + publish
 *   reference: tar -xpf into a directory + mke2fs -d (the same options and size as ours) + e2fsck -fn + rm -rf of
 *              the tree, twice: with the tree on the images directory's file system (where a build directory
 *              goes), and with the tree on tmpfs (/dev/shm, where ours goes when it fits): the same storage as ours
 *   Not timed on either side: removing the ext4 file made (the product; on a disk mounted with discard that
 *   alone takes a few tenths of a second).
 *
 * Input: the debootstrap tarball of test/fixtures/images/make-images.sh (CACHE/rootfs.tar) when it is there, else a
 * generated tree of many small and some large files, tarred by GNU tar (the output says which). Best of N each,
 * interleaved (the order rotates every round); the figure is tarball MB / best time. Judged: ours against the
 * reference on the same storage (tmpfs), target ≥ 1.0x. Also shown: the extraction alone (applyLayer vs tar -xpf,
 * both into tmpfs).
 *
 *   node bench/image-build.ts [--runs 3] [--warmup 1] [--json FILE]
 *
 * Exit status: 0 target met, 1 missed, 2 cannot run here (not root: device nodes, owners; no mke2fs; no tmpfs),
 * 3 a run failed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, release, tmpdir } from 'node:os';
import { closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, buildImage, DEFAULT_LIMITS, mke2fsOptions, treeStats } from '../src/images/index.ts';
import { benchArgs, writeJson } from './lib/args.ts';
import { ratio, table } from './lib/format.ts';
import { describe, outcome, runOnce, tail, type Command } from './lib/run.ts';
import { median } from './lib/stats.ts';

const USAGE = 'usage: node bench/image-build.ts [--runs N (3)] [--warmup N (1)] [--json FILE]';
const TARGET = 1.0;
const CACHE = process.env['MATCHLOCK_TEST_IMAGES'] ?? '/var/cache/matchlock-test-images';
const SHM = '/dev/shm';

function cannotRun(line: string): never {
  process.stderr.write(`bench: ${line}\n`);
  process.exit(2);
}

const args = benchArgs(USAGE, { runs: 3, warmup: 1 });
if (process.getuid?.() !== 0) cannotRun('image-build needs root (device nodes and owners in the tarball)');
if (spawnSync('mke2fs', ['-V']).status !== 0) cannotRun('mke2fs cannot be run: install e2fsprogs');
if (!existsSync(SHM) || statfsSync(SHM).type !== 0x01021994) cannotRun(`${SHM} is not tmpfs: the same-storage reference needs it`);

const disk = mkdtempSync(join(tmpdir(), 'matchlock-bench-image-'));
const shm = mkdtempSync(join(SHM, 'matchlock-bench-image-'));
process.on('exit', () => {
  rmSync(disk, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

/** A tree like a distribution's: 20000 files of 0-16 KiB, 40 of 2 MiB, in 400 directories. */
function generatedTarball(): string {
  const src = join(disk, 'generated');
  let seed = 1;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let d = 0; d < 400; d++) {
    const sub = join(src, `usr/share/d${d % 20}/s${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 50; f++) writeFileSync(join(sub, `f${f}`), Buffer.alloc(Math.floor(rand() * 16384), d + f));
  }
  mkdirSync(join(src, 'usr/lib'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(src, `usr/lib/big${i}.so`), Buffer.alloc(2 * 2 ** 20, i));
  const out = join(disk, 'generated.tar');
  execFileSync('tar', ['--numeric-owner', '-C', src, '-cpf', out, '.']);
  rmSync(src, { recursive: true, force: true });
  return out;
}

const fixture = join(CACHE, 'rootfs.tar');
const input = existsSync(fixture) ? fixture : generatedTarball();
const inputBytes = statSync(input).size;
const inputWhat = input === fixture ? `debootstrap minbase bookworm tarball (${fixture})` : 'generated tree (20000 files of 0-16 KiB, 40 of 2 MiB), GNU tar';

async function timed(cmd: Command): Promise<number> {
  const r = await runOnce(cmd, 600_000);
  if (r.exitCode !== 0) {
    process.stderr.write(`bench: ${describe(cmd)}: ${outcome(r)}\n${tail(r.stderr)}\n`);
    process.exit(3);
  }
  return r.wallMs;
}

// The reference's mke2fs gets exactly our options and size, from the same tree.
const probe = join(shm, 'probe');
mkdirSync(probe);
execFileSync('tar', ['-xpf', input, '-C', probe]);
const mkfs = mke2fsOptions(treeStats(probe), undefined);
rmSync(probe, { recursive: true, force: true });

let round = 0;
/** The phases of each run, by job: [step, ms]. */
const phases: Record<string, [string, number][][]> = { ours: [], refShm: [], refDisk: [] };

async function ours(): Promise<number> {
  const imagesDir = join(disk, `images-${round}`);
  const marks: [string, number][] = [];
  const start = performance.now();
  await buildImage({ name: 'bench', from: `rootfs:${input}`, imagesDir, onStep: (step) => marks.push([step, performance.now()]) });
  const end = performance.now();
  rmSync(imagesDir, { recursive: true, force: true });
  marks.push(['end', end]);
  phases['ours']!.push([['open', marks[0]![1] - start], ...marks.slice(0, -1).map(([s, t], i): [string, number] => [s, marks[i + 1]![1] - t])]);
  return end - start;
}

function referenceCommands(where: string): Command[] {
  const tree = join(where, `ref-tree-${round}`);
  const img = join(disk, `ref-${round}.ext4`);
  return [
    { label: 'mkdir', file: 'mkdir', args: [tree] },
    { label: 'tar -x', file: 'tar', args: ['-xpf', input, '-C', tree] },
    { label: 'mke2fs -d', file: 'mke2fs', args: [...mkfs.options, '-d', tree, img, `${mkfs.sizeMib}M`] },
    { label: 'e2fsck', file: 'e2fsck', args: ['-fn', img] },
    { label: 'rm -rf', file: 'rm', args: ['-rf', tree] }, // the tree only: the ext4 file is the product (removed untimed)
  ];
}

async function reference(where: string, key: string): Promise<number> {
  const run: [string, number][] = [];
  for (const cmd of referenceCommands(where)) run.push([cmd.label, await timed(cmd)]);
  rmSync(join(disk, `ref-${round}.ext4`), { force: true });
  phases[key]!.push(run);
  return run.reduce((sum, [, ms]) => sum + ms, 0);
}

/** applyLayer as a rootfs build runs it: the layer read from the tarball itself, file data copied from it by the writer thread. */
async function applyOnly(): Promise<number> {
  const tree = join(shm, `apply-${round}`);
  mkdirSync(tree);
  const fd = openSync(input, 'r');
  const start = process.hrtime.bigint();
  await applyLayer(createReadStream(input, { highWaterMark: 1 << 20 }), tree, DEFAULT_LIMITS, { fd, offset: 0 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  closeSync(fd);
  rmSync(tree, { recursive: true, force: true });
  return ms;
}

async function tarOnly(): Promise<number> {
  const tree = join(shm, `tar-${round}`);
  mkdirSync(tree);
  const ms = await timed({ label: 'tar -x', file: 'tar', args: ['-xpf', input, '-C', tree] });
  rmSync(tree, { recursive: true, force: true });
  return ms;
}

process.stdout.write(`host: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} CPUs, Linux ${release()}; node ${process.version}\n`);
process.stdout.write(`input: ${inputWhat}, ${(inputBytes / 1e6).toFixed(1)} MB\n`);
for (const c of referenceCommands(`{${disk} | ${shm}}`)) process.stdout.write(`reference: ${describe(c)}\n`);

const samples = { ours: [] as number[], refShm: [] as number[], refDisk: [] as number[], apply: [] as number[], tar: [] as number[] };
type Sample = keyof typeof samples;
const jobs: readonly [Sample, () => Promise<number>][] = [
  ['ours', ours], ['refShm', () => reference(shm, 'refShm')], ['refDisk', () => reference(disk, 'refDisk')], ['apply', applyOnly], ['tar', tarOnly],
];
for (let i = 0; i < args.warmup + args.runs; i++) {
  round = i;
  for (let j = 0; j < jobs.length; j++) {
    const [name, job] = jobs[(i + j) % jobs.length]!;
    const ms = await job();
    if (i >= args.warmup) samples[name].push(ms);
  }
}

const best = (s: Sample): number => Math.min(...samples[s]);
const mbps = (ms: number): string => `${(inputBytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
const row = (what: string, a: Sample, b: Sample): string[] => [what, `${(best(a) / 1000).toFixed(2)} s`, mbps(best(a)), `${(best(b) / 1000).toFixed(2)} s`, mbps(best(b)), ratio(best(b) / best(a))];
process.stdout.write(`\n${table([`best of ${args.runs}`, 'matchlock', 'MB/s', 'reference', 'MB/s', 'ours/ref'], [
  row('build vs tree on tmpfs (judged)', 'ours', 'refShm'),
  row('build vs tree on disk', 'ours', 'refDisk'),
  row('extraction only (tmpfs)', 'apply', 'tar'),
])}\n`);
// Where the time goes: each step's median over the timed runs (the warm-up's left out).
const breakdown = (key: string): string => {
  const runs = phases[key]!.slice(args.warmup);
  return runs[0]!.map(([step], i) => `${step} ${(median(runs.map((r) => r[i]?.[1] ?? 0)) / 1000).toFixed(2)} s`).join(', ');
};
process.stdout.write(`\nsteps (median): matchlock: ${breakdown('ours')}\n                reference, tree on tmpfs: ${breakdown('refShm')}\n`);
const value = best('refShm') / best('ours');
const pass = Number.isFinite(value) && value >= TARGET;
process.stdout.write(`\nimage build throughput ratio matchlock/reference (same storage): ${ratio(value)}  (target ≥ ${TARGET}x)  ${pass ? 'PASS' : 'FAIL'}\n`);
writeJson(args.json, { input, inputBytes, mke2fs: mkfs, samplesMs: samples, phasesMs: phases, ratio: value });
process.exitCode = pass ? 0 : 1;
