export { GitHubApi, type Failure, type GitHubApiOptions, type RequestRecord } from './server.ts';
export type { DeliverySeed, InstallationSeed, RunnerGroupSeed, RunnerRecord } from './state.ts';
