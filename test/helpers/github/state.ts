/**
 * What the GitHub stand-in knows, in memory: the App's installations, the tokens it issued, runners, runner
 * groups, jobs, runs, the hook delivery log, and every secret it handed out (so they can be redacted).
 */
import { randomUUID } from 'node:crypto';

export interface InstallationSeed {
  readonly id: number;
  /** The organisation or user the App is installed on. */
  readonly account: string;
  readonly accountType?: 'Organization' | 'User';
  /** Repository names when only some are selected; all of the account's when absent. */
  readonly repositories?: readonly string[];
  readonly permissions?: Readonly<Record<string, 'read' | 'write'>>;
  readonly suspended?: boolean;
}

export type Installation = InstallationSeed & { readonly created: number };

export interface RunnerGroupSeed {
  readonly id: number;
  readonly name: string;
  readonly visibility?: 'all' | 'selected' | 'private';
  readonly repositories?: readonly string[];
}

export interface RunnerRecord {
  readonly id: number;
  readonly name: string;
  /** `owner/repo` for a repository runner, the organisation for an organisation runner. */
  readonly scope: string;
  readonly labels: readonly string[];
  readonly runnerGroupId: number;
  readonly workFolder: string;
  /** The test may change these, as GitHub would when the runner connects and takes a job. */
  status: 'online' | 'offline';
  busy: boolean;
  /** The encoded JIT config the runner was created with (secret: for the test's eyes only). */
  readonly jitConfig: string;
}

export interface TokenRecord {
  readonly installation: number;
  readonly expires: number;
  /** The repository names the token was narrowed to; null for all its installation covers. */
  readonly repositories: readonly string[] | null;
  readonly permissions: Readonly<Record<string, string>>;
}

export interface DeliverySeed {
  readonly guid?: string;
  readonly event: string;
  readonly action?: string | null;
  readonly statusCode?: number;
  readonly installationId?: number | null;
  readonly repositoryId?: number | null;
  readonly redelivery?: boolean;
  readonly deliveredAt?: number;
}

export type Json = Record<string, unknown>;

const DEFAULT_PERMISSIONS = { actions: 'read', administration: 'write', metadata: 'read', organization_self_hosted_runners: 'write' } as const;

export const lower = (s: string): string => s.toLowerCase();
/** The permissions an installation grants: its seed's, or the stand-in's default. */
export const grants = (i: InstallationSeed): Readonly<Record<string, string>> => i.permissions ?? DEFAULT_PERMISSIONS;
export const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class State {
  readonly appId: number;
  readonly appSlug: string;
  /** The clock, in ms since the epoch. */
  readonly now: () => number;
  readonly installations = new Map<number, Installation>();
  readonly tokens = new Map<string, TokenRecord>();
  readonly runners = new Map<number, RunnerRecord>();
  readonly labelIds = new Map<string, number>();
  readonly jobs = new Map<number, { readonly repo: string; readonly job: Json }>();
  readonly runs = new Map<number, { readonly repo: string; readonly run: Json }>();
  readonly deliveries: Json[] = [];
  /** Delivery ids asked to be redelivered, in order. */
  readonly redeliveries: number[] = [];
  /** Every token and JIT config handed out. */
  readonly secrets = new Set<string>();
  readonly #groups = new Map<string, RunnerGroupSeed[]>();
  #nextId = 1000;

  constructor(appId: number, appSlug: string, now: () => number) {
    this.appId = appId;
    this.appSlug = appSlug;
    this.now = now;
  }

  nextId(): number {
    return this.#nextId++;
  }

  addInstallation(seed: InstallationSeed): void {
    this.installations.set(seed.id, { ...seed, created: this.now() });
  }

  /** An organisation's runner groups; every organisation has group 1, "Default". */
  groupsOf(org: string): RunnerGroupSeed[] {
    const key = lower(org);
    if (!this.#groups.has(key)) this.#groups.set(key, [{ id: 1, name: 'Default', visibility: 'all' }]);
    return this.#groups.get(key)!;
  }

  /** Whether an installation covers repository `owner/repo`. */
  covers(inst: InstallationSeed, owner: string, repo: string): boolean {
    return lower(inst.account) === lower(owner) && (inst.repositories === undefined || inst.repositories.some((n) => lower(n) === lower(repo)));
  }

  seedJob(repo: string, job: Json): void {
    if (!Number.isInteger(job['id'])) throw new Error('a job needs an integer id');
    this.jobs.set(job['id'] as number, { repo: lower(repo), job: structuredClone(job) });
  }

  seedRun(repo: string, run: Json): void {
    if (!Number.isInteger(run['id'])) throw new Error('a run needs an integer id');
    this.runs.set(run['id'] as number, { repo: lower(repo), run: structuredClone(run) });
  }

  /** A delivery in the App's hook delivery log, as GitHub's `hook-delivery-item`; returns its id. */
  addDelivery(d: DeliverySeed): number {
    const id = this.nextId();
    const code = d.statusCode ?? 200;
    this.deliveries.push({
      id, guid: d.guid ?? randomUUID(), delivered_at: iso(d.deliveredAt ?? this.now()), redelivery: d.redelivery ?? false, duration: 0.31,
      status: code < 300 ? 'OK' : `Invalid HTTP Response: ${code}`, status_code: code, event: d.event, action: d.action ?? null,
      installation_id: d.installationId ?? null, repository_id: d.repositoryId ?? null, throttled_at: null,
    });
    return id;
  }
}
