/**
 * The checks of a `workflow_job` payload: every fixture is first held to GitHub's webhook description (so these
 * are payloads GitHub sends), then mapped; what intake needs and cannot do without is refused with a message
 * naming the field, and the 2021 delivery, which predates several fields, still maps.
 */
import test from 'ava';
import { ErrorCodes } from '../../../src/errors.ts';
import { MAX_LABELS, parseWorkflowJob } from '../../../src/runner/webhook/index.ts';
import { OpenApi } from '../../helpers/openapi/index.ts';
import { asAppDelivery, LEGACY, payloadIndex, payloadJson, workflowJobEntries } from '../../helpers/webhook-payloads.ts';

const hooks = OpenApi.githubWebhooks();
const WEBHOOK = { code: ErrorCodes.WEBHOOK };
const appPayload = (file: string): Record<string, unknown> => JSON.parse(asAppDelivery(file).toString('utf8')) as Record<string, unknown>;

test("every payload fixture is what GitHub's webhook description says, but the legacy one's known gaps", (t) => {
  t.is(workflowJobEntries.length, 8);
  for (const p of payloadIndex.payloads) {
    const problems = hooks.checkWebhook(p.headers['X-GitHub-Event'], p.action, payloadJson(p.file));
    if (p.file === LEGACY) {
      // test/fixtures/github/README.md: a July 2021 delivery, before these fields were added, and homepage "".
      for (const field of ['run_attempt', 'runner_id', 'runner_name', 'workflow_name', 'head_branch', 'created_at']) {
        t.true(problems.some((m) => m.includes(field)), `${field} in ${problems.join('; ')}`);
      }
      t.true(problems.every((m) => /workflow_job|homepage/.test(m)), problems.join('; '));
    } else if (p.file.startsWith('installation.created') || p.file.startsWith('installation.deleted')) {
      t.true(problems.length > 0 && problems.every((m) => /app_slug|created_at|updated_at/.test(m)), problems.join('; '));
    } else {
      t.deepEqual(problems, [], p.file);
    }
  }
});

test('each workflow_job fixture delivered by the App maps to the event intake records', (t) => {
  for (const p of workflowJobEntries) {
    const raw = payloadJson(p.file);
    const job = raw['workflow_job'] as Record<string, unknown>;
    t.like(parseWorkflowJob(appPayload(p.file)), {
      action: p.action, jobId: job['id'], runId: job['run_id'], status: job['status'], labels: p.workflow_job_labels,
      installationId: p.installation_id ?? 4242, repoFullName: (raw['repository'] as { full_name: string }).full_name,
      runnerName: job['runner_name'] ?? null, conclusion: job['conclusion'],
    }, p.file);
  }
});

test('the exact fields of one delivery: in_progress with a runner, queued with status waiting', (t) => {
  t.deepEqual(parseWorkflowJob(payloadJson('workflow_job.in_progress.with-queued-steps.json')), {
    action: 'in_progress', jobId: 14541957942, runId: 5373506832, runAttempt: 1, status: 'in_progress',
    repoFullName: 'wolfy1339/github-events-schemas', owner: 'wolfy1339', installationId: 3456996, labels: ['ubuntu-latest'],
    runnerId: 6, runnerName: 'GitHub Actions 6', workflowName: 'Test', headBranch: 'renovate/got-13.x', conclusion: null,
    createdAt: '2023-06-26T03:31:29Z', startedAt: '2023-06-26T03:31:36Z', completedAt: null,
  });
  const deployment = parseWorkflowJob(payloadJson('workflow_job.queued.with-deployment.json'));
  t.is(deployment.action, 'queued');
  t.is(deployment.status, 'waiting');
  t.deepEqual(deployment.labels, ['self-hosted', 'k8s']);
});

test('the 2021 self-hosted delivery maps, fields it predates as null', (t) => {
  const e = parseWorkflowJob(appPayload(LEGACY));
  t.like(e, {
    action: 'queued', jobId: 3169272040, runId: 1068820843, runAttempt: null, status: 'queued', labels: ['self-hosted'],
    repoFullName: 'github-aws-runners/terraform-aws-github-runner', owner: 'github-aws-runners', installationId: 4242,
    runnerId: null, runnerName: null, workflowName: null, headBranch: null, createdAt: null, startedAt: '2021-07-27T07:33:38Z',
  });
});

test('a delivery without installation is refused: the webhook must be the App\'s', (t) => {
  for (const p of workflowJobEntries.filter((x) => !x.has_installation)) {
    t.throws(() => parseWorkflowJob(payloadJson(p.file)), { ...WEBHOOK, message: /missing field "installation".*GitHub App/ }, p.file);
  }
  const noId = appPayload('workflow_job.queued.json');
  noId['installation'] = { node_id: 'x' };
  t.throws(() => parseWorkflowJob(noId), { ...WEBHOOK, message: /installation: missing field "id"/ });
});

test('a field of the wrong type, missing or out of bounds is refused naming it', (t) => {
  const cases: [string, (p: Record<string, unknown>, j: Record<string, unknown>) => void, RegExp][] = [
    ['labels not an array', (_p, j) => { j['labels'] = { 0: 'self-hosted' }; }, /workflow_job\.labels must be an array of strings, not an object/],
    ['a label not a string', (_p, j) => { j['labels'] = ['self-hosted', 7]; }, /workflow_job\.labels\[1\] must be a string, not a number/],
    ['too many labels', (_p, j) => { j['labels'] = Array.from({ length: MAX_LABELS + 1 }, (_, i) => `l${i}`); }, /labels has 65 items, over 64/],
    ['id missing', (_p, j) => { delete j['id']; }, /workflow_job: missing field "id"/],
    ['id a string', (_p, j) => { j['id'] = '289782451'; }, /workflow_job\.id must be a whole number, not a string/],
    ['run_id fractional', (_p, j) => { j['run_id'] = 1.5; }, /workflow_job\.run_id must be a whole number, not 1.5/],
    ['unknown action', (p) => { p['action'] = 'requested'; }, /action "requested" is not one of queued, waiting, in_progress, completed/],
    ['unknown status', (_p, j) => { j['status'] = 'pending'; }, /workflow_job\.status "pending" is not one of/],
    ['runner_name a number', (_p, j) => { j['runner_name'] = 5; }, /workflow_job\.runner_name must be a string, not a number/],
    ['no repository', (p) => { delete p['repository']; }, /missing field "repository"/],
    ['no owner login', (p) => { (p['repository'] as Record<string, unknown>)['owner'] = {}; }, /repository\.owner: missing field "login"/],
    ['full_name not owner/name', (p) => { (p['repository'] as Record<string, unknown>)['full_name'] = 'Hello-World'; }, /repository\.full_name is not of the form/],
    ['workflow_job null', (p) => { p['workflow_job'] = null; }, /workflow_job must be a JSON object, not null/],
  ];
  for (const [what, change, message] of cases) {
    const p = appPayload('workflow_job.queued.json');
    change(p, p['workflow_job'] as Record<string, unknown>);
    t.throws(() => parseWorkflowJob(p), { ...WEBHOOK, message }, what);
  }
  t.throws(() => parseWorkflowJob([]), { ...WEBHOOK, message: /must be a JSON object, not an array/ });
  t.throws(() => parseWorkflowJob('queued'), { ...WEBHOOK, message: /must be a JSON object, not a string/ });
});

test('fields GitHub may add, or null where it used to send values, do not stop a delivery', (t) => {
  const p = appPayload('workflow_job.completed.success-with-organization.json');
  const j = p['workflow_job'] as Record<string, unknown>;
  j['a_field_from_2030'] = { nested: true };
  j['runner_id'] = null;
  j['head_branch'] = null;
  p['enterprise'] = { id: 1 };
  const e = parseWorkflowJob(p);
  t.is(e.runnerId, null);
  t.is(e.headBranch, null);
  t.is(e.conclusion, 'success');
  t.is(e.completedAt, '2021-08-05T10:38:16Z');
});
