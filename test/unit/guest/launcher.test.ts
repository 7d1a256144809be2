/**
 * The agent's launcher (src/guest/launcher, built here with make): its --run-as refuses what is not exactly
 * `UID GID GIDLIST -- PROGRAM [ARGS...]` of decimal ids, before it changes any id or starts anything.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { buildLauncher, LAUNCHER } from '../../helpers/agent.ts';

test.before('the launcher builds', (t) => {
  const failure = buildLauncher();
  t.is(failure, null, failure ?? '');
});

function runAs(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(LAUNCHER, ['--run-as', ...args], { encoding: 'utf8' });
}

test('--run-as refuses ids that are not decimal numbers below 2^32-1, naming them', (t) => {
  const bad: [string[], RegExp][] = [
    [['1000', 'abc', '', '--', '/bin/true'], /not a gid: "abc"/],
    [['x1', '1000', '', '--', '/bin/true'], /not a uid: "x1"/],
    [['', '1000', '', '--', '/bin/true'], /not a uid: ""/],
    [['-1', '1000', '', '--', '/bin/true'], /not a uid: "-1"/],
    [['+1000', '1000', '', '--', '/bin/true'], /not a uid: "\+1000"/],
    [[' 1000', '1000', '', '--', '/bin/true'], /not a uid: " 1000"/],
    [['0x10', '1000', '', '--', '/bin/true'], /not a uid: "0x10"/],
    [['4294967295', '1000', '', '--', '/bin/true'], /not a uid: "4294967295"/],
    [['1000', '99999999999', '', '--', '/bin/true'], /not a gid: "99999999999"/],
    [['1000', '1000', '1,,2', '--', '/bin/true'], /not a comma-separated list of gids: "1,,2"/],
    [['1000', '1000', '1,2,', '--', '/bin/true'], /not a comma-separated list of gids: "1,2,"/],
    [['1000', '1000', ',1', '--', '/bin/true'], /not a comma-separated list of gids: ",1"/],
    [['1000', '1000', '1 2', '--', '/bin/true'], /not a comma-separated list of gids: "1 2"/],
    [['1000', '1000', '1,docker', '--', '/bin/true'], /not a comma-separated list of gids: "1,docker"/],
    [['1000', '1000', '4294967295', '--', '/bin/true'], /not a comma-separated list of gids: "4294967295"/],
  ];
  for (const [args, message] of bad) {
    const r = runAs(...args);
    t.is(r.status, 127, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
    t.regex(r.stderr, /usage: matchlock-agent --run-as UID GID GIDLIST -- PROGRAM/);
    t.is(r.stdout, '');
  }
});

test('--run-as without `--` before the program, or without a program, says how it is used', (t) => {
  for (const args of [['1000', '1000', '', '/bin/true'], ['1000', '1000', '', '-', '/bin/true'], ['1000', '1000', '', '--'], ['1000', '1000'], []]) {
    const r = runAs(...args);
    t.is(r.status, 127, args.join(' '));
    t.is(r.stderr, 'matchlock-agent --run-as: usage: matchlock-agent --run-as UID GID GIDLIST -- PROGRAM [ARGS...]\n', args.join(' '));
  }
});
