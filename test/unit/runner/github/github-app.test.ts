/**
 * The GitHub App client against the GitHub stand-in over real HTTP: the App JWT and installation tokens (cached,
 * shared by concurrent callers, renewed before they expire, replaced after a 401), JIT configs for repositories
 * and organisations, runners listed over many pages, deleted idempotently, and jobs read back. After every test:
 * no violation of GitHub's description, no secret in a log line or an error.
 */
import anyTest, { type TestFn } from 'ava';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { ErrorCodes, isMatchlockError } from '../../../../src/errors.ts';
import { calls, checkClean, count, logs, rejection, rig, type Rig } from '../../../helpers/github-app.ts';

const test = anyTest as TestFn<{ rig?: Rig }>;
test.afterEach((t) => {
  if (t.context.rig !== undefined) checkClean(t, t.context.rig);
});

const payloads = new URL('../../../fixtures/github/payloads/', import.meta.url).pathname;
const payload = (file: string): Record<string, unknown> => JSON.parse(readFileSync(`${payloads}${file}`, 'utf8')) as Record<string, unknown>;
const LABELS = ['self-hosted', 'linux', 'x64', 'matchlock'];
const HELLO = { repo: 'octo-org/hello' };

test('a repository JIT config: the App JWT gets a token, the config comes back as a Secret', async (t) => {
  const r = t.context.rig = await rig(t);
  const jit = await r.app.generateJitConfig({ scope: HELLO, name: 'ml-1', labels: LABELS, runnerGroupId: 1 });
  const stored = r.api.runner(jit.runnerId);
  t.like(stored, { name: 'ml-1', scope: 'octo-org/hello', labels: LABELS, runnerGroupId: 1, workFolder: '_work' });
  t.is(jit.runnerName, 'ml-1');
  t.is(jit.encodedJitConfig.reveal(), stored!.jitConfig);
  for (const text of [inspect(jit), JSON.stringify(jit), String(jit.encodedJitConfig), `${jit.encodedJitConfig}`]) {
    t.false(text.includes(stored!.jitConfig));
    t.true(text.includes('[redacted]'));
  }
  t.deepEqual(calls(r), ['apps/get-repo-installation 200', 'apps/create-installation-access-token 201', 'actions/generate-runner-jitconfig-for-repo 201']);
  t.deepEqual(logs(r).filter((l) => l['msg'] === 'GitHub request').map((l) => [l['operation'], l['status'], l['attempt']]), [
    ['GET /repos/octo-org/hello/installation', 200, 1],
    ['POST /app/installations/77/access_tokens', 201, 1],
    ['POST /repos/octo-org/hello/actions/runners/generate-jitconfig', 201, 1],
  ]);
});

test('an organisation JIT config in a runner group with a work folder', async (t) => {
  const r = t.context.rig = await rig(t);
  r.api.addRunnerGroup('octo-org', { id: 3, name: 'matchlock', visibility: 'all' });
  const jit = await r.app.generateJitConfig({ scope: { org: 'octo-org' }, name: 'ml-org-1', labels: LABELS, runnerGroupId: 3, workFolder: 'w' });
  t.like(r.api.runner(jit.runnerId), { name: 'ml-org-1', scope: 'octo-org', runnerGroupId: 3, workFolder: 'w' });
  t.deepEqual(calls(r), ['apps/get-org-installation 200', 'apps/create-installation-access-token 201', 'actions/generate-runner-jitconfig-for-org 201']);
  const e = await rejection(t, r, r.app.generateJitConfig({ scope: { org: 'octo-org' }, name: 'ml-org-2', labels: LABELS, runnerGroupId: 9 }));
  t.is(e.message, 'GitHub POST /orgs/octo-org/actions/runners/generate-jitconfig failed: 404 Not Found; organisation octo-org has no runner group 9 the App may use');
});

test('a runner name already taken in the scope is a clear error (409)', async (t) => {
  const r = t.context.rig = await rig(t);
  await r.app.generateJitConfig({ scope: HELLO, name: 'ml-1', labels: LABELS, runnerGroupId: 1 });
  const e = await rejection(t, r, r.app.generateJitConfig({ scope: HELLO, name: 'ml-1', labels: LABELS, runnerGroupId: 1 }));
  t.true(isMatchlockError(e, ErrorCodes.GITHUB));
  t.is(e.message, 'GitHub POST /repos/octo-org/hello/actions/runners/generate-jitconfig failed: 409 Already exists - A runner with the name ml-1 already exists; '
    + 'a runner named ml-1 already exists in repository octo-org/hello: runner names must be unique there; delete that runner or use another name');
  t.like(e.details, { status: 409, operation: 'POST /repos/octo-org/hello/actions/runners/generate-jitconfig' });
  t.is(count(r, 'actions/generate-runner-jitconfig-for-repo'), 2, 'a 409 is not retried');
});

test('one token serves many operations; concurrent first callers share one lookup and one token', async (t) => {
  const r = t.context.rig = await rig(t);
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const jits = await Promise.all(names.map((n) => r.app.generateJitConfig({ scope: HELLO, name: `ml-${n}`, labels: LABELS, runnerGroupId: 1 })));
  t.deepEqual(jits.map((j) => j.runnerName), names.map((n) => `ml-${n}`));
  t.is(count(r, 'apps/get-repo-installation'), 1);
  t.is(count(r, 'apps/create-installation-access-token'), 1);
  await r.app.listRunners(HELLO);
  await r.app.getRunner(HELLO, jits[0]!.runnerId);
  await Promise.all([r.app.listRunners({ repo: 'octo-org/world' }), r.app.listRunners({ repo: 'OCTO-ORG/World' }), r.app.listRunners({ org: 'octo-org' })]);
  t.is(count(r, 'apps/create-installation-access-token'), 1, 'the installation\'s token covers its other repositories and the organisation');
  t.is(count(r, 'apps/get-repo-installation'), 2, 'one lookup for octo-org/world, however it is spelled');
  t.is(count(r, 'apps/get-org-installation'), 1);
});

test('the token is renewed five minutes before it expires, and the JWT with it', async (t) => {
  const r = t.context.rig = await rig(t);
  await r.app.listRunners(HELLO);
  r.clock.ms += 54 * 60_000;
  await r.app.listRunners(HELLO);
  t.is(count(r, 'apps/create-installation-access-token'), 1, '6 minutes before expiry: the same token');
  r.clock.ms += 2 * 60_000;
  await r.app.listRunners(HELLO);
  t.is(count(r, 'apps/create-installation-access-token'), 2, '4 minutes before expiry: a new token, with a new JWT the stand-in accepted');
  t.true(calls(r).every((c) => / 20[01]$/.test(c)));
});

test('a 401 on a token drops it and retries once with a new one; a second 401 fails', async (t) => {
  const r = t.context.rig = await rig(t);
  await r.app.listRunners(HELLO);
  r.api.failNext('actions/list-self-hosted-runners-for-repo', 1, { status: 401, message: 'Bad credentials' });
  t.deepEqual(await r.app.listRunners(HELLO), []);
  t.is(count(r, 'apps/create-installation-access-token'), 2);
  t.deepEqual(calls(r).slice(-3), ['actions/list-self-hosted-runners-for-repo 401', 'apps/create-installation-access-token 201', 'actions/list-self-hosted-runners-for-repo 200']);
  t.like(logs(r).find((l) => l['msg'] === 'GitHub refused the credential; retrying with a new one'), { operation: 'GET /repos/octo-org/hello/actions/runners', status: 401, attempt: 1 });
  t.deepEqual(r.waits, [], 'no wait before the retry');

  r.api.failNext('actions/list-self-hosted-runners-for-repo', 2, { status: 401, message: 'Bad credentials' });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  t.is(e.message, 'GitHub GET /repos/octo-org/hello/actions/runners failed: 401 Bad credentials');
  t.is(count(r, 'actions/list-self-hosted-runners-for-repo'), 5);
  t.is(count(r, 'apps/create-installation-access-token'), 3);
});

test('deleting a runner is idempotent: 204, then already gone; getRunner finds it until then', async (t) => {
  const r = t.context.rig = await rig(t);
  const jit = await r.app.generateJitConfig({ scope: { org: 'octo-org' }, name: 'ml-1', labels: LABELS, runnerGroupId: 1 });
  t.like(await r.app.getRunner({ org: 'octo-org' }, jit.runnerId), { id: jit.runnerId, name: 'ml-1', status: 'offline', busy: false, labels: LABELS, runnerGroupId: 1, ephemeral: true });
  t.is(await r.app.getRunner(HELLO, jit.runnerId), null, 'an organisation runner is not a repository runner');
  const runner = r.api.runner(jit.runnerId)!;
  runner.busy = true;
  const busy = await rejection(t, r, r.app.deleteRunner({ org: 'octo-org' }, jit.runnerId));
  t.regex(busy.message, /failed: 422 .*; runner \d+ of organisation octo-org is still running a job: delete it once the job has ended$/);
  runner.busy = false;
  t.true(await r.app.deleteRunner({ org: 'octo-org' }, jit.runnerId));
  t.false(await r.app.deleteRunner({ org: 'octo-org' }, jit.runnerId));
  t.is(await r.app.getRunner({ org: 'octo-org' }, jit.runnerId), null);
  t.deepEqual(r.api.runners(), []);
});

test('listRunners follows the pages over more than 100 runners and filters by name prefix', async (t) => {
  const r = t.context.rig = await rig(t);
  for (let i = 0; i < 105; i++) r.jits.push((await r.app.generateJitConfig({ scope: HELLO, name: `ml-host1-${i}`, labels: LABELS, runnerGroupId: 1 })).encodedJitConfig.reveal());
  for (let i = 0; i < 30; i++) await r.app.generateJitConfig({ scope: HELLO, name: `other-${i}`, labels: ['self-hosted'], runnerGroupId: 1 });
  await r.app.generateJitConfig({ scope: { org: 'octo-org' }, name: 'ml-host1-org', labels: LABELS, runnerGroupId: 1 });
  const before = r.api.requests.length;
  const all = await r.app.listRunners(HELLO);
  t.is(all.length, 135);
  t.deepEqual(r.api.requests.slice(before).map((q) => q.path.replace(/^.*\?/, '?')), ['?per_page=100', '?per_page=100&page=2']);
  const ours = await r.app.listRunners(HELLO, { namePrefix: 'ml-host1-' });
  t.deepEqual(ours.map((x) => x.name), Array.from({ length: 105 }, (_, i) => `ml-host1-${i}`));
  t.deepEqual(new Set(ours.map((x) => x.id)).size, 105);
  t.deepEqual((await r.app.listRunners({ org: 'octo-org' }, { namePrefix: 'ml-' })).map((x) => x.name), ['ml-host1-org']);
});

test('getJob reads a job; listQueuedJobs finds the queued jobs of queued and in-progress runs', async (t) => {
  const r = t.context.rig = await rig(t);
  r.api.addInstallation({ id: 5, account: 'Codertocat' });
  const repo = 'Codertocat/Hello-World';
  const job = payload('workflow_job.queued.json')['workflow_job'] as Record<string, unknown>;
  const run = payload('workflow_run.requested.json')['workflow_run'] as Record<string, unknown>;
  r.api.seedRun(repo, { ...run, id: 10, status: 'queued' });
  r.api.seedRun(repo, { ...run, id: 20, status: 'in_progress' });
  r.api.seedRun(repo, { ...run, id: 30, status: 'completed', conclusion: 'success' });
  r.api.seedJob(repo, { ...job, id: 101, run_id: 10, status: 'queued' });
  r.api.seedJob(repo, { ...job, id: 201, run_id: 20, status: 'in_progress', runner_name: 'ml-host1-3' });
  r.api.seedJob(repo, { ...job, id: 202, run_id: 20, status: 'queued', labels: ['self-hosted', 'matchlock'], runner_id: null, runner_name: null });
  r.api.seedJob(repo, { ...job, id: 301, run_id: 30, status: 'completed', conclusion: 'success' });
  t.like(await r.app.getJob(repo, 201), { repo, id: 201, runId: 20, status: 'in_progress', runnerName: 'ml-host1-3', labels: ['ubuntu-latest'], runAttempt: 1, createdAt: '2021-09-13T02:21:13Z' });
  t.is(await r.app.getJob(repo, 999), null);
  const queued = await r.app.listQueuedJobs(repo);
  t.deepEqual(queued.map((j) => [j.id, j.runId, j.status]), [[101, 10, 'queued'], [202, 20, 'queued']]);
  t.like(queued[1], { labels: ['self-hosted', 'matchlock'], runnerId: null, runnerName: null });
  t.deepEqual((await r.app.listQueuedJobs(repo, { runStatuses: ['queued'] })).map((j) => j.id), [101]);
  t.true(r.api.requests.some((q) => q.path.includes('status=in_progress') && q.path.includes('exclude_pull_requests=true')));
});
