/**
 * Cache disks on real files with real e2fsprogs and real processes: leases raced by several processes, a holder
 * SIGKILLed (its disk checked with e2fsck and reused with its data), a disk whose superblocks are all garbage
 * (reset), warm reuse without e2fsck, per-repository keys, refused names and double releases, and the CLI.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { CacheStore, processStartTime, type Lease, type PoolConfig } from '../../src/cache/index.ts';
import { ErrorCodes } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import { REPO, runCli } from '../helpers/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-cache-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const NODE = `${REPO}node_modules/.bin/node`;
const HELPER = `${REPO}test/helpers/cache-acquire.ts`;
const CACHE = { code: ErrorCodes.CACHE };

const pool = (name: string, over: Partial<PoolConfig> = {}): PoolConfig => ({ name, sizeMib: 64, maxDisks: 3, perRepository: false, mountPath: '/cache', ...over });

function memoryLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { log, lines };
}

function openStore(t: ExecutionContext, dir: string, pools: readonly PoolConfig[], log: Logger = pino({ level: 'silent' })): CacheStore {
  const store = CacheStore.open({ dir, log, pools });
  t.teardown(() => store.close());
  return store;
}

async function leaseOf(store: CacheStore, req: { pool: string; repository?: string }): Promise<Lease> {
  const lease = await store.acquire({ ...req, holderPid: process.pid });
  if (lease === null) throw new Error(`no disk free in ${req.pool}`);
  return lease;
}

/** A file put into the ext4 image with debugfs (no mount), and read back. */
function putFile(img: string, name: string, content: string): void {
  const host = join(scratch, `put-${randomBytes(4).toString('hex')}`);
  writeFileSync(host, content);
  execFileSync('debugfs', ['-w', '-R', `write ${host} ${name}`, img], { stdio: 'ignore' });
}
const catFile = (img: string, name: string): string => execFileSync('debugfs', ['-R', `cat /${name}`, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
const listRoot = (img: string): string => execFileSync('debugfs', ['-R', 'ls -l /', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
const fsckClean = (img: string): number | null => spawnSync('e2fsck', ['-fn', img], { stdio: 'ignore' }).status;

/** Overwrites superblocks (and the group descriptors after them) with garbage: the primary only, or every copy. */
function corruptSuperblocks(img: string, which: 'primary' | 'all'): void {
  const dump = execFileSync('dumpe2fs', [img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const blockSize = Number(/^Block size:\s+(\d+)/m.exec(dump)?.[1]);
  const blocks = [...dump.matchAll(/superblock at (\d+)/gi)].map((m) => Number(m[1]));
  const offsets = blocks.map((b) => (b === 0 ? 1024 : b * blockSize));
  if (offsets.length < 2) throw new Error(`dumpe2fs found no backup superblocks in ${img}`);
  const fd = openSync(img, 'r+');
  try {
    for (const off of which === 'primary' ? offsets.slice(0, 1) : offsets) writeSync(fd, randomBytes(4096), 0, 4096, off);
  } finally {
    closeSync(fd);
  }
}

/** A separate process holding leases (test/helpers/cache-acquire.ts), driven line by line. */
class Holder {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<void>;
  private readonly lines: string[] = [];
  private readonly waiting: ((line: string | null) => void)[] = [];
  private stderr = '';

  constructor(t: ExecutionContext, dir: string, p: PoolConfig, repository?: string) {
    this.child = spawn(NODE, [HELPER, dir, JSON.stringify(p), ...(repository === undefined ? [] : [repository])], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8').on('data', (c: string) => { this.stderr += c; });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const w = this.waiting.shift();
      if (w === undefined) this.lines.push(line);
      else w(line);
    });
    this.exited = new Promise((resolve) => this.child.on('exit', () => {
      for (const w of this.waiting.splice(0)) w(null);
      resolve();
    }));
    t.teardown(() => { this.child.kill('SIGKILL'); });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async next(): Promise<Record<string, unknown>> {
    const line = this.lines.shift() ?? await new Promise<string | null>((resolve) => this.waiting.push(resolve));
    if (line === null) throw new Error(`holder ${this.pid} exited: ${this.stderr}`);
    return JSON.parse(line) as Record<string, unknown>;
  }

  async send(cmd: string): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${cmd}\n`);
    return this.next();
  }

  async acquire(): Promise<Lease | null> {
    const r = await this.send('go');
    if (!('lease' in r)) throw new Error(`holder ${this.pid} failed: ${JSON.stringify(r)}`);
    return r['lease'] as Lease | null;
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited; // reaped: /proc/PID is gone
  }
}

test('two concurrent leases never get the same disk: 8 processes race for 3 disks; 3 distinct disks leased, 5 get none', async (t) => {
  const dir = join(scratch, 'race');
  const p = pool('race', { maxDisks: 3 });
  const holders = Array.from({ length: 8 }, () => new Holder(t, dir, p));
  for (const h of holders) t.deepEqual(await h.next(), { ready: true }); // all have opened the store
  const leases = await Promise.all(holders.map((h) => h.acquire())); // and now race
  const won = leases.filter((l): l is Lease => l !== null);
  t.is(won.length, 3);
  t.is(leases.filter((l) => l === null).length, 5);
  t.is(new Set(won.map((l) => l.path)).size, 3, 'no disk shared');
  t.is(new Set(won.map((l) => l.id)).size, 3);
  t.deepEqual(won.map((l) => l.n).sort(), [0, 1, 2]);
  for (const l of won) {
    t.is(l.checked, 'new');
    t.is(fsckClean(l.path), 0, `${l.path} is a clean ext4 file system`);
  }
  const disks = openStore(t, dir, []).list();
  t.is(disks.length, 3);
  for (const d of disks) {
    const winner = holders[leases.findIndex((l) => l?.path === d.path)];
    t.like(d, { state: 'leased', holderAlive: true, holderPid: winner?.pid });
  }
});

test('concurrent acquires in one process get distinct disks too', async (t) => {
  const store = openStore(t, join(scratch, 'same-process'), [pool('same', { maxDisks: 3 })]);
  const leases = await Promise.all(Array.from({ length: 5 }, () => store.acquire({ pool: 'same', holderPid: process.pid })));
  const won = leases.filter((l): l is Lease => l !== null);
  t.is(won.length, 3);
  t.is(new Set(won.map((l) => l.path)).size, 3);
});

test('a lease whose holder is SIGKILLed is reclaimed: e2fsck runs, the disk and its data are reused', async (t) => {
  const dir = join(scratch, 'crash');
  const p = pool('crash', { maxDisks: 1 });
  const h = new Holder(t, dir, p);
  await h.next();
  const first = await h.acquire();
  if (first === null) return t.fail('the holder got no disk');
  putFile(first.path, 'data.txt', 'kept across the crash\n');
  const store = openStore(t, dir, [p]);
  t.is(await store.acquire({ pool: 'crash', holderPid: process.pid }), null, 'the only disk is held by a running process');
  await h.kill();
  t.like(store.list()[0], { state: 'leased', holderPid: h.pid, holderAlive: false });
  const second = await leaseOf(store, { pool: 'crash' });
  t.is(second.path, first.path);
  t.not(second.id, first.id);
  t.true(second.checked === 'clean' || second.checked === 'repaired', second.checked);
  t.truthy(second.fsck, 'e2fsck ran after the unclean end');
  t.true((second.fsck?.exitCode ?? 99) <= 2);
  t.is(second.generation, first.generation);
  t.is(catFile(second.path, 'data.txt'), 'kept across the crash\n');
  t.like(store.list()[0], { state: 'leased', holderPid: process.pid, holderAlive: true, leaseId: second.id });
});

test('a corrupt disk is reset: all superblocks garbage → e2fsck fails, the file system is made again, generation bumped, data gone', async (t) => {
  const { log, lines } = memoryLog();
  const store = openStore(t, join(scratch, 'corrupt'), [pool('corrupt', { maxDisks: 1 })], log);
  const a = await leaseOf(store, { pool: 'corrupt' });
  putFile(a.path, 'data.txt', 'old data\n');
  store.release(a.id, { clean: false });
  t.like(store.list()[0], { state: 'dirty' });
  corruptSuperblocks(a.path, 'all');
  t.not(fsckClean(a.path), 0, 'the damage is real');
  const b = await leaseOf(store, { pool: 'corrupt' });
  t.is(b.checked, 'reset');
  t.is(b.path, a.path);
  t.true((b.fsck?.exitCode ?? 0) >= 4, `e2fsck exit ${String(b.fsck?.exitCode)}`);
  t.is(b.generation, a.generation + 1);
  t.is(fsckClean(b.path), 0);
  t.notRegex(listRoot(b.path), /data\.txt/);
  const warn = lines.find((l) => l['msg'] === 'cache disk corrupt, resetting it');
  t.like(warn, { level: 40, disk: a.path, pool: 'corrupt', n: 0 });
  t.regex(String(warn?.['summary']), /superblock|magic/i, 'the log carries e2fsck\'s summary');
});

test('a damaged primary superblock is repaired from a backup: checked is repaired and the data is kept', async (t) => {
  const store = openStore(t, join(scratch, 'repair'), [pool('repair', { maxDisks: 1 })]);
  const a = await leaseOf(store, { pool: 'repair' });
  putFile(a.path, 'data.txt', 'survives\n');
  store.release(a.id, { clean: false });
  corruptSuperblocks(a.path, 'primary');
  const b = await leaseOf(store, { pool: 'repair' });
  t.is(b.checked, 'repaired');
  t.true(b.fsck?.exitCode === 1 || b.fsck?.exitCode === 2);
  t.is(b.generation, a.generation);
  t.is(catFile(b.path, 'data.txt'), 'survives\n');
});

test('a clean release gives the same disk to the next job, warm and without e2fsck; the most recently used first', async (t) => {
  const store = openStore(t, join(scratch, 'warm'), [pool('warm', { maxDisks: 2 })]);
  const a = await leaseOf(store, { pool: 'warm' });
  const b = await leaseOf(store, { pool: 'warm' });
  putFile(b.path, 'warm.txt', 'cached\n');
  store.release(a.id, { clean: true });
  await sleep(20);
  store.release(b.id, { clean: true });
  const c = await leaseOf(store, { pool: 'warm' });
  t.is(c.path, b.path, 'the most recently used disk');
  t.is(c.checked, 'clean');
  t.is(c.fsck, null, 'no e2fsck after a clean release');
  t.is(c.generation, b.generation);
  t.is(catFile(c.path, 'warm.txt'), 'cached\n');
  const d = await leaseOf(store, { pool: 'warm' });
  t.is(d.path, a.path);
  t.like(d, { checked: 'clean', fsck: null });
  t.is(await store.acquire({ pool: 'warm', holderPid: process.pid }), null);
  store.release(c.id, { clean: false });
  const e = await leaseOf(store, { pool: 'warm' });
  t.is(e.path, c.path);
  t.truthy(e.fsck, 'an unclean release is checked before reuse');
  t.is(catFile(e.path, 'warm.txt'), 'cached\n');
});

test('per-repository keys isolate disks; the key is the repository in lower case; a shared pool ignores it', async (t) => {
  const dir = join(scratch, 'repos');
  const store = openStore(t, dir, [pool('repos', { perRepository: true, maxDisks: 1, mountPath: '/var/cache/ci' }), pool('shared', { maxDisks: 1 })]);
  const x = await leaseOf(store, { pool: 'repos', repository: 'Octo-Org/App.js' });
  const y = await leaseOf(store, { pool: 'repos', repository: 'octo-org/other' });
  t.like(x, { key: 'octo-org__app.js', path: join(dir, 'repos', 'octo-org__app.js', '0.ext4'), mountPath: '/var/cache/ci' });
  t.like(y, { key: 'octo-org__other', path: join(dir, 'repos', 'octo-org__other', '0.ext4') });
  t.is(await store.acquire({ pool: 'repos', repository: 'OCTO-ORG/app.js', holderPid: process.pid }), null, 'the same repository, its one disk leased');
  await t.throwsAsync(store.acquire({ pool: 'repos', holderPid: process.pid }), { ...CACHE, message: /per repository/ });
  for (const bad of ['octo', 'octo/app/x', '../x', 'octo/..', 'octo/.', '-octo/app', 'octo/ap p', 'oc_to/app', '/app', 'octo/', `${'a'.repeat(40)}/x`]) {
    await t.throwsAsync(store.acquire({ pool: 'repos', repository: bad, holderPid: process.pid }), { ...CACHE, message: /not a GitHub OWNER\/REPO/ }, bad);
  }
  const s = await leaseOf(store, { pool: 'shared', repository: 'octo-org/app.js' });
  t.like(s, { key: '_shared', path: join(dir, 'shared', '_shared', '0.ext4') });
  t.is(await store.acquire({ pool: 'shared', repository: 'someone/else', holderPid: process.pid }), null);
});

test('bad pool configurations are refused with MATCHLOCK_ERR_CACHE, before anything is made', (t) => {
  const dir = join(scratch, 'bad-config');
  const bad: Partial<PoolConfig>[] = [
    { name: '../x' }, { name: 'Cache' }, { name: 'cache.db' }, { name: '' }, { name: 'a'.repeat(65) },
    { sizeMib: 63 }, { sizeMib: 1_048_577 }, { sizeMib: 64.5 }, { maxDisks: 0 }, { maxDisks: 65 }, { maxDisks: 1.5 },
    { mountPath: 'cache' }, { mountPath: '/' }, { mountPath: '/a/../b' }, { mountPath: '/a b' },
  ];
  for (const over of bad) t.throws(() => CacheStore.open({ dir, log: pino({ level: 'silent' }), pools: [pool('ok', over)] }), CACHE, JSON.stringify(over));
  t.throws(() => CacheStore.open({ dir, log: pino({ level: 'silent' }), pools: [pool('twice'), pool('twice')] }), { ...CACHE, message: /configured twice/ });
  t.false(existsSync(dir));
});

test('a double or unknown release is refused and changes nothing; unknown pools and dead holders are refused', async (t) => {
  const store = openStore(t, join(scratch, 'release'), [pool('rel', { maxDisks: 1 })]);
  const a = await leaseOf(store, { pool: 'rel' });
  store.release(a.id, { clean: true });
  const before = store.list();
  t.throws(() => store.release(a.id, { clean: false }), { ...CACHE, message: /not held/ });
  t.throws(() => store.release('no-such-lease', { clean: true }), { ...CACHE, message: /not held/ });
  t.deepEqual(store.list(), before);
  t.like(before[0], { state: 'free' });
  await t.throwsAsync(store.acquire({ pool: 'nope', holderPid: process.pid }), { ...CACHE, message: /unknown cache pool nope/ });
  const gone = spawn('true');
  await new Promise((resolve) => gone.on('exit', resolve));
  await t.throwsAsync(store.acquire({ pool: 'rel', holderPid: gone.pid ?? -1 }), { ...CACHE, message: /is not running/ });
  t.deepEqual(store.list(), before);
});

test('a holder is its pid and start time, read past a process name with spaces and parentheses', async (t) => {
  const odd = join(scratch, 'sl) 1 2 (x');
  execFileSync('ln', ['-s', '/bin/sleep', odd]);
  const child = spawn(odd, ['30']);
  t.teardown(() => { child.kill('SIGKILL'); });
  await sleep(100);
  t.regex(readFileSync(`/proc/${child.pid}/stat`, 'utf8'), /\(sl\) 1 2 \(x\)/);
  const own = processStartTime(process.pid);
  const its = processStartTime(child.pid ?? -1);
  const ticksNow = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100;
  t.true(own !== null && its !== null && its >= own && its <= ticksNow + 100, `own ${own}, its ${its}, now ${ticksNow}`);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  t.is(processStartTime(child.pid ?? -1), null);
});

test('cache list / reset / rm through the CLI: leased disks are refused, free ones reset and removed', async (t) => {
  const dir = join(scratch, 'cli');
  const store = openStore(t, dir, [pool('cli', { maxDisks: 2 })]);
  const a = await leaseOf(store, { pool: 'cli' });
  const b = await leaseOf(store, { pool: 'cli' });
  putFile(b.path, 'old.txt', 'old\n');
  store.release(b.id, { clean: true });
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(['cache', ...args, '--cache-dir', dir]);

  const list = await cli('list');
  t.is(list.code, 0, list.stderr);
  const [header, row0, row1] = list.stdout.trim().split('\n');
  t.regex(header ?? '', /^POOL\s+KEY\s+N\s+SIZE\s+STATE\s+GEN\s+HOLDER\s+LAST USED$/);
  t.regex(row0 ?? '', new RegExp(`^cli\\s+_shared\\s+0\\s+64 MiB\\s+leased\\s+1\\s+pid ${process.pid}\\s+-$`));
  t.regex(row1 ?? '', /^cli\s+_shared\s+1\s+64 MiB\s+free\s+1\s+-\s+\d{4}-\d\d-\d\dT/);

  const rm = await cli('rm', 'cli');
  t.is(rm.code, 1);
  t.regex(rm.stderr, new RegExp(`cannot rm leased cache disks cli/_shared/0 \\(pid ${process.pid}\\).*\\[MATCHLOCK_ERR_CACHE\\]`));
  t.true(existsSync(a.path) && existsSync(b.path), 'nothing removed');
  t.deepEqual(store.list().map((d) => d.state), ['leased', 'free']);
  const resetLeased = await cli('reset', 'cli', '--disk', '0');
  t.is(resetLeased.code, 1);
  t.regex(resetLeased.stderr, /cannot reset leased cache disks cli\/_shared\/0.*\[MATCHLOCK_ERR_CACHE\]/);

  const reset = await cli('reset', 'cli', '--disk', '1');
  t.is(reset.code, 0, reset.stderr);
  t.regex(reset.stdout, /^reset cli\/_shared\/1 /);
  t.like(store.list()[1], { state: 'free', generation: 2 });
  t.like(store.list()[0], { state: 'leased', generation: 1, leaseId: a.id });
  t.notRegex(listRoot(b.path), /old\.txt/);
  t.is(fsckClean(b.path), 0);

  t.is((await cli('reset', 'cli', '--repository', 'octo/app')).code, 1, 'a shared pool has no repositories');
  t.is((await cli('reset', 'cli', '--disk', 'x')).code, 2);
  t.is((await cli('reset')).code, 2);
  t.regex((await cli('rm', 'nope')).stderr, /unknown cache pool nope.*\[MATCHLOCK_ERR_CACHE\]/);

  store.release(a.id, { clean: true });
  const rmAll = await cli('rm', 'cli');
  t.is(rmAll.code, 0, rmAll.stderr);
  t.regex(rmAll.stdout, /removed cli\/_shared\/0 .*\nremoved cli\/_shared\/1 /);
  t.false(existsSync(join(dir, 'cli')), 'the pool directory is gone');
  t.deepEqual(store.list(), []);
  t.regex((await cli('list')).stdout, /^POOL.*\n?$/);
  t.is((await runCli(['cache', 'list', '--cache-dir', join(scratch, 'no-cache-here')])).stdout, `no cache disks in ${join(scratch, 'no-cache-here')}\n`);
});

test('the CLI resets and removes one repository\'s disks, including one whose holder died', async (t) => {
  const dir = join(scratch, 'cli-repos');
  const p = pool('per-repo', { perRepository: true, maxDisks: 1 });
  const h = new Holder(t, dir, p, 'octo/one');
  await h.next();
  const one = await h.acquire();
  if (one === null) return t.fail('the holder got no disk');
  await h.kill();
  const store = openStore(t, dir, [p]);
  const two = await leaseOf(store, { pool: 'per-repo', repository: 'octo/two' });
  store.release(two.id, { clean: true });
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(['cache', ...args, '--cache-dir', dir]);

  t.regex((await cli('list')).stdout, new RegExp(`per-repo\\s+octo__one\\s+0\\s+64 MiB\\s+leased\\s+1\\s+pid ${h.pid} \\(dead\\)`));
  const noRepo = await cli('reset', 'per-repo', '--disk', '0');
  t.is(noRepo.code, 1);
  t.regex(noRepo.stderr, /give the repository/);
  const reset = await cli('reset', 'per-repo', '--repository', 'octo/one', '--disk', '0');
  t.is(reset.code, 0, reset.stderr);
  t.like(store.list().find((d) => d.key === 'octo__one'), { state: 'free', generation: 2, holderPid: null });
  const rm = await cli('rm', 'per-repo', '--repository', 'octo/one');
  t.is(rm.code, 0, rm.stderr);
  t.false(existsSync(join(dir, 'per-repo', 'octo__one')));
  t.true(existsSync(two.path), 'the other repository keeps its disk');
  t.deepEqual(store.list().map((d) => d.key), ['octo__two']);
});
