/**
 * The runner host's state file, real node:sqlite on disk: created private, migrated once, refused untouched
 * when a newer matchlock wrote it; a delivery recorded whole or not at all, once per delivery id, and a job's
 * state moving only forward whatever order deliveries arrive in.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ErrorCodes } from '../../src/errors.ts';
import { RunnerStore, STORE_SCHEMA_VERSION, type WorkflowJobEvent } from '../../src/runner/store/index.ts';
import { parseWorkflowJob } from '../../src/runner/webhook/index.ts';
import { asAppDelivery } from '../helpers/webhook-payloads.ts';

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-store-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const STORE = { code: ErrorCodes.STORE };

let n = 0;
function openStore(t: { teardown(fn: () => void): void }, busyTimeoutMs?: number): RunnerStore {
  const path = join(scratch, `s${n++}`, 'state', 'runner.db');
  const store = RunnerStore.open({ path, ...(busyTimeoutMs === undefined ? {} : { busyTimeoutMs }) });
  t.teardown(() => store.close());
  return store;
}

const event = (file: string): WorkflowJobEvent => parseWorkflowJob(JSON.parse(asAppDelivery(file).toString('utf8')));
const queued = event('workflow_job.queued.json');
const inProgress = event('workflow_job.in_progress.json');
const completed = event('workflow_job.completed.success-with-organization.json');

test('a new state file is private, in WAL mode, at the current schema version', (t) => {
  const store = openStore(t);
  t.is(statSync(store.path).mode & 0o777, 0o600);
  t.is(statSync(join(store.path, '..')).mode & 0o777, 0o700);
  const db = new DatabaseSync(store.path, { readOnly: true });
  t.teardown(() => db.close());
  t.is(db.prepare('PRAGMA journal_mode').get()?.['journal_mode'], 'wal');
  t.is(db.prepare('PRAGMA user_version').get()?.['user_version'], STORE_SCHEMA_VERSION);
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => r['name']);
  t.deepEqual(tables, ['deliveries', 'job_events', 'jobs', 'sqlite_sequence']);
});

test('opening again keeps what was recorded and migrates nothing twice', (t) => {
  const first = openStore(t);
  t.is(first.recordWorkflowJob('d-1', queued, 1000), 'new');
  first.close();
  const again = RunnerStore.open({ path: first.path });
  t.teardown(() => again.close());
  t.is(again.recordWorkflowJob('d-1', queued, 2000), 'duplicate');
  t.deepEqual(again.counts(), { deliveries: 1, jobEvents: 1, jobs: 1 });
});

test('a file from a newer schema is refused and left as it was', (t) => {
  const store = openStore(t);
  store.close();
  const db = new DatabaseSync(store.path);
  db.exec(`PRAGMA user_version = ${STORE_SCHEMA_VERSION + 1}`);
  db.exec('PRAGMA journal_mode = DELETE');
  db.close();
  const before = readFileSync(store.path);
  t.throws(() => RunnerStore.open({ path: store.path }), { ...STORE, message: new RegExp(`runner\\.db: .*schema version ${STORE_SCHEMA_VERSION + 1}, newer than this matchlock knows \\(${STORE_SCHEMA_VERSION}\\)`) });
  t.deepEqual(readFileSync(store.path), before);
  t.false(existsSync(`${store.path}-wal`));
});

test('a file that is not a database is refused naming its path and what SQLite said', (t) => {
  const path = join(scratch, 'garbage.db');
  writeFileSync(path, 'this is not a database, it is a text file that happens to be long enough to have a header');
  t.throws(() => RunnerStore.open({ path }), { ...STORE, message: /garbage\.db: cannot open the runner host's state database: .*not a database/ });
});

test('a directory that cannot be made is refused naming the path', (t) => {
  const file = join(scratch, 'a-file');
  writeFileSync(file, '');
  t.throws(() => RunnerStore.open({ path: join(file, 'sub', 'runner.db') }), { ...STORE, message: /a-file\/sub\/runner\.db: cannot open/ });
});

test('a workflow_job delivery is recorded as a delivery, an event and the job; a second time as a duplicate', (t) => {
  const store = openStore(t);
  t.is(store.recordWorkflowJob('d-q', queued, 1000), 'new');
  t.is(store.recordWorkflowJob('d-q', queued, 2000), 'duplicate');
  t.deepEqual(store.delivery('d-q'), { deliveryId: 'd-q', event: 'workflow_job', action: 'queued', receivedAt: 1000 });
  t.deepEqual(store.jobEvents(queued.jobId), [{ ...queued, deliveryId: 'd-q', receivedAt: 1000 }]);
  const { action: _a, status: _s, ...fields } = queued;
  t.deepEqual(store.job(queued.jobId), { ...fields, state: 'queued', lastDeliveryId: 'd-q', firstReceivedAt: 1000, updatedAt: 1000 });
  t.deepEqual(store.counts(), { deliveries: 1, jobEvents: 1, jobs: 1 });
});

test('a job only moves forward: completed before queued stays completed, every event recorded', (t) => {
  const store = openStore(t);
  store.recordWorkflowJob('d-c', completed, 1000);
  store.recordWorkflowJob('d-q', queued, 2000);
  store.recordWorkflowJob('d-i', inProgress, 3000);
  const job = store.job(completed.jobId);
  t.like(job, { state: 'completed', conclusion: 'success', lastDeliveryId: 'd-c', updatedAt: 1000, runnerName: 'GitHub Actions 5' });
  t.deepEqual(store.jobEvents(completed.jobId).map((e) => [e.deliveryId, e.action]), [['d-c', 'completed'], ['d-q', 'queued'], ['d-i', 'in_progress']]);
});

test('waiting before queued: a queued job is not held back by a late waiting, an approved one moves on', (t) => {
  const store = openStore(t);
  const waiting = event('workflow_job.waiting.json');
  const queuedWaiting = event('workflow_job.queued.with-deployment.json'); // action queued, status waiting
  store.recordWorkflowJob('d-w', waiting, 1000);
  t.is(store.job(waiting.jobId)?.state, 'waiting');
  store.recordWorkflowJob('d-q', queuedWaiting, 2000);
  t.is(store.job(waiting.jobId)?.state, 'queued');
  store.recordWorkflowJob('d-w2', waiting, 3000);
  t.like(store.job(waiting.jobId), { state: 'queued', lastDeliveryId: 'd-q' });
  t.deepEqual(store.jobEvents(waiting.jobId).map((e) => [e.action, e.status]), [['waiting', 'waiting'], ['queued', 'waiting'], ['waiting', 'waiting']]);
});

test('a later state keeps what an earlier one knew and the later one does not say', (t) => {
  const store = openStore(t);
  store.recordWorkflowJob('d-i', { ...inProgress, runnerName: 'ml-host-7', workflowName: 'CI' }, 1000);
  store.recordWorkflowJob('d-c', { ...inProgress, action: 'completed', status: 'completed', runnerName: null, workflowName: null, conclusion: 'failure' }, 2000);
  t.like(store.job(inProgress.jobId), { state: 'completed', runnerName: 'ml-host-7', workflowName: 'CI', conclusion: 'failure' });
});

test('a delivery that fails part-way records nothing of it', (t) => {
  const store = openStore(t);
  const bad = { ...queued, action: 'requested' } as unknown as WorkflowJobEvent; // refused by the table's CHECK
  t.throws(() => store.recordWorkflowJob('d-bad', bad), { ...STORE, message: /runner\.db: cannot record a workflow_job delivery in .*CHECK constraint failed/ });
  t.deepEqual(store.counts(), { deliveries: 0, jobEvents: 0, jobs: 0 });
  t.is(store.recordWorkflowJob('d-bad', queued), 'new');
});

test('other events are recorded in deliveries only, once', (t) => {
  const store = openStore(t);
  t.is(store.recordDelivery('d-inst', 'installation', 'created', 5), 'new');
  t.is(store.recordDelivery('d-inst', 'installation', 'created', 6), 'duplicate');
  t.deepEqual(store.delivery('d-inst'), { deliveryId: 'd-inst', event: 'installation', action: 'created', receivedAt: 5 });
  t.deepEqual(store.counts(), { deliveries: 1, jobEvents: 0, jobs: 0 });
});

test('a write while another process holds the write lock fails with STORE after the busy timeout, then succeeds', (t) => {
  const store = openStore(t, 100);
  const other = new DatabaseSync(store.path);
  t.teardown(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  t.throws(() => store.recordWorkflowJob('d-busy', queued), { ...STORE, message: /runner\.db: cannot record .*locked/ });
  other.exec('ROLLBACK');
  t.is(store.recordWorkflowJob('d-busy', queued), 'new');
});

test('a closed store fails with STORE', (t) => {
  const store = openStore(t);
  store.close();
  t.throws(() => store.recordWorkflowJob('d-x', queued), { ...STORE, message: /runner\.db: cannot record a workflow_job delivery in .*not open/ });
});
