/**
 * Applying image layers: real archives made by GNU tar (xattrs included), OCI whiteouts and hard links across
 * layers, device nodes under the /dev/-only policy, and hostile archives (made with tar-stream's packer, as tar
 * itself will not make most of them) that must be refused with nothing written outside the tree, also when they
 * come inside an OCI layout or a docker-archive.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack, type Header } from 'tar-stream';
import { buildImage } from '../../src/images/index.ts';
import { DEFAULT_LIMITS, applyLayer } from '../../src/images/layer-apply.ts';
import { rootSuite } from '../helpers/root.ts';
import { header, member, pax, paxRecord, tarOf } from '../helpers/tar-bytes.ts';

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

/** The same, as bytes. */
async function tarBytes(entries: readonly (Partial<Header> & { name: string; body?: string | Buffer })[]): Promise<Buffer> {
  const p = pack();
  for (const { body, ...h } of entries) p.entry(h as Header, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
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

/** Hostile layers, as bytes: made with tar-stream's packer, or byte by byte where no packer would write them. */
const HOSTILE: readonly [string, () => Promise<Buffer> | Buffer, RegExp][] = [
  ['an absolute path', () => tarBytes([{ name: '/etc/evil', body: 'x' }]), /absolute path/],
  ['a ".." path', () => tarBytes([{ name: 'a/../../outside/evil', body: 'x' }]), /climbs out/],
  ['a write through a symlink that escapes', () => tarBytes([{ name: 'esc', type: 'symlink', linkname: outside }, { name: 'esc/evil', body: 'x' }]), /goes through the symlink esc/],
  ['a hard link to outside', () => tarBytes([{ name: 'h', type: 'link', linkname: '../outside/x' }]), /climbs out/],
  ['a hard link to an absolute path', () => tarBytes([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]), /absolute path/],
  ['a device node outside /dev/', () => tarBytes([{ name: 'etc/sda', type: 'block-device', devmajor: 8, devminor: 0 }]), /is a device node outside \/dev\/, and device nodes are allowed only under \/dev\//],
  ['a device node that is /dev itself', () => tarBytes([{ name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), /device node outside \/dev\//],
  ['a hard link through a symlink', () => tarBytes([{ name: 'esc', type: 'symlink', linkname: outside }, { name: 'h', type: 'link', linkname: 'esc/x' }]), /goes through the symlink esc/],
  ['a whiteout through a symlink', () => tarBytes([{ name: 'esc', type: 'symlink', linkname: outside }, { name: 'esc/.wh.x', body: '' }]), /goes through the symlink esc/],
  ['an opaque marker through a symlink', () => tarBytes([{ name: 'esc', type: 'symlink', linkname: outside }, { name: 'esc/.wh..wh..opq', body: '' }]), /marks esc opaque, which is not a directory/],
  ['an archive cut at an entry boundary (no end-of-archive marker)', async () => (await tarBytes([{ name: 'a', body: 'y'.repeat(512) }])).subarray(0, 1024), /without the end-of-archive marker/],
  ['a whiteout that climbs out', () => tarBytes([{ name: '.wh...', body: '' }]), /climbs out/],
  ['a truncated archive', async () => (await tarBytes([{ name: 'big', body: 'y'.repeat(10_000) }])).subarray(0, 3000), /truncated or corrupt/],
  // What only a long header can say: the names that count are the PAX or GNU ones, not the header's own.
  ['a PAX path that climbs out (the header\'s name is harmless)', () => tarOf(pax([paxRecord('path', '../outside/evil')]), member({ name: 'harmless' }, 'x')), /climbs out/],
  ['a GNU long name that is absolute', () => tarOf(member({ name: '././@LongLink', flag: 'L', magic: 'gnu' }, `${outside}/evil\0`), member({ name: 'harmless', magic: 'gnu' }, 'x')), /absolute path/],
  ['a global PAX path that climbs out, applied through a local header', () => tarOf(pax([paxRecord('path', '../outside/evil')], 'g'), pax([paxRecord('mtime', '1')]), member({ name: 'harmless' }, 'x')), /climbs out/],
  ['a PAX linkpath: a hard link to an absolute path', () => tarOf(pax([paxRecord('linkpath', '/etc/passwd')]), member({ name: 'h', flag: '1', linkname: 'harmless' })), /absolute path/],
  ['a symlink out by a GNU long link, then a PAX path through it', () => tarOf(
    member({ name: '././@LongLink', flag: 'K', magic: 'gnu' }, `${outside}\0`), member({ name: 'esc', flag: '2', linkname: 'harmless', magic: 'gnu' }),
    pax([paxRecord('path', 'esc/evil')]), member({ name: 'harmless' }, 'x'),
  ), /goes through the symlink esc/],
  ['a symlink whose PAX linkpath has a NUL in it', () => tarOf(pax([paxRecord('linkpath', 'a\0b')]), member({ name: 's', flag: '2', linkname: 'x' })), /symlink whose target has a NUL byte/],
  ['a PAX path with a NUL in it', () => tarOf(pax([paxRecord('path', 'a\0/../../outside/evil')]), member({ name: 'harmless' }, 'x')), /has a NUL byte/],
  ['a device node under /dev/ by its header, outside by its PAX path', () => tarOf(pax([paxRecord('path', 'etc/null')]), member({ name: 'dev/null', flag: '3', devmajor: 1, devminor: 3 })), /device node outside \/dev\//],
  ['a PAX size past the end of the archive', () => tarOf(pax([paxRecord('size', '100000')]), member({ name: 'a' }, 'x')), /truncated or corrupt/],
  ['a bad header checksum', () => tarOf(member({ name: 'a' }, 'x'), member({ name: 'b', checksum: 7 }, 'y')), /bad checksum/],
  ['a negative size', () => tarOf(header({ name: 'a', raw: { size: Buffer.alloc(12, 0xff) } })), /invalid number/],
  ['a malformed PAX record', () => tarOf(pax([Buffer.from('99 path=a\n')]), member({ name: 'a' }, 'x')), /malformed PAX/],
  ['a PAX header over 4 MiB', () => Buffer.concat([header({ name: 'PaxHeaders/x', flag: 'x', size: 5 * 1024 * 1024 }), Buffer.alloc(5 * 1024 * 1024 + 1024)]), /larger than 4 MiB/],
  ['an archive cut inside a header', () => tarOf(member({ name: 'a' }, 'x')).subarray(0, 1024 + 100), /truncated or corrupt/],
];

/** Applies `tar` as a stream, or read from a file where it starts at an offset (the way an uncompressed tarball is read). */
async function applyAs(how: 'stream' | 'file', tar: Buffer, out: string): Promise<void> {
  if (how === 'stream') {
    await applyLayer(Readable.from([tar.subarray(0, 700), tar.subarray(700)]), out);
    return;
  }
  const file = join(scratch, `layer-${n++}.tar`);
  writeFileSync(file, Buffer.concat([Buffer.alloc(1536, 0x5a), tar]));
  const fd = openSync(file, 'r');
  try {
    await applyLayer(createReadStream(file, { start: 1536 }), out, DEFAULT_LIMITS, { fd, offset: 1536 });
  } finally {
    closeSync(fd);
  }
}

for (const [what, make, mention] of HOSTILE) {
  for (const how of ['stream', 'file'] as const) {
    test(`hostile archive, ${what}, read as a ${how}: refused, nothing written outside the tree`, async (t) => {
      writeFileSync(join(outside, 'x'), 'untouched');
      const out = dir();
      await t.throwsAsync(applyAs(how, await make(), out), { code: 'MATCHLOCK_ERR_IMAGE', message: mention });
      t.deepEqual(execFileSync('ls', ['-A', outside], { encoding: 'utf8' }).trim().split('\n'), ['x']);
      t.is(readFileSync(join(outside, 'x'), 'utf8'), 'untouched');
    });
  }
}

test('absurd sizes are refused before anything is written: one entry over the limit, or the layer over its total', async (t) => {
  const limits = { ...DEFAULT_LIMITS, maxEntryBytes: 1000, maxTotalBytes: 1500 };
  await t.throwsAsync(applyLayer(archive([{ name: 'a', body: 'x'.repeat(1001) }]), dir(), limits), { message: /more than the 1000 allowed/ });
  await t.throwsAsync(applyLayer(archive([{ name: 'a', body: 'x'.repeat(900) }, { name: 'b', body: 'x'.repeat(900) }]), dir(), limits), { message: /more than 1500 bytes/ });
});

// Root: device nodes, owners, trusted.* and security.* xattrs.
const root = rootSuite(import.meta.url);
const major = (rdev: number): number => Math.floor(rdev / 256) & 0xfff;
const minor = (rdev: number): number => (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);

root.test('device nodes: under /dev/ by default (char 1:3, block 8:0), nowhere with devices "none"; FIFOs anywhere', async (t) => {
  const out = dir();
  const stats = await applyLayer(archive([
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
    { name: 'dev/big', type: 'character-device', devmajor: 4095, devminor: 200_000, mode: 0o600 }, // tar-stream's packer stops at 262143
    { name: 'run/initctl', type: 'fifo', mode: 0o600 },
  ]), out);
  t.is(stats.devices, 3);
  const nul = lstatSync(join(out, 'dev/null'));
  t.true(nul.isCharacterDevice());
  t.deepEqual([major(nul.rdev), minor(nul.rdev), nul.mode & 0o7777], [1, 3, 0o666], 'numbers and mode (not cut by the umask)');
  const sda = lstatSync(join(out, 'dev/sda'));
  t.true(sda.isBlockDevice());
  t.deepEqual([major(sda.rdev), minor(sda.rdev), sda.gid], [8, 0, 6]);
  const big = lstatSync(join(out, 'dev/big'));
  t.deepEqual([major(big.rdev), minor(big.rdev)], [4095, 200_000], 'the largest major Linux has, a minor over 16 bits');
  t.true(lstatSync(join(out, 'run/initctl')).isFIFO());
  await t.throwsAsync(applyLayer(archive([{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 }]), dir(), { ...DEFAULT_LIMITS, devices: 'none' }), {
    code: 'MATCHLOCK_ERR_IMAGE', message: /"dev\/null" is a device node, and device nodes are not allowed \(--no-devices\)/,
  });
});

root.test('xattrs from GNU tar --xattrs: user.*, trusted.* and a binary security.capability kept byte for byte, after the owner', async (t) => {
  const src = dir();
  writeFileSync(join(src, 'tool'), 'x');
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(src, 'tool')]);
  execFileSync('setfattr', ['-n', 'trusted.t', '-v', '0x00ff80', join(src, 'tool')]);
  execFileSync('setcap', ['cap_setuid,cap_net_raw+ep', join(src, 'tool')]);
  mkdirSync(join(src, 'd'));
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'yes', join(src, 'd')]);
  const tarFile = join(scratch, `xattrs-${n}.tar`);
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--owner=1000', '--group=1000', '-C', src, '-cf', tarFile, '.']);
  const out = dir();
  const stats = await applyLayer(createReadStream(tarFile), out);
  t.is(stats.xattrs, 4);
  const dump = (p: string): string => execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').slice(1).sort().join('\n');
  t.is(dump(join(out, 'tool')), dump(join(src, 'tool')));
  t.regex(dump(join(out, 'tool')), /security\.capability=0x0100000280200000/, 'cap_setuid (0x80) survived: no UTF-8 decoding on the way');
  t.is(dump(join(out, 'd')), dump(join(src, 'd')));
  t.like(lstatSync(join(out, 'tool')), { uid: 1000, gid: 1000 });
});

test('xattrs: namespaces ext4 does not keep here (system.*) are skipped and counted; user.* on a symlink is skipped', async (t) => {
  const out = dir();
  const stats = await applyLayer(archive([
    { name: 'f', body: 'x', pax: { 'SCHILY.xattr.user.k': 'v', 'SCHILY.xattr.system.nfs4_acl': 'x' } } as Partial<Header> & { name: string },
    { name: 'l', type: 'symlink', linkname: 'f', pax: { 'SCHILY.xattr.user.k': 'v' } } as Partial<Header> & { name: string },
  ]), out);
  t.like(stats, { xattrs: 1, xattrsSkipped: 2 });
  t.regex(execFileSync('getfattr', ['-d', join(out, 'f')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), /user\.k="v"/);
});

test('across layers: a whiteout removes a lower directory, a hard link reaches a lower file, an opaque marker after a new child keeps it', async (t) => {
  const out = dir();
  await applyLayer(archive([
    { name: 'usr/lib/old/', type: 'directory', mode: 0o755 }, { name: 'usr/lib/old/a', body: 'a' },
    { name: 'usr/bin/tool', body: 'tool', mode: 0o755 },
    { name: 'etc/conf.d/', type: 'directory', mode: 0o755 }, { name: 'etc/conf.d/lower', body: 'l' }, { name: 'etc/conf.d/sub/deep', body: 'd' },
  ]), out);
  await applyLayer(archive([
    { name: 'usr/lib/.wh.old', body: '' },
    { name: 'usr/bin/tool.hard', type: 'link', linkname: 'usr/bin/tool' },
    { name: 'etc/conf.d/sub/new', body: 'n' }, // before the marker, in the same layer: stays
    { name: 'etc/conf.d/.wh..wh..opq', body: '' },
    { name: 'etc/conf.d/after', body: 'a' },
  ]), out);
  t.false(existsSync(join(out, 'usr/lib/old')));
  t.true(existsSync(join(out, 'usr/lib')));
  t.is(lstatSync(join(out, 'usr/bin/tool.hard')).ino, lstatSync(join(out, 'usr/bin/tool')).ino);
  const ls = (p: string): string[] => execFileSync('ls', ['-A', join(out, p)], { encoding: 'utf8' }).trim().split('\n');
  t.deepEqual(ls('etc/conf.d'), ['after', 'sub']);
  t.deepEqual(ls('etc/conf.d/sub'), ['new'], 'the lower "deep" is hidden, the new child kept');
});

test('a file replaces a lower directory, a directory a lower file, and a symlink a lower file, as tar would', async (t) => {
  const out = dir();
  await applyLayer(archive([{ name: 'a/', type: 'directory' }, { name: 'a/x', body: 'x' }, { name: 'b', body: 'b' }, { name: 'c', body: 'c' }]), out);
  await applyLayer(archive([{ name: 'a', body: 'now a file' }, { name: 'b/', type: 'directory' }, { name: 'b/y', body: 'y' }, { name: 'c', type: 'symlink', linkname: 'b/y' }]), out);
  t.is(readFileSync(join(out, 'a'), 'utf8'), 'now a file');
  t.is(readFileSync(join(out, 'b/y'), 'utf8'), 'y');
  t.is(readlinkSync(join(out, 'c')), 'b/y');
});

test('file modes are kept exactly, whatever the umask (group-writable files, set-gid directories)', async (t) => {
  const out = dir();
  await applyLayer(archive([{ name: 'var/mail/', type: 'directory', mode: 0o2775 }, { name: 'shared', body: 's', mode: 0o664 }, { name: 'open', body: 'o', mode: 0o777 }]), out);
  t.is(lstatSync(join(out, 'var/mail')).mode & 0o7777, 0o2775);
  t.is(lstatSync(join(out, 'shared')).mode & 0o7777, 0o664);
  t.is(lstatSync(join(out, 'open')).mode & 0o7777, 0o777);
});

// Hostile layers through whole sources: an OCI layout and a docker-archive made here, each with a layer that
// climbs out with "..", or makes a symlink out and writes through it. The build stops; nothing is written
// outside the build directory, and the images directory is left empty.


const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function configFor(layers: readonly Buffer[]): Buffer {
  return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${hex(l)}`) } }));
}

function ociLayout(layers: readonly Buffer[]): string {
  const d = dir();
  mkdirSync(join(d, 'blobs/sha256'), { recursive: true });
  const put = (b: Buffer, mediaType: string): { mediaType: string; digest: string; size: number } => {
    writeFileSync(join(d, 'blobs/sha256', hex(b)), b);
    return { mediaType, digest: `sha256:${hex(b)}`, size: b.length };
  };
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, config: put(configFor(layers), 'application/vnd.oci.image.config.v1+json'),
    layers: layers.map((l) => put(l, 'application/vnd.oci.image.layer.v1.tar')),
  }));
  writeFileSync(join(d, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(d, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [put(manifest, 'application/vnd.oci.image.manifest.v1+json')] }));
  return d;
}

async function dockerArchive(layers: readonly Buffer[]): Promise<string> {
  const config = configFor(layers);
  const file = join(dir(), 'image.tar');
  writeFileSync(file, await tarBytes([
    ...layers.map((l, i) => ({ name: `layer${i}/layer.tar`, body: l })),
    { name: `${hex(config)}.json`, body: config },
    { name: 'manifest.json', body: JSON.stringify([{ Config: `${hex(config)}.json`, RepoTags: ['evil:latest'], Layers: layers.map((_, i) => `layer${i}/layer.tar`) }]) },
  ]));
  return file;
}

const EVIL_LAYERS: readonly [string, () => Promise<Buffer[]>, RegExp][] = [
  ['"../" in layer 2', async () => [await tarBytes([{ name: 'etc/ok', body: 'ok' }]), await tarBytes([{ name: 'etc/../../../escape', body: 'x' }])], /climbs out of the tree with "\.\."/],
  ['a symlink out, then a write through it', async () => [await tarBytes([{ name: 'esc', type: 'symlink', linkname: outside }]), await tarBytes([{ name: 'esc/evil', body: 'x' }])], /goes through the symlink esc/],
];

for (const [what, layers, mention] of EVIL_LAYERS) {
  for (const kind of ['oci', 'docker-archive'] as const) {
    test(`a hostile ${kind} source (${what}) fails the build, writes nothing outside, publishes nothing`, async (t) => {
      writeFileSync(join(outside, 'x'), 'untouched');
      const ls = layers();
      const from = kind === 'oci' ? `oci:${ociLayout(await ls)}` : `docker-archive:${await dockerArchive(await ls)}`;
      const imagesDir = dir();
      await t.throwsAsync(buildImage({ name: 'evil', from, imagesDir }), { code: 'MATCHLOCK_ERR_IMAGE', message: new RegExp(`layer 2/2 .*${mention.source}`) });
      t.deepEqual(readdirSync(imagesDir), [], 'no image and no build directory left');
      t.deepEqual(execFileSync('ls', ['-A', outside], { encoding: 'utf8' }).trim().split('\n'), ['x']);
      t.is(readFileSync(join(outside, 'x'), 'utf8'), 'untouched');
      t.false(existsSync(join(scratch, 'escape')) || existsSync(join(scratch, '..', 'escape')) || existsSync(join(imagesDir, '..', 'escape')));
    });
  }
}
