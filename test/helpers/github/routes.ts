/**
 * The 19 operations of the description, over the stand-in's state. Each gets a request that is already routed,
 * authenticated and valid (server.ts), and answers as GitHub does, or throws a Refusal.
 */
import type { Operation } from '../openapi/index.ts';
import { issueToken, permits } from './auth.ts';
import { DOCS, installationJson, jitConfig, Refusal, runnerGroupJson, runnerJson, type Reply } from './objects.ts';
import { grants, iso, lower, type Installation, type Json, type RunnerRecord, type State } from './state.ts';

export interface Context {
  readonly op: Operation;
  readonly p: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly url: URL;
  readonly body: Json;
  /** The installation whose token the request carries; null for the App's JWT. */
  readonly installation: Installation | null;
  /** The stand-in's own URL, for the links in its replies. */
  readonly base: string;
}

export function route(s: State, c: Context): Reply {
  const { p } = c;
  const repo = `${p['owner']}/${p['repo']}`;
  switch (c.op.operationId) {
    case 'actions/generate-runner-jitconfig-for-repo': return generateJit(s, c, repo);
    case 'actions/generate-runner-jitconfig-for-org': return generateJit(s, c, p['org']!);
    case 'actions/list-self-hosted-runners-for-repo': return listRunners(s, c, repo);
    case 'actions/list-self-hosted-runners-for-org': return listRunners(s, c, p['org']!);
    case 'actions/get-self-hosted-runner-for-repo': return { status: 200, body: runnerJson(runnerIn(s, c, repo), s.labelIds) };
    case 'actions/get-self-hosted-runner-for-org': return { status: 200, body: runnerJson(runnerIn(s, c, p['org']!), s.labelIds) };
    case 'actions/delete-self-hosted-runner-from-repo': return deleteRunner(s, c, repo);
    case 'actions/delete-self-hosted-runner-from-org': return deleteRunner(s, c, p['org']!);
    case 'actions/get-job-for-workflow-run': {
      const found = s.jobs.get(Number(p['job_id']));
      if (found === undefined || found.repo !== lower(repo)) throw new Refusal(404, 'Not Found', c.op.docsUrl);
      return { status: 200, body: found.job };
    }
    case 'actions/list-workflow-runs-for-repo': return listRuns(s, c, repo);
    case 'actions/list-jobs-for-workflow-run': return listJobs(s, c, repo);
    case 'actions/list-self-hosted-runner-groups-for-org': return listGroups(s, c);
    case 'apps/list-installations': {
      const since = c.query.get('since');
      const all = [...s.installations.values()].filter((i) => since === null || i.created >= Date.parse(since));
      const { items, headers } = page(c, all);
      return { status: 200, body: items.map((i) => installationJson(s, i, c.base)), headers };
    }
    case 'apps/create-installation-access-token': return createToken(s, c);
    case 'apps/get-repo-installation': return { status: 200, body: installationJson(s, installationFor(s, c, p['owner']!, p['repo']!), c.base) };
    case 'apps/get-org-installation': return { status: 200, body: installationJson(s, installationFor(s, c, p['org']!, null), c.base) };
    case 'apps/list-webhook-deliveries': return listDeliveries(s, c);
    case 'apps/redeliver-webhook-delivery': {
      const d = s.deliveries.find((x) => x['id'] === Number(p['delivery_id']));
      if (d === undefined) throw new Refusal(404, 'Not Found', c.op.docsUrl);
      s.redeliveries.push(d['id'] as number);
      s.addDelivery({ guid: d['guid'] as string, event: d['event'] as string, action: d['action'] as string | null, redelivery: true,
        installationId: d['installation_id'] as number | null, repositoryId: d['repository_id'] as number | null });
      return { status: 202, body: {} };
    }
    default: throw new Error(`the stand-in does not implement ${c.op.operationId}`);
  }
}

function generateJit(s: State, c: Context, scope: string): Reply {
  const { name, runner_group_id: groupId, labels, work_folder: workFolder = '_work' } =
    c.body as { name: string; runner_group_id: number; labels: string[]; work_folder?: string };
  const group = s.groupsOf(scope.split('/')[0]!).find((g) => g.id === groupId);
  if (group === undefined) throw new Refusal(404, 'Not Found', c.op.docsUrl);
  if ([...s.runners.values()].some((r) => lower(r.scope) === lower(scope) && lower(r.name) === lower(name))) {
    throw new Refusal(409, `Already exists - A runner with the name ${name} already exists.`, c.op.docsUrl);
  }
  const id = s.nextId();
  const jit = jitConfig({ id, name, scope, group, workFolder });
  s.secrets.add(jit);
  const runner: RunnerRecord = { id, name, scope, labels, runnerGroupId: groupId, workFolder, status: 'offline', busy: false, jitConfig: jit };
  s.runners.set(id, runner);
  return { status: 201, body: { runner: runnerJson(runner, s.labelIds), encoded_jit_config: jit } };
}

function listRunners(s: State, c: Context, scope: string): Reply {
  const name = c.query.get('name');
  const all = [...s.runners.values()].filter((r) => lower(r.scope) === lower(scope) && (name === null || r.name === name));
  const { items, headers } = page(c, all);
  return { status: 200, body: { total_count: all.length, runners: items.map((r) => runnerJson(r, s.labelIds)) }, headers };
}

function runnerIn(s: State, c: Context, scope: string): RunnerRecord {
  const r = s.runners.get(Number(c.p['runner_id']));
  if (r === undefined || lower(r.scope) !== lower(scope)) throw new Refusal(404, 'Not Found', c.op.docsUrl);
  return r;
}

function deleteRunner(s: State, c: Context, scope: string): Reply {
  const r = runnerIn(s, c, scope);
  if (r.busy) return { status: 422, body: { message: `Bad request - Runner "${r.name}" is still running a job"`, documentation_url: c.op.docsUrl ?? DOCS } };
  s.runners.delete(r.id);
  return { status: 204 };
}

function listRuns(s: State, c: Context, repo: string): Reply {
  const q = (k: string): string | null => c.query.get(k);
  const all = [...s.runs.values()].filter((x) => x.repo === lower(repo)).map((x) => x.run).filter((r) =>
    (q('status') === null || r['status'] === q('status') || r['conclusion'] === q('status'))
    && (q('actor') === null || (r['actor'] as { login?: string } | undefined)?.login === q('actor'))
    && (q('branch') === null || r['head_branch'] === q('branch'))
    && (q('event') === null || r['event'] === q('event'))
    && (q('head_sha') === null || r['head_sha'] === q('head_sha'))
    && (q('check_suite_id') === null || r['check_suite_id'] === Number(q('check_suite_id')))
    && (q('created') === null || Date.parse(String(r['created_at'])) === Date.parse(q('created')!)))
    .sort((a, b) => (b['id'] as number) - (a['id'] as number))
    .map((r) => (q('exclude_pull_requests') === 'true' ? { ...r, pull_requests: [] } : r));
  const { items, headers } = page(c, all);
  return { status: 200, body: { total_count: all.length, workflow_runs: items }, headers };
}

function listJobs(s: State, c: Context, repo: string): Reply {
  const runId = Number(c.p['run_id']);
  let jobs = [...s.jobs.values()].filter((x) => x.repo === lower(repo) && x.job['run_id'] === runId).map((x) => x.job);
  const run = s.runs.get(runId);
  if (jobs.length === 0 && (run === undefined || run.repo !== lower(repo))) throw new Refusal(404, 'Not Found', c.op.docsUrl);
  if (c.query.get('filter') !== 'all') {
    const latest = Math.max(...jobs.map((j) => (j['run_attempt'] as number | undefined) ?? 1));
    jobs = jobs.filter((j) => ((j['run_attempt'] as number | undefined) ?? 1) === latest);
  }
  jobs.sort((a, b) => (a['id'] as number) - (b['id'] as number));
  const { items, headers } = page(c, jobs);
  return { status: 200, body: { total_count: jobs.length, jobs: items }, headers };
}

function listGroups(s: State, c: Context): Reply {
  const org = c.p['org']!;
  const visibleTo = c.query.get('visible_to_repository');
  const all = s.groupsOf(org).filter((g) => visibleTo === null || (g.visibility ?? 'all') === 'all' || (g.repositories ?? []).includes(visibleTo));
  const { items, headers } = page(c, all);
  return { status: 200, headers, body: { total_count: all.length, runner_groups: items.map((g) => runnerGroupJson(g, org, c.base)) } };
}

function createToken(s: State, c: Context): Reply {
  const inst = s.installations.get(Number(c.p['installation_id']));
  if (inst === undefined) throw new Refusal(404, 'Not Found', c.op.docsUrl);
  if (inst.suspended === true) throw new Refusal(403, 'This installation has been suspended', c.op.docsUrl);
  const granted = grants(inst);
  const asked = c.body['permissions'] as Record<string, 'read' | 'write'> | undefined;
  if (asked !== undefined && Object.entries(asked).some(([k, v]) => !permits(granted[k], v))) {
    return { status: 422, body: { message: 'The permissions requested are not granted to this installation.', documentation_url: c.op.docsUrl ?? DOCS } };
  }
  const names = c.body['repositories'] as string[] | undefined;
  // The stand-in knows repositories by name only, so any repository_ids are ones it cannot find.
  if (c.body['repository_ids'] !== undefined || (names !== undefined && names.some((n) => !s.covers(inst, inst.account, n)))) {
    const message = 'There is at least one repository that does not exist or is not accessible to the parent installation.';
    return { status: 422, body: { message, documentation_url: c.op.docsUrl ?? DOCS } };
  }
  const permissions = asked ?? granted;
  const { token, expires } = issueToken(s, inst.id, names ?? null, permissions);
  // Without `repositories` (full repository objects), which GitHub adds when the token was narrowed to some.
  const selection = names === undefined && inst.repositories === undefined ? 'all' : 'selected';
  return { status: 201, body: { token, expires_at: iso(expires), permissions, repository_selection: selection } };
}

function installationFor(s: State, c: Context, account: string, repo: string | null): Installation {
  const inst = [...s.installations.values()].find((i) => repo === null
    ? lower(i.account) === lower(account) && i.accountType !== 'User'
    : s.covers(i, account, repo));
  if (inst === undefined) throw new Refusal(404, 'Not Found', c.op.docsUrl);
  return inst;
}

function listDeliveries(s: State, c: Context): Reply {
  const cursor = c.query.get('cursor');
  const after = cursor === null ? Infinity : Number(/^v1_(\d+)$/.exec(cursor)?.[1] ?? NaN);
  if (Number.isNaN(after)) throw new Refusal(400, 'Bad Request', c.op.docsUrl);
  const status = c.query.get('status');
  const perPage = Math.min(100, Math.max(1, Number(c.query.get('per_page') ?? 30)));
  const all = s.deliveries.filter((d) => (d['id'] as number) < after
    && (status === null || (status === 'success') === ((d['status_code'] as number) < 400))).sort((a, b) => (b['id'] as number) - (a['id'] as number));
  const items = all.slice(0, perPage);
  const headers: Record<string, string> = {};
  if (all.length > perPage) {
    const next = new URLSearchParams(c.url.searchParams);
    next.set('cursor', `v1_${String(items[items.length - 1]!['id'])}`);
    headers['link'] = `<${c.base}${c.url.pathname}?${next}>; rel="next"`;
  }
  return { status: 200, body: items, headers };
}

/** One page of `all` by `per_page` (≤ 100) and `page`, and GitHub's Link header for the others. */
function page<T>(c: Context, all: readonly T[]): { items: T[]; headers: Record<string, string> } {
  const perPage = Math.min(100, Math.max(1, Number(c.query.get('per_page') ?? 30)));
  const n = Math.max(1, Number(c.query.get('page') ?? 1));
  const last = Math.max(1, Math.ceil(all.length / perPage));
  const link = (to: number, rel: string): string => {
    const q = new URLSearchParams(c.url.searchParams);
    q.set('page', String(to));
    return `<${c.base}${c.url.pathname}?${q}>; rel="${rel}"`;
  };
  const links = [...(n > 1 ? [link(n - 1, 'prev')] : []), ...(n < last ? [link(n + 1, 'next'), link(last, 'last')] : []),
    ...(n > 1 ? [link(1, 'first')] : [])];
  return { items: all.slice((n - 1) * perPage, n * perPage), headers: links.length === 0 ? {} : { link: links.join(', ') } };
}
