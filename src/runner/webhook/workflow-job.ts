/**
 * The fields of a `workflow_job` payload the runner host uses, checked before anything acts on them (the rest
 * of GitHub's payload is let be), mapped to a WorkflowJobEvent. Required is only what every real delivery has
 * carried since the event appeared in 2021: fields GitHub added later (`run_attempt`, `runner_*`,
 * `workflow_name`, `head_branch`, `created_at`) may be absent and become null. `installation` is required: the
 * runner host is a GitHub App, and a delivery without it comes from a repository or organization webhook.
 */
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { checkFieldsOf, isPlainObject, type Fields } from '../../field-check.ts';
import { JOB_ACTIONS, WORKFLOW_JOB_STATUSES, type JobAction, type WorkflowJobStatus, type WorkflowJobEvent } from '../store/index.ts';

export const MAX_LABELS = 64;

// Timestamps are stored as sent, not interpreted: a format GitHub changes must not lose a job.
const time = { type: 'string', maxLength: 64 } as const;
const name = { type: 'string', maxLength: 1024 } as const;

const WORKFLOW_JOB: Fields = {
  id: { type: 'integer', required: true, min: 1 },
  run_id: { type: 'integer', required: true, min: 1 },
  run_attempt: { type: 'integer', min: 1 },
  status: { type: 'string', required: true, enum: WORKFLOW_JOB_STATUSES },
  labels: { type: 'string-array', required: true, maxItems: MAX_LABELS, maxLength: 1024 },
  runner_id: { type: 'integer', nullable: true },
  runner_name: { ...name, nullable: true },
  workflow_name: { ...name, nullable: true },
  head_branch: { ...name, nullable: true },
  conclusion: { type: 'string', maxLength: 64, nullable: true },
  created_at: time,
  started_at: { ...time, nullable: true },
  completed_at: { ...time, nullable: true },
};

const PAYLOAD: Fields = {
  action: { type: 'string', required: true, enum: JOB_ACTIONS },
  workflow_job: { type: 'object', required: true, open: true, fields: WORKFLOW_JOB },
  repository: {
    type: 'object', required: true, open: true, fields: {
      full_name: { type: 'string', required: true, maxLength: 256, pattern: /^[^/\s]+\/[^/\s]+$/ },
      owner: { type: 'object', required: true, open: true, fields: { login: { type: 'string', required: true, maxLength: 256 } } },
    },
  },
  installation: { type: 'object', required: true, open: true, fields: { id: { type: 'integer', required: true, min: 1 } } },
};

function webhookError(message: string): MatchlockError {
  return new MatchlockError(ErrorCodes.WEBHOOK, message);
}

const orNull = <T>(v: T | undefined): T | null => v ?? null;

interface CheckedJob {
  id: number; run_id: number; run_attempt?: number; status: WorkflowJobStatus; labels: string[];
  runner_id?: number | null; runner_name?: string | null; workflow_name?: string | null; head_branch?: string | null;
  conclusion?: string | null; created_at?: string; started_at?: string | null; completed_at?: string | null;
}
interface CheckedPayload {
  action: JobAction; workflow_job: CheckedJob;
  repository: { full_name: string; owner: { login: string } };
  installation: { id: number };
}

/** Checks a `workflow_job` payload; throws MatchlockError(WEBHOOK) naming the first field that is wrong. */
export function parseWorkflowJob(body: unknown): WorkflowJobEvent {
  if (isPlainObject(body) && body['installation'] === undefined) {
    throw webhookError('workflow_job: missing field "installation": the webhook must be the GitHub App\'s (a repository or organization webhook sends none); configure it on the App');
  }
  checkFieldsOf(PAYLOAD, body, 'workflow_job delivery', webhookError, true);
  const p = body as CheckedPayload; // checked just above
  const j = p.workflow_job;
  return {
    action: p.action, jobId: j.id, runId: j.run_id, runAttempt: orNull(j.run_attempt), status: j.status,
    repoFullName: p.repository.full_name, owner: p.repository.owner.login, installationId: p.installation.id,
    labels: [...j.labels], runnerId: orNull(j.runner_id), runnerName: orNull(j.runner_name), workflowName: orNull(j.workflow_name),
    headBranch: orNull(j.head_branch), conclusion: orNull(j.conclusion), createdAt: orNull(j.created_at),
    startedAt: orNull(j.started_at), completedAt: orNull(j.completed_at),
  };
}
