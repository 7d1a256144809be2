/**
 * The image store (`matchlock image list | inspect | rm | gc`): versions and `current`, images held open by a real
 * separate process or marked in use are never removed, leftovers of dead builds and interrupted removals or
 * publications are collected, and damaged metadata gives a clear error. Images are real, built by buildImage.
 */
import test from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMatchlockError, ErrorCodes } from '../../src/errors.ts';
import {
  buildImage, gcImages, inspectImage, listImages, markInUse, removeImage, resolveImage, unmarkInUse, type ImageEntry,
} from '../../src/images/index.ts';
import { runCli } from '../helpers/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-store-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const tarball = join(scratch, 'rootfs.tar');
{
  const src = join(scratch, 'src');
  mkdirSync(join(src, 'etc'), { recursive: true });
  writeFileSync(join(src, 'etc/os-release'), 'ID=matchlock-store-test\n');
  execFileSync('tar', ['-C', src, '-cf', tarball, '.']);
}

let dirs = 0;
/** Each test has its own images directory, as gc in one must not see another's. */
function imagesDir(): string {
  const dir = join(scratch, `images-${++dirs}`);
  mkdirSync(dir);
  return dir;
}

async function build(dir: string, name: string): Promise<{ id: string; dir: string; rootfs: string }> {
  await buildImage({ name, from: `rootfs:${tarball}`, imagesDir: dir });
  const r = resolveImage(dir, name);
  return { id: r.id, dir: r.dir, rootfs: r.rootfs };
}

/** A separate process (sleep) holding `file` open as its stdin; this process closes its own descriptor. */
function holdOpen(file: string): ChildProcess {
  const fd = openSync(file, 'r');
  try {
    return spawn('sleep', ['600'], { stdio: [fd, 'ignore', 'ignore'] });
  } finally {
    closeSync(fd);
  }
}

/** A live process that holds nothing of ours. */
const bystander = (): ChildProcess => spawn('sleep', ['600'], { stdio: 'ignore' });

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }
  });
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', () => resolve(child.pid!)));
}

const versionsOf = (images: readonly ImageEntry[], name: string): string[] => images.find((i) => i.name === name)?.versions.map((v) => v.id) ?? [];
const imageError = { instanceOf: Error, code: ErrorCodes.IMAGE };

test('list and inspect show every version; a rebuild makes a new current version and leaves the old one as it was', async (t) => {
  const dir = imagesDir();
  const old = await build(dir, 'base');
  const oldInode = statSync(old.rootfs).ino;
  const fresh = await build(dir, 'base');
  t.not(fresh.id, old.id);
  t.regex(fresh.id, /^[0-9a-f]{16}$/);
  t.is(statSync(old.rootfs).ino, oldInode, 'the old version is untouched');
  t.is(realpathSync(join(dir, 'base', 'rootfs.ext4')), realpathSync(fresh.rootfs), 'NAME/rootfs.ext4 follows current');

  const images = listImages(dir);
  t.is(images.length, 1);
  t.is(images[0]!.current, fresh.id);
  t.deepEqual(versionsOf(images, 'base'), [old.id, fresh.id].sort());
  for (const v of images[0]!.versions) {
    t.is(v.current, v.id === fresh.id);
    t.is(v.problem, null);
    t.like(v.meta, { name: 'base', source: `rootfs:${tarball}`, sizeBytes: statSync(join(v.dir, 'rootfs.ext4')).size, agentVersion: null });
    t.false(Number.isNaN(Date.parse(v.meta!.created)));
    t.deepEqual(v.inUse, []);
  }

  const current = inspectImage(dir, 'base');
  t.like(current, { id: fresh.id, current: true, rootfs: fresh.rootfs, inUse: [] });
  t.deepEqual([...current.versions], [old.id, fresh.id].sort());
  t.like(inspectImage(dir, 'base', old.id), { id: old.id, current: false, dir: old.dir });
  t.throws(() => inspectImage(dir, 'base', '0000000000000000'), { ...imageError, message: /has no version 0000000000000000/ });
  t.throws(() => inspectImage(dir, 'nope'), { ...imageError, message: /no image nope/ });
});

test('an image held open by another process is kept by rm and gc, naming the pid, and goes once that process exits', async (t) => {
  const dir = imagesDir();
  const old = await build(dir, 'held');
  const fresh = await build(dir, 'held');
  const holder = holdOpen(old.rootfs);
  try {
    const pid = holder.pid!;
    t.deepEqual(listImages(dir)[0]!.versions.find((v) => v.id === old.id)?.inUse, [pid]);
    t.deepEqual(inspectImage(dir, 'held', old.id).inUse, [pid]);
    t.throws(() => removeImage(dir, 'held', { version: old.id }), { ...imageError, message: new RegExp(`version ${old.id} is in use by pid ${pid}\\b`) });
    t.throws(() => removeImage(dir, 'held'), { ...imageError, message: new RegExp(`image held is in use by pid ${pid}\\b`) });
    t.throws(() => removeImage(dir, 'held', { version: fresh.id }), { ...imageError, message: /in use/ }, 'removing current removes the name, which is in use');
    const cli = await runCli(['image', 'rm', 'held', '--images-dir', dir]);
    t.is(cli.code, 1);
    t.regex(cli.stderr, new RegExp(`in use by pid ${pid}\\b.*\\[MATCHLOCK_ERR_IMAGE\\]`));
    const gc = gcImages(dir);
    t.false(gc.removed.some((r) => r.path === old.dir));
    t.true(existsSync(old.rootfs));
    t.is(resolveImage(dir, 'held').id, fresh.id);
  } finally {
    await stop(holder);
  }
  const gc = gcImages(dir);
  t.deepEqual(gc.removed.map((r) => [r.what, r.path]), [['version', old.dir]]);
  t.true(gc.bytesFreed > 0);
  t.false(existsSync(old.dir));
  t.is(resolveImage(dir, 'held').id, fresh.id, 'current stays');
  t.deepEqual(removeImage(dir, 'held').map((r) => r.what), ['name']);
  t.deepEqual(readdirSync(dir), [], 'no name and no trash left');
  t.throws(() => removeImage(dir, 'held'), { ...imageError, message: /no image held/ });
  t.deepEqual(removeImage(dir, 'held', { force: true }), []);
});

test('an in-use marker of a live process protects a version; a stale one (dead or recycled pid) does not and gc removes it', async (t) => {
  const dir = imagesDir();
  const old = await build(dir, 'marked');
  const fresh = await build(dir, 'marked');
  const live = bystander();
  try {
    const pid = live.pid!;
    markInUse(old.dir, pid);
    t.deepEqual(inspectImage(dir, 'marked', old.id).inUse, [pid]);
    t.throws(() => removeImage(dir, 'marked', { version: old.id }), { ...imageError, message: new RegExp(`in use by pid ${pid}\\b`) });
    t.false(gcImages(dir).removed.some((r) => r.path === old.dir));
    t.true(existsSync(old.dir));

    unmarkInUse(old.dir, pid);
    const dead = await deadPid();
    t.throws(() => markInUse(old.dir, dead), { ...imageError, message: /no such process/ });
    writeFileSync(join(old.dir, `.in-use-${dead}`), '12345\n'); // as left by a VM that died
    writeFileSync(join(old.dir, `.in-use-${pid}`), '1\n'); // a live pid, but not the process that wrote it
    writeFileSync(join(fresh.dir, `.in-use-${dead}`), '12345\n');
    t.deepEqual(inspectImage(dir, 'marked', old.id).inUse, []);
    const gc = gcImages(dir);
    t.deepEqual(gc.removed.map((r) => [r.what, r.path]).sort(), [
      ['marker', join(fresh.dir, `.in-use-${dead}`)], ['marker', join(old.dir, `.in-use-${dead}`)], ['marker', join(old.dir, `.in-use-${pid}`)], ['version', old.dir],
    ].sort());
    t.false(existsSync(old.dir));
    t.true(existsSync(fresh.rootfs));
  } finally {
    await stop(live);
  }
});

test('gc removes what dead builders and interrupted removals left, never a live build', async (t) => {
  const dir = imagesDir();
  const dead = await deadPid();
  for (const d of [`.build-x-${dead}/image`, `.build-x-${process.pid}/image`, `.publish-x-${dead}/0123456789abcdef`, '.trash-0123abcd/a/b']) {
    mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, d, 'f'), 'x'.repeat(10_000));
  }
  const gc = gcImages(dir);
  t.deepEqual(gc.removed.map((r) => [r.what, r.path]).sort(), [
    ['build', join(dir, `.build-x-${dead}`)], ['build', join(dir, `.publish-x-${dead}`)], ['trash', join(dir, '.trash-0123abcd')],
  ].sort());
  t.true(gc.bytesFreed >= 30_000);
  t.deepEqual(readdirSync(dir), [`.build-x-${process.pid}`]);
  t.deepEqual(listImages(dir), []);
});

test('interrupted publications: a version that never became current, and a name without current, are invisible and collected', async (t) => {
  const dir = imagesDir();
  const kept = await build(dir, 'pub');
  const other = imagesDir();
  const stray = await build(other, 'pub');
  renameSync(stray.dir, join(dir, 'pub', stray.id)); // as a crash between adding the version and flipping current leaves it
  mkdirSync(join(dir, '.trash-feedface'));
  t.is(resolveImage(dir, 'pub').id, kept.id);

  const orphan = await build(dir, 'orphan');
  unlinkSync(join(dir, 'orphan', 'current'));
  t.deepEqual(listImages(dir).map((i) => i.name), ['pub']);
  t.throws(() => resolveImage(dir, 'orphan'), { ...imageError, message: /no image orphan in/ });

  const gc = gcImages(dir);
  t.deepEqual(gc.removed.map((r) => [r.what, r.path]).sort(), [
    ['name', join(dir, 'orphan')], ['trash', join(dir, '.trash-feedface')], ['version', join(dir, 'pub', stray.id)], ['version', orphan.dir],
  ].sort());
  t.deepEqual(readdirSync(dir), ['pub']);
  t.deepEqual(versionsOf(listImages(dir), 'pub'), [kept.id]);
});

test('a publication that cannot happen fails the build and leaves nothing but what was there', async (t) => {
  const dir = imagesDir();
  writeFileSync(join(dir, 'taken'), 'not an image');
  await t.throwsAsync(build(dir, 'taken'), { ...imageError, message: /cannot publish image taken/ });
  t.deepEqual(readdirSync(dir), ['taken']);
});

test('a damaged image.json or current link gives one clear line, and list still shows the rest', async (t) => {
  const dir = imagesDir();
  const good = await build(dir, 'good');
  const bad = await build(dir, 'bad');
  const meta = join(bad.dir, 'image.json');
  writeFileSync(meta, '{"name": "evil", "source": "x"}');
  t.throws(() => resolveImage(dir, 'bad'), { ...imageError, message: /image\.json: "name" is "evil", not "bad", so the image is damaged or was edited/ });
  writeFileSync(meta, '{ not json');
  t.throws(() => inspectImage(dir, 'bad'), { ...imageError, message: /image\.json: not JSON/ });
  writeFileSync(meta, JSON.stringify({ name: 'bad', source: 'rootfs:x', sourceSha256: 'a'.repeat(64), sizeBytes: 4096, created: new Date().toISOString(), agentVersion: null }));
  t.throws(() => resolveImage(dir, 'bad'), { ...imageError, message: /rootfs\.ext4 is \d+ bytes but image\.json says 4096/ });

  const images = listImages(dir);
  const listed = images.find((i) => i.name === 'bad')!.versions[0]!;
  t.is(listed.meta, null);
  t.regex(listed.problem ?? '', /image\.json says 4096/);
  t.is(images.find((i) => i.name === 'good')!.versions[0]!.id, good.id);

  const cli = await runCli(['image', 'inspect', 'bad', '--images-dir', dir]);
  t.is(cli.code, 1);
  t.regex(cli.stderr, /^matchlock: .*image\.json says 4096.*\[MATCHLOCK_ERR_IMAGE\]\n$/);
  const table = await runCli(['image', 'list', '--images-dir', dir]);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /bad +[0-9a-f]{16} +yes .*damaged: /);

  unlinkSync(join(dir, 'good', 'current'));
  symlinkSync('../../etc', join(dir, 'good', 'current'));
  t.throws(() => resolveImage(dir, 'good'), { ...imageError, message: /current points at "\.\.\/\.\.\/etc", which is not a version/ });
  t.throws(() => resolveImage(dir, '../etc'), { ...imageError, message: /image name/ });
  t.true(isMatchlockError(t.throws(() => removeImage(dir, 'good', { version: '../x' })), ErrorCodes.IMAGE));
});

test('the CLI: list and inspect as tables and JSON, rm of one version and of an image, gc', async (t) => {
  const dir = imagesDir();
  const old = await build(dir, 'cli');
  const fresh = await build(dir, 'cli');
  const cli = (...args: string[]) => runCli(['image', ...args, '--images-dir', dir]);

  const json = await cli('list', '--json');
  t.is(json.code, 0, json.stderr);
  const listed = JSON.parse(json.stdout) as ImageEntry[];
  t.deepEqual(listed.map((i) => [i.name, i.current]), [['cli', fresh.id]]);
  t.deepEqual(versionsOf(listed, 'cli'), [old.id, fresh.id].sort());

  const table = await cli('list');
  t.regex(table.stdout, /^NAME +VERSION +CURRENT +CREATED +SIZE +AGENT +IN USE BY +SOURCE\n/);
  t.regex(table.stdout, new RegExp(`cli +${fresh.id} +yes +\\S+ +64\\.0 MiB +- +- +rootfs:`));
  t.regex(table.stdout, new RegExp(`cli +${old.id} {11}\\S`));

  const inspected = await cli('inspect', 'cli', '--version', old.id, '--json');
  t.like(JSON.parse(inspected.stdout), { id: old.id, current: false, dir: old.dir, meta: { name: 'cli' } });
  const human = await cli('inspect', 'cli');
  t.regex(human.stdout, new RegExp(`^version: +${fresh.id} \\(current\\)$`, 'm'));
  t.regex(human.stdout, /^in use by: +nobody$/m);

  const rmOld = await cli('rm', 'cli', '--version', old.id);
  t.is(rmOld.code, 0, rmOld.stderr);
  t.regex(rmOld.stdout, new RegExp(`^removed version ${old.id} of image cli \\(\\d+\\.\\d MiB freed\\)\n$`));
  t.false(existsSync(old.dir));

  mkdirSync(join(dir, '.trash-0badc0de'));
  const gc = await cli('gc', '--json');
  t.is(gc.code, 0, gc.stderr);
  t.like(JSON.parse(gc.stdout), { removed: [{ what: 'trash', path: join(dir, '.trash-0badc0de') }] });
  t.regex((await cli('gc')).stdout, /^nothing to remove in /);

  const rmAll = await cli('rm', 'cli');
  t.regex(rmAll.stdout, /^removed image cli/);
  t.regex((await cli('list')).stdout, /^no images in /);
  t.is((await cli('frobnicate')).code, 2);
  t.is((await cli('rm')).code, 2);
  t.is((await cli('list', '--version', 'x')).code, 2);
  const help = await runCli(['image', '--help']);
  t.regex(help.stdout, /matchlock image gc/);
});
