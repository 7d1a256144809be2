/**
 * Workflow jobs of a repository (the installation's Actions: read permission): one by id, and the jobs waiting
 * for a runner, for the sweep that brings back jobs whose `queued` webhook was lost.
 */
import type { Octokit } from '@octokit/rest';
import { statusOf } from './github-error.ts';
import { checkReply, FIELDS, toJob, type Job } from './replies.ts';
import { resolveRepo } from './scope.ts';

/** A job by id; null if the repository has none with that id. */
export async function getJob(octokit: Octokit, repo: string, jobId: number): Promise<Job | null> {
  const scope = resolveRepo(repo);
  try {
    const { data } = await octokit.request('GET /repos/{owner}/{repo}/actions/jobs/{job_id}', { owner: scope.owner, repo: scope.repo, job_id: jobId });
    return toJob(scope.name, data, `GET job ${jobId} of ${scope.name}`);
  } catch (e: unknown) {
    if (statusOf(e) === 404) return null;
    throw e;
  }
}

/**
 * The jobs of a repository waiting for a runner (status `queued`), in the latest attempt of each run that is
 * `queued` or `in_progress`: a run with one job running and another waiting is `in_progress`, so both are
 * looked at. `runStatuses` narrows that.
 */
export async function listQueuedJobs(octokit: Octokit, repo: string,
  opts: { readonly runStatuses?: readonly ('queued' | 'in_progress')[] } = {}): Promise<Job[]> {
  const scope = resolveRepo(repo);
  const { owner, repo: name } = scope;
  const runIds = new Set<number>();
  for (const status of opts.runStatuses ?? ['queued', 'in_progress']) {
    const operation = `GET ${status} runs of ${scope.name}`;
    for await (const page of octokit.paginate.iterator('GET /repos/{owner}/{repo}/actions/runs', { owner, repo: name, status, per_page: 100, exclude_pull_requests: true })) {
      const body = checkReply<{ runs: { id: number }[] }>({ runs: { type: 'array', required: true, maxItems: 100, open: true, items: FIELDS.run } }, { runs: page.data as unknown }, operation);
      for (const run of body.runs) runIds.add(run.id);
    }
  }
  const jobs: Job[] = [];
  for (const runId of runIds) {
    const operation = `GET jobs of run ${runId} of ${scope.name}`;
    try {
      for await (const page of octokit.paginate.iterator('GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs', { owner, repo: name, run_id: runId, per_page: 100 })) {
        const body = checkReply<{ jobs: unknown[] }>({ jobs: { type: 'array', required: true, maxItems: 100, open: true, items: FIELDS.job } }, { jobs: page.data as unknown }, operation);
        for (const j of body.jobs) {
          const job = toJob(scope.name, j, operation);
          if (job.status === 'queued') jobs.push(job);
        }
      }
    } catch (e: unknown) {
      if (statusOf(e) !== 404) throw e; // the run was deleted since it was listed
    }
  }
  return jobs;
}
