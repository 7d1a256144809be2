/**
 * What the runner host records about GitHub's workflow jobs: one event per `workflow_job` delivery, as intake
 * mapped it from the payload (src/runner/webhook/workflow-job.ts), and one row per job with its latest state.
 */

/** The `action` of a `workflow_job` delivery: the transition GitHub announces. */
export const JOB_ACTIONS = ['queued', 'waiting', 'in_progress', 'completed'] as const;
export type JobAction = (typeof JOB_ACTIONS)[number];

/** `workflow_job.status` as GitHub sends it; it can lag the action (a `queued` delivery with status `waiting`). */
export const WORKFLOW_JOB_STATUSES = ['queued', 'waiting', 'in_progress', 'completed'] as const;
export type WorkflowJobStatus = (typeof WORKFLOW_JOB_STATUSES)[number];

/**
 * The order a job's state moves in. `waiting` (held by an environment protection rule) comes before `queued`:
 * GitHub sends `queued` again once the job is approved, so a job is never held back as waiting after it was
 * queued; a late `waiting` after `queued` leaves it queued.
 */
export const STATE_RANK: Readonly<Record<JobAction, number>> = Object.freeze({ waiting: 0, queued: 1, in_progress: 2, completed: 3 });

export interface WorkflowJobEvent {
  readonly action: JobAction;
  readonly jobId: number;
  readonly runId: number;
  /** null in deliveries from before GitHub added `run_attempt` (2021). */
  readonly runAttempt: number | null;
  readonly status: WorkflowJobStatus;
  readonly repoFullName: string;
  readonly owner: string;
  readonly installationId: number;
  readonly labels: readonly string[];
  readonly runnerId: number | null;
  readonly runnerName: string | null;
  readonly workflowName: string | null;
  readonly headBranch: string | null;
  readonly conclusion: string | null;
  /** GitHub's timestamps, ISO 8601 as sent. */
  readonly createdAt: string | null;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
}

/**
 * A job's latest state: the fields of its deliveries, with `state` in place of the delivery's action and status;
 * `state` only moves forward in STATE_RANK order, whatever order deliveries arrive in.
 */
export interface JobRow extends Omit<WorkflowJobEvent, 'action' | 'status'> {
  readonly state: JobAction;
  /** The delivery that last moved or refreshed the row. */
  readonly lastDeliveryId: string;
  /** Milliseconds since the epoch, by the host's clock. */
  readonly firstReceivedAt: number;
  readonly updatedAt: number;
}

/** One recorded `workflow_job` delivery. */
export interface JobEventRow extends WorkflowJobEvent {
  readonly deliveryId: string;
  readonly receivedAt: number;
}

export interface DeliveryRow {
  readonly deliveryId: string;
  readonly event: string;
  readonly action: string | null;
  readonly receivedAt: number;
}

export type RecordResult = 'new' | 'duplicate';
