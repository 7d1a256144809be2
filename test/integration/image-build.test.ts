/**
 * `matchlock image build` from root filesystem tarballs made by GNU tar (gzip, zstd): debugfs reads back files,
 * owners, modes and links from the ext4 file, e2fsck finds it clean, and a failed build leaves nothing visible.
 * The injection hook and the progress line on a terminal. (OCI and docker-archive sources: image-sources.test.ts.)
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_VERSION } from '../../src/guest/index.ts';
import { buildImage } from '../../src/images/index.ts';
import { MATCHLOCK, runCli } from '../helpers/cli.ts';

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
    t.like(meta, { name, source: `rootfs:${join(scratch, file)}`, agentVersion: AGENT_VERSION });
    t.regex(String(meta['sourceSha256']), /^[0-9a-f]{64}$/);
    // The agent and its runtime were injected (and passed their self-check in a chroot, or the build would have failed).
    t.regex(debugfs(img, 'stat /opt/matchlock/bin/matchlock-agent'), /Mode:\s+0755[\s\S]*User:\s+0\s+Group:\s+0/);
    t.is(debugfs(img, 'stat /opt/matchlock/bin/node').match(/Size: (\d+)/)?.[1], String(statSync(realpathSync(process.execPath)).size));
    t.regex(debugfs(img, 'ls -l /opt/matchlock/lib'), /ld-linux-x86-64\.so\.2/);
    t.regex(debugfs(img, 'cat /opt/matchlock/src/guest/main.ts'), /The guest agent's entry/);
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

test('the inject hook runs on the tree after the layers and before mke2fs: its file is in the image, its version in image.json', async (t) => {
  const imagesDir = join(scratch, 'images-inject');
  let sawLayers = false;
  const meta = await buildImage({
    name: 'injected', from: `rootfs:${rootfs('-z', 'inject.tar.gz')}`, imagesDir,
    inject: async (tree) => {
      sawLayers = existsSync(join(tree, 'etc/os-release'));
      mkdirSync(join(tree, 'usr/local/bin'), { recursive: true });
      writeFileSync(join(tree, 'usr/local/bin/matchlock-agent'), '#!/bin/sh\n', { mode: 0o755 });
      return { agentVersion: '0.1.0-fake' };
    },
  });
  t.true(sawLayers, 'the layers were applied before the hook');
  t.is(meta.agentVersion, '0.1.0-fake');
  const img = join(imagesDir, 'injected', 'rootfs.ext4');
  t.is(debugfs(img, 'cat /usr/local/bin/matchlock-agent'), '#!/bin/sh\n');
  t.like(JSON.parse(readFileSync(join(imagesDir, 'injected', 'image.json'), 'utf8')) as Record<string, unknown>, { agentVersion: '0.1.0-fake' });
});

test('an inject hook that throws fails the build and publishes nothing', async (t) => {
  const imagesDir = join(scratch, 'images-inject-fails');
  await t.throwsAsync(buildImage({ name: 'x', from: `rootfs:${rootfs('-z', 'inject-fails.tar.gz')}`, imagesDir, inject: () => Promise.reject(new Error('no agent binary')) }), { message: 'no agent binary' });
  t.deepEqual(readdirSync(imagesDir), []);
});

test('progress: one updating line on a terminal (layer, bytes, rate, then mke2fs, e2fsck, published); none when stderr is not a terminal', async (t) => {
  const tarball = rootfs('--zstd', 'progress.tar.zst');
  const args = ['image', 'build', 'progress', '--from', `rootfs:${tarball}`, '--images-dir', join(scratch, 'images-progress-tty')];
  const quoted = [MATCHLOCK, ...args].map((a) => `'${a}'`).join(' ');
  // script(1) runs the command on a pseudo-terminal and copies what it writes.
  const tty = execFileSync('script', ['-qec', quoted, '/dev/null'], { encoding: 'utf8' });
  t.regex(tty, /\r\x1b\[Klayer 1\/1 progress\.tar\.zst: [\d.]+ MiB of [\d.]+ MiB, [\d.]+ MiB\/s/);
  for (const step of ['injecting', 'mke2fs', 'e2fsck', 'published']) t.regex(tty, new RegExp(`\\r\\x1b\\[K${step} \\([\\d.]+ s\\)`));
  const plain = await runCli([...args.slice(0, -1), join(scratch, 'images-progress-plain')]);
  t.is(plain.code, 0, plain.stderr);
  t.false(plain.stderr.includes('\r'), 'no progress line');
  t.true(plain.stderr.trim().split('\n').every((l) => l.startsWith('{')), 'only JSON log lines');
});
