/**
 * Applying image layers: real archives made by GNU tar, OCI whiteouts across two layers, and hostile archives
 * (made with tar-stream's packer, as tar itself will not make most of them) that must be refused with nothing
 * written outside the tree.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack, type Header } from 'tar-stream';
import { DEFAULT_LIMITS, applyLayer } from '../../src/images/layer-apply.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-layers-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const dir = (): string => {
  const d = join(scratch, `t${n++}`);
  mkdirSync(d);
  return d;
};

/** A tar stream of the given entries (tar-stream's packer). */
function archive(entries: readonly (Partial<Header> & { name: string; body?: string })[], truncateTo?: number): Readable {
  const p = pack();
  for (const { body, ...h } of entries) p.entry(h as Header, body ?? ''); // tar-stream fills in what is left out
  p.finalize();
  if (truncateTo === undefined) return Readable.from(p);
  return Readable.from((async function* () {
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    yield Buffer.concat(chunks).subarray(0, truncateTo);
  })());
}

test('a layer made by GNU tar: files, modes, directories, symlinks, hard links, owners', async (t) => {
  const src = dir();
  mkdirSync(join(src, 'usr/bin'), { recursive: true });
  writeFileSync(join(src, 'usr/bin/tool'), '#!/bin/sh\necho hi\n');
  chmodSync(join(src, 'usr/bin/tool'), 0o4755);
  writeFileSync(join(src, 'data'), Buffer.alloc(200_000, 7));
  chmodSync(join(src, 'data'), 0o600);
  symlinkSync('usr/bin/tool', join(src, 'link'));
  execFileSync('ln', [join(src, 'data'), join(src, 'data.hard')]);
  const tarFile = join(scratch, `real-${n}.tar`);
  execFileSync('tar', ['-C', src, '--owner=1234', '--group=5678', '-cf', tarFile, '.']);
  const out = dir();
  const stats = await applyLayer(createReadStream(tarFile), out);
  t.true(stats.entries >= 6);
  t.is(readFileSync(join(out, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
  t.is(lstatSync(join(out, 'usr/bin/tool')).mode & 0o7777, 0o4755, 'set-uid kept');
  t.is(lstatSync(join(out, 'data')).mode & 0o7777, 0o600);
  t.deepEqual(readFileSync(join(out, 'data')), Buffer.alloc(200_000, 7));
  t.is(readlinkSync(join(out, 'link')), 'usr/bin/tool');
  t.is(lstatSync(join(out, 'data.hard')).ino, lstatSync(join(out, 'data')).ino, 'a hard link, not a copy');
  if (DEFAULT_LIMITS.keepOwners) t.like(lstatSync(join(out, 'data')), { uid: 1234, gid: 5678 });
});

test('OCI whiteouts: .wh.NAME removes from the layers below, .wh..wh..opq empties a directory', async (t) => {
  const out = dir();
  await applyLayer(archive([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/keep', body: 'k' }, { name: 'etc/gone', body: 'g' },
    { name: 'var/cache/', type: 'directory', mode: 0o755 }, { name: 'var/cache/a', body: 'a' }, { name: 'var/cache/b/c', body: 'c' },
  ]), out);
  const stats = await applyLayer(archive([
    { name: 'etc/.wh.gone', body: '' },
    { name: 'var/cache/.wh..wh..opq', body: '' },
    { name: 'var/cache/new', body: 'n' },
  ]), out);
  t.is(stats.whiteouts, 2);
  t.true(existsSync(join(out, 'etc/keep')));
  t.false(existsSync(join(out, 'etc/gone')));
  t.false(existsSync(join(out, 'etc/.wh.gone')), 'whiteout files themselves are not kept');
  t.deepEqual(execFileSync('ls', ['-A', join(out, 'var/cache')], { encoding: 'utf8' }).trim().split('\n'), ['new']);
});

const outside = join(scratch, 'outside');
mkdirSync(outside);

const HOSTILE: readonly [string, () => Readable, RegExp][] = [
  ['an absolute path', () => archive([{ name: '/etc/evil', body: 'x' }]), /absolute path/],
  ['a ".." path', () => archive([{ name: 'a/../../outside/evil', body: 'x' }]), /climbs out/],
  ['a write through a symlink that escapes', () => archive([{ name: 'esc', type: 'symlink', linkname: outside }, { name: 'esc/evil', body: 'x' }]), /goes through the symlink esc/],
  ['a hard link to outside', () => archive([{ name: 'h', type: 'link', linkname: '../outside/x' }]), /climbs out/],
  ['a hard link to an absolute path', () => archive([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]), /absolute path/],
  ['a device node', () => archive([{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 }]), /device node/],
  ['a whiteout that climbs out', () => archive([{ name: '.wh...', body: '' }]), /climbs out/],
  ['a truncated archive', () => archive([{ name: 'big', body: 'y'.repeat(10_000) }], 3000), /truncated or corrupt/],
];

for (const [what, make, mention] of HOSTILE) {
  test(`hostile archive, ${what}: refused, nothing written outside the tree`, async (t) => {
    writeFileSync(join(outside, 'x'), 'untouched');
    const out = dir();
    await t.throwsAsync(applyLayer(make(), out), { code: 'MATCHLOCK_ERR_IMAGE', message: mention });
    t.deepEqual(execFileSync('ls', ['-A', outside], { encoding: 'utf8' }).trim().split('\n'), ['x']);
    t.is(readFileSync(join(outside, 'x'), 'utf8'), 'untouched');
  });
}

test('absurd sizes are refused before anything is written: one entry over the limit, or the layer over its total', async (t) => {
  const limits = { ...DEFAULT_LIMITS, maxEntryBytes: 1000, maxTotalBytes: 1500 };
  await t.throwsAsync(applyLayer(archive([{ name: 'a', body: 'x'.repeat(1001) }]), dir(), limits), { message: /more than the 1000 allowed/ });
  await t.throwsAsync(applyLayer(archive([{ name: 'a', body: 'x'.repeat(900) }, { name: 'b', body: 'x'.repeat(900) }]), dir(), limits), { message: /more than 1500 bytes/ });
});
