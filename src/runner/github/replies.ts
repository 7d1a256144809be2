/**
 * GitHub's replies as matchlock uses them: each checked for the fields it reads (objects left open, since
 * GitHub adds fields), then turned into matchlock's own shapes. A reply without a field we need fails with
 * MatchlockError(GITHUB) naming the operation and the field, never quoting a secret.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { checkFieldsOf, type Fields } from '../../field-check.ts';
import { Secret } from './secret.ts';

export const JOB_STATUSES = ['queued', 'in_progress', 'completed', 'waiting', 'requested', 'pending'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface Runner {
  readonly id: number;
  readonly name: string;
  readonly os: string;
  readonly status: string;
  readonly busy: boolean;
  readonly labels: readonly string[];
  readonly runnerGroupId: number | null;
  readonly ephemeral: boolean | null;
}

export interface JitConfig {
  readonly runnerId: number;
  readonly runnerName: string;
  readonly encodedJitConfig: Secret;
}

export interface Job {
  /** `owner/name`, as asked. */
  readonly repo: string;
  readonly id: number;
  readonly runId: number;
  readonly runAttempt: number | null;
  readonly name: string;
  readonly workflowName: string | null;
  readonly status: JobStatus;
  readonly conclusion: string | null;
  readonly labels: readonly string[];
  readonly runnerId: number | null;
  readonly runnerName: string | null;
  readonly runnerGroupId: number | null;
  readonly createdAt: string | null;
}

const RUNNER: Fields = {
  id: { type: 'integer', required: true },
  name: { type: 'string', required: true },
  os: { type: 'string', required: true },
  status: { type: 'string', required: true },
  busy: { type: 'boolean', required: true },
  labels: { type: 'array', required: true, maxItems: 1000, open: true, items: { name: { type: 'string', required: true } } },
  runner_group_id: { type: 'integer' },
  ephemeral: { type: 'boolean' },
};

export const FIELDS = {
  installation: { id: { type: 'integer', required: true }, suspended_at: { type: 'string', nullable: true } },
  token: { token: { type: 'string', required: true, pattern: /^\S+$/ }, expires_at: { type: 'string', required: true, pattern: /^\d{4}-\d\d-\d\dT/ } },
  jitConfig: {
    runner: { type: 'object', required: true, open: true, fields: { id: { type: 'integer', required: true }, name: { type: 'string', required: true } } },
    encoded_jit_config: { type: 'string', required: true, pattern: /^\S+$/ },
  },
  runner: RUNNER,
  runnerPage: { runners: { type: 'array', required: true, maxItems: 100, open: true, items: RUNNER } },
  run: { id: { type: 'integer', required: true }, status: { type: 'string', nullable: true } },
  job: {
    id: { type: 'integer', required: true },
    run_id: { type: 'integer', required: true },
    run_attempt: { type: 'integer' },
    name: { type: 'string', required: true },
    workflow_name: { type: 'string', nullable: true },
    status: { type: 'string', required: true, enum: JOB_STATUSES },
    conclusion: { type: 'string', nullable: true },
    labels: { type: 'string-array', required: true, maxItems: 1000 },
    runner_id: { type: 'integer', nullable: true },
    runner_name: { type: 'string', nullable: true },
    runner_group_id: { type: 'integer', nullable: true },
    created_at: { type: 'string' },
  },
} as const satisfies Record<string, Fields>;

/** Checks `body` for `fields`; throws MatchlockError(GITHUB) naming `operation` and the field. */
export function checkReply<T>(fields: Fields, body: unknown, operation: string): T {
  checkFieldsOf(fields, body, 'reply', (m) => new MatchlockError(ErrorCodes.GITHUB, `GitHub's reply to ${operation} cannot be used: ${m}`, { operation }), true);
  return body as T;
}

interface RunnerBody { id: number; name: string; os: string; status: string; busy: boolean; labels: { name: string }[]; runner_group_id?: number; ephemeral?: boolean }

export function toRunner(body: unknown, operation: string): Runner {
  const r = checkReply<RunnerBody>(RUNNER, body, operation);
  return { id: r.id, name: r.name, os: r.os, status: r.status, busy: r.busy, labels: r.labels.map((l) => l.name), runnerGroupId: r.runner_group_id ?? null, ephemeral: r.ephemeral ?? null };
}

export function toJitConfig(body: unknown, operation: string): JitConfig {
  const b = checkReply<{ runner: { id: number; name: string }; encoded_jit_config: string }>(FIELDS.jitConfig, body, operation);
  return { runnerId: b.runner.id, runnerName: b.runner.name, encodedJitConfig: new Secret(b.encoded_jit_config) };
}

interface JobBody {
  id: number; run_id: number; run_attempt?: number; name: string; workflow_name?: string | null; status: JobStatus; conclusion?: string | null;
  labels: string[]; runner_id?: number | null; runner_name?: string | null; runner_group_id?: number | null; created_at?: string;
}

export function toJob(repo: string, body: unknown, operation: string): Job {
  const j = checkReply<JobBody>(FIELDS.job, body, operation);
  return {
    repo, id: j.id, runId: j.run_id, runAttempt: j.run_attempt ?? null, name: j.name, workflowName: j.workflow_name ?? null, status: j.status,
    conclusion: j.conclusion ?? null, labels: [...j.labels], runnerId: j.runner_id ?? null, runnerName: j.runner_name ?? null,
    runnerGroupId: j.runner_group_id ?? null, createdAt: j.created_at ?? null,
  };
}
