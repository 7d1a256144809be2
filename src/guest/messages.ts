/**
 * The guest protocol's messages (version 1, docs/guest-protocol.md): their shapes, and one checker per
 * direction. The agent checks what the host sends; the host checks what the agent sends (the guest is hostile).
 */
import { checkFieldsOf, type Fields } from '../field-check.ts';
import { FrameError, type Frame, type FrameTypeName } from './frames.ts';

export const PROTOCOL_VERSION = 1;

export type AgentState = 'idle' | 'running' | 'exited';

export interface Hello {
  readonly protocol: number;
  readonly agent: string;
  readonly state: AgentState;
  readonly jobId?: string;
}

export interface CacheMount {
  /** The block device in the guest (`/dev/vdb` ...). */
  readonly device: string;
  /** Where it is mounted (absolute). */
  readonly path: string;
  readonly readOnly?: boolean;
}

export interface Assignment {
  readonly protocol: number;
  readonly jobId: string;
  /** The runner's just-in-time configuration (a secret: never logged, never on a command line). */
  readonly jitConfig: string;
  readonly env: Readonly<Record<string, string>>;
  /** The runner is stopped (SIGTERM, then SIGKILL) after this long. */
  readonly timeoutSeconds: number;
  /** After the runner's exit, how long the agent waits for the host's ACK before it powers off anyway. */
  readonly ackTimeoutSeconds?: number;
  readonly caches: readonly CacheMount[];
}

export interface Refused { readonly code: 'busy' | 'protocol' | 'invalid' | 'setup'; readonly message: string }
export interface Started { readonly pid: number; readonly at: string }
export interface Exited {
  /** The runner's exit status, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it (`SIGKILL`), when it did not exit by itself. */
  readonly signal?: string;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  readonly durationMs: number;
  /** Output the agent could not keep while no host was connected (oldest first). */
  readonly droppedBytes: number;
}
export interface Cancel { readonly reason: string }
export interface ProtocolErrorBody { readonly code: string; readonly message: string }

const JOB_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SHORT_TEXT = { type: 'string', required: true, maxLength: 4096 } as const;

const HELLO: Fields = {
  protocol: { type: 'integer', required: true, min: 1, max: 65535 },
  agent: { type: 'string', required: true, maxLength: 128 },
  state: { type: 'string', required: true, enum: ['idle', 'running', 'exited'] },
  jobId: { type: 'string', pattern: JOB_ID },
};

const CACHE: Fields = {
  device: { type: 'string', required: true, pattern: /^\/dev\/vd[b-z]$/ },
  path: { type: 'string', required: true, maxLength: 256, pattern: /^(\/(?!\.\.?(\/|$))[A-Za-z0-9._-]+)+$/ },
  readOnly: { type: 'boolean' },
};

const ASSIGN: Fields = {
  protocol: { type: 'integer', required: true, min: 1, max: 65535 },
  jobId: { type: 'string', required: true, pattern: JOB_ID },
  jitConfig: { type: 'string', required: true, maxLength: 65536, pattern: /^[A-Za-z0-9+/=]+$/ },
  env: { type: 'string-map', required: true, keyPattern: /^[A-Za-z_][A-Za-z0-9_]{0,127}$/, maxEntries: 256, maxBytes: 262144 },
  timeoutSeconds: { type: 'integer', required: true, min: 1, max: 7 * 24 * 3600 },
  ackTimeoutSeconds: { type: 'integer', min: 1, max: 3600 },
  caches: { type: 'array', required: true, items: CACHE, maxItems: 8 },
};

const BODIES: Readonly<Record<Exclude<FrameTypeName, 'STDOUT' | 'STDERR'>, Fields>> = {
  HELLO,
  ASSIGN,
  REFUSED: { code: { type: 'string', required: true, enum: ['busy', 'protocol', 'invalid', 'setup'] }, message: SHORT_TEXT },
  STARTED: { pid: { type: 'integer', required: true, min: 1, max: 4194304 }, at: { type: 'string', required: true, maxLength: 64 } },
  EXITED: {
    code: { type: 'integer', required: true, nullable: true, max: 255 },
    signal: { type: 'string', maxLength: 16, pattern: /^SIG[A-Z0-9]+$/ },
    timedOut: { type: 'boolean', required: true },
    cancelled: { type: 'boolean', required: true },
    durationMs: { type: 'integer', required: true },
    droppedBytes: { type: 'integer', required: true },
  },
  ACK: {},
  CANCEL: { reason: { type: 'string', required: true, maxLength: 1024 } },
  ERROR: { code: { type: 'string', required: true, maxLength: 64 }, message: SHORT_TEXT },
};

/** Which frames each side may send. */
export const FROM_HOST: ReadonlySet<FrameTypeName> = new Set(['ASSIGN', 'ACK', 'CANCEL']);
export const FROM_AGENT: ReadonlySet<FrameTypeName> = new Set(['HELLO', 'REFUSED', 'STARTED', 'STDOUT', 'STDERR', 'EXITED', 'ERROR']);

const fail = (message: string): FrameError => new FrameError(message);

/**
 * A control frame's JSON body, checked for its type and direction; output frames give their bytes.
 * Throws FrameError for a frame the sender may not send, a body that is not JSON, or a body of the wrong shape.
 */
export function readMessage(frame: Frame, allowed: ReadonlySet<FrameTypeName>): unknown {
  if (!allowed.has(frame.type)) throw fail(`a ${frame.type} frame is not expected from this side`);
  if (frame.type === 'STDOUT' || frame.type === 'STDERR') return frame.payload;
  let body: unknown;
  try {
    body = JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw fail(`the ${frame.type} frame's body is not JSON`);
  }
  checkFieldsOf(BODIES[frame.type], body, frame.type, fail);
  if (frame.type === 'EXITED') {
    const e = body as Exited;
    if ((e.code === null) === (e.signal === undefined)) throw fail('EXITED needs either a code or a signal, not both');
  }
  return body;
}
