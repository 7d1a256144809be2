/** The runner's user and its groups from an image's /etc/passwd and /etc/group, as initgroups(3) would see them. */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findUser } from '../../../src/guest/system-setup.ts';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nrunner:x:1001:1001::/home/runner:/bin/bash\nci:x:1002:100:CI:/home/ci:/bin/sh\n';

/** A passwd and (unless null) a group file in a directory the test removes. */
function etc(t: ExecutionContext, group: string | null): { passwd: string; group: string } {
  const dir = mkdtempSync(join(tmpdir(), 'matchlock-etc-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  writeFileSync(join(dir, 'passwd'), PASSWD);
  if (group !== null) writeFileSync(join(dir, 'group'), group);
  return { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
}

test('the groups are the primary gid, then each group whose members name the user, sorted', (t) => {
  const f = etc(t, 'root:x:0:\nrunner:x:1001:\nusers:x:100:ci\ndocker:x:999:ci,runner\nadm:x:4:runner\nsudo:x:27:someone,runner-2,xrunner\nkvm:x:993:runner,ci\n');
  t.deepEqual(findUser('runner', f.passwd, f.group), { name: 'runner', uid: 1001, gid: 1001, home: '/home/runner', groups: [1001, 4, 993, 999] });
  t.deepEqual(findUser('ci', f.passwd, f.group).groups, [100, 993, 999], 'listed in its own primary group too: once');
});

test('a user that no group lists has its primary gid alone', (t) => {
  const f = etc(t, 'root:x:0:\nrunner:x:1001:\nsudo:x:27:root\n');
  t.deepEqual(findUser('runner', f.passwd, f.group).groups, [1001]);
});

test('no /etc/group means the primary gid alone', (t) => {
  const f = etc(t, null);
  t.deepEqual(findUser('runner', f.passwd, f.group).groups, [1001]);
});

test('a gid named twice, or the primary gid listed again, is there once', (t) => {
  const f = etc(t, 'docker:x:999:runner\ndocker2:x:999:runner,runner\nrunner:x:1001:runner\nself:x:1001:runner\n');
  t.deepEqual(findUser('runner', f.passwd, f.group).groups, [1001, 999]);
});

test('malformed lines and comments are skipped; the good lines around them count', (t) => {
  const f = etc(t, [
    'garbage',
    'short:x:50',
    'long:x:51:runner:extra',
    'nogid:x::runner',
    'hexgid:x:0x20:runner',
    'negative:x:-5:runner',
    'huge:x:4294967295:runner',
    '#comment:x:52:runner',
    ' spaced:x:53: runner ',
    'crlf:x:54:runner\r',
    'docker:x:999:runner',
    '',
  ].join('\n'));
  t.deepEqual(findUser('runner', f.passwd, f.group).groups, [1001, 53, 54, 999]);
});

test('a passwd line whose ids are not decimal is no user; root is refused', (t) => {
  const f = etc(t, '');
  writeFileSync(f.passwd, 'runner:x:1001::/home/runner:/bin/sh\nbad:x:0x10:1:/:/bin/sh\n');
  t.throws(() => findUser('runner', f.passwd, f.group), { message: /no user runner in the image's/ });
  t.throws(() => findUser('bad', f.passwd, f.group), { message: /no user bad in the image's/ });
  writeFileSync(f.passwd, PASSWD);
  t.throws(() => findUser('root', f.passwd, f.group), { message: /is root/ });
});

test('an /etc/group that cannot be read (not a missing one) is an error that names it', (t) => {
  const f = etc(t, null);
  const dir = join(f.group, '..');
  t.throws(() => findUser('runner', f.passwd, dir), { message: new RegExp(`cannot read ${dir}: .*EISDIR`) });
});
