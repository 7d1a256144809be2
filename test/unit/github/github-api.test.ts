/**
 * The GitHub stand-in, driven over real HTTP as matchlock's runner host will drive api.github.com: App JWT →
 * installation token → JIT runner, with GitHub's refusals, its pagination, injected failures, and both sides of
 * every exchange held to GitHub's description. Nothing secret may reach its request log or its violations.
 */
import test, { type ExecutionContext } from 'ava';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GitHubApi } from '../../helpers/github/index.ts';

const APP_ID = 4242;
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const payloads = new URL('../../fixtures/github/payloads/', import.meta.url).pathname;
const payload = (file: string): Record<string, unknown> => JSON.parse(readFileSync(`${payloads}${file}`, 'utf8')) as Record<string, unknown>;

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers;
}
type Body = Record<string, unknown>;

/** An App JWT as GitHub's docs describe it: RS256, iss = app id, iat 60 s back, exp ≤ 10 min after iat. */
function jwt(claims: Record<string, unknown> = {}, key: KeyObject = privateKey, alg = 'RS256'): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${part({ alg, typ: 'JWT' })}.${part({ iat: now - 60, exp: now + 540, iss: APP_ID, ...claims })}`;
  return `${data}.${sign('sha256', Buffer.from(data), key).toString('base64url')}`;
}

async function call(api: GitHubApi, method: string, path: string, auth?: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', ...(auth === undefined ? {} : { authorization: auth }) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) as unknown, headers: res.headers };
}

/** A started stand-in with installation 77 on octo-org (all repositories), closed when the test ends. */
async function standIn(t: ExecutionContext, now?: () => number): Promise<GitHubApi> {
  const api = new GitHubApi({ appId: APP_ID, publicKey, ...(now === undefined ? {} : { now }) });
  await api.start();
  t.teardown(() => api.close());
  api.addInstallation({ id: 77, account: 'octo-org' });
  return api;
}

async function token(api: GitHubApi, installation = 77, body?: unknown): Promise<string> {
  const r = await call(api, 'POST', `/app/installations/${installation}/access_tokens`, `Bearer ${jwt()}`, body);
  if (r.status !== 201) throw new Error(`no token: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body as { token: string }).token;
}

const JIT = '/repos/octo-org/hello/actions/runners/generate-jitconfig';
const jitBody = (name: string): Body => ({ name, runner_group_id: 1, labels: ['self-hosted', 'linux', 'x64', 'matchlock'] });

test('an App JWT gets an installation token, which creates, lists, gets and deletes a JIT runner', async (t) => {
  const api = await standIn(t);
  const app = `Bearer ${jwt()}`;
  const installations = await call(api, 'GET', '/app/installations', app);
  t.is(installations.status, 200);
  t.deepEqual((installations.body as Body[]).map((i) => i['id']), [77]);
  t.is(((await call(api, 'GET', '/repos/octo-org/hello/installation', app)).body as Body)['id'], 77);
  t.is(((await call(api, 'GET', '/orgs/octo-org/installation', app)).body as Body)['id'], 77);

  const issued = await call(api, 'POST', '/app/installations/77/access_tokens', app);
  t.is(issued.status, 201);
  const { token: tok, expires_at: expires } = issued.body as { token: string; expires_at: string };
  t.true(Math.abs(Date.parse(expires) - Date.now() - 3600_000) < 5000);

  const created = await call(api, 'POST', JIT, `token ${tok}`, jitBody('ml-1'));
  t.is(created.status, 201);
  const { runner, encoded_jit_config: jit } = created.body as { runner: Body; encoded_jit_config: string };
  t.like(runner, { name: 'ml-1', os: 'unknown', status: 'offline', busy: false, runner_group_id: 1 });
  t.deepEqual((runner['labels'] as Body[]).map((l) => `${String(l['name'])}:${String(l['type'])}`),
    ['self-hosted:read-only', 'linux:read-only', 'x64:read-only', 'matchlock:custom']);
  const files = JSON.parse(Buffer.from(jit, 'base64').toString('utf8')) as Record<string, string>;
  t.deepEqual(Object.keys(files), ['.runner', '.credentials', '.credentials_rsaparams']);
  t.like(JSON.parse(Buffer.from(files['.runner']!, 'base64').toString('utf8')), { agentId: runner['id'], agentName: 'ml-1', workFolder: '_work', ephemeral: true });
  t.like(api.runner(runner['id'] as number), { name: 'ml-1', scope: 'octo-org/hello', jitConfig: jit, labels: ['self-hosted', 'linux', 'x64', 'matchlock'] });

  const list = await call(api, 'GET', '/repos/octo-org/hello/actions/runners', `Bearer ${tok}`);
  t.like(list.body, { total_count: 1, runners: [{ id: runner['id'], name: 'ml-1' }] });
  t.is(list.headers.get('link'), null);
  t.like((await call(api, 'GET', '/repos/octo-org/hello/actions/runners?name=ml-2', `token ${tok}`)).body, { total_count: 0, runners: [] });
  t.like((await call(api, 'GET', `/repos/octo-org/hello/actions/runners/${String(runner['id'])}`, `token ${tok}`)).body, { id: runner['id'] });
  t.like((await call(api, 'GET', '/orgs/octo-org/actions/runners', `token ${tok}`)).body, { total_count: 0 });
  t.is((await call(api, 'DELETE', `/repos/octo-org/hello/actions/runners/${String(runner['id'])}`, `token ${tok}`)).status, 204);
  t.is((await call(api, 'GET', `/repos/octo-org/hello/actions/runners/${String(runner['id'])}`, `token ${tok}`)).status, 404);
  t.deepEqual(api.runners(), []);
  t.deepEqual(api.violations, []);
  t.deepEqual(api.requests.slice(0, 2), [
    { method: 'GET', path: '/app/installations', status: 200, operationId: 'apps/list-installations' },
    { method: 'GET', path: '/repos/octo-org/hello/installation', status: 200, operationId: 'apps/get-repo-installation' },
  ]);
});

test('organisation runners: runner groups, 404 for an unknown group, 409 for a name taken', async (t) => {
  const api = await standIn(t);
  api.addRunnerGroup('octo-org', { id: 3, name: 'matchlock', visibility: 'selected', repositories: ['hello'] });
  const tok = `Bearer ${await token(api)}`;
  const groups = await call(api, 'GET', '/orgs/octo-org/actions/runner-groups?visible_to_repository=hello', tok);
  t.like(groups.body, { total_count: 2, runner_groups: [{ id: 1, name: 'Default', default: true }, { id: 3, name: 'matchlock', visibility: 'selected' }] });
  const org = '/orgs/octo-org/actions/runners/generate-jitconfig';
  t.is((await call(api, 'POST', org, tok, { ...jitBody('ml-1'), runner_group_id: 3, work_folder: '/w' })).status, 201);
  t.like(api.runners()[0], { scope: 'octo-org', runnerGroupId: 3, workFolder: '/w' });
  t.like(await call(api, 'POST', org, tok, jitBody('ml-1')), { status: 409, body: { message: 'Already exists - A runner with the name ml-1 already exists.' } });
  t.is((await call(api, 'POST', org, tok, { ...jitBody('ml-2'), runner_group_id: 99 })).status, 404);
  t.is((await call(api, 'POST', JIT, tok, jitBody('ml-1'))).status, 201, 'the same name in another scope');
  const orgRunner = api.runners().find((r) => r.scope === 'octo-org')!;
  t.like((await call(api, 'GET', '/orgs/octo-org/actions/runners', tok)).body, { total_count: 1, runners: [{ id: orgRunner.id, runner_group_id: 3 }] });
  orgRunner.status = 'online';
  orgRunner.busy = true;
  t.like((await call(api, 'GET', `/orgs/octo-org/actions/runners/${orgRunner.id}`, tok)).body, { status: 'online', busy: true, os: 'Linux' });
  t.is((await call(api, 'GET', `/repos/octo-org/hello/actions/runners/${orgRunner.id}`, tok)).status, 404, 'an organisation runner is not a repository runner');
  t.like(await call(api, 'DELETE', `/orgs/octo-org/actions/runners/${orgRunner.id}`, tok), { status: 422 });
  orgRunner.busy = false;
  t.is((await call(api, 'DELETE', `/orgs/octo-org/actions/runners/${orgRunner.id}`, tok)).status, 204);
  t.is((await call(api, 'POST', '/enterprises/octo-ent/actions/runners/generate-jitconfig', tok, jitBody('e'))).status, 403);
  t.deepEqual(api.violations, []);
});

test('lists page by per_page and page with Link headers as GitHub writes them', async (t) => {
  const api = await standIn(t);
  const tok = `token ${await token(api)}`;
  for (let i = 1; i <= 5; i++) await call(api, 'POST', JIT, tok, jitBody(`ml-${i}`));
  const base = `${api.url}/repos/octo-org/hello/actions/runners`;
  const first = await call(api, 'GET', '/repos/octo-org/hello/actions/runners?per_page=2', tok);
  t.like(first.body, { total_count: 5, runners: [{ name: 'ml-1' }, { name: 'ml-2' }] });
  t.is(first.headers.get('link'), `<${base}?per_page=2&page=2>; rel="next", <${base}?per_page=2&page=3>; rel="last"`);
  const middle = await call(api, 'GET', '/repos/octo-org/hello/actions/runners?per_page=2&page=2', tok);
  t.is(middle.headers.get('link'), [`<${base}?per_page=2&page=1>; rel="prev"`, `<${base}?per_page=2&page=3>; rel="next"`,
    `<${base}?per_page=2&page=3>; rel="last"`, `<${base}?per_page=2&page=1>; rel="first"`].join(', '));
  const last = await call(api, 'GET', '/repos/octo-org/hello/actions/runners?per_page=2&page=3', tok);
  t.like(last.body, { total_count: 5, runners: [{ name: 'ml-5' }] });
  t.is(last.headers.get('link'), `<${base}?per_page=2&page=2>; rel="prev", <${base}?per_page=2&page=1>; rel="first"`);
  t.deepEqual(api.violations, []);
});

test('App JWTs that are expired, forged, too long-lived or for another app are refused with 401', async (t) => {
  const api = await standIn(t);
  const now = Math.floor(Date.now() / 1000);
  const refused = async (auth: string | undefined, message: string): Promise<void> => {
    const r = await call(api, 'GET', '/app/installations', auth);
    t.is(r.status, 401, message);
    t.like(r.body, { message, documentation_url: 'https://docs.github.com/rest' });
  };
  await refused(undefined, 'Requires authentication');
  const expired = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.";
  await refused(`Bearer ${jwt({ iat: now - 1200, exp: now - 600 })}`, expired);
  await refused(`Bearer ${jwt({ iat: now, exp: now + 601 })}`, "'Expiration time' claim ('exp') is too far in the future.");
  await refused(`Bearer ${jwt({ iat: now + 300, exp: now + 600 })}`, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.");
  await refused(`Bearer ${jwt({ exp: undefined })}`, expired);
  await refused(`Bearer ${jwt({}, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)}`, 'A JSON web token could not be decoded');
  await refused(`Bearer ${jwt({}, privateKey, 'RS512')}`, 'A JSON web token could not be decoded');
  await refused(`Bearer ${jwt().split('.').slice(0, 2).join('.')}.`, 'A JSON web token could not be decoded');
  await refused('Bearer not-a-jwt', 'A JSON web token could not be decoded');
  await refused(`Bearer ${jwt({ iss: 1 })}`, 'Integration not found');
  await refused(`Bearer ${await token(api)}`, 'A JSON web token could not be decoded');
  t.is((await call(api, 'GET', '/app/installations', `Bearer ${jwt({ iat: now - 620, exp: now - 30 })}`)).status, 200, 'within 60 s of clock skew');
  t.is((await call(api, 'GET', '/app/installations', `Bearer ${jwt({ iss: String(APP_ID) })}`)).status, 200, 'iss as a string');
  t.deepEqual(api.violations, []);
});

test('installation tokens reach only what their installation covers and grants, and only until they expire', async (t) => {
  let clock = Date.now();
  const api = await standIn(t, () => clock);
  api.addInstallation({ id: 88, account: 'other-org' });
  api.addInstallation({ id: 99, account: 'picky-org', repositories: ['chosen'], permissions: { actions: 'read', administration: 'read' } });
  api.addInstallation({ id: 66, account: 'gone-org', suspended: true });
  const other = await token(api, 88);
  t.like(await call(api, 'POST', JIT, `token ${other}`, jitBody('x')), { status: 404, body: { message: 'Not Found' } });
  t.is((await call(api, 'GET', '/orgs/octo-org/actions/runners', `token ${other}`)).status, 404);
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners', 'token ghs_made_up'), { status: 401, body: { message: 'Bad credentials' } });
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners'), { status: 401, body: { message: 'Requires authentication' } });
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners', `Bearer ${jwt()}`)).status, 401, 'an App JWT is not an installation token');
  const picky = await token(api, 99);
  t.is((await call(api, 'GET', '/repos/picky-org/other/actions/runners', `token ${picky}`)).status, 404, 'a repository not selected');
  t.is((await call(api, 'GET', '/repos/picky-org/chosen/actions/runners', `token ${picky}`)).status, 200);
  t.like(await call(api, 'POST', '/repos/picky-org/chosen/actions/runners/generate-jitconfig', `token ${picky}`, jitBody('x')),
    { status: 403, body: { message: 'Resource not accessible by integration' } });
  const narrowed = await token(api, 77, { repositories: ['hello'], permissions: { administration: 'write' } });
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners', `token ${narrowed}`)).status, 200);
  t.is((await call(api, 'GET', '/repos/octo-org/world/actions/runners', `token ${narrowed}`)).status, 404, 'outside the token\'s repositories');
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runs', `token ${narrowed}`)).status, 403, 'outside the token\'s permissions');
  t.is((await call(api, 'POST', '/app/installations/99/access_tokens', `Bearer ${jwt()}`, { permissions: { administration: 'write' } })).status, 422);
  t.is((await call(api, 'POST', '/app/installations/99/access_tokens', `Bearer ${jwt()}`, { repositories: ['other'] })).status, 422);
  t.like(await call(api, 'POST', '/app/installations/66/access_tokens', `Bearer ${jwt()}`), { status: 403, body: { message: 'This installation has been suspended' } });
  t.is((await call(api, 'POST', '/app/installations/5/access_tokens', `Bearer ${jwt()}`)).status, 404);
  t.is((await call(api, 'GET', '/repos/nobody/x/installation', `Bearer ${jwt()}`)).status, 404);
  const tok = await token(api);
  clock += 3600_000 + 1000;
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners', `token ${tok}`), { status: 401, body: { message: 'Bad credentials' } });
  t.deepEqual(api.violations, []);
});

test('a malformed request is answered as GitHub would and recorded as a violation', async (t) => {
  const api = await standIn(t);
  const tok = `token ${await token(api)}`;
  const missing = await call(api, 'POST', JIT, tok, { name: 'ml-1', labels: 'self-hosted' });
  t.is(missing.status, 422);
  t.like(missing.body, { message: 'Invalid request.', errors: ['body.runner_group_id: required', 'body.labels: not an array'] });
  t.like(await call(api, 'POST', JIT, tok, '{"name": '), { status: 400, body: { message: 'Problems parsing JSON' } });
  t.like(await call(api, 'POST', '/app/installations/77/access_tokens', `Bearer ${jwt()}`, { repositories: 'hello' }), {
    status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'Request', code: 'invalid', message: 'body.repositories: not an array' }] },
  });
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners?colour=red', tok), { status: 422 });
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners/abc', tok), { status: 404, body: { message: 'Not Found' } });
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/secrets', tok), { status: 404, body: { message: 'Not Found' } });
  t.like(await call(api, 'PUT', '/repos/octo-org/hello/actions/runners/1', tok, {}), { status: 404 });
  t.deepEqual(api.violations, [
    'actions/generate-runner-jitconfig-for-repo: body.runner_group_id: required',
    'actions/generate-runner-jitconfig-for-repo: body.labels: not an array',
    'actions/generate-runner-jitconfig-for-repo: the body is not JSON',
    'apps/create-installation-access-token: body.repositories: not an array',
    'actions/list-self-hosted-runners-for-repo: query.colour: not a parameter of actions/list-self-hosted-runners-for-repo',
    'actions/get-self-hosted-runner-for-repo: path.runner_id: "abc" is not an integer',
    'GET /repos/octo-org/hello/actions/secrets: not an operation of the description',
    'PUT /repos/octo-org/hello/actions/runners/1: not an operation of the description',
  ]);
  t.deepEqual(api.runners(), []);
});

test('credentials are checked before the request itself: a refused request gets 401/403/404, yet is still validated and its faults recorded', async (t) => {
  const api = await standIn(t);
  api.addInstallation({ id: 88, account: 'other-org' });
  const bad = { name: 'ml-1', labels: 'self-hosted' };
  const faults = ['body.runner_group_id: required', 'body.labels: not an array'];
  t.like(await call(api, 'POST', JIT, undefined, bad), { status: 401, body: { message: 'Requires authentication' } });
  t.like(await call(api, 'POST', JIT, 'token ghs_made_up', bad), { status: 401, body: { message: 'Bad credentials' } });
  t.like(await call(api, 'POST', JIT, `token ${await token(api, 88)}`, bad), { status: 404, body: { message: 'Not Found' } });
  const readOnly = `token ${await token(api, 77, { permissions: { actions: 'read' } })}`;
  t.like(await call(api, 'POST', JIT, readOnly, bad), { status: 403, body: { message: 'Resource not accessible by integration' } });
  const tok = `token ${await token(api)}`;
  t.like(await call(api, 'POST', JIT, tok, bad), { status: 422, body: { message: 'Invalid request.', errors: faults } });
  t.like(await call(api, 'POST', `${JIT}?colour=red`, undefined, '{"name": '), { status: 401 }, 'not JSON, and a query parameter too many');
  t.like(await call(api, 'POST', JIT, tok, '{"name": '), { status: 400, body: { message: 'Problems parsing JSON' } });
  t.like(await call(api, 'GET', '/repos/octo-org/hello/actions/runners/abc'), { status: 401 }, 'a bad path parameter');
  t.like(await call(api, 'POST', '/app/installations/77/access_tokens', 'Bearer not-a-jwt', { repositories: 'hello' }), { status: 401 });
  const jit = (fault: string): string => `actions/generate-runner-jitconfig-for-repo: ${fault}`;
  t.deepEqual(api.violations, [
    ...faults.map(jit), ...faults.map(jit), ...faults.map(jit), ...faults.map(jit), ...faults.map(jit),
    jit('query.colour: not a parameter of actions/generate-runner-jitconfig-for-repo'), jit('the body is not JSON'),
    jit('the body is not JSON'),
    'actions/get-self-hosted-runner-for-repo: path.runner_id: "abc" is not an integer',
    'apps/create-installation-access-token: body.repositories: not an array',
  ]);
  t.deepEqual(api.requests.filter((r) => r.operationId !== 'apps/create-installation-access-token' || r.status !== 201).map((r) => r.status),
    [401, 401, 404, 403, 422, 401, 400, 401, 401]);
  t.deepEqual(api.runners(), []);
});

test('a reply of the stand-in that breaks the description is recorded as a violation', async (t) => {
  const api = await standIn(t);
  const job = payload('workflow_job.waiting.json')['workflow_job'] as Body;
  api.seedJob('octo-org/hello', { ...job, status: 'sleeping', created_at: undefined });
  t.is((await call(api, 'GET', `/repos/octo-org/hello/actions/jobs/${String(job['id'])}`, `token ${await token(api)}`)).status, 200);
  t.deepEqual(api.violations, [
    'stand-in reply to actions/get-job-for-workflow-run (200): response.created_at: required',
    'stand-in reply to actions/get-job-for-workflow-run (200): response.status: "sleeping" is not one of ["queued","in_progress","completed","waiting","requested","pending"]',
  ]);
});

test('injected failures: the next N calls of an operation fail, rate limits with their headers', async (t) => {
  const api = await standIn(t);
  const tok = `token ${await token(api)}`;
  api.failNext('actions/generate-runner-jitconfig-for-repo', 2, { status: 500 });
  t.like(await call(api, 'POST', JIT, tok, jitBody('ml-1')), { status: 500, body: { message: 'Server Error' } });
  t.is((await call(api, 'POST', JIT, tok, jitBody('ml-1'))).status, 500);
  t.is((await call(api, 'POST', JIT, tok, jitBody('ml-1'))).status, 201);
  api.failNext('actions/list-self-hosted-runners-for-repo', 1, { status: 403, rateLimit: true });
  const limited = await call(api, 'GET', '/repos/octo-org/hello/actions/runners', tok);
  t.like(limited, { status: 403, body: { message: 'API rate limit exceeded for installation ID 77.' } });
  t.is(limited.headers.get('x-ratelimit-remaining'), '0');
  t.true(Math.abs(Number(limited.headers.get('x-ratelimit-reset')) - Date.now() / 1000 - 60) < 5);
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners', tok)).status, 200);
  api.failNext('apps/create-installation-access-token', 1, { status: 429, retryAfter: 30 });
  const secondary = await call(api, 'POST', '/app/installations/77/access_tokens', `Bearer ${jwt()}`);
  t.is(secondary.status, 429);
  t.is(secondary.headers.get('retry-after'), '30');
  api.failNext('actions/get-self-hosted-runner-for-repo', 1, { status: 502 });
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners/abc', tok)).status, 404, 'a malformed call does not use up a failure');
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners/1', 'token nope')).status, 401, 'nor does an unauthenticated one');
  t.is((await call(api, 'GET', '/repos/octo-org/hello/actions/runners/1', tok)).status, 502);
  t.throws(() => api.failNext('actions/no-such-thing', 1, { status: 500 }), { message: 'no operation actions/no-such-thing' });
  t.deepEqual(api.violations, ['actions/get-self-hosted-runner-for-repo: path.runner_id: "abc" is not an integer']);
});

test('jobs and runs seeded from webhook payloads are served as the REST API serves them', async (t) => {
  const api = await standIn(t);
  api.addInstallation({ id: 5, account: 'lineville' });
  const waiting = payload('workflow_job.waiting.json');
  const job = waiting['workflow_job'] as Body;
  api.seedWebhook(waiting);
  const repo = (waiting['repository'] as Body)['full_name'] as string;
  const tok = `token ${await token(api, 5)}`;
  t.like((await call(api, 'GET', `/repos/${repo}/actions/jobs/${String(job['id'])}`, tok)).body, { id: job['id'], labels: ['self-hosted', 'k8s'], conclusion: null });
  t.like((await call(api, 'GET', `/repos/${repo}/actions/runs/${String(job['run_id'])}/jobs`, tok)).body, { total_count: 1, jobs: [{ id: job['id'] }] });
  t.is((await call(api, 'GET', `/repos/${repo}/actions/runs/1/jobs`, tok)).status, 404);
  t.is((await call(api, 'GET', `/repos/${repo}/actions/jobs/1`, tok)).status, 404);

  const requested = payload('workflow_run.requested.json');
  const completed = payload('workflow_run.completed.json');
  api.seedWebhook(requested);
  const runRepo = (requested['repository'] as Body)['full_name'] as string;
  t.is(runRepo, 'octo-org/octo-repo');
  const runTok = `token ${await token(api)}`;
  t.is((requested['workflow_run'] as Body)['status'], 'queued');
  const runs = await call(api, 'GET', `/repos/${runRepo}/actions/runs?status=queued`, runTok);
  t.like(runs.body, { total_count: 1, workflow_runs: [{ id: (requested['workflow_run'] as Body)['id'] }] });
  t.like((await call(api, 'GET', `/repos/${runRepo}/actions/runs?status=completed`, runTok)).body, { total_count: 0 });
  api.seedRun(runRepo, { ...(completed['workflow_run'] as Body), id: 1 });
  const done = await call(api, 'GET', `/repos/${runRepo}/actions/runs?status=completed&exclude_pull_requests=true`, runTok);
  t.like(done.body, { total_count: 1, workflow_runs: [{ id: 1, pull_requests: [] }] });
  t.deepEqual(api.violations, []);
});

test('the delivery log pages by cursor, and a redelivery is recorded and logged', async (t) => {
  const api = await standIn(t);
  const app = `Bearer ${jwt()}`;
  const ids = ['queued', 'in_progress', 'completed'].map((action) => api.addDelivery({ event: 'workflow_job', action, installationId: 77, repositoryId: 1 }));
  api.addDelivery({ event: 'workflow_job', action: 'queued', statusCode: 502 });
  const first = await call(api, 'GET', '/app/hook/deliveries?per_page=2&status=success', app);
  t.deepEqual((first.body as Body[]).map((d) => d['id']), [ids[2], ids[1]]);
  const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
  t.truthy(next);
  const second = await call(api, 'GET', next!.slice(api.url.length), app);
  t.deepEqual((second.body as Body[]).map((d) => d['id']), [ids[0]]);
  t.is(second.headers.get('link'), null);
  const failed = (await call(api, 'GET', '/app/hook/deliveries?status=failure', app)).body as Body[];
  t.deepEqual(failed.map((d) => [d['status_code'], d['status']]), [[502, 'Invalid HTTP Response: 502']]);
  t.is((await call(api, 'GET', '/app/hook/deliveries?cursor=bogus', app)).status, 400);
  t.is((await call(api, 'POST', `/app/hook/deliveries/${ids[0]!}/attempts`, app)).status, 202);
  t.is((await call(api, 'POST', '/app/hook/deliveries/1/attempts', app)).status, 404);
  t.deepEqual(api.redeliveries, [ids[0]]);
  const latest = ((await call(api, 'GET', '/app/hook/deliveries?per_page=1', app)).body as Body[])[0];
  t.like(latest, { redelivery: true, action: 'queued', installation_id: 77 });
  t.deepEqual(api.violations, []);
});

test('no JWT, token or JIT config appears in the request log or in a violation', async (t) => {
  const api = await standIn(t);
  const app = jwt();
  const tok = await token(api);
  const created = await call(api, 'POST', JIT, `token ${tok}`, jitBody('ml-1'));
  const jit = (created.body as { encoded_jit_config: string }).encoded_jit_config;
  await call(api, 'POST', JIT, `token ${tok}`, { ...jitBody('ml-2'), labels: [tok], name: jit, runner_group_id: tok }); // secrets where they do not belong
  await call(api, 'GET', `/repos/octo-org/hello/actions/runners?access_token=${tok}`, `token ${tok}`);
  await call(api, 'GET', `/app/installations/${tok}`, `Bearer ${app}`);
  await call(api, 'GET', '/app/installations', `Bearer ${app}x`);
  t.true(api.violations.length > 0);
  const seen = JSON.stringify([api.requests, api.violations]);
  for (const secret of [app, tok, jit]) t.false(seen.includes(secret));
  t.true(seen.includes('[REDACTED]'));
});
