import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'secret', '*.secret', 'token', '*.token', 'privateKey', '*.privateKey', 'jitConfig', '*.jitConfig',
  'encoded_jit_config', '*.encoded_jit_config', 'webhookSecret', '*.webhookSecret', 'headers.authorization',
];

/**
 * The root logger, created once in main and passed down; children per job → VM → device. Logs go to stderr
 * (synchronously, so nothing is lost when the process ends), leaving stdout to the guest's serial console;
 * `dest` may name a file instead (the API's PUT /logger), which is appended to.
 */
export function createRootLogger(level: string = process.env['MATCHLOCK_LOG_LEVEL'] ?? 'info', dest: number | string = 2): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    pino.destination({ dest, sync: true, append: true, mkdir: false }),
  );
}
