/**
 * Self-hosted runners of a repository or an organisation: a JIT config for a new one, and finding, listing and
 * deleting them. Repository runners need the installation's Administration permission, organisation runners its
 * Self-hosted runners permission.
 */
import type { Octokit } from '@octokit/rest';
import { ErrorCodes, MatchlockError } from '../../errors.ts';
import { statusOf, withHint } from './github-error.ts';
import { checkReply, FIELDS, toJitConfig, toRunner, type JitConfig, type Runner } from './replies.ts';
import { resolveScope, scopeLabel, scopeRoute, type Scope } from './scope.ts';

export interface JitConfigRequest {
  readonly scope: Scope;
  /** Unique in its scope: GitHub refuses a name already taken (409). */
  readonly name: string;
  /** 1 to 100 labels. */
  readonly labels: readonly string[];
  /** For a repository, 1 (its only group, "Default"). */
  readonly runnerGroupId: number;
  /** Relative to the runner's directory; GitHub's default is `_work`. */
  readonly workFolder?: string;
}

function requestProblem(problem: string): MatchlockError {
  return new MatchlockError(ErrorCodes.GITHUB, `cannot ask GitHub for a JIT runner: ${problem}`);
}

export async function generateJitConfig(octokit: Octokit, r: JitConfigRequest): Promise<JitConfig> {
  const scope = resolveScope(r.scope);
  if (r.name.trim() === '') throw requestProblem('the runner name is empty');
  if (r.labels.length < 1 || r.labels.length > 100) throw requestProblem(`a runner needs 1 to 100 labels, not ${r.labels.length}`);
  if (!Number.isSafeInteger(r.runnerGroupId) || r.runnerGroupId < 1) throw requestProblem(`the runner group id ${r.runnerGroupId} is not a positive integer`);
  const { prefix, params } = scopeRoute(scope);
  const route = `POST ${prefix}/actions/runners/generate-jitconfig`;
  let data: unknown;
  try {
    ({ data } = await octokit.request(route, { ...params, name: r.name, labels: [...r.labels], runner_group_id: r.runnerGroupId,
      ...(r.workFolder === undefined ? {} : { work_folder: r.workFolder }) }));
  } catch (e: unknown) {
    const status = statusOf(e);
    if (status === 409) {
      throw withHint(e as MatchlockError, `a runner named ${r.name} already exists in ${scopeLabel(scope)}: runner names must be unique there; delete that runner or use another name`);
    }
    if (status === 404) throw withHint(e as MatchlockError, `${scopeLabel(scope)} has no runner group ${r.runnerGroupId} the App may use`);
    throw e;
  }
  return toJitConfig(data, `POST generate-jitconfig for ${scope.name}`);
}

/** Deletes a runner; true if it was deleted, false if it was already gone (404). */
export async function deleteRunner(octokit: Octokit, s: Scope, runnerId: number): Promise<boolean> {
  const scope = resolveScope(s);
  const { prefix, params } = scopeRoute(scope);
  try {
    await octokit.request(`DELETE ${prefix}/actions/runners/{runner_id}`, { ...params, runner_id: runnerId });
    return true;
  } catch (e: unknown) {
    const status = statusOf(e);
    if (status === 404) return false;
    if (status === 422) throw withHint(e as MatchlockError, `runner ${runnerId} of ${scopeLabel(scope)} is still running a job: delete it once the job has ended`);
    throw e;
  }
}

/** A runner by id; null if the scope has none with that id. */
export async function getRunner(octokit: Octokit, s: Scope, runnerId: number): Promise<Runner | null> {
  const scope = resolveScope(s);
  const { prefix, params } = scopeRoute(scope);
  try {
    const { data } = await octokit.request(`GET ${prefix}/actions/runners/{runner_id}`, { ...params, runner_id: runnerId });
    return toRunner(data, `GET runner ${runnerId} of ${scope.name}`);
  } catch (e: unknown) {
    if (statusOf(e) === 404) return null;
    throw e;
  }
}

/** Every runner of the scope, page by page (100 a page), those whose name starts with `namePrefix` if given. */
export async function listRunners(octokit: Octokit, s: Scope, opts: { readonly namePrefix?: string } = {}): Promise<Runner[]> {
  const scope = resolveScope(s);
  const { prefix, params } = scopeRoute(scope);
  const operation = `GET runners of ${scope.name}`;
  const runners: Runner[] = [];
  for await (const page of octokit.paginate.iterator(`GET ${prefix}/actions/runners`, { ...params, per_page: 100 })) {
    // paginate puts the page's `runners` array in `data`.
    const body = checkReply<{ runners: unknown[] }>(FIELDS.runnerPage, { runners: page.data as unknown }, operation);
    for (const r of body.runners) {
      const runner = toRunner(r, operation);
      if (opts.namePrefix === undefined || runner.name.startsWith(opts.namePrefix)) runners.push(runner);
    }
  }
  return runners;
}
