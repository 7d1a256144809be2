/** `matchlock kernel import|list`: guest kernels checked and stored for VMs (see src/images/kernel-import.ts). */
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { DEFAULT_KERNELS_DIR, importKernel, listKernels } from '../images/index.ts';

export const KERNEL_USAGE = `usage: matchlock kernel import FILE [--name NAME] [--kernels-dir DIR] [--force]
       matchlock kernel list [--kernels-dir DIR]

  import checks FILE (an x86_64 ELF vmlinux, or a bzImage of boot protocol 2.12+ with a 64-bit entry) and
  stores it as DIR/NAME/{kernel,kernel.json} at once (default DIR: ${DEFAULT_KERNELS_DIR}). NAME defaults to
  the kernel's release ("6.1.0-56-cloud-amd64"), else the file name. The same file again changes nothing;
  another kernel under a taken NAME is refused unless --force. Build one with kernel/build-kernel.sh.
  list shows the stored kernels.`;

const usage = (what: string): MatchlockError => new MatchlockError(ErrorCodes.USAGE, `${what}: see matchlock kernel --help`, {});

async function runImport(args: string[], log: Logger): Promise<number> {
  const { values, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: { name: { type: 'string' }, 'kernels-dir': { type: 'string' }, force: { type: 'boolean' } },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw usage('give one kernel FILE');
  const { metadata: m, path, outcome } = await importKernel({
    file, kernelsDir: values['kernels-dir'] ?? DEFAULT_KERNELS_DIR, force: values.force === true,
    ...(values.name === undefined ? {} : { name: values.name }),
  });
  log.info({ kernel: m.name, format: m.format, version: m.version, sha256: m.sha256, sizeBytes: m.sizeBytes, path, outcome }, 'kernel imported');
  return 0;
}

const size = (bytes: number): string => (bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`);

/** Columns padded to their widest cell; the last one is not padded. */
function table(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

function runList(args: string[], log: Logger): number {
  const { values, positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: { 'kernels-dir': { type: 'string' } } });
  if (positionals.length > 0) throw usage(`unexpected ${positionals.join(' ')}`);
  const dir = values['kernels-dir'] ?? DEFAULT_KERNELS_DIR;
  const { kernels, broken } = listKernels(dir);
  for (const b of broken) log.warn({ kernel: b.name, kernelsDir: dir, reason: b.reason }, 'broken kernel entry');
  const rows = kernels.map((k) => [k.name, k.format, size(k.sizeBytes), k.sha256.slice(0, 12), k.imported, k.version ?? '-']);
  process.stdout.write(`${table([['NAME', 'FORMAT', 'SIZE', 'SHA256', 'IMPORTED', 'VERSION'], ...rows])}\n`);
  return 0;
}

export async function kernel(args: string[], log: Logger): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'import') return runImport(rest, log);
  if (sub === 'list') return runList(rest, log);
  throw usage(`unknown kernel command "${sub ?? ''}"`);
}
