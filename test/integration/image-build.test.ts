/**
 * `matchlock image build` from root filesystem tarballs made by GNU tar (gzip, zstd): debugfs reads back files,
 * owners, modes and links from the ext4 file, e2fsck finds it clean, and a failed build leaves nothing visible.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-images-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const imagesDir = join(scratch, 'images');

function rootfs(compress: string, file: string): string {
  const src = join(scratch, `src-${file}`);
  mkdirSync(join(src, 'etc'), { recursive: true });
  mkdirSync(join(src, 'usr/bin'), { recursive: true });
  writeFileSync(join(src, 'etc/os-release'), 'ID=matchlock-test\n');
  writeFileSync(join(src, 'usr/bin/run'), '#!/bin/sh\n');
  chmodSync(join(src, 'usr/bin/run'), 0o4755);
  symlinkSync('usr/bin', join(src, 'bin'));
  execFileSync('ln', [join(src, 'etc/os-release'), join(src, 'etc/os-release.hard')]);
  const out = join(scratch, file);
  execFileSync('tar', ['-C', src, '--owner=1000', '--group=1000', compress, '-cf', out, '.']);
  return out;
}

const debugfs = (img: string, cmd: string): string => execFileSync('debugfs', ['-R', cmd, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

for (const [compress, file] of [['-z', 'rootfs.tar.gz'], ['--zstd', 'rootfs.tar.zst']] as const) {
  test(`an image from a ${file} made by GNU tar: debugfs confirms contents, owners, modes, links; e2fsck is clean`, async (t) => {
    const name = file.replace(/\W/g, '-');
    const r = await runCli(['image', 'build', name, '--from', `rootfs:${rootfs(compress, file)}`, '--images-dir', imagesDir]);
    t.is(r.code, 0, r.stderr);
    const img = join(imagesDir, name, 'rootfs.ext4');
    t.is(debugfs(img, 'cat /etc/os-release'), 'ID=matchlock-test\n');
    const stat = debugfs(img, 'stat /usr/bin/run');
    t.regex(stat, /Mode:\s+04755/, 'set-uid kept');
    t.regex(stat, /User:\s+1000\s+Group:\s+1000/, 'owners kept');
    t.regex(debugfs(img, 'stat /bin'), /Type: symlink/);
    t.regex(debugfs(img, 'stat /etc/os-release'), /Links: 2/, 'the hard link is one inode');
    execFileSync('e2fsck', ['-fn', img]);
    const meta = JSON.parse(readFileSync(join(imagesDir, name, 'image.json'), 'utf8')) as Record<string, unknown>;
    t.like(meta, { name, source: `rootfs:${join(scratch, file)}` });
    t.regex(String(meta['sourceSha256']), /^[0-9a-f]{64}$/);
  });
}

test('a hostile tarball fails the build with a clear error and leaves nothing under the images directory', async (t) => {
  const src = join(scratch, 'evil-src');
  mkdirSync(src);
  writeFileSync(join(src, 'x'), 'x');
  const evil = join(scratch, 'evil.tar');
  execFileSync('tar', ['-C', src, '-P', '--transform', 's,^x,../../escape,', '-cf', evil, 'x']);
  const own = join(scratch, 'images-evil'); // its own, as the other builds run alongside
  const r = await runCli(['image', 'build', 'evil', '--from', `rootfs:${evil}`, '--images-dir', own]);
  t.is(r.code, 1);
  t.regex(r.stderr, /climbs out of the tree.*\[MATCHLOCK_ERR_IMAGE\]/);
  t.deepEqual(readdirSync(own), [], 'no image and no build directory left');
  t.false(existsSync(join(scratch, 'escape')));
});
