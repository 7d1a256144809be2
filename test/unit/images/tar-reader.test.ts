/**
 * The layer applier's tar reader (src/images/tar-reader.ts), which replaced tar-stream there for speed
 * (docs/performance.md, "Image build"). Two kinds of test: it reads what GNU tar writes (gnu, oldgnu, ustar and
 * posix formats, long names and links, hard links, FIFOs, xattrs, base-256 ids, times before 1970) exactly as
 * tar-stream reads it, except where it means to differ (uid, gid and mtime from PAX records, as tar does; xattr
 * values as bytes), whole or in chunks of any size; and it refuses every malformed archive tar-stream refuses,
 * and more, with an error rather than a guess.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { TarReader, type EntrySink, type TarEntry } from '../../../src/images/tar-reader.ts';
import { END, header, member, pax, paxRecord, tarOf } from '../../helpers/tar-bytes.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-tar-reader-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

interface Read {
  readonly name: string;
  readonly type: string | null;
  readonly linkname: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly dev: string;
  readonly data: string;
  readonly xattrs: Record<string, string>;
}

/** Everything our reader reads from `tar`, fed in chunks of `chunk` bytes (0: whole). */
function ours(tar: Buffer, chunk = 0): Read[] {
  const out: Read[] = [];
  const reader = new TarReader((e: TarEntry): EntrySink => {
    const parts: Buffer[] = [];
    const xattrs: Record<string, string> = {};
    for (const [k, v] of e.xattrs ?? []) xattrs[k] = v.toString('hex');
    return {
      write: (c) => { parts.push(Buffer.from(c)); return c.length; },
      end: () => {
        out.push({
          name: e.name, type: e.type, linkname: e.linkname, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === 'directory' ? 0 : e.size,
          mtime: Math.floor(e.mtime), dev: `${e.devmajor},${e.devminor}`, data: Buffer.concat(parts).toString('hex'), xattrs,
        });
      },
    };
  });
  const step = chunk === 0 ? tar.length : chunk;
  for (let at = 0; at < tar.length; at += step) {
    const piece = tar.subarray(at, Math.min(at + step, tar.length));
    const stop = reader.walk(piece, 0, () => false);
    if (stop !== piece.length) throw new Error(`stopped at ${stop} of ${piece.length}`);
  }
  reader.finish();
  if (!reader.ended) throw new Error('no end-of-archive marker');
  return out;
}

/** What tar-stream reads from `tar`, with uid, gid and mtime from PAX where there (as ours). */
async function theirs(tar: Buffer): Promise<Read[]> {
  const out: Read[] = [];
  const x = extract();
  const done = new Promise<void>((resolve, reject) => {
    x.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: unknown) => { parts.push(c as Buffer); });
      stream.on('end', () => {
        const p = (h.pax ?? {}) as Record<string, string>;
        const xattrs: Record<string, string> = {};
        for (const [k, v] of Object.entries(p)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = Buffer.from(v).toString('hex');
        out.push({
          name: h.name, type: h.type ?? null, linkname: h.linkname ?? '', mode: h.mode ?? 0,
          uid: p['uid'] !== undefined ? Number(p['uid']) : h.uid ?? 0, gid: p['gid'] !== undefined ? Number(p['gid']) : h.gid ?? 0,
          size: h.type === 'directory' ? 0 : h.size ?? 0,
          mtime: p['mtime'] !== undefined ? Math.floor(Number(p['mtime'])) : Math.floor((h.mtime?.getTime() ?? 0) / 1000),
          dev: `${h.devmajor ?? 0},${h.devminor ?? 0}`, data: Buffer.concat(parts).toString('hex'), xattrs,
        });
        next();
      });
      stream.on('error', reject);
    });
    x.on('finish', resolve);
    x.on('error', reject);
  });
  Readable.from([tar]).pipe(x);
  await done;
  return out;
}

const OLD_TIME = Date.parse('1960-06-01T00:00:00Z') / 1000;

/** A tree with what every format can carry, and with `long` what only gnu, oldgnu and posix can. */
function makeTree(long: boolean): string {
  const root = mkdtempSync(join(scratch, 'tree-'));
  mkdirSync(join(root, 'etc/deep'), { recursive: true });
  writeFileSync(join(root, 'etc/empty'), '');
  writeFileSync(join(root, 'etc/small'), 'small file\n');
  writeFileSync(join(root, 'etc/deep/big'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)));
  linkSync(join(root, 'etc/small'), join(root, 'etc/small.hard'));
  symlinkSync('../etc/small', join(root, 'etc/deep/link'));
  execFileSync('mkfifo', [join(root, 'etc/fifo')]);
  execFileSync('chmod', ['4755', join(root, 'etc/small')]);
  if (long) {
    const dir = join(root, 'l'.repeat(120), 'o'.repeat(120));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'n'.repeat(80)), 'deep\n');
    symlinkSync('t'.repeat(150), join(root, 'longlink'));
    writeFileSync(join(root, 'old'), 'from 1960\n');
    utimesSync(join(root, 'old'), new Date(OLD_TIME * 1000), new Date(OLD_TIME * 1000)); // a Date: Node takes negative seconds for "now"
    writeFileSync(join(root, 'ünïcödé'), 'utf-8 name\n');
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(root, 'etc/small')]);
    execFileSync('setfattr', ['-n', 'user.mime_type', '-v', 'text/plain', join(root, 'ünïcödé')]);
  }
  return root;
}

const trees = { short: makeTree(false), long: makeTree(true) };

function gnuTar(format: string, tree: string, extra: readonly string[] = []): Buffer {
  const file = join(scratch, `${format}-${Math.random().toString(36).slice(2)}.tar`);
  execFileSync('tar', ['--format', format, '--sort=name', '--numeric-owner', ...extra, '-C', tree, '-cf', file, '.']);
  return readFileSync(file);
}

const ARCHIVES: readonly [string, () => Buffer][] = [
  ['ustar', () => gnuTar('ustar', trees.short)],
  ['gnu, long names and links, a time before 1970, a uid over 2^21', () => gnuTar('gnu', trees.long, ['--owner=3000000000', '--group=2100000'])],
  ['oldgnu, long names', () => gnuTar('oldgnu', trees.long)],
  ['posix (PAX), long names, a uid over 2^21, a time before 1970, xattrs', () => gnuTar('posix', trees.long, ['--owner=3000000000', '--group=70000', '--xattrs'])],
];

for (const [what, make] of ARCHIVES) {
  test(`GNU tar ${what}: read as tar-stream reads it, whole and in chunks of any size`, async (t) => {
    const tar = make();
    // tar-stream reads a negative base-256 number one too high (its two's complement is off by one): ./old's time
    // is checked against the file's own, as tar -tv shows it
    const expected = (await theirs(tar)).map((e) => (e.name === './old' ? { ...e, mtime: OLD_TIME } : e));
    t.true(expected.length >= 8, `${expected.length} entries`);
    if (what.includes('xattrs')) t.is(expected.filter((e) => Object.keys(e.xattrs).length > 0).length, 2, 'both files with xattrs carry them');
    for (const chunk of [0, 1, 7, 511, 512, 513, 4096, 65536]) t.deepEqual(ours(tar, chunk), expected, `chunks of ${chunk}`);
  });
}

test('v7 archives are refused, as tar-stream refuses them (no ustar magic)', async (t) => {
  const tar = gnuTar('v7', trees.short, ['--exclude=./etc/fifo']); // v7 has no FIFOs
  t.throws(() => ours(tar), { message: /unknown format/ });
  await t.throwsAsync(theirs(tar), { message: /unknown format/ });
});

test('PAX xattrs are kept as bytes: a binary security.capability survives, which tar-stream would decode as UTF-8', (t) => {
  // VFS_CAP_REVISION_2 with cap_net_raw permitted, and bytes over 0x7f (which UTF-8 decoding would replace)
  const value = Buffer.from('01000002002000000000000000000000000000ff', 'hex');
  const tar = tarOf(
    pax([paxRecord('SCHILY.xattr.security.capability', value), paxRecord('SCHILY.xattr.user.note', 'héllo')]),
    member({ name: 'bin/ping', mode: 0o755 }, 'elf'),
  );
  const [e] = ours(tar);
  t.is(e?.xattrs['security.capability'], value.toString('hex'));
  t.is(Buffer.from(e?.xattrs['user.note'] ?? '', 'hex').toString(), 'héllo');
});

test('PAX records override the header: path, linkpath, size, uid, gid and a fractional, negative mtime', (t) => {
  const tar = tarOf(
    pax([paxRecord('path', 'p'.repeat(300)), paxRecord('size', '5'), paxRecord('uid', '4294967294'), paxRecord('gid', '7'), paxRecord('mtime', '-86400.75')]),
    member({ name: 'short', size: 999 }, 'hello'),
    pax([paxRecord('linkpath', 'target/'.repeat(40))]),
    member({ name: 'sym', flag: '2', linkname: 'x' }),
  );
  const [file, sym] = ours(tar);
  t.like(file, { name: 'p'.repeat(300), size: 5, uid: 4294967294, gid: 7, mtime: -86401, data: Buffer.from('hello').toString('hex') });
  t.like(sym, { name: 'sym', type: 'symlink', linkname: 'target/'.repeat(40) });
});

test('a global PAX header counts only through a local one, as tar-stream reads it; a local one for one entry only', async (t) => {
  const tar = tarOf(
    pax([paxRecord('path', 'global-name'), paxRecord('SCHILY.xattr.user.g', 'g')], 'g'),
    member({ name: 'a' }, 'a'),
    pax([paxRecord('uid', '5')]),
    member({ name: 'b' }, 'b'),
    member({ name: 'c' }, 'c'),
  );
  const read = ours(tar);
  t.deepEqual(read.map((e) => [e.name, e.uid, Object.keys(e.xattrs)]), [['a', 0, []], ['global-name', 5, ['user.g']], ['c', 0, []]]);
  t.deepEqual((await theirs(tar)).map((e) => e.name), read.map((e) => e.name));
});

test('base-256 numbers are read (large ids and sizes), and a directory has no data whatever its size says', (t) => {
  const big = Buffer.alloc(8);
  big[0] = 0x80;
  big.writeUInt32BE(3_000_000_000, 4);
  const tar = tarOf(member({ name: 'f', raw: { uid: big } }, 'x'), header({ name: 'd/', flag: '5', size: 1024 }), member({ name: 'g' }, 'after'));
  const read = ours(tar);
  t.deepEqual(read.map((e) => [e.name, e.type, e.uid]), [['f', 'file', 3_000_000_000], ['d/', 'directory', 0], ['g', 'file', 0]]);
  t.is(read[2]?.data, Buffer.from('after').toString('hex'));
});

test('names stop at their first NUL; a trailing "/" on a plain file makes a directory', (t) => {
  const name = Buffer.concat([Buffer.from('safe'), Buffer.from([0]), Buffer.from('/../../etc/passwd')]).toString('latin1');
  const read = ours(tarOf(member({ name }, 'x'), header({ name: 'olddir/' })));
  t.deepEqual(read.map((e) => [e.name, e.type]), [['safe', 'file'], ['olddir/', 'directory']]);
});

test('the reader stops where a sink takes no more, and goes on from there', (t) => {
  const tar = tarOf(member({ name: 'a' }, 'A'.repeat(3000)), member({ name: 'b' }, 'B'.repeat(10)));
  let budget = 1000;
  const got: string[] = [];
  const reader = new TarReader((e) => ({
    write: (c) => { const n = Math.min(c.length, budget); budget -= n; got.push(`${e.name}:${n}`); return n; },
    end: () => got.push(`${e.name}:end`),
  }));
  let at = reader.walk(tar, 0, () => false);
  t.true(at > 512 && at < tar.length, `stopped at ${at}`);
  budget = Infinity;
  at = reader.walk(tar, at, () => false);
  t.is(at, tar.length);
  reader.finish();
  t.deepEqual(got, ['a:1000', 'a:2000', 'a:end', 'b:10', 'b:end']);
});

test('pause() stops before an entry, and passOver() skips data nobody reads without seeing it', (t) => {
  const tar = tarOf(member({ name: 'a' }, 'A'.repeat(2000)), member({ name: 'b' }, 'b'));
  const names: string[] = [];
  const reader = new TarReader((e) => { names.push(e.name); return null; });
  t.is(reader.walk(tar, 0, () => true), 0, 'paused before the first header');
  const afterHeader = reader.walk(tar.subarray(0, 512), 0, () => false);
  t.is(afterHeader, 512);
  t.is(reader.passOver(), 2048, '2000 bytes of data and 48 of padding');
  t.is(reader.walk(tar, 512 + 2048, () => false), tar.length);
  reader.finish();
  t.deepEqual(names, ['a', 'b']);
});

// ---- malformed archives: each refused with an error saying what is wrong, never read as something else

const garbage = (s: string): Buffer => Buffer.from(s.padEnd(12, '\0'), 'latin1');
const negative = Buffer.alloc(12, 0xff); // base-256 -1

const MALFORMED: readonly [string, () => Buffer, RegExp, boolean][] = [
  // [what, archive, our message, whether tar-stream refuses it too]
  ['a bad checksum', () => tarOf(member({ name: 'a', checksum: 1234 }, 'x')), /bad checksum/, true],
  ['a gzipped archive read as plain tar', () => execFileSync('gzip', ['-c'], { input: tarOf(member({ name: 'a' }, 'x')) }), /bad checksum|unexpected end/, true],
  ['no ustar magic', () => tarOf(member({ name: 'a', magic: 'none' }, 'x')), /unknown format/, true],
  ['a negative size (base-256; tar-stream reads -1 as -0 and takes it)', () => tarOf(header({ name: 'a', raw: { size: negative } })), /invalid number/, false],
  ['a size that is not a number', () => tarOf(header({ name: 'a', raw: { size: garbage('zz') } })), /invalid number/, true],
  ['a mode that is not a number', () => tarOf(member({ name: 'a', raw: { mode: garbage('9x') } }, 'x')), /invalid number/, false],
  ['a uid of 2^32-1 (chown\'s "leave it")', () => tarOf(member({ name: 'a', raw: { uid: Buffer.from([0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]) } }, 'x')), /invalid number/, false],
  ['a negative device number', () => tarOf(header({ name: 'dev/x', flag: '3', raw: { devmajor: Buffer.alloc(8, 0xff) } })), /invalid number/, false],
  ['a PAX record whose length runs past the header', () => tarOf(pax([Buffer.from('99 path=a\n')]), member({ name: 'a' }, 'x')), /malformed PAX/, false],
  ['a PAX record without "="', () => tarOf(pax([Buffer.from('10 pathab\n')]), member({ name: 'a' }, 'x')), /malformed PAX/, false],
  ['a PAX record without its newline', () => tarOf(pax([Buffer.from('10 path=ab')]), member({ name: 'a' }, 'x')), /malformed PAX/, false],
  ['a PAX record whose length is not a number', () => tarOf(pax([Buffer.from('x9 path=a\n')]), member({ name: 'a' }, 'x')), /malformed PAX/, false],
  ['a PAX size that is not a number', () => tarOf(pax([paxRecord('size', '12abc')]), member({ name: 'a' }, 'x')), /invalid PAX size/, false],
  ['a PAX uid that is negative', () => tarOf(pax([paxRecord('uid', '-1')]), member({ name: 'a' }, 'x')), /invalid PAX uid/, false],
  ['a PAX mtime that is not a time', () => tarOf(pax([paxRecord('mtime', '1e9')]), member({ name: 'a' }, 'x')), /invalid PAX mtime/, false],
  ['a PAX size past the end of the archive', () => tarOf(pax([paxRecord('size', '1000000')]), member({ name: 'a' }, 'x')), /unexpected end/, true],
  ['a PAX header over 4 MiB', () => Buffer.concat([header({ name: 'PaxHeaders/x', flag: 'x', size: 5 * 1024 * 1024 }), Buffer.alloc(8192), END]), /larger than 4 MiB/, true],
  ['a GNU long name over 4 MiB', () => Buffer.concat([header({ name: '././@LongLink', flag: 'L', size: 4 * 1024 * 1024 + 1, magic: 'gnu' }), END]), /larger than 4 MiB/, true],
  ['a long header with no valid size', () => Buffer.concat([header({ name: 'PaxHeaders/x', flag: 'x', raw: { size: negative } }), END]), /no valid size/, false],
  ['an archive cut inside a header', () => tarOf(member({ name: 'a' }, 'x')).subarray(0, 1024 + 300), /unexpected end/, false],
  ['an archive cut inside an entry\'s data', () => tarOf(member({ name: 'a' }, 'x'.repeat(5000))).subarray(0, 2048), /unexpected end/, true],
  ['an archive cut inside a long header', () => Buffer.concat([header({ name: 'PaxHeaders/x', flag: 'x', size: 2000 }), Buffer.alloc(700)]), /unexpected end/, false],
];

for (const [what, make, message, tarStreamToo] of MALFORMED) {
  test(`malformed: ${what} is refused${tarStreamToo ? ', as tar-stream refuses it' : ''}`, async (t) => {
    const tar = make();
    for (const chunk of [0, 1, 100, 512, 65536]) t.throws(() => ours(tar, chunk), { message }, `chunks of ${chunk}`);
    if (tarStreamToo) await t.throwsAsync(theirs(tar));
  });
}
