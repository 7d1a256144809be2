/** Rows read back from the state database, checked column by column: a damaged file is an error, not a guess. */
import type { SQLOutputValue } from 'node:sqlite';
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { JOB_ACTIONS, WORKFLOW_JOB_STATUSES, type DeliveryRow, type JobAction, type JobEventRow, type JobRow, type WorkflowJobStatus } from './types.ts';

export type Row = Record<string, SQLOutputValue>;

function damaged(col: string, what: string): MatchlockError {
  return new MatchlockError(ErrorCodes.STORE, `the runner host's state database is damaged: column ${col} is not ${what}`, { col });
}

function str(row: Row, col: string): string {
  const v = row[col];
  if (typeof v !== 'string') throw damaged(col, 'text');
  return v;
}

function int(row: Row, col: string): number {
  const v = row[col];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw damaged(col, 'an integer');
  return v;
}

const optStr = (row: Row, col: string): string | null => (row[col] === null ? null : str(row, col));
const optInt = (row: Row, col: string): number | null => (row[col] === null ? null : int(row, col));

function oneOf<T extends string>(row: Row, col: string, values: readonly T[]): T {
  const v = str(row, col);
  if (!(values as readonly string[]).includes(v)) throw damaged(col, `one of ${values.join(', ')}`);
  return v as T;
}

function labels(row: Row): string[] {
  const v: unknown = JSON.parse(str(row, 'labels'));
  if (!Array.isArray(v) || !v.every((l): l is string => typeof l === 'string')) throw damaged('labels', 'an array of strings');
  return v;
}

function common(row: Row): Omit<JobRow, 'state' | 'lastDeliveryId' | 'firstReceivedAt' | 'updatedAt'> {
  return {
    jobId: int(row, 'job_id'), runId: int(row, 'run_id'), runAttempt: optInt(row, 'run_attempt'),
    repoFullName: str(row, 'repo_full_name'), owner: str(row, 'owner'), installationId: int(row, 'installation_id'),
    labels: labels(row), runnerId: optInt(row, 'runner_id'), runnerName: optStr(row, 'runner_name'),
    workflowName: optStr(row, 'workflow_name'), headBranch: optStr(row, 'head_branch'), conclusion: optStr(row, 'conclusion'),
    createdAt: optStr(row, 'created_at'), startedAt: optStr(row, 'started_at'), completedAt: optStr(row, 'completed_at'),
  };
}

export function toJobRow(row: Row): JobRow {
  return {
    ...common(row), state: oneOf<JobAction>(row, 'state', JOB_ACTIONS), lastDeliveryId: str(row, 'last_delivery_id'),
    firstReceivedAt: int(row, 'first_received_at'), updatedAt: int(row, 'updated_at'),
  };
}

export function toJobEventRow(row: Row): JobEventRow {
  return {
    ...common(row), action: oneOf<JobAction>(row, 'action', JOB_ACTIONS), status: oneOf<WorkflowJobStatus>(row, 'status', WORKFLOW_JOB_STATUSES),
    deliveryId: str(row, 'delivery_id'), receivedAt: int(row, 'received_at'),
  };
}

export function toDeliveryRow(row: Row): DeliveryRow {
  return { deliveryId: str(row, 'delivery_id'), event: str(row, 'event'), action: optStr(row, 'action'), receivedAt: int(row, 'received_at') };
}
