/**
 * What a delivery whose signature checked out comes to: a plain function from (event, delivery id, parsed body)
 * to a reply, the store written before the reply is chosen, so nothing acknowledged with a 2xx is lost.
 *
 * - `ping` → 200 `pong` (nothing stored).
 * - `workflow_job` → checked (400 naming the field), recorded → 202; a delivery id seen before → 200 `duplicate`.
 * - Any other event (`installation`, `workflow_run`, ...) → 202, recorded in `deliveries` only, so a redelivery
 *   is recognised and the delivery log can be matched; 202 rather than 204 so GitHub's log shows what happened.
 * - The store failing → 503: GitHub shows a failed delivery, which can be redelivered.
 */
import { ErrorCodes, isMatchlockError, type MatchlockError } from '../../errors.ts';
import { isPlainObject } from '../../field-check.ts';
import type { RecordResult, WorkflowJobEvent } from '../store/index.ts';
import { parseWorkflowJob } from './workflow-job.ts';

export interface IntakeStore {
  recordWorkflowJob(deliveryId: string, event: WorkflowJobEvent, receivedAt?: number): RecordResult;
  recordDelivery(deliveryId: string, event: string, action: string | null, receivedAt?: number): RecordResult;
}

export interface WebhookDelivery {
  readonly id: string;
  readonly event: string;
  readonly body: unknown;
  readonly receivedAt: number;
}

export type IntakeResult = 'pong' | 'accepted' | 'recorded' | 'duplicate' | 'invalid' | 'store-failed';

export interface IntakeOutcome {
  readonly status: number;
  readonly result: IntakeResult;
  readonly reply: string;
  readonly action: string | null;
  readonly job: number | null;
  readonly error?: MatchlockError;
}

/** The payload's `action`, if it has a short one (for the record and the log). */
function actionOf(body: unknown): string | null {
  const a = isPlainObject(body) ? body['action'] : undefined;
  return typeof a === 'string' && /^[a-z_]{1,64}$/.test(a) ? a : null;
}

function jobIdOf(body: unknown): number | null {
  const j = isPlainObject(body) ? body['workflow_job'] : undefined;
  const id = isPlainObject(j) ? j['id'] : undefined;
  return typeof id === 'number' && Number.isSafeInteger(id) ? id : null;
}

function stored(r: RecordResult, status: number, result: IntakeResult, action: string | null, job: number | null): IntakeOutcome {
  return r === 'duplicate'
    ? { status: 200, result: 'duplicate', reply: 'duplicate: this delivery was recorded before', action, job }
    : { status, result, reply: result, action, job };
}

export function intake(store: IntakeStore, d: WebhookDelivery): IntakeOutcome {
  const action = actionOf(d.body);
  if (d.event === 'ping') return { status: 200, result: 'pong', reply: 'pong', action, job: null };
  let job = jobIdOf(d.body);
  try {
    if (d.event !== 'workflow_job') return stored(store.recordDelivery(d.id, d.event, action, d.receivedAt), 202, 'recorded', action, job);
    const event = parseWorkflowJob(d.body);
    job = event.jobId;
    return stored(store.recordWorkflowJob(d.id, event, d.receivedAt), 202, 'accepted', action, job);
  } catch (e: unknown) {
    if (isMatchlockError(e, ErrorCodes.WEBHOOK)) return { status: 400, result: 'invalid', reply: e.message, action, job, error: e };
    if (isMatchlockError(e, ErrorCodes.STORE)) {
      return { status: 503, result: 'store-failed', reply: 'the runner host could not record this delivery; redeliver it once the host is healthy', action, job, error: e };
    }
    throw e;
  }
}
