/**
 * The test guest in our VMM on real KVM: it boots, reads its instructions from the command line, checks the
 * memory map and MP table it was given, and ends in each of the ways a VM can end. See test/guests/README.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { GuestMemory } from '../../src/vmm/memory/index.ts';
import { e820Entries, ramRegions, MiB } from '../../src/vmm/arch/x86_64/index.ts';
import { Machine, validateVmConfig } from '../../src/vmm/index.ts';
import { createRootLogger } from '../../src/log.ts';
import { kvmSuite } from '../helpers/kvm.ts';
import { TEST_GUEST, logLines, runCli, type CliResult } from '../helpers/cli.ts';
import { boot } from '../helpers/boot.ts';

const { test } = kvmSuite(import.meta.url);

function stopLine(r: CliResult): Record<string, unknown> {
  const line = logLines(r.stderr).find((l) => l['msg'] === 'vm stopped' || l['msg'] === 'vm failed');
  if (!line) throw new Error(`no final log line in:\n${r.stderr}`);
  return line;
}


test('the guest boots through the Linux 64-bit entry and prints what it was told; the command line arrives intact', async (t) => {
  const cmdline = 'console=ttyS0  root=/dev/vda "quoted arg" ml.say=hello ml.say=matchlock';
  const { r, lines } = await boot(t, cmdline);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(lines.slice(0, 2), ['BOOT linux', `CMDLINE ${cmdline}`]);
  t.deepEqual(lines.filter((l) => l.startsWith('SAY ')), ['SAY hello', 'SAY matchlock']);
  t.is(stopLine(r)['reason'], 'reset');
});

test('the same binary boots through its PVH entry', async (t) => {
  const { r, lines } = await boot(t, 'ml.say=pvh', ['--boot-protocol', 'pvh']);
  t.is(r.code, 0, r.stderr);
  t.is(lines[0], 'BOOT pvh');
  t.true(lines.includes('SAY pvh'));
});

for (const mib of [128, 3584, 8192]) {
  test(`a ${mib} MiB guest sees the e820 map we built and can write and read back a page in every RAM region`, async (t) => {
    const { r, lines } = await boot(t, 'ml.e820 ml.memtest', ['--mem', String(mib)]);
    t.is(r.code, 0, r.stderr);
    const expected = e820Entries(GuestMemory.fromLayout(ramRegions(mib * MiB)))
      .map((e) => `E820 0x${e.addr.toString(16)} 0x${e.size.toString(16)} ${e.type}`);
    t.deepEqual(lines.filter((l) => l.startsWith('E820 ')), expected);
    const ramRegionCount = mib * MiB > 0xc000_0000 ? 2 : 1;
    t.is(lines.filter((l) => l.startsWith('MEM OK ')).length, ramRegionCount);
    t.true(lines.includes(`MEMTEST OK ${ramRegionCount}`), lines.join('\n'));
    t.false(lines.some((l) => l.startsWith('MEM FAIL')));
  });
}

for (const n of [1, 2, 4]) {
  test(`${n} vCPU(s) are created and the MP table lists them`, async (t) => {
    const { r, lines } = await boot(t, 'ml.mptable', ['--vcpus', String(n)]);
    t.is(r.code, 0, r.stderr);
    const ids = Array.from({ length: n }, (_, i) => i).join(',');
    t.true(lines.includes(`MPTABLE cpus=${n} apic_ids=${ids} ioapic=${n + 1}@0xfec00000`), lines.join('\n'));
    t.is(logLines(r.stderr).find((l) => l['msg'] === 'vm started')?.['vcpus'], n);
  });
}

test('an i8042 reset ends the VM with status 0 and reason reset', async (t) => {
  const { r, lines } = await boot(t, 'ml.exit=reset');
  t.is(r.code, 0);
  t.true(lines.includes('EXIT reset'));
  t.is(stopLine(r)['reason'], 'reset');
});

test('a triple fault ends the VM non-zero with the reason and the registers in the log', async (t) => {
  const { r, lines } = await boot(t, 'ml.exit=triple');
  t.is(r.code, 3);
  t.true(lines.includes('EXIT triple'));
  const line = stopLine(r);
  t.is(line['reason'], 'triple-fault');
  t.regex(String(line['registers']), /rip=0x[0-9a-f]+ .*cr3=0x[0-9a-f]+/);
});

test('SIGTERM stops a running guest with status 0 and reason signal', async (t) => {
  let sent = false;
  const r = await runCli(['vm', 'run', '--kernel', TEST_GUEST, '--cmdline', 'ml.exit=hang', '--vcpus', '2'], {
    onStdout: (_c, all, child) => {
      if (!sent && all.includes('mltest: DONE')) {
        sent = true;
        child.kill('SIGTERM');
      }
    },
    timeoutMs: 30_000,
  });
  t.true(sent, 'the guest never reached its hang');
  t.is(r.code, 0, r.stderr);
  t.is(stopLine(r)['reason'], 'signal');
});

interface Mapping { readonly lo: bigint; readonly hi: bigint; readonly path: string }

function mappings(): Mapping[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').flatMap((line) => {
    const [range, , , , , path] = line.trim().split(/\s+/);
    const [lo, hi] = (range ?? '').split('-');
    return lo && hi ? [{ lo: BigInt(`0x${lo}`), hi: BigInt(`0x${hi}`), path: path ?? '' }] : [];
  });
}

/** Whether any mapping overlaps `[address, address + size)`. */
function mapped(all: readonly Mapping[], address: bigint, size: number): boolean {
  return all.some((m) => m.lo < address + BigInt(size) && address < m.hi);
}

const kvmVcpuMappings = (): Mapping[] => mappings().filter((m) => m.path.includes('kvm-vcpu'));

function processState(): { fds: number; threads: number } {
  return {
    fds: readdirSync('/proc/self/fd').length,
    threads: readdirSync('/proc/self/task').length,
  };
}

// koffi keeps a few small per-thread mappings of every thread that loaded it (measured: ~3 per worker), so the
// total count of mappings is not ours to assert; the VM's own mappings, fds and threads are.
test('a VM run in-process leaves no fd, VM mapping or thread behind', async (t) => {
  const log = createRootLogger('silent');
  const run = async (): Promise<void> => {
    const m = Machine.create(validateVmConfig({ kernel: TEST_GUEST, cmdline: 'ml.memtest', memMib: 3584, vcpus: 4, serialOut: 'none' }), log);
    const ram = m.ramHostRanges;
    try {
      t.is(ram.length, 2);
      t.true(ram.every((r) => mapped(mappings(), r.address, r.size)), 'guest RAM is mapped while the VM exists');
      const result = await m.run();
      t.is(result.reason, 'reset');
    } finally {
      m.close();
    }
    const after = mappings();
    t.false(ram.some((r) => mapped(after, r.address, r.size)), 'guest RAM is unmapped by close()');
    t.deepEqual(kvmVcpuMappings(), [], 'no vCPU run page stays mapped');
  };
  await run(); // warm up: lazily created threads of the runtime itself
  await new Promise((r) => setTimeout(r, 200));
  const before = processState();
  for (let i = 0; i < 3; i++) await run();
  await new Promise((r) => setTimeout(r, 200));
  const after = processState();
  t.is(after.fds, before.fds, 'file descriptors');
  t.is(after.threads, before.threads, 'threads');
});
