/** What the jailer's first stage hands to its second (jail-exec.ts), on fd 3, followed by the go. */
import type { Bind } from './jail-spec.ts';

/** What the first stage hands over. */
export interface JailPlan {
  readonly root: string;
  readonly uid: number;
  readonly gid: number;
  readonly netns: string | null;
  readonly binds: readonly Bind[];
  readonly fileSizeLimit: number | null;
  readonly openFilesLimit: number;
  /** execve's path, argv and environment. */
  readonly exec: { readonly path: string; readonly argv: readonly string[]; readonly env: readonly string[] };
}

export const PLAN_FD = 3;
export const GO = 'go\n';
