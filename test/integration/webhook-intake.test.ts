/**
 * Webhook intake end to end: real HTTP on 127.0.0.1, a real state file, GitHub's payloads as their exact bytes
 * with the signatures computed over them. What is acknowledged is stored; what is refused stores nothing; the
 * secret and the body never reach a log line or a reply.
 */
import test, { type ExecutionContext } from 'ava';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pino from 'pino';
import { RunnerStore } from '../../src/runner/store/index.ts';
import { WebhookServer, type WebhookServerOptions } from '../../src/runner/webhook/index.ts';
import {
  asAppDelivery, LEGACY, payloadBytes, payloadIndex, payloadJson, sign, TEST_SECRET, workflowJobEntries, type PayloadEntry,
} from '../helpers/webhook-payloads.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-intake-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

interface Reply { readonly status: number; readonly text: string; readonly headers: IncomingHttpHeaders }
interface Intake { readonly store: RunnerStore; readonly port: number; readonly logs: string[]; readonly replies: string[] }

let n = 0;
async function start(t: ExecutionContext, opts: Partial<WebhookServerOptions> & { busyTimeoutMs?: number } = {}): Promise<Intake> {
  const store = RunnerStore.open({ path: join(scratch, `i${n++}`, 'runner.db'), busyTimeoutMs: opts.busyTimeoutMs ?? 5000 });
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { logs.push(s); } });
  const server = new WebhookServer({ secret: TEST_SECRET, store, log, ...opts });
  const { port } = await server.listen();
  t.teardown(async () => { await server.close(); store.close(); });
  return { store, port, logs, replies: [] };
}

function post(it: Intake, body: Buffer | string, headers: Record<string, string>, method = 'POST', path = '/webhook'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: it.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        it.replies.push(text);
        resolve({ status: res.statusCode ?? 0, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function headersFor(event: string, delivery: string, body: Buffer | string, secret = TEST_SECRET): Record<string, string> {
  return {
    'content-type': 'application/json', 'user-agent': 'GitHub-Hookshot/a1b2c3d', 'x-github-event': event,
    'x-github-delivery': delivery, 'x-github-hook-id': '4242', 'x-github-hook-installation-target-type': 'integration',
    'x-hub-signature-256': sign(secret, body),
  };
}

/** A fixture's exact bytes with its indexed signature, as GitHub would send them. */
function deliverFixture(it: Intake, p: PayloadEntry, delivery: string): Promise<Reply> {
  const body = payloadBytes(p.file);
  const headers = headersFor(p.headers['X-GitHub-Event'], delivery, body);
  headers['x-hub-signature-256'] = p.x_hub_signature_256_with_test_secret;
  return post(it, body, headers);
}

function deliver(it: Intake, event: string, delivery: string, body: Buffer | string): Promise<Reply> {
  return post(it, body, headersFor(event, delivery, body));
}

const entry = (file: string): PayloadEntry => payloadIndex.payloads.find((p) => p.file === file)!;
const jobOf = (file: string): Record<string, unknown> => payloadJson(file)['workflow_job'] as Record<string, unknown>;
const EMPTY = { deliveries: 0, jobEvents: 0, jobs: 0 };

test('every workflow_job fixture from an App is accepted (202) and stored as its job and event', async (t) => {
  const it = await start(t);
  const fromApp = workflowJobEntries.filter((p) => p.has_installation);
  t.is(fromApp.length, 5);
  for (const p of fromApp) {
    const delivery = `d-${p.file}`;
    const r = await deliverFixture(it, p, delivery);
    t.is(r.status, 202, `${p.file}: ${r.text}`);
    t.is(r.text, 'accepted\n');
    const job = jobOf(p.file);
    const [ev] = it.store.jobEvents(job['id'] as number).filter((e) => e.deliveryId === delivery);
    t.like(ev, { action: p.action, status: job['status'], installationId: p.installation_id, labels: p.workflow_job_labels, runId: job['run_id'] }, p.file);
    t.like(it.store.delivery(delivery), { event: 'workflow_job', action: p.action });
  }
  // queued, in_progress (one job, in that order) and the with-deployment pair: the jobs rows hold the latest state.
  t.like(it.store.job(289782451), { state: 'in_progress', runnerName: 'GitHub Actions 5', installationId: 1 });
  t.like(it.store.job(14541957942), { state: 'in_progress', repoFullName: 'wolfy1339/github-events-schemas' });
  t.like(it.store.job(12877621891), { state: 'queued', labels: ['self-hosted', 'k8s'], installationId: 23154469 });
  t.deepEqual(it.store.counts(), { deliveries: 5, jobEvents: 5, jobs: 3 });
});

test('a workflow_job fixture from a repository webhook (no installation) is refused naming it; as the App sends it, accepted', async (t) => {
  const it = await start(t);
  const notApp = workflowJobEntries.filter((p) => !p.has_installation);
  t.deepEqual(notApp.map((p) => p.file).sort(), ['workflow_job.completed.failure-with-organization.json', 'workflow_job.completed.success-with-organization.json', LEGACY]);
  for (const p of notApp) {
    const r = await deliverFixture(it, p, `d-${p.file}`);
    t.is(r.status, 400, p.file);
    t.regex(r.text, /missing field "installation": the webhook must be the GitHub App's/);
  }
  t.deepEqual(it.store.counts(), EMPTY);
  for (const p of notApp) t.is((await deliver(it, 'workflow_job', `d-${p.file}`, asAppDelivery(p.file))).status, 202, p.file);
  t.like(it.store.job(3169272040), { state: 'queued', runAttempt: null, runnerName: null, labels: ['self-hosted'], installationId: 4242 });
  t.like(it.store.job(289782451), { state: 'completed' });
});

test('the same delivery twice is stored once: 202 then 200 duplicate', async (t) => {
  const it = await start(t);
  const p = entry('workflow_job.queued.json');
  t.is((await deliverFixture(it, p, 'same-id')).status, 202);
  const again = await deliverFixture(it, p, 'same-id');
  t.is(again.status, 200);
  t.regex(again.text, /^duplicate/);
  t.deepEqual(it.store.counts(), { deliveries: 1, jobEvents: 1, jobs: 1 });
});

test('50 deliveries at once, ten ids five times each: each id stored once', async (t) => {
  const it = await start(t);
  const files = workflowJobEntries.filter((p) => p.has_installation);
  const sends = Array.from({ length: 50 }, (_, i) => deliverFixture(it, files[i % 10 % files.length]!, `burst-${i % 10}`));
  const statuses = (await Promise.all(sends)).map((r) => r.status);
  t.is(statuses.filter((s) => s === 202).length, 10);
  t.is(statuses.filter((s) => s === 200).length, 40);
  t.deepEqual(it.store.counts(), { deliveries: 10, jobEvents: 10, jobs: 3 });
  for (let i = 0; i < 10; i++) t.like(it.store.delivery(`burst-${i}`), { event: 'workflow_job' });
});

test('completed before queued and in_progress: the job stays completed, all three recorded', async (t) => {
  const it = await start(t);
  t.is((await deliver(it, 'workflow_job', 'o-1', asAppDelivery('workflow_job.completed.failure-with-organization.json', 1))).status, 202);
  t.is((await deliverFixture(it, entry('workflow_job.queued.json'), 'o-2')).status, 202);
  t.is((await deliverFixture(it, entry('workflow_job.in_progress.json'), 'o-3')).status, 202);
  t.like(it.store.job(289782451), { state: 'completed', conclusion: 'failure', lastDeliveryId: 'o-1' });
  t.deepEqual(it.store.jobEvents(289782451).map((e) => e.action), ['completed', 'queued', 'in_progress']);
});

test('one byte of the body changed: 401 and nothing stored; the real body then goes through', async (t) => {
  const it = await start(t);
  const p = entry('workflow_job.queued.json');
  const body = Buffer.from(payloadBytes(p.file));
  const at = body.indexOf('"queued"') + 2;
  body[at] = 'x'.charCodeAt(0);
  const r = await post(it, body, { ...headersFor('workflow_job', 'tampered', body), 'x-hub-signature-256': p.x_hub_signature_256_with_test_secret });
  t.is(r.status, 401);
  t.regex(r.text, /check that the webhook secret matches the GitHub App's/);
  t.deepEqual(it.store.counts(), EMPTY);
  t.is((await deliverFixture(it, p, 'tampered')).status, 202);
});

test('signed with another secret: 401, nothing stored', async (t) => {
  const it = await start(t);
  const body = payloadBytes('workflow_job.queued.json');
  const r = await post(it, body, headersFor('workflow_job', 'wrong-secret', body, 'not the secret'));
  t.is(r.status, 401);
  t.deepEqual(it.store.counts(), EMPTY);
});

test('missing headers: 400 for X-GitHub-Event or X-GitHub-Delivery, 401 for the signature', async (t) => {
  const it = await start(t);
  const body = payloadBytes('workflow_job.queued.json');
  const full = headersFor('workflow_job', 'hdr', body);
  const without = (name: string): Record<string, string> => Object.fromEntries(Object.entries(full).filter(([k]) => k !== name));
  const noEvent = await post(it, body, without('x-github-event'));
  t.is(noEvent.status, 400);
  t.regex(noEvent.text, /X-GitHub-Event/);
  const noDelivery = await post(it, body, without('x-github-delivery'));
  t.is(noDelivery.status, 400);
  t.regex(noDelivery.text, /X-GitHub-Delivery/);
  t.is((await post(it, body, { ...full, 'x-github-delivery': 'a b/../c' })).status, 400);
  const noSig = await post(it, body, without('x-hub-signature-256'));
  t.is(noSig.status, 401);
  t.regex(noSig.text, /X-Hub-Signature-256/);
  const sha1 = await post(it, body, { ...without('x-hub-signature-256'), 'x-hub-signature': 'sha1=0123456789abcdef0123456789abcdef01234567' });
  t.is(sha1.status, 401);
  t.deepEqual(it.store.counts(), EMPTY);
});

test('form-encoded (GitHub\'s other content type): 415 saying to set the App\'s content type to JSON', async (t) => {
  const it = await start(t);
  const form = `payload=${encodeURIComponent(payloadBytes('workflow_job.queued.json').toString('utf8'))}`;
  const r = await post(it, form, { ...headersFor('workflow_job', 'form', form), 'content-type': 'application/x-www-form-urlencoded' });
  t.is(r.status, 415);
  t.regex(r.text, /not application\/x-www-form-urlencoded: set the GitHub App's webhook content type to application\/json/);
  const none = await post(it, '{}', Object.fromEntries(Object.entries(headersFor('ping', 'none', '{}')).filter(([k]) => k !== 'content-type')));
  t.is(none.status, 415);
  t.is((await post(it, '{"zen":"x"}', { ...headersFor('ping', 'charset', '{"zen":"x"}'), 'content-type': 'Application/JSON; charset=utf-8' })).status, 200);
  t.deepEqual(it.store.counts(), EMPTY);
});

test('over 25 MiB: 413 whether announced or streamed, and the server still serves others', async (t) => {
  const it = await start(t);
  const big = Buffer.alloc(25 * 1024 * 1024 + 1, 0x20);
  const headers = { ...headersFor('workflow_job', 'big', big) };
  const announced = await post(it, big, headers);
  t.is(announced.status, 413);
  t.regex(announced.text, /over 26214400 bytes/);
  const streamed = await post(it, big, { ...headers, 'transfer-encoding': 'chunked' });
  t.is(streamed.status, 413);
  t.is((await deliverFixture(it, entry('workflow_job.queued.json'), 'after-big')).status, 202);
  t.deepEqual(it.store.counts(), { deliveries: 1, jobEvents: 1, jobs: 1 });
});

test('a body at the limit is read (and judged by its signature); one byte over is not', async (t) => {
  const it = await start(t, { maxBodyBytes: 1000 });
  const at = Buffer.alloc(1000, 0x20);
  t.is((await post(it, at, { ...headersFor('ping', 'l', at), 'x-hub-signature-256': sign('x', at) })).status, 401);
  const over = Buffer.alloc(1001, 0x20);
  t.is((await post(it, over, headersFor('ping', 'l', over))).status, 413);
});

test('a validly signed body that is not JSON, or not UTF-8: 400, nothing stored', async (t) => {
  const it = await start(t);
  const r = await deliver(it, 'workflow_job', 'nonjson', '{"action": "queued", ');
  t.is(r.status, 400);
  t.is(r.text, 'the body is not JSON\n');
  const latin1 = Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]);
  t.is((await deliver(it, 'workflow_job', 'latin1', latin1)).status, 400);
  t.deepEqual(it.store.counts(), EMPTY);
});

test('a signed workflow_job without installation or with labels not an array: 400 naming the field, nothing stored', async (t) => {
  const it = await start(t);
  const noInstallation = payloadJson('workflow_job.queued.json');
  delete noInstallation['installation'];
  const r1 = await deliver(it, 'workflow_job', 'bad-1', JSON.stringify(noInstallation));
  t.is(r1.status, 400);
  t.regex(r1.text, /"installation"/);
  const badLabels = payloadJson('workflow_job.queued.json');
  (badLabels['workflow_job'] as Record<string, unknown>)['labels'] = 'ubuntu-latest';
  const r2 = await deliver(it, 'workflow_job', 'bad-2', JSON.stringify(badLabels));
  t.is(r2.status, 400);
  t.regex(r2.text, /workflow_job\.labels must be an array of strings, not a string/);
  t.deepEqual(it.store.counts(), EMPTY);
});

test('ping: 200 pong for each ping fixture, nothing stored', async (t) => {
  const it = await start(t);
  for (const p of payloadIndex.payloads.filter((x) => x.headers['X-GitHub-Event'] === 'ping')) {
    const r = await deliverFixture(it, p, `ping-${p.file}`);
    t.is(r.status, 200, p.file);
    t.is(r.text, 'pong\n');
  }
  t.deepEqual(it.store.counts(), EMPTY);
});

test('other events are recorded in deliveries only (202), a redelivery is a duplicate', async (t) => {
  const it = await start(t);
  const others = payloadIndex.payloads.filter((p) => ['installation', 'workflow_run'].includes(p.headers['X-GitHub-Event']));
  t.is(others.length, 7);
  for (const p of others) {
    const r = await deliverFixture(it, p, `o-${p.file}`);
    t.is(r.status, 202, p.file);
    t.is(r.text, 'recorded\n');
    t.like(it.store.delivery(`o-${p.file}`), { event: p.headers['X-GitHub-Event'], action: p.action });
  }
  t.is((await deliverFixture(it, others[0]!, `o-${others[0]!.file}`)).status, 200);
  t.deepEqual(it.store.counts(), { deliveries: 7, jobEvents: 0, jobs: 0 });
});

test('the store locked by another process: 503 and nothing kept; redelivered later, accepted', async (t) => {
  const it = await start(t, { busyTimeoutMs: 100 });
  const other = new DatabaseSync(it.store.path);
  t.teardown(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  const p = entry('workflow_job.queued.json');
  const r = await deliverFixture(it, p, 'locked');
  t.is(r.status, 503);
  t.regex(r.text, /redeliver/);
  other.exec('ROLLBACK');
  t.deepEqual(it.store.counts(), EMPTY);
  t.is((await deliverFixture(it, p, 'locked')).status, 202);
  t.true(it.logs.some((l) => l.includes('webhook delivery not recorded') && l.includes('runner.db') && l.includes('locked')));
});

test('the store closed: 503 for workflow_job and other events', async (t) => {
  const it = await start(t);
  it.store.close();
  t.is((await deliverFixture(it, entry('workflow_job.waiting.json'), 'closed-1')).status, 503);
  t.is((await deliverFixture(it, entry('installation.created.json'), 'closed-2')).status, 503);
});

test('not POST: 405 with Allow; another path: 404', async (t) => {
  const it = await start(t);
  const get = await post(it, '', {}, 'GET');
  t.is(get.status, 405);
  t.is(get.headers.allow, 'POST');
  t.is((await post(it, '{}', headersFor('ping', 'p', '{}'), 'POST', '/other')).status, 404);
});

test('a slow client is cut off: headers never finished, or a body that stops', async (t) => {
  const it = await start(t, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const hold = (data: string): Promise<{ ms: number; got: string }> => new Promise((resolve, reject) => {
    const started = Date.now();
    let got = '';
    const s = connect(it.port, '127.0.0.1', () => s.write(data));
    s.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    s.on('error', reject);
    s.on('close', () => resolve({ ms: Date.now() - started, got }));
  });
  const headers = await hold('POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n');
  t.true(headers.ms < 3000, `${headers.ms} ms`);
  t.regex(headers.got, /^HTTP\/1\.1 408/);
  const body = await hold('POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: ping\r\n'
    + `X-GitHub-Delivery: slow\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 100\r\n\r\n{"zen":`);
  t.true(body.ms < 4000, `${body.ms} ms`);
  t.regex(body.got, /^HTTP\/1\.1 408/);
  t.is((await deliverFixture(it, entry('ping.json'), 'after-slow')).status, 200);
});

test('each delivery is logged with delivery, event, action and job; never the secret, the body or the headers', async (t) => {
  const it = await start(t);
  const q = entry('workflow_job.queued.json');
  await deliverFixture(it, q, 'log-1');
  await deliverFixture(it, q, 'log-1');
  await deliverFixture(it, entry('ping.json'), 'log-2');
  await deliverFixture(it, entry('installation.created.json'), 'log-3');
  const body = payloadBytes(q.file);
  await post(it, body, headersFor('workflow_job', 'log-4', body, 'wrong'));
  await deliver(it, 'workflow_job', 'log-5', '{"action":');
  await deliver(it, 'workflow_job', 'log-6', JSON.stringify({ ...payloadJson(q.file), installation: undefined }));
  await post(it, 'a=1', { ...headersFor('workflow_job', 'log-7', 'a=1'), 'content-type': 'application/x-www-form-urlencoded' });
  const lines = it.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(lines.find((l) => l['delivery'] === 'log-1' && l['result'] === 'accepted'),
    { msg: 'webhook delivery', event: 'workflow_job', action: 'queued', job: 289782451, status: 202 });
  t.like(lines.find((l) => l['delivery'] === 'log-1' && l['result'] === 'duplicate'), { status: 200 });
  t.like(lines.find((l) => l['delivery'] === 'log-4'), { msg: 'webhook delivery refused', status: 401 });
  t.like(lines.find((l) => l['delivery'] === 'log-6'), { msg: 'webhook delivery refused', status: 400, job: 289782451 });
  t.true(it.logs.length >= 9 && it.replies.length === 8);
  for (const text of [...it.logs, ...it.replies]) {
    t.false(text.includes(TEST_SECRET), text);
    t.false(text.includes(q.x_hub_signature_256_with_test_secret), text);
    t.false(text.includes('Codertocat/Hello-World'), text); // from the body
    t.false(text.includes('GitHub-Hookshot'), text); // a header
  }
});
