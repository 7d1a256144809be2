/** The GitHub webhook payload fixtures and their index (test/fixtures/github/payloads/), for the runner tests. */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface PayloadEntry {
  readonly file: string;
  readonly bytes: number;
  readonly sha256_of_file: string;
  readonly headers: { readonly 'X-GitHub-Event': string };
  readonly action: string | null;
  readonly has_installation: boolean;
  readonly installation_id: number | null;
  readonly workflow_job_labels: readonly string[] | null;
  readonly x_hub_signature_256_with_test_secret: string;
}

export interface PayloadIndex {
  readonly test_secret: string;
  readonly official_test_vector: { readonly secret: string; readonly payload: string; readonly 'X-Hub-Signature-256': string };
  readonly payloads: readonly PayloadEntry[];
}

const dir = new URL('../fixtures/github/payloads/', import.meta.url).pathname;

export const payloadIndex = JSON.parse(readFileSync(`${dir}index.json`, 'utf8')) as PayloadIndex;
export const TEST_SECRET = payloadIndex.test_secret;

/** The fixture's exact bytes, as GitHub (or upstream) stored them. */
export const payloadBytes = (file: string): Buffer => readFileSync(`${dir}${file}`);
export const payloadJson = (file: string): Record<string, unknown> => JSON.parse(payloadBytes(file).toString('utf8')) as Record<string, unknown>;

export const workflowJobEntries = payloadIndex.payloads.filter((p) => p.headers['X-GitHub-Event'] === 'workflow_job');
export const LEGACY = 'workflow_job.queued.self-hosted-legacy.json';

/** GitHub's scheme, computed with node:crypto (not the code under test). */
export const sign = (secret: string, body: Uint8Array | string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/**
 * A payload as the GitHub App's webhook would deliver it: the fixture with an `installation` added when it has
 * none (those fixtures come from repository or organization webhooks), serialised again.
 */
export function asAppDelivery(file: string, installationId = 4242): Buffer {
  const p = payloadJson(file);
  if (p['installation'] === undefined) p['installation'] = { id: installationId, node_id: 'MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==' };
  return Buffer.from(JSON.stringify(p));
}
