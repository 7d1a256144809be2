/**
 * The runner host's durable state (design.md: "Single host: one node:sqlite file (WAL)"). For now what webhook
 * intake needs: every delivery once (deduplicated by `X-GitHub-Delivery`), every `workflow_job` event, and each
 * job's latest state. A delivery is recorded in one `BEGIN IMMEDIATE` transaction: all of it or none of it.
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { MatchlockError } from '../../errors.ts';
import { DEFAULT_BUSY_TIMEOUT_MS, immediate, openStoreDb, storeError } from './open.ts';
import { toDeliveryRow, toJobEventRow, toJobRow } from './rows.ts';
import { STATE_RANK, type DeliveryRow, type JobEventRow, type JobRow, type RecordResult, type WorkflowJobEvent } from './types.ts';

export interface StoreOptions {
  readonly path: string;
  /** How long a write waits for another process's transaction before failing; default 5 s. */
  readonly busyTimeoutMs?: number;
}

const RANK_SQL = (col: string): string =>
  `(CASE ${col} ${Object.entries(STATE_RANK).map(([state, rank]) => `WHEN '${state}' THEN ${rank}`).join(' ')} END)`;

const EVENT_COLUMNS = `job_id, run_id, run_attempt, repo_full_name, owner, installation_id, labels, runner_id, runner_name,
  workflow_name, head_branch, conclusion, created_at, started_at, completed_at`;

// A later state, or the same one again, refreshes the row; what the delivery leaves null keeps what was known.
const UPSERT_JOB = `INSERT INTO jobs (${EVENT_COLUMNS}, state, last_delivery_id, first_received_at, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (job_id) DO UPDATE SET
    state = excluded.state, run_attempt = COALESCE(excluded.run_attempt, run_attempt), labels = excluded.labels,
    runner_id = COALESCE(excluded.runner_id, runner_id), runner_name = COALESCE(excluded.runner_name, runner_name),
    workflow_name = COALESCE(excluded.workflow_name, workflow_name), head_branch = COALESCE(excluded.head_branch, head_branch),
    conclusion = COALESCE(excluded.conclusion, conclusion), created_at = COALESCE(excluded.created_at, created_at),
    started_at = COALESCE(excluded.started_at, started_at), completed_at = COALESCE(excluded.completed_at, completed_at),
    last_delivery_id = excluded.last_delivery_id, updated_at = excluded.updated_at
  WHERE ${RANK_SQL('excluded.state')} >= ${RANK_SQL('jobs.state')}`;

function eventValues(e: WorkflowJobEvent): SQLInputValue[] {
  return [e.jobId, e.runId, e.runAttempt, e.repoFullName, e.owner, e.installationId, JSON.stringify(e.labels), e.runnerId,
    e.runnerName, e.workflowName, e.headBranch, e.conclusion, e.createdAt, e.startedAt, e.completedAt];
}

export class RunnerStore {
  readonly path: string;
  readonly #db: DatabaseSync;

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
  }

  static open(opts: StoreOptions): RunnerStore {
    return new RunnerStore(opts.path, openStoreDb(opts.path, opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS));
  }

  /** Records a `workflow_job` delivery and moves its job forward, all in one transaction; once per delivery id. */
  recordWorkflowJob(deliveryId: string, event: WorkflowJobEvent, receivedAt: number = Date.now()): RecordResult {
    return this.#write('record a workflow_job delivery in', () => {
      if (!this.#insertDelivery(deliveryId, 'workflow_job', event.action, receivedAt)) return 'duplicate';
      this.#db.prepare(`INSERT INTO job_events (delivery_id, action, status, ${EVENT_COLUMNS}, received_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(deliveryId, event.action, event.status, ...eventValues(event), receivedAt);
      this.#db.prepare(UPSERT_JOB).run(...eventValues(event), event.action, deliveryId, receivedAt, receivedAt);
      return 'new';
    });
  }

  /** Records a delivery of another event (installation, workflow_run, ...): kept for dedupe and the record only. */
  recordDelivery(deliveryId: string, event: string, action: string | null, receivedAt: number = Date.now()): RecordResult {
    return this.#write('record a delivery in', () => (this.#insertDelivery(deliveryId, event, action, receivedAt) ? 'new' : 'duplicate'));
  }

  job(jobId: number): JobRow | null {
    const row = this.#read(() => this.#db.prepare('SELECT * FROM jobs WHERE job_id = ?').get(jobId));
    return row === undefined ? null : toJobRow(row);
  }

  /** A job's recorded events, in the order they were received. */
  jobEvents(jobId: number): JobEventRow[] {
    return this.#read(() => this.#db.prepare('SELECT * FROM job_events WHERE job_id = ? ORDER BY id').all(jobId)).map(toJobEventRow);
  }

  delivery(deliveryId: string): DeliveryRow | null {
    const row = this.#read(() => this.#db.prepare('SELECT * FROM deliveries WHERE delivery_id = ?').get(deliveryId));
    return row === undefined ? null : toDeliveryRow(row);
  }

  /** How many rows each table holds. */
  counts(): { readonly deliveries: number; readonly jobEvents: number; readonly jobs: number } {
    const n = (table: string): number => Number(this.#read(() => this.#db.prepare(`SELECT count(*) AS n FROM ${table}`).get())?.['n']);
    return { deliveries: n('deliveries'), jobEvents: n('job_events'), jobs: n('jobs') };
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #insertDelivery(deliveryId: string, event: string, action: string | null, receivedAt: number): boolean {
    return this.#db.prepare('INSERT INTO deliveries (delivery_id, event, action, received_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
      .run(deliveryId, event, action, receivedAt).changes === 1;
  }

  #write<T>(doing: string, fn: () => T): T {
    try {
      return immediate(this.#db, fn);
    } catch (e: unknown) {
      if (e instanceof MatchlockError) throw e;
      throw storeError(this.path, doing, e);
    }
  }

  #read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e: unknown) {
      throw storeError(this.path, 'read', e);
    }
  }
}
