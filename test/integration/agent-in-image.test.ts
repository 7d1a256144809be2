/**
 * The agent injected into a userland we did not make (Debian's debootstrap, from test/fixtures/images/make-images.sh):
 * its self-check passes in a chroot of the tree, and the agent runs a job there as PID 1 of its own namespaces,
 * with the image's own shell and tools for the runner, and powers off. An overlay keeps the cached tree as it is.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { AGENT_VERSION } from '../../src/guest/index.ts';
import { chrootSelfCheck, injectAgent } from '../../src/images/inject-agent.ts';
import { assignment, sessionWith, startAgent } from '../helpers/agent.ts';
import { REPO } from '../helpers/cli.ts';
import { rootSuite } from '../helpers/root.ts';

const { test } = rootSuite(import.meta.url);

/** The debootstrap tree (made and cached on first use), under a writable overlay that the test removes. */
function debootstrapOverlay(t: ExecutionContext): string {
  const cache = process.env['MATCHLOCK_TEST_IMAGES'] ?? '/var/cache/matchlock-test-images';
  execFileSync(join(REPO, 'test/fixtures/images/make-images.sh'), [cache], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 900_000 });
  const work = mkdtempSync('/var/tmp/matchlock-overlay-');
  const [upper, scratch, merged] = ['upper', 'work', 'merged'].map((d) => join(work, d));
  for (const d of [upper!, scratch!, merged!]) mkdirSync(d);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${join(cache, 'debootstrap')},upperdir=${upper},workdir=${scratch}`, merged!]);
  t.teardown(() => {
    execFileSync('umount', ['-l', merged!]);
    rmSync(work, { recursive: true, force: true });
  });
  return merged!;
}

test("the injected agent's self-check passes in a chroot of a debootstrap tree", async (t) => {
  const tree = debootstrapOverlay(t);
  t.deepEqual(await injectAgent(tree), { agentVersion: AGENT_VERSION });
  const report = await chrootSelfCheck(tree);
  t.like(report, { ok: true, nativeCalls: true, frames: true, protocol: 1, node: process.version });
});

test('the injected agent runs a job as PID 1 on a debootstrap userland and powers off', async (t) => {
  const tree = debootstrapOverlay(t);
  await injectAgent(tree);
  appendFileSync(join(tree, 'etc/group'), 'docker:x:4545:runner,nobody\n'); // the image's own group file, read in the chroot
  const agent = startAgent(['--hostname', 'debian-job'], { chroot: tree });
  t.teardown(() => { agent.child.kill('SIGKILL'); });
  const s = await sessionWith(agent, 60_000);
  t.is((await s.session.hello).agent, AGENT_VERSION);
  await s.session.assign(assignment({ MODE: 'ok', GREETING: 'from debian' }));
  t.is((await s.session.exited).code, 0, agent.stderr());
  t.regex(s.out(), /^runner user=nobody uid=65534 cwd=\/agent-\w+ home=\/nonexistent greeting=from debian$/m);
  t.regex(s.out(), /^groups=65534 4545$/m, 'nogroup, and the group the image lists it in (through the injected launcher)');
  t.regex(s.out(), /on a command line: 0/);
  s.session.ack();
  t.is((await agent.ended).signal, 'SIGHUP', agent.stderr());
  t.regex(agent.stderr(), /"msg":"system set up"/);
});

test("an image's /etc/ld.so.preload never runs in the build's self-check (the image is not trusted; the build runs as root)", async (t) => {
  const tree = mkdtempSync('/var/tmp/matchlock-preload-');
  chmodSync(tree, 0o755); // an image's root, which the self-check's unprivileged user must traverse
  t.teardown(() => { rmSync(tree, { recursive: true, force: true }); });
  mkdirSync(join(tree, 'etc'));
  mkdirSync(join(tree, 'lib'));
  mkdirSync(join(tree, 'tmp'));
  chmodSync(join(tree, 'tmp'), 0o1777); // where even the unprivileged self-check could leave a mark
  const source = join(tree, 'evil.c');
  writeFileSync(source, '#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) { close(open("/tmp/pwned", O_CREAT | O_WRONLY, 0644)); }\n');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', join(tree, 'lib/evil.so'), source]);
  writeFileSync(join(tree, 'etc/ld.so.preload'), '/lib/evil.so\n');
  // The library works: preloaded into a program of this host, it leaves its mark.
  execFileSync('/bin/true', { env: { LD_PRELOAD: join(tree, 'lib/evil.so') } });
  t.true(existsSync('/tmp/pwned'), 'the test library does what it should');
  rmSync('/tmp/pwned');
  t.deepEqual(await injectAgent(tree), { agentVersion: AGENT_VERSION });
  t.false(existsSync(join(tree, 'tmp/pwned')), 'the preload was covered: nothing of the image ran');
});
