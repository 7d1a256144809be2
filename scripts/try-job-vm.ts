/**
 * A job VM end to end, by hand: a golden image with the guest agent and a stand-in runner, booted by our VMM with
 * a kernel built by kernel/build-kernel.sh, the agent as init; the host side assigns a job over vsock, prints its
 * output and exit, ACKs, and the VM ends. Needs /dev/kvm (or scripts/kvm-sandbox) for `boot`; see
 * docs/guest-protocol.md ("End to end").
 *
 *   node scripts/try-job-vm.ts prepare DIR [ROOTFS.tar]     builds DIR/images/job (default rootfs: the debootstrap
 *                                                          fixture of test/fixtures/images/make-images.sh)
 *   node scripts/try-job-vm.ts boot DIR KERNEL [TEMPLATE]   boots it and runs one job (TEMPLATE: a CPU template,
 *                                                          pvm-safe in scripts/kvm-sandbox, where guest ring 0 is
 *                                                          emulated and XSAVE paths stop a stock kernel)
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { dialGuest, GuestSession } from '../src/runner/index.ts';

const RUNNER = `#!/bin/sh
echo "job ran on $(cat /proc/sys/kernel/hostname) as $(id -un) (groups: $(id -Gn)), kernel $(uname -r), JIT config of \${#ACTIONS_RUNNER_INPUT_JITCONFIG} bytes"
exit 3
`;

async function prepare(dir: string, rootfs: string): Promise<void> {
  const { buildImage, injectAgent } = await import('../src/images/index.ts'); // only here: boot needs none of it
  const meta = await buildImage({
    name: 'job', from: `rootfs:${rootfs}`, imagesDir: join(dir, 'images'),
    inject: async (tree) => {
      mkdirSync(join(tree, 'actions-runner'), { recursive: true });
      writeFileSync(join(tree, 'actions-runner/run.sh'), RUNNER, { mode: 0o755 });
      appendFileSync(join(tree, 'etc/passwd'), 'runner:x:1001:1001::/home/runner:/bin/sh\n');
      appendFileSync(join(tree, 'etc/group'), 'runner:x:1001:\ndocker:x:999:runner\n'); // a job that needs docker's socket
      return injectAgent(tree);
    },
  });
  process.stdout.write(`${JSON.stringify(meta)}\n`);
}

async function boot(dir: string, kernel: string, template: string | undefined): Promise<number> {
  const t0 = Date.now();
  const say = (what: string): void => { process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}\n`); };
  const uds = '/tmp/try-job-vm.vsock';
  const overlay = '/tmp/try-job-vm.overlay';
  rmSync(uds, { force: true });
  rmSync(overlay, { force: true });
  const vm = spawn(join(import.meta.dirname, '../bin/matchlock'), ['vm', 'run', '--kernel', kernel, '--mem', '1024', ...(template === undefined ? [] : ['--cpu-template', template]),
    '--drive', `${join(dir, 'images/job/rootfs.ext4')},cow=${overlay}`, '--vsock', `cid=3,uds=${uds}`,
    '--cmdline', 'console=ttyS0 reboot=k panic=-1 root=/dev/vda rw init=/opt/matchlock/bin/matchlock-agent matchlock.hostname=job-vm'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const ended = new Promise<number>((resolve) => { vm.once('exit', (code) => { resolve(code ?? 1); }); });
  const vmGone = ended.then((code) => { throw new Error(`the VM ended (VMM exit ${code}) before its agent answered`); });
  vmGone.catch(() => {}); // once the agent answered, the VM's end is awaited below
  const socket = await Promise.race([dialGuest({ kind: 'vsock', uds, port: 1024 }, 1_800_000), vmGone]);
  const session = new GuestSession(socket, pino({ level: 'info' }), {
    onOutput: (_s, d) => { process.stdout.write(`[job] ${d.toString()}`); },
  }, 600_000);
  say(`HELLO ${JSON.stringify(await session.hello)}`);
  const jitConfig = Buffer.from('{"a stand-in":"JIT config"}').toString('base64');
  say(`STARTED ${JSON.stringify(await session.assign({ jobId: 'try-1', jitConfig, env: { CI: 'true' }, timeoutSeconds: 600, caches: [] }))}`);
  say(`EXITED ${JSON.stringify(await session.exited)}`);
  session.ack();
  const code = await ended;
  say(`VMM exited ${code}`);
  return code;
}

const [cmd, dir, arg, template] = process.argv.slice(2);
if (cmd === 'prepare' && dir !== undefined) await prepare(dir, arg ?? '/var/cache/matchlock-test-images/rootfs.tar');
else if (cmd === 'boot' && dir !== undefined && arg !== undefined) process.exitCode = await boot(dir, arg, template);
else {
  process.stderr.write('usage: node scripts/try-job-vm.ts prepare DIR [ROOTFS.tar] | boot DIR KERNEL [CPU-TEMPLATE]\n');
  process.exitCode = 2;
}
