/**
 * Puts the guest agent and everything it runs on into an image's tree, under /opt/matchlock: the static launcher
 * (bin/matchlock-agent), Node.js (bin/node), the dynamic loader and the libraries Node and our native addon
 * load (lib/, found with ldd, as the jailer finds them), our code (src/, package.json) and the npm packages it
 * loads. The agent so brings its own libc and needs nothing from the image's userland; a self-check run in a
 * chroot of the tree proves it on that userland before the image is made.
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ErrorCodes, MatchlockError, errorMessage } from '../errors.ts';
import { AGENT_VERSION } from '../guest/index.ts';
import { REPO, runtimeParts } from '../jailer/index.ts';

export const AGENT_ROOT = '/opt/matchlock';
export const AGENT_LAUNCHER = `${AGENT_ROOT}/bin/matchlock-agent`;
const LAUNCHER_BUILD = join(REPO, 'src/guest/launcher/build/matchlock-agent');
const LOADER = 'ld-linux-x86-64.so.2';

function injectError(message: string, details: Record<string, unknown> = {}): MatchlockError {
  return new MatchlockError(ErrorCodes.IMAGE, message, details);
}

/** The runtime's files: where each comes from on this host, and where it goes under AGENT_ROOT. */
export function agentPayload(): { source: string; target: string }[] {
  if (!existsSync(LAUNCHER_BUILD)) throw injectError(`the agent's launcher ${LAUNCHER_BUILD} is not built: run scripts/setup (make -C src/guest/launcher)`);
  const { node, libs, packages } = runtimeParts();
  if (!libs.some((l) => basename(l) === LOADER)) throw injectError(`ldd named no ${LOADER} for ${node}: only x86_64 glibc hosts can inject the agent`);
  return [
    { source: LAUNCHER_BUILD, target: 'bin/matchlock-agent' },
    { source: node, target: 'bin/node' },
    ...libs.map((l) => ({ source: realpathSync(l), target: `lib/${basename(l)}` })),
    { source: join(REPO, 'package.json'), target: 'package.json' },
    { source: join(REPO, 'src'), target: 'src' },
    ...packages.map((dir) => ({ source: dir, target: relative(REPO, dir) })),
  ];
}

/**
 * The self-check runs the image's files as little as possible and as nobody: the image is not trusted, and a
 * dynamic loader reads `/etc/ld.so.preload` even when given its own library path, so in a private mount namespace
 * (and no network) that file is covered by /dev/null before the chroot, and the chroot drops to
 * 65534:65534 before the agent starts.
 */
const SELF_CHECK_SCRIPT = `set -e
tree=$1
if [ -e "$tree/etc/ld.so.preload" ] || [ -L "$tree/etc/ld.so.preload" ]; then mount --bind /dev/null "$tree/etc/ld.so.preload"; fi
exec chroot --userspec=65534:65534 "$tree" "$2" --self-check`;

/** Runs the injected agent's self-check in a chroot of `tree` (root only); resolves with its report. */
export function chrootSelfCheck(tree: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const args = ['--mount', '--net', '--ipc', '--uts', '--', '/bin/sh', '-c', SELF_CHECK_SCRIPT, 'self-check', tree, AGENT_LAUNCHER];
    execFile('unshare', args, { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, timeout: 120_000 }, (err, stdout, stderr) => {
      let report: Record<string, unknown> | null = null;
      try {
        report = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
      } catch {
        report = null;
      }
      if (err !== null || report === null || report['ok'] !== true) {
        reject(injectError(`the injected agent's self-check failed in a chroot of the image: ${(stderr.trim() || stdout.trim() || (err === null ? '' : errorMessage(err))).split('\n').slice(-3).join(' / ')}`));
      } else resolve(report);
    });
  });
}

/**
 * Injects the agent into `tree` (replacing an /opt/matchlock the image had) and, when running as root, checks
 * it in a chroot of the tree. Returns the agent's version for the image's metadata.
 */
export async function injectAgent(tree: string): Promise<{ agentVersion: string }> {
  const root = join(tree, AGENT_ROOT);
  const opt = join(tree, 'opt');
  if (existsSync(opt) && !lstatSync(opt).isDirectory()) throw injectError(`the image's /opt is not a directory: cannot inject the agent`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true, mode: 0o755 });
  for (const { source, target } of agentPayload()) {
    const to = join(root, target);
    mkdirSync(join(to, '..'), { recursive: true, mode: 0o755 });
    if (lstatSync(source).isDirectory()) cpSync(source, to, { recursive: true, dereference: false, filter: (s) => !s.includes('/launcher/build') && !s.endsWith('.test.ts') });
    else copyFileSync(source, to);
  }
  chmodSync(join(root, 'bin/matchlock-agent'), 0o755);
  chmodSync(join(root, 'bin/node'), 0o755);
  if (process.getuid?.() === 0) await chrootSelfCheck(tree);
  return { agentVersion: AGENT_VERSION };
}
