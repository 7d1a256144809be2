/** The GitHub App client: App key, JWT, installation tokens, and the REST operations the runner host uses. */
export { loadAppKey } from './app-key.ts';
export { GitHubApp, API_VERSION, USER_AGENT, type GitHubAppOptions } from './client.ts';
export type { JitConfig, Job as GitHubJob, JobStatus as GitHubJobStatus, Runner as GitHubRunner } from './replies.ts';
export type { RetryOptions } from './retry-policy.ts';
export type { JitConfigRequest } from './runners.ts';
export type { Scope as GitHubScope } from './scope.ts';
export { Secret } from './secret.ts';
