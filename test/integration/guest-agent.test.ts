/**
 * The guest agent as a real process, PID 1 of its own namespaces, with a Unix socket for vsock and a stand-in
 * runner started through the agent's launcher (built here): the host side (src/runner) drives it through the
 * protocol as it will drive it in a VM.
 */
import avaTest from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { encodeFrame, encodeJsonFrame } from '../../src/guest/index.ts';
import { assignment, buildLauncher, JIT_CONFIG, LAUNCHER, sessionWith, startAgent, type AgentUnderTest } from '../helpers/agent.ts';
import { declaredNoRoot, rootSuite } from '../helpers/root.ts';

const { test } = rootSuite(import.meta.url);

if (!declaredNoRoot) {
  avaTest.before('the agent\'s launcher builds', (t) => {
    const failure = buildLauncher();
    t.is(failure, null, failure ?? '');
  });
}

function finish(t: ExecutionContext, agent: AgentUnderTest): void {
  t.teardown(() => {
    agent.child.kill('SIGKILL');
    rmSync(agent.dir, { recursive: true, force: true });
  });
}

test('an assignment runs the runner as the unprivileged user; output and exit reach the host; ACK powers off', async (t) => {
  const agent = startAgent();
  finish(t, agent);
  const s = await sessionWith(agent);
  const hello = await s.session.hello;
  t.is(hello.protocol, 1);
  t.is(hello.state, 'idle');
  t.regex(hello.agent, /^matchlock-agent\//);
  const started = await s.session.assign(assignment({ MODE: 'ok', GREETING: 'hi there' }));
  t.true(started.pid > 1);
  const exited = await s.session.exited;
  t.is(exited.code, 0);
  t.false(exited.timedOut);
  t.is(exited.droppedBytes, 0);
  const nobody = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).split(':');
  t.regex(s.out(), new RegExp(`runner user=nobody uid=${nobody[2]} cwd=${agent.dir} home=${nobody[5]} greeting=hi there`));
  t.regex(s.out(), new RegExp(`jit length=${JIT_CONFIG.length}\\n`), 'the JIT config reaches the runner in its environment');
  t.regex(s.out(), /on a command line: 0\n/, 'and is on no command line in the VM');
  t.is(s.err(), 'to stderr\n');
  s.session.ack();
  const end = await agent.ended;
  t.is(end.signal, 'SIGHUP', `the agent ended its "VM" (a reboot by a PID namespace's init): ${JSON.stringify(end)}\n${agent.stderr()}`);
  t.false(agent.stderr().includes(JIT_CONFIG) || agent.stderr().includes('leak-canary'), 'the JIT config is in no log line');
  t.regex(agent.stderr(), /"msg":"runner started"/);
});

test("the runner's exit code and a signal that killed it are reported as they were", async (t) => {
  const a = startAgent();
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'code', CODE: '17' }));
  t.like(await s.session.exited, { code: 17, timedOut: false, cancelled: false });
  const b = startAgent();
  finish(t, b);
  const s2 = await sessionWith(b);
  await s2.session.assign(assignment({ MODE: 'signal' }));
  const x = await s2.session.exited;
  t.is(x.code, null);
  t.is(x.signal, 'SIGKILL');
});

test('a runner that hangs past its timeout and ignores SIGTERM is killed, and the exit says it timed out', async (t) => {
  const a = startAgent();
  finish(t, a);
  const s = await sessionWith(a);
  const t0 = Date.now();
  await s.session.assign(assignment({ MODE: 'hang' }, { timeoutSeconds: 1 }));
  const x = await s.session.exited;
  t.true(x.timedOut);
  t.is(x.signal, 'SIGKILL', 'SIGTERM was ignored, so SIGKILL after the grace');
  t.true(Date.now() - t0 >= 1000 + 300);
  t.regex(s.out(), /hanging/);
});

test('a cancel stops the runner', async (t) => {
  const a = startAgent();
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'hang' }));
  s.session.cancel('the workflow run was cancelled');
  const x = await s.session.exited;
  t.true(x.cancelled);
  t.false(x.timedOut);
});

test('a host that disconnects loses nothing: the job goes on, and a new connection gets the output and the exit', async (t) => {
  const a = startAgent();
  finish(t, a);
  const go = join(a.dir, 'go');
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'wait', GO: go }));
  while (!s.out().includes('waiting')) await new Promise((r) => setTimeout(r, 20));
  s.session.close();
  await t.throwsAsync(s.session.exited, { message: /closed the connection/ });
  writeFileSync(go, '');
  await new Promise((r) => setTimeout(r, 500)); // the runner writes and exits while no host is connected
  const again = await sessionWith(a);
  const hello = await again.session.hello;
  t.is(hello.state, 'exited');
  t.is(hello.jobId, 'job-42');
  const x = await again.session.exited;
  t.is(x.code, 4);
  t.is(again.out(), 'after the wait\n');
  await t.throwsAsync(again.session.assign(assignment({ MODE: 'ok' })), { message: /refused the job \(busy\)/ });
  again.session.ack();
  t.is((await a.ended).signal, 'SIGHUP');
});

test('output beyond what the agent keeps for an absent host is dropped oldest first, and counted', async (t) => {
  // The agent keeps 4 MiB; the runner writes about 6 MiB while no host is connected.
  const b = startAgent();
  finish(t, b);
  const s2 = await sessionWith(b);
  await s2.session.assign(assignment({ MODE: 'spam', LINES: String(90_000) }));
  s2.session.close();
  await t.throwsAsync(s2.session.exited);
  await new Promise((r) => setTimeout(r, 3000));
  const again = await sessionWith(b);
  const x = await again.session.exited;
  t.is(x.code, 0);
  const total = 90_000 * 'line 00000 of output that is a little long to fill the buffer quickly\n'.length;
  t.true(x.droppedBytes > 0, `dropped ${x.droppedBytes}`);
  t.true(again.out().length <= 4 * 1024 * 1024);
  t.true(again.out().endsWith('line 89999 of output that is a little long to fill the buffer quickly\n'), 'the newest output is kept');
  t.true(x.droppedBytes + again.out().length <= total + 1024 * 1024);
});

test('a second assignment is refused while the first runs', async (t) => {
  const a = startAgent();
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'hang' }));
  await t.throwsAsync(s.session.assign(assignment({ MODE: 'ok' })), { message: /refused the job \(busy\): this VM has taken job job-42/ });
  s.session.cancel('done');
  t.true((await s.session.exited).cancelled);
});

test('malformed frames get an ERROR and a closed connection; the agent stays idle and takes a good assignment after', async (t) => {
  const a = startAgent();
  finish(t, a);
  const bad: [string, Buffer][] = [
    ['a length over the limit', Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ['an unknown type', Buffer.from([0, 0, 0, 1, 200])],
    ['a frame the host may not send', encodeJsonFrame('EXITED', { code: 0, timedOut: false, cancelled: false, durationMs: 0, droppedBytes: 0 })],
    ['a body that is not JSON', encodeFrame('ASSIGN', Buffer.from('{"protocol":'))],
    ['an assignment with an unknown field', encodeJsonFrame('ASSIGN', { ...assignment({}), protocol: 1, shell: 'rm -rf /' })],
    ['an ACK before any exit', encodeJsonFrame('ACK', {})],
  ];
  for (const [what, bytes] of bad) {
    const s = await sessionWith(a);
    t.is((await s.session.hello).state, 'idle', what);
    s.session.writeRaw(bytes);
    await t.throwsAsync(s.session.exited, { message: /reported a protocol error \(malformed\)/ }, what);
  }
  const s = await sessionWith(a);
  t.is((await s.session.hello).state, 'idle');
  await s.session.assign(assignment({ MODE: 'code', CODE: '0' }));
  t.is((await s.session.exited).code, 0);
});

test('an assignment in another protocol version, or that cannot be set up, is refused and the agent stays idle', async (t) => {
  const a = startAgent([], { user: 'no-such-user' });
  finish(t, a);
  const s = await sessionWith(a);
  await t.throwsAsync(s.session.assign({ ...assignment({ MODE: 'ok' }), protocol: 2 } as ReturnType<typeof assignment>), { message: /refused the job \(protocol\): protocol 2 is not spoken here/ });
  await t.throwsAsync(s.session.assign(assignment({ MODE: 'ok' })), { message: /refused the job \(setup\): no user no-such-user/ });
  const again = await sessionWith(a);
  t.is((await again.session.hello).state, 'idle');
});

test('cache disks are mounted where the assignment says and given to the runner', async (t) => {
  const devDir = mkdtempSync('/var/tmp/matchlock-dev-');
  t.teardown(() => { rmSync(devDir, { recursive: true, force: true }); });
  const disk = join(devDir, 'cache.ext4');
  execFileSync('truncate', ['-s', '64M', disk]);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', disk]);
  const loop = execFileSync('losetup', ['--find', '--show', disk], { encoding: 'utf8' }).trim();
  t.teardown(() => { execFileSync('losetup', ['-d', loop]); });
  symlinkSync(loop, join(devDir, 'vdb')); // the agent looks /dev/vdb up under --dev-dir
  const b = startAgent(['--dev-dir', devDir]);
  finish(t, b);
  const cache = join(b.dir, 'cache');
  const s = await sessionWith(b);
  await s.session.assign(assignment({ MODE: 'cache', CACHE: cache }, { caches: [{ device: '/dev/vdb', path: cache }] }));
  t.is((await s.session.exited).code, 0);
  t.regex(s.out(), /cache owner=nobody mode=755/);
  s.session.ack();
  await b.ended; // the namespace and its mount are gone
  t.false(existsSync(join(cache, 'from-job')), 'the mount was the agent\'s own namespace\'s');
  const listing = execFileSync('debugfs', ['-R', 'cat /from-job', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  t.is(listing, 'written by the job\n', 'the job wrote to the cache disk');
});

test('as PID 1 the agent collects orphans it inherits', async (t) => {
  const a = startAgent();
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'orphan' }));
  t.is((await s.session.exited).code, 0);
  await new Promise((r) => setTimeout(r, 2500)); // the orphan ends after 0.3 s; the reaper looks every second
  const agentPid = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).find((p) => {
    try {
      return readFileSync(`/proc/${p}/stat`, 'utf8').split(' ')[3] === String(a.child.pid);
    } catch {
      return false;
    }
  });
  t.truthy(agentPid, 'the agent runs under unshare');
  const zombies = readdirSync('/proc').filter((p) => {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return rest[0] === 'Z' && rest[1] === agentPid;
    } catch {
      return false;
    }
  });
  t.deepEqual(zombies, []);
  t.regex(s.out(), /orphan started/);
});

test('the hostname comes from matchlock.hostname= (here --hostname), set in the agent\'s own UTS namespace', async (t) => {
  const a = startAgent(['--hostname', 'job-vm-7']);
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'hostname' }));
  t.is((await s.session.exited).code, 0);
  t.regex(s.out(), /^hostname=job-vm-7 pid1=\S+\n$/);
});

test('the runner gets exactly the groups initgroups(3) would give its user: the primary gid and each group listing it', async (t) => {
  const [, , uid, gid] = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).trim().split(':');
  const a = startAgent([], {
    etcGroup: [
      'root:x:0:',
      `primary:x:${gid}:`,
      'docker:x:4242:someone,nobody',
      'this is not a group line',
      'builders:x:4343:nobody',
      '#commented:x:4444:nobody',
      'others:x:4545:root,nobody2',
      'badgid:x:12ab:nobody',
      'docker-again:x:4242:nobody',
      '',
    ].join('\n'),
  });
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'ids' }));
  t.is((await s.session.exited).code, 0, `${s.err()}\n${a.stderr()}`);
  const status = new Map(s.out().trim().split('\n').map((l) => { const [k, v] = l.split(':\t'); return [k, (v ?? '').trim().split(/\s+/)]; }));
  t.deepEqual(status.get('Uid'), [uid, uid, uid, uid], 'real, effective, saved and file system uid');
  t.deepEqual(status.get('Gid'), [gid, gid, gid, gid], 'real, effective, saved and file system gid');
  t.deepEqual(status.get('Groups')?.map(Number).sort((x, y) => x - y), [4242, 4343, Number(gid)].sort((x, y) => x - y));
});

test('a runner user in no group of /etc/group gets its primary gid alone, not the agent\'s groups', async (t) => {
  const [, , , gid] = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).trim().split(':');
  const a = startAgent([], { etcGroup: 'root:x:0:\nwheel:x:10:root\n' });
  finish(t, a);
  const s = await sessionWith(a);
  await s.session.assign(assignment({ MODE: 'ids' }));
  t.is((await s.session.exited).code, 0, s.err());
  t.regex(s.out(), new RegExp(`^Groups:\t${gid} ?$`, 'm'));
});

test('an agent whose launcher is missing refuses the assignment, naming the launcher, and stays idle', async (t) => {
  const a = startAgent(['--launcher', '/nonexistent/matchlock-agent']);
  finish(t, a);
  const s = await sessionWith(a);
  await t.throwsAsync(s.session.assign(assignment({ MODE: 'ok' })), { message: /refused the job \(setup\): the agent's launcher \/nonexistent\/matchlock-agent, which starts the runner as its user, cannot be run \(ENOENT/ });
  const again = await sessionWith(a);
  t.is((await again.session.hello).state, 'idle');
});

test("the launcher's --run-as sets the ids, keeps the environment and says which program it could not start", (t) => {
  const ok = spawnSync(LAUNCHER, ['--run-as', '65534', '65534', '65534,4242', '--', '/bin/sh', '-c', 'grep -E "^(Uid|Gid|Groups):" /proc/$$/status; echo "secret=$SECRET"'], { encoding: 'utf8', env: { SECRET: 's3', PATH: '/usr/bin:/bin' } });
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /^Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t4242 65534 ?\nsecret=s3\n$/);
  const none = spawnSync(LAUNCHER, ['--run-as', '65534', '65534', '', '--', '/bin/sh', '-c', 'grep "^Groups:" /proc/$$/status'], { encoding: 'utf8' });
  t.is(none.status, 0, none.stderr);
  t.regex(none.stdout, /^Groups:\t?\s*$/, 'an empty list: no supplementary group at all');
  const missing = spawnSync(LAUNCHER, ['--run-as', '65534', '65534', '', '--', '/nonexistent/run.sh'], { encoding: 'utf8' });
  t.is(missing.status, 127);
  t.is(missing.stderr, 'matchlock-agent --run-as: cannot start /nonexistent/run.sh: No such file or directory\n');
});
