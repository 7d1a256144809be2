/**
 * kernel/build-kernel.sh --check-config-only against Debian's real linux-source: x86_64_defconfig plus our
 * fragment (kernel/matchlock.config) through merge_config.sh and olddefconfig must keep every option of the
 * fragment, and a fragment whose options cannot survive must fail loudly, naming them.
 *
 * Needs the linux-source, flex and bison packages (scripts/setup installs them; the script installs them itself
 * when run as root). The first run unpacks the source into .cache/kernel-build (about half a minute), later
 * runs reuse it and take about ten seconds each.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../helpers/cli.ts';

const SCRIPT = join(REPO, 'kernel/build-kernel.sh');
const FRAGMENT = join(REPO, 'kernel/matchlock.config');
/** Unpacking linux-source (~140 MB of xz) on a slow disk, plus the apt-get install if root and it is missing. */
const TIMEOUT_MS = 10 * 60_000;

const scratch = mkdtempSync(join(tmpdir(), 'matchlock-kconfig-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

function run(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { output += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { output += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** What job VMs need, read back from the final .config: a check independent of the script's own. */
const MUST_HAVE = [
  'CONFIG_VIRTIO_MMIO=y', 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y', 'CONFIG_VIRTIO_BLK=y', 'CONFIG_VIRTIO_NET=y',
  'CONFIG_VSOCKETS=y', 'CONFIG_VIRTIO_VSOCKETS=y', 'CONFIG_EXT4_FS=y', 'CONFIG_OVERLAY_FS=y',
  'CONFIG_CGROUPS=y', 'CONFIG_MEMCG=y', 'CONFIG_CGROUP_PIDS=y', 'CONFIG_CFS_BANDWIDTH=y', 'CONFIG_CPUSETS=y',
  'CONFIG_BLK_CGROUP=y', 'CONFIG_CGROUP_DEVICE=y', 'CONFIG_CGROUP_FREEZER=y', 'CONFIG_CGROUP_BPF=y',
  'CONFIG_NAMESPACES=y', 'CONFIG_USER_NS=y', 'CONFIG_NET_NS=y', 'CONFIG_PID_NS=y',
  'CONFIG_IP_NF_IPTABLES=y', 'CONFIG_IP_NF_NAT=y', 'CONFIG_NF_TABLES=y', 'CONFIG_NFT_COMPAT=y', 'CONFIG_BRIDGE=y',
  'CONFIG_BRIDGE_NETFILTER=y', 'CONFIG_VETH=y', 'CONFIG_SERIAL_8250_CONSOLE=y', 'CONFIG_SERIO_I8042=y',
  'CONFIG_KEYBOARD_ATKBD=y', 'CONFIG_IP_PNP=y', 'CONFIG_DEVTMPFS_MOUNT=y', 'CONFIG_SECCOMP_FILTER=y',
  '# CONFIG_MODULES is not set', '# CONFIG_PCI is not set', '# CONFIG_SOUND is not set', '# CONFIG_USB_SUPPORT is not set',
  '# CONFIG_DRM is not set', '# CONFIG_WIRELESS is not set',
];

test.serial('kernel/matchlock.config survives make olddefconfig over x86_64_defconfig, option for option', async (t) => {
  t.timeout(TIMEOUT_MS);
  const out = join(scratch, 'ours');
  const r = await run(['--check-config-only', out]);
  t.is(r.code, 0, r.output);
  t.regex(r.output, /config verified: every option of matchlock\.config is in /);
  t.notRegex(r.output, /warning/, 'every "is not set" of the fragment held too');
  const config = new Set(readFileSync(join(out, 'config'), 'utf8').split('\n'));
  const missing = MUST_HAVE.filter((line) => !config.has(line));
  t.deepEqual(missing, [], `not in ${join(out, 'config')}`);
  const fragment = readFileSync(FRAGMENT, 'utf8').split('\n').filter((l) => /^CONFIG_\w+=/.test(l));
  t.true(fragment.length > 100, `the fragment sets ${fragment.length} options`);
});

test.serial('a fragment whose options cannot survive fails, listing each one and what became of it', async (t) => {
  t.timeout(TIMEOUT_MS);
  const fragment = join(scratch, 'broken.config');
  // VLAN filtering needs 802.1Q, which the same fragment turns off; the second symbol does not exist.
  writeFileSync(fragment, '# CONFIG_VLAN_8021Q is not set\nCONFIG_BRIDGE_VLAN_FILTERING=y\nCONFIG_MATCHLOCK_NO_SUCH_OPTION=y\nCONFIG_EXT4_FS=y\n');
  const r = await run(['--check-config-only', '--fragment', fragment, join(scratch, 'broken')]);
  t.is(r.code, 1, r.output);
  t.regex(r.output, /error: 2 option\(s\) of .*broken\.config did not survive make olddefconfig:/);
  t.regex(r.output, /^ {2}CONFIG_BRIDGE_VLAN_FILTERING=y \(now: absent/m);
  t.regex(r.output, /^ {2}CONFIG_MATCHLOCK_NO_SUCH_OPTION=y \(now: absent/m);
  t.notRegex(r.output, /^ {2}CONFIG_EXT4_FS/m);
});
