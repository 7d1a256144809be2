/**
 * GitHub's objects as the stand-in sends them: runners, JIT configs, installations, runner groups, and error
 * bodies, each in the shape GitHub's description gives it (server.ts checks every reply against it).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { OpenApi, Operation } from '../openapi/index.ts';
import { grants, iso, lower, type Installation, type Json, type RunnerGroupSeed, type RunnerRecord, type State } from './state.ts';

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export const DOCS = 'https://docs.github.com/rest';
const READ_ONLY_LABELS = new Set(['self-hosted', 'linux', 'windows', 'macos', 'x64', 'arm', 'arm64']);
const REASONS: Readonly<Record<number, string>> = { 400: 'Bad Request', 401: 'Requires authentication', 403: 'Forbidden', 404: 'Not Found',
  409: 'Conflict', 422: 'Validation Failed', 429: 'Too Many Requests', 500: 'Server Error', 502: 'Server Error', 503: 'Service Unavailable' };

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** A refusal as GitHub words it: answered with `basic-error`. */
export class Refusal extends Error {
  readonly status: number;
  readonly docs: string;

  constructor(status: number, message: string, docs: string | undefined = DOCS) {
    super(message);
    this.status = status;
    this.docs = docs;
  }
}

/** GitHub's message for a status when it gives no other. */
export const reason = (status: number): string => REASONS[status] ?? 'Error';

/** A `basic-error` body. */
export const basicError = (status: number, message: string, docs: string = DOCS): Json => ({ message, documentation_url: docs, status: String(status) });

/** GitHub's 422 for a request the description refuses, in whichever error shape the operation declares. */
export function validationFailed(api: OpenApi, op: Operation, problems: readonly string[]): Reply {
  const docs = op.docsUrl ?? DOCS;
  const shapes = [
    { message: 'Invalid request.', documentation_url: docs, errors: [...problems] }, // validation-error-simple
    { message: 'Validation Failed', documentation_url: docs, errors: problems.map((m) => ({ resource: 'Request', code: 'invalid', message: m })) },
  ];
  const body = op.responses['422'] === undefined ? undefined : shapes.find((b) => api.checkResponse(op, 422, b).length === 0);
  return { status: 422, body: body ?? basicError(422, 'Invalid request.', docs) };
}

/** A `runner`; labels get ids that stay the same for the same name. */
export function runnerJson(r: RunnerRecord, labelIds: Map<string, number>): Json {
  const labels = r.labels.map((name) => {
    const id = labelIds.get(lower(name)) ?? labelIds.size + 1;
    labelIds.set(lower(name), id);
    return { id, name, type: READ_ONLY_LABELS.has(lower(name)) ? 'read-only' : 'custom' };
  });
  const os = r.status === 'online' ? 'Linux' : 'unknown'; // a JIT runner that never connected, as GitHub's example
  return { id: r.id, name: r.name, os, status: r.status, busy: r.busy, ephemeral: true, runner_group_id: r.runnerGroupId, labels };
}

/** An `encoded_jit_config`: the runner's `.runner`, `.credentials` and `.credentials_rsaparams` files, base64 JSON in base64 JSON. */
export function jitConfig(r: { readonly id: number; readonly name: string; readonly scope: string; readonly group: RunnerGroupSeed; readonly workFolder: string }): string {
  const files = {
    '.runner': b64(JSON.stringify({ agentId: r.id, agentName: r.name, poolId: r.group.id, poolName: r.group.name,
      serverUrl: `https://pipelines.actions.githubusercontent.com/${randomBytes(12).toString('base64url')}`, gitHubUrl: `https://github.com/${r.scope}`,
      workFolder: r.workFolder, ephemeral: true, disableUpdate: false })),
    '.credentials': b64(JSON.stringify({ scheme: 'OAuth', data: { clientId: randomUUID(),
      authorizationUrl: `https://vstoken.actions.githubusercontent.com/_apis/oauth2/token/${randomUUID()}`, requireFipsCryptography: 'False' } })),
    '.credentials_rsaparams': b64(JSON.stringify(Object.fromEntries(['d', 'dp', 'dq', 'inverseQ', 'modulus', 'p', 'q']
      .map((k) => [k, randomBytes(k === 'd' || k === 'modulus' ? 256 : 128).toString('base64')]).concat([['exponent', 'AQAB']])))),
  };
  return b64(JSON.stringify(files));
}

/** A `runner-groups-org` of organisation `org`. */
export function runnerGroupJson(g: RunnerGroupSeed, org: string, base: string): Json {
  return {
    id: g.id, name: g.name, visibility: g.visibility ?? 'all', default: g.id === 1, inherited: false, allows_public_repositories: false,
    runners_url: `${base}/orgs/${org}/actions/runner-groups/${g.id}/runners`, restricted_to_workflows: false, selected_workflows: [],
    workflow_restrictions_read_only: false,
    ...(g.visibility === 'selected' ? { selected_repositories_url: `${base}/orgs/${org}/actions/runner-groups/${g.id}/repositories` } : {}),
  };
}

/** An `installation`, its account a `simple-user`. */
export function installationJson(s: State, i: Installation, base: string): Json {
  const login = i.account;
  const accountId = 9000 + i.id;
  const org = i.accountType !== 'User';
  return {
    id: i.id, app_id: s.appId, app_slug: s.appSlug, client_id: `Iv1.${String(s.appId).padStart(16, '0')}`,
    target_id: accountId, target_type: org ? 'Organization' : 'User', single_file_name: null,
    repository_selection: i.repositories === undefined ? 'all' : 'selected',
    access_tokens_url: `${base}/app/installations/${i.id}/access_tokens`, repositories_url: `${base}/installation/repositories`,
    html_url: org ? `https://github.com/organizations/${login}/settings/installations/${i.id}` : `https://github.com/settings/installations/${i.id}`,
    events: ['workflow_job'], permissions: grants(i),
    created_at: iso(i.created), updated_at: iso(i.created),
    suspended_by: null, suspended_at: i.suspended === true ? iso(s.now()) : null,
    account: {
      login, id: accountId, node_id: b64(`04:User${accountId}`), avatar_url: `https://avatars.githubusercontent.com/u/${accountId}?v=4`, gravatar_id: '',
      url: `${base}/users/${login}`, html_url: `https://github.com/${login}`, followers_url: `${base}/users/${login}/followers`,
      following_url: `${base}/users/${login}/following{/other_user}`, gists_url: `${base}/users/${login}/gists{/gist_id}`,
      starred_url: `${base}/users/${login}/starred{/owner}{/repo}`, subscriptions_url: `${base}/users/${login}/subscriptions`,
      organizations_url: `${base}/users/${login}/orgs`, repos_url: `${base}/users/${login}/repos`, events_url: `${base}/users/${login}/events{/privacy}`,
      received_events_url: `${base}/users/${login}/received_events`, type: org ? 'Organization' : 'User', site_admin: false, user_view_type: 'public',
    },
  };
}
