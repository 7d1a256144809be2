/** The options every benchmark takes: --runs N, --warmup N, --json FILE (raw samples, for the record). */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface BenchArgs {
  readonly runs: number;
  readonly warmup: number;
  readonly json: string | null;
}

function count(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench: --${name} wants a whole number ≥ ${min}, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

export function benchArgs(usage: string, defaults: { runs: number; warmup: number }): BenchArgs {
  let values: { runs?: string | undefined; warmup?: string | undefined; json?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: { runs: { type: 'string' }, warmup: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean' } },
    }));
  } catch (e: unknown) {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n${usage}\n`);
    process.exit(2);
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return {
    runs: count('runs', values.runs, defaults.runs, 1),
    warmup: count('warmup', values.warmup, defaults.warmup, 0),
    json: values.json ?? null,
  };
}

export function writeJson(file: string | null, data: unknown): void {
  if (file !== null) writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
}
