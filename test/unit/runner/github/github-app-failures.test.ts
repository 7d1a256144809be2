/**
 * The GitHub App client when GitHub fails or refuses, against the stand-in's injected failures over real HTTP:
 * server errors and no reply retried with backoff, rate limits waited out when they reset soon enough and
 * refused with the reset time when not, missing permissions and installations named, replies missing a field
 * refused. Waits are recorded, not slept: the clock both sides share moves instead. After every test: no
 * violation of GitHub's description (but the ones a test provokes), no secret in a log line or an error.
 */
import anyTest, { type TestFn } from 'ava';
import { readFileSync } from 'node:fs';
import { ErrorCodes, isMatchlockError } from '../../../../src/errors.ts';
import { GitHubApi } from '../../../helpers/github/index.ts';
import { APP_ID, calls, checkClean, count, logs, publicKey, rejection, rig, type Rig } from '../../../helpers/github-app.ts';

const test = anyTest as TestFn<{ rig?: Rig }>;
test.afterEach((t) => {
  if (t.context.rig !== undefined) checkClean(t, t.context.rig);
});

const HELLO = { repo: 'octo-org/hello' };
const LIST = 'actions/list-self-hosted-runners-for-repo';
const LIST_OP = 'GET /repos/octo-org/hello/actions/runners';
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const retries = (r: Rig): unknown[][] => logs(r).filter((l) => l['msg'] === 'GitHub request failed; retrying').map((l) => [l['operation'], l['status'], l['attempt'], l['reason'], l['waitMs']]);

/** A rig whose token is already issued, so that only the operation under test is retried. */
async function warm(t: Parameters<typeof rig>[0], o: Parameters<typeof rig>[1] = {}): Promise<Rig> {
  const r = await rig(t, o);
  await r.app.listRunners(HELLO);
  return r;
}

test('500 and 502 are retried with exponential backoff and jitter, then succeed', async (t) => {
  const r = t.context.rig = await warm(t);
  r.api.failNext(LIST, 1, { status: 500 });
  r.api.failNext(LIST, 1, { status: 502 });
  t.deepEqual(await r.app.listRunners(HELLO), []);
  t.deepEqual(r.waits, [750, 1500], 'backoff 1 s then 2 s, each between half and all of it');
  t.deepEqual(retries(r), [[LIST_OP, 500, 1, 'server-error', 750], [LIST_OP, 502, 2, 'server-error', 1500]]);
  r.api.failNext('actions/generate-runner-jitconfig-for-repo', 1, { status: 503 });
  const jit = await r.app.generateJitConfig({ scope: HELLO, name: 'ml-1', labels: ['matchlock'], runnerGroupId: 1 });
  t.deepEqual(r.api.runners().map((x) => x.id), [jit.runnerId], 'one runner, from the retry');
});

test('server errors are retried a bounded number of times', async (t) => {
  const r = t.context.rig = await warm(t, { retry: { maxAttempts: 3, maxDelayMs: 1200 } });
  r.api.failNext(LIST, 3, { status: 503 });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  t.true(isMatchlockError(e, ErrorCodes.GITHUB));
  t.is(e.message, `GitHub ${LIST_OP} failed: 503 Service Unavailable; gave up after 3 attempts`);
  t.like(e.details, { operation: LIST_OP, status: 503, githubMessage: 'Service Unavailable' });
  t.is(e.cause, undefined, 'Octokit\'s RequestError, which holds the request, is not passed along');
  t.deepEqual(r.waits, [750, 900], 'the second backoff capped at maxDelayMs');
  t.is(count(r, LIST), 4);
});

test('no reply (nothing listening) is retried, then fails saying so', async (t) => {
  const dead = await new GitHubApi({ appId: APP_ID, publicKey }).start();
  const url = dead.url;
  await dead.close();
  const r = t.context.rig = await rig(t, { baseUrl: url, retry: { maxAttempts: 2 } });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  t.regex(e.message, /^GitHub GET \/repos\/octo-org\/hello\/installation failed: no reply \(.*ECONNREFUSED.*\); gave up after 2 attempts$/);
  t.like(e.details, { status: null });
  t.deepEqual(r.waits, [750]);
  t.deepEqual(retries(r).map((x) => x[3]), ['no-reply']);
});

test('a primary rate limit that resets within the longest wait is waited out', async (t) => {
  const r = t.context.rig = await warm(t);
  const at = r.clock.ms;
  r.api.failNext(LIST, 1, { status: 403, rateLimit: true });
  t.deepEqual(await r.app.listRunners(HELLO), []);
  const reset = (Math.floor(at / 1000) + 60) * 1000;
  t.deepEqual(r.waits, [reset + 1000 - at], 'until x-ratelimit-reset, and a second more');
  t.deepEqual(retries(r), [[LIST_OP, 403, 1, 'rate-limit', reset + 1000 - at]]);
  r.api.failNext(LIST, 1, { status: 429, rateLimit: true });
  t.deepEqual(await r.app.listRunners(HELLO), []);
  t.is(r.waits.length, 2, '429 with x-ratelimit-remaining: 0 too');
});

test('a primary rate limit that resets later than the longest wait fails at once, saying when it resets', async (t) => {
  const r = t.context.rig = await warm(t, { retry: { maxRateLimitWaitMs: 30_000 } });
  const at = r.clock.ms;
  r.api.failNext(LIST, 1, { status: 403, rateLimit: true });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  const until = (Math.floor(at / 1000) + 60) * 1000 + 1000;
  t.is(e.message, `GitHub ${LIST_OP} failed: 403 API rate limit exceeded for installation ID 77; GitHub's API rate limit is used up until ${iso(until)}, `
    + `${Math.ceil((until - at) / 1000)} s from now, longer than the 30 s matchlock waits: try again after ${iso(until)}`);
  t.like(e.details, { status: 403, rateLimitReset: new Date(until).toISOString() });
  t.deepEqual(r.waits, []);
  t.is(count(r, LIST), 2);
});

test('a secondary rate limit waits retry-after seconds, on App and installation calls alike; too long fails', async (t) => {
  const r = t.context.rig = await rig(t);
  r.api.failNext('apps/create-installation-access-token', 1, { status: 429, retryAfter: 2 });
  await r.app.listRunners(HELLO);
  r.api.failNext(LIST, 1, { status: 403, retryAfter: 7 });
  await r.app.listRunners(HELLO);
  t.deepEqual(r.waits, [2000, 7000]);
  t.deepEqual(retries(r).map((x) => x.slice(0, 4)), [['POST /app/installations/77/access_tokens', 429, 1, 'secondary-rate-limit'], [LIST_OP, 403, 1, 'secondary-rate-limit']]);
  r.api.failNext(LIST, 1, { status: 403, retryAfter: 3600 });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  t.regex(e.message, /failed: 403 You have exceeded a secondary rate limit\. Please wait a few minutes before you try again; GitHub's secondary rate limit is used up until .*, 3600 s from now, longer than the 300 s matchlock waits/);
  t.is(r.waits.length, 2);
});

test('a missing permission is named: Administration, Self-hosted runners, Actions; not retried', async (t) => {
  const r = t.context.rig = await rig(t);
  r.api.addInstallation({ id: 99, account: 'picky-org', repositories: ['chosen'], permissions: { actions: 'read', administration: 'read' } });
  r.api.addInstallation({ id: 55, account: 'bare-org', permissions: { administration: 'write' } });
  t.deepEqual(await r.app.listRunners({ repo: 'picky-org/chosen' }), [], 'Administration: read is enough to list');
  const jit = await rejection(t, r, r.app.generateJitConfig({ scope: { repo: 'picky-org/chosen' }, name: 'ml-1', labels: ['matchlock'], runnerGroupId: 1 }));
  t.is(jit.message, 'GitHub POST /repos/picky-org/chosen/actions/runners/generate-jitconfig failed: 403 Resource not accessible by integration; '
    + 'the App\'s installation lacks the permission "Administration: write": grant it in the App\'s settings (Permissions & events) and approve the new permission on the installation');
  t.regex((await rejection(t, r, r.app.listRunners({ org: 'bare-org' }))).message, /403 Resource not accessible by integration; the App's installation lacks the permission "Self-hosted runners: read"/);
  t.regex((await rejection(t, r, r.app.getJob('bare-org/app', 1))).message, /403 Resource not accessible by integration; the App's installation lacks the permission "Actions: read"/);
  t.is(count(r, 'actions/generate-runner-jitconfig-for-repo'), 1);
  t.deepEqual(r.waits, []);
});

test('a repository or organisation the App is not installed on, or a suspended installation, is a clear error', async (t) => {
  const r = t.context.rig = await rig(t);
  r.api.addInstallation({ id: 99, account: 'picky-org', repositories: ['chosen'] });
  r.api.addInstallation({ id: 44, account: 'frozen-org', suspended: true });
  r.api.addInstallation({ id: 33, account: 'a-user', accountType: 'User' });
  const jit = { name: 'ml-1', labels: ['matchlock'], runnerGroupId: 1 };
  t.is((await rejection(t, r, r.app.generateJitConfig({ ...jit, scope: { repo: 'nobody/x' } }))).message,
    'GitHub GET /repos/nobody/x/installation failed: 404 Not Found; the GitHub App is not installed on repository nobody/x: install it on nobody/x (or on nobody with this repository selected)');
  t.regex((await rejection(t, r, r.app.listRunners({ repo: 'picky-org/other' }))).message, /the GitHub App is not installed on repository picky-org\/other: install it/);
  t.is((await rejection(t, r, r.app.listRunners({ org: 'ghost-org' }))).message,
    'GitHub GET /orgs/ghost-org/installation failed: 404 Not Found; the GitHub App is not installed on organisation ghost-org: install it on the organisation ghost-org');
  t.regex((await rejection(t, r, r.app.listRunners({ org: 'a-user' }))).message, /not installed on organisation a-user/, 'a user account is no organisation');
  const frozen = await rejection(t, r, r.app.listRunners({ org: 'frozen-org' }));
  t.regex(frozen.message, /^the GitHub App's installation 44 on organisation frozen-org is suspended since \S+Z: unsuspend it/);
  t.is(count(r, 'apps/create-installation-access-token'), 0);
  t.deepEqual(r.waits, []);
});

test('a JWT GitHub refuses (wrong App ID) is made afresh once, then fails naming what to check', async (t) => {
  const r = t.context.rig = await rig(t, { appId: APP_ID + 1 });
  const e = await rejection(t, r, r.app.listRunners(HELLO));
  t.is(e.message, 'GitHub GET /repos/octo-org/hello/installation failed: 401 Integration not found; '
    + "GitHub refused the App's JWT: check the App ID and that the key is one of the App's current private keys, and the host's clock");
  t.deepEqual(calls(r), ['apps/get-repo-installation 401', 'apps/get-repo-installation 401']);
});

test('a reply missing a field matchlock uses is refused, naming the field', async (t) => {
  const r = t.context.rig = await rig(t);
  const job = (JSON.parse(readFileSync(new URL('../../../fixtures/github/payloads/workflow_job.queued.json', import.meta.url), 'utf8')) as { workflow_job: Record<string, unknown> }).workflow_job;
  r.api.seedJob('octo-org/hello', { ...job, labels: undefined });
  r.api.seedJob('octo-org/hello', { ...job, id: 7, status: 'sleeping' });
  t.is((await rejection(t, r, r.app.getJob('octo-org/hello', job['id'] as number))).message,
    `GitHub's reply to GET job ${String(job['id'])} of octo-org/hello cannot be used: reply: missing field "labels"`);
  t.is((await rejection(t, r, r.app.getJob('octo-org/hello', 7))).message,
    'GitHub\'s reply to GET job 7 of octo-org/hello cannot be used: reply.status "sleeping" is not one of queued, in_progress, completed, waiting, requested, pending');
  r.expectedViolations = [ // the stand-in was made to break the description; matchlock's requests did not
    'stand-in reply to actions/get-job-for-workflow-run (200): response.labels: required',
    'stand-in reply to actions/get-job-for-workflow-run (200): response.status: "sleeping" is not one of ["queued","in_progress","completed","waiting","requested","pending"]',
  ];
});
