/**
 * Images built from sources made by tools we did not write (test/fixtures/images/make-images.sh): a debootstrap
 * root file system tarball, an OCI layout made by umoci (three layers: whiteouts, an opaque directory, hard links,
 * a set-uid file, owners, xattrs), and the same image as a docker-archive made by skopeo. debugfs reads every
 * entry of each ext4 file back and compares it with the tree the source must give (the debootstrap tree; umoci's
 * own unpack of the OCI image); e2fsck finds each clean. Corrupt OCI layouts are refused with nothing published.
 * The fixtures need root and the network once; without debootstrap, umoci or skopeo the tests fail, saying to run
 * scripts/setup.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, runCli } from '../helpers/cli.ts';
import { declaredNoRoot, rootSuite } from '../helpers/root.ts';

const CACHE = process.env['MATCHLOCK_TEST_IMAGES'] ?? '/var/cache/matchlock-test-images';
const scratch = mkdtempSync(join(tmpdir(), 'matchlock-sources-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const root = rootSuite(import.meta.url); // debootstrap, owners, device nodes: root (or MATCHLOCK_TEST_NO_ROOT=1)

test.before(() => {
  if (declaredNoRoot) return;
  try {
    execFileSync(join(REPO, 'test/fixtures/images/make-images.sh'), [CACHE], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000 });
  } catch (e: unknown) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? e).trim();
    throw new Error(`the image fixtures could not be made (${stderr}): run scripts/setup as root (debootstrap, umoci, skopeo, attr) and make sure deb.debian.org is reachable`);
  }
});

interface Seen { mode: number; uid: number; gid: number; size: number | null; ino: number }

/** Every entry below `root` of the host tree, by path ("/etc/passwd"). */
function hostTree(root: string): Map<string, Seen> {
  const out = new Map<string, Seen>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const path = `${rel}/${name}`;
      const st = lstatSync(join(root, path));
      out.set(path, { mode: st.mode, uid: st.uid, gid: st.gid, size: st.isFile() || st.isSymbolicLink() ? st.size : null, ino: st.ino });
      if (st.isDirectory()) walk(path);
    }
  };
  walk('');
  return out;
}

/** Runs debugfs commands (one process) on an image; its output. */
function debugfsAll(img: string, commands: readonly string[]): string {
  const file = join(scratch, `cmds-${process.hrtime.bigint()}`);
  writeFileSync(file, `${commands.join('\n')}\n`);
  return execFileSync('debugfs', ['-f', file, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 2 ** 20 });
}

const debugfs = (img: string, cmd: string): string => execFileSync('debugfs', ['-R', cmd, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

/** The image's entries in the directories of `dirs` (debugfs `ls -p`: /inode/mode/uid/gid/name/size/). */
function imageTree(img: string, dirs: readonly string[]): Map<string, Seen> {
  const out = new Map<string, Seen>();
  let dir = '';
  for (const line of debugfsAll(img, dirs.map((d) => `ls -p "${d === '' ? '/' : d}"`)).split('\n')) {
    const cmd = /^debugfs: ls -p "(.*)"$/.exec(line);
    if (cmd !== null) {
      dir = cmd[1] === '/' ? '' : cmd[1]!;
      continue;
    }
    const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
    if (m === null || m[5] === '.' || m[5] === '..') continue;
    const mode = Number.parseInt(m[2]!, 8);
    out.set(`${dir}/${m[5]!}`, { mode, uid: Number(m[3]), gid: Number(m[4]), size: m[6] === '' || (mode & 0o170000) === 0o040000 ? null : Number(m[6]), ino: Number(m[1]) });
  }
  return out;
}

/** Compares every entry of the reference tree with the image: type, mode, owner, size, hard links, symlink targets. */
function compareWithTree(t: import('ava').ExecutionContext, img: string, reference: string): void {
  const want = hostTree(reference);
  const dirs = ['', ...[...want].filter(([, s]) => (s.mode & 0o170000) === 0o040000).map(([p]) => p)];
  const got = imageTree(img, dirs);
  const wrong: string[] = [];
  for (const [path, w] of want) {
    const g = got.get(path);
    if (g === undefined) wrong.push(`${path}: missing`);
    else if (g.mode !== w.mode || g.uid !== w.uid || g.gid !== w.gid || (w.size !== null && (w.mode & 0o170000) !== 0o020000 && g.size !== w.size)) {
      wrong.push(`${path}: mode ${g.mode.toString(8)} ${g.uid}:${g.gid} size ${g.size}, want ${w.mode.toString(8)} ${w.uid}:${w.gid} size ${w.size}`);
    }
  }
  for (const path of got.keys()) if (!want.has(path) && path !== '/lost+found') wrong.push(`${path}: not in the source`);
  // Hard links: two paths share an inode in the image exactly when they do in the reference.
  const groups = (tree: Map<string, Seen>): string[] => {
    const by = new Map<number, string[]>();
    for (const [p, s] of tree) if ((s.mode & 0o170000) !== 0o040000) by.set(s.ino, [...(by.get(s.ino) ?? []), p]);
    return [...by.values()].filter((g) => g.length > 1).map((g) => g.sort().join(' = ')).sort();
  };
  t.deepEqual(groups(got), groups(want), 'the same hard links');
  t.deepEqual(wrong.slice(0, 20), [], `${wrong.length} entries differ`);
  t.true(want.size > 5000, `the reference is a whole root file system (${want.size} entries)`);
  // Symlink targets, all of them, in one debugfs run.
  const links = [...want].filter(([, s]) => (s.mode & 0o170000) === 0o120000).map(([p]) => p);
  const dests = `\n${debugfsAll(img, links.map((p) => `stat "${p}"`))}`.split('\ndebugfs: ').slice(1);
  t.is(dests.length, links.length);
  const badLinks = links.filter((p, i) => {
    const fast = /Fast link dest: "(.*)"/.exec(dests[i] ?? '');
    const dest = fast !== null ? fast[1] : debugfs(img, `cat ${p}`);
    return dest !== readlinkSync(join(reference, p));
  });
  t.deepEqual(badLinks, [], 'symlink targets');
  // File contents, all of them: the image dumped (debugfs rdump) and compared byte for byte.
  const dump = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : scratch, 'matchlock-rdump-'));
  try {
    execFileSync('debugfs', ['-R', `rdump / ${dump}`, img], { stdio: 'ignore' });
    const files = [...want].filter(([, s]) => (s.mode & 0o170000) === 0o100000).map(([p]) => p);
    const differ = files.filter((p) => !readFileSync(join(reference, p)).equals(readFileSync(join(dump, p))));
    t.deepEqual(differ.slice(0, 20), [], `${differ.length} of ${files.length} files differ in content`);
  } finally {
    rmSync(dump, { recursive: true, force: true });
  }
}

function checkDevNull(t: import('ava').ExecutionContext, img: string): void {
  const st = debugfs(img, 'stat /dev/null');
  t.regex(st, /Type: character special/);
  t.regex(st, /Device major\/minor number: 01:03/);
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const meta = (imagesDir: string, name: string): Record<string, unknown> => JSON.parse(readFileSync(join(imagesDir, name, 'image.json'), 'utf8')) as Record<string, unknown>;
const FIXTURE_CONFIG = { Env: ['MATCHLOCK_FIXTURE=1'], Entrypoint: ['/bin/sh'], Cmd: ['-c', 'echo hi'], User: '0:0', WorkingDir: '/root' };

root.test('rootfs: a debootstrap tarball gives an image identical to the debootstrap tree, /dev/null included; e2fsck clean', async (t) => {
  const imagesDir = join(scratch, 'images-rootfs');
  const r = await runCli(['image', 'build', 'bookworm', '--from', `rootfs:${CACHE}/rootfs.tar`, '--images-dir', imagesDir, '--no-agent'], { timeoutMs: 10 * 60_000 });
  t.is(r.code, 0, r.stderr);
  const img = join(imagesDir, 'bookworm', 'rootfs.ext4');
  compareWithTree(t, img, join(CACHE, 'debootstrap'));
  checkDevNull(t, img);
  t.regex(debugfs(img, 'stat /usr/bin/passwd'), /Mode:\s+04755/, 'set-uid kept');
  execFileSync('e2fsck', ['-fn', img], { stdio: 'ignore' });
  t.like(meta(imagesDir, 'bookworm'), { source: `rootfs:${CACHE}/rootfs.tar`, sourceSha256: sha256(join(CACHE, 'rootfs.tar')), config: null, agentVersion: null });
});

/** What the umoci-made layers must give, beyond the tree comparison: the points layer 2 and 3 were made for. */
function checkLayers(t: import('ava').ExecutionContext, img: string): void {
  const tree = imageTree(img, ['/etc', '/usr/share/doc', '/etc/apt/apt.conf.d']);
  t.true(existsSync(join(CACHE, 'debootstrap/etc/debian_version')) && existsSync(join(CACHE, 'debootstrap/usr/share/doc/bash')), 'both were in layer 1');
  t.false(tree.has('/etc/debian_version'), 'a whited-out file is absent');
  t.false(tree.has('/usr/share/doc/bash'), 'a whited-out directory is absent');
  t.true(tree.has('/usr/share/doc/dpkg'), 'its siblings are not');
  t.deepEqual([...tree.keys()].filter((p) => p.startsWith('/etc/apt/apt.conf.d/')), ['/etc/apt/apt.conf.d/99matchlock'], 'the opaque directory hides what layer 1 put there');
  t.true(readdirSync(join(CACHE, 'debootstrap/etc/apt/apt.conf.d')).length > 0);
  t.regex(debugfs(img, 'stat /opt/matchlock/suid'), /Mode:\s+04755/);
  t.regex(debugfs(img, 'stat /opt/matchlock/owned'), /User:\s+1000\s+Group:\s+1000/);
  t.regex(debugfs(img, 'stat /opt/matchlock/data'), /Links: 2/);
  t.regex(debugfs(img, 'stat /usr/bin/dpkg'), /Links: 2/, 'a hard link across layers (dpkg of layer 1, linked in layer 2)');
  t.regex(debugfs(img, 'ea_list /opt/matchlock/data'), /user\.matchlock \(5\) = "hello"/);
  const cap = execFileSync('getfattr', ['-e', 'hex', '-n', 'security.capability', join(CACHE, 'oci-expected/rootfs/opt/matchlock/capped')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const hex = /=0x([0-9a-f]+)/.exec(cap)![1]!;
  const listed = /security\.capability \(20\) = ([0-9a-f ]+)/.exec(debugfs(img, 'ea_list /opt/matchlock/capped'));
  t.is(listed?.[1]?.replace(/ /g, ''), hex, 'a binary xattr (file capabilities, bytes above 0x7f) kept byte for byte');
  checkDevNull(t, img);
  execFileSync('e2fsck', ['-fn', img], { stdio: 'ignore' });
}

root.test('oci: an umoci layout of three layers gives the tree umoci itself unpacks; whiteouts, opaque dir, links, xattrs; e2fsck clean', async (t) => {
  const imagesDir = join(scratch, 'images-oci');
  const r = await runCli(['image', 'build', 'oci', '--from', `oci:${CACHE}/oci:test`, '--images-dir', imagesDir, '--no-agent'], { timeoutMs: 10 * 60_000 });
  t.is(r.code, 0, r.stderr);
  const img = join(imagesDir, 'oci', 'rootfs.ext4');
  compareWithTree(t, img, join(CACHE, 'oci-expected/rootfs'));
  checkLayers(t, img);
  const index = JSON.parse(readFileSync(join(CACHE, 'oci/index.json'), 'utf8')) as { manifests: { digest: string }[] };
  t.like(meta(imagesDir, 'oci'), { sourceSha256: index.manifests[0]!.digest.slice('sha256:'.length), config: FIXTURE_CONFIG });
});

root.test('docker-archive: skopeo\'s docker-archive of the same image gives the same tree; the file\'s sha256 is the source digest', async (t) => {
  const imagesDir = join(scratch, 'images-docker');
  const archive = join(CACHE, 'docker-archive.tar');
  const r = await runCli(['image', 'build', 'docker', '--from', `docker-archive:${archive}:matchlock/test:latest`, '--images-dir', imagesDir, '--no-agent'], { timeoutMs: 10 * 60_000 });
  t.is(r.code, 0, r.stderr);
  const img = join(imagesDir, 'docker', 'rootfs.ext4');
  compareWithTree(t, img, join(CACHE, 'oci-expected/rootfs'));
  checkLayers(t, img);
  t.like(meta(imagesDir, 'docker'), { sourceSha256: sha256(archive), config: FIXTURE_CONFIG });
});

root.test('--no-devices refuses the debootstrap tarball (it has /dev/null) and publishes nothing', async (t) => {
  const imagesDir = join(scratch, 'images-nodev');
  const r = await runCli(['image', 'build', 'nodev', '--no-devices', '--from', `rootfs:${CACHE}/rootfs.tar`, '--images-dir', imagesDir, '--no-agent'], { timeoutMs: 10 * 60_000 });
  t.is(r.code, 1);
  t.regex(r.stderr, /is a device node, and device nodes are not allowed \(--no-devices\).*MATCHLOCK_ERR_IMAGE/);
  t.deepEqual(readdirSync(imagesDir), []);
});

/** A copy of the OCI fixture (the cache is never changed), with `spoil` applied to it. */
function spoiledOci(label: string, spoil: (dir: string, manifest: { layers: { digest: string }[] }) => void): string {
  const dir = join(scratch, `oci-${label}`);
  cpSync(join(CACHE, 'oci'), dir, { recursive: true });
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(dir, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  spoil(dir, manifest);
  return dir;
}

const blob = (dir: string, digest: string): string => join(dir, 'blobs/sha256', digest.slice('sha256:'.length));

const CORRUPT: readonly [string, (dir: string, m: { layers: { digest: string }[] }) => void, RegExp][] = [
  ['a layer with one byte changed (the gzip header\'s time: it still decompresses)', (dir, m) => {
    const file = blob(dir, m.layers[2]!.digest);
    const data = readFileSync(file);
    data[4]! ^= 0xff;
    writeFileSync(file, data);
  }, /layer 3\/3 .*layer sha256:[0-9a-f]{64} does not match its digest \(read \d+ bytes, sha256:[0-9a-f]{64}\): a corrupt or tampered blob/],
  ['a layer longer than its descriptor', (dir, m) => appendFileSync(blob(dir, m.layers[1]!.digest), 'x'), /bytes, its descriptor says/],
  ['a changed config', (dir) => {
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(blob(dir, index.manifests[0]!.digest), 'utf8')) as { config: { digest: string } };
    const file = blob(dir, manifest.config.digest);
    writeFileSync(file, readFileSync(file, 'utf8').replace('MATCHLOCK_FIXTURE=1', 'MATCHLOCK_FIXTURE=2'));
  }, /does not match its digest/],
  ['a blob path that is not blobs/sha256/<64 hex>', (dir) => {
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    index.manifests[0]!.digest = 'sha256:../../../../etc/passwd';
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  }, /is not sha256:<64 hex>/],
];

for (const [what, spoil, mention] of CORRUPT) {
  root.test(`oci: ${what} is refused with a clear error, and nothing is published`, async (t) => {
    const dir = spoiledOci(what.replace(/\W+/g, '-'), spoil);
    const imagesDir = join(scratch, `images-${what.replace(/\W+/g, '-')}`);
    const r = await runCli(['image', 'build', 'spoiled', '--from', `oci:${dir}:test`, '--images-dir', imagesDir, '--no-agent'], { timeoutMs: 10 * 60_000 });
    t.is(r.code, 1);
    t.regex(r.stderr, mention);
    t.regex(r.stderr, /MATCHLOCK_ERR_IMAGE/);
    t.deepEqual(existsSync(imagesDir) ? readdirSync(imagesDir) : [], [], 'no image and no build directory left');
  });
}
