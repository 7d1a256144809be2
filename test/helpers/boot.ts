/** Boots the test guest with `matchlock vm run` and returns the run and the guest's report lines (KVM tests). */
import type { ExecutionContext } from 'ava';
import { TEST_GUEST, logLines, runCli, type CliOptions, type CliResult } from './cli.ts';
import { memoryProblems, parseGuestOutput, type GuestOutput } from './guest-output.ts';

/** How long a boot may take before it is killed: a guard against hangs, generous for emulated sandboxes. */
const BOOT_TIMEOUT_MS = 300_000;

export async function boot(t: ExecutionContext, cmdline: string, extra: string[] = [], opts: CliOptions = {}): Promise<{ r: CliResult; lines: string[]; out: GuestOutput }> {
  const r = await runCli(['vm', 'run', '--kernel', TEST_GUEST, '--cmdline', cmdline, ...extra], { timeoutMs: BOOT_TIMEOUT_MS, ...opts });
  t.log(r.stdout.trim().split('\n').slice(0, 40).join('\n'));
  t.log(`exit ${r.code}${r.signal ? ` (${r.signal})` : ''}; VMM log: ${logLines(r.stderr).slice(-2).map((l) => JSON.stringify(l)).join(' ')}`);
  const out = parseGuestOutput(r.stdout);
  t.deepEqual(out.errors, [], 'the guest\'s output keeps its contract (test/guests/README.md)');
  if (cmdline.includes('ml.memtest')) t.deepEqual(memoryProblems(out), []);
  return { r, out, lines: out.lines.map((l) => l.replace(/^mltest: /, '')) };
}
