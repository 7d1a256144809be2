/**
 * The agent's settings: from the kernel command line (`matchlock.*=`, set by the host when it boots the VM),
 * overridden by the agent's own flags (tests, or an image that starts the agent from its init).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { parseListenAddress, type ListenAddress } from './transport.ts';

export interface AgentConfig {
  readonly listen: ListenAddress;
  /** The runner's start script (`run.sh` of the actions runner). */
  readonly runner: string;
  /** The unprivileged user the runner runs as. */
  readonly user: string;
  /** The static launcher whose `--run-as` starts the runner as that user, with its groups (src/guest/launcher). */
  readonly launcher: string;
  /** Mount /proc, /sys, /dev, /run, cgroups; set the hostname and DNS (on as PID 1). */
  readonly systemSetup: boolean;
  /** Sync and end the VM when done (on as PID 1); otherwise the agent just exits. */
  readonly powerOff: boolean;
  readonly hostname: string | null;
  readonly dns: readonly string[];
  /** Where `/dev/vdX` of a cache mount is looked up (tests point it elsewhere). */
  readonly devDir: string;
  /** Grace between SIGTERM and SIGKILL for a runner that is stopped. */
  readonly killGraceMs: number;
  /** Output kept while no host is connected (older output is dropped and counted). */
  readonly maxBufferedBytes: number;
  readonly selfCheck: boolean;
}

/** Where `matchlock image build` injects the launcher (src/images/inject-agent.ts). */
export const DEFAULT_LAUNCHER = '/opt/matchlock/bin/matchlock-agent';

export const AGENT_USAGE = `usage: matchlock-agent [--listen vsock:PORT|unix:PATH] [--runner PATH] [--user NAME] [--launcher PATH]
                       [--dev-dir DIR] [--hostname NAME] [--[no-]system-setup] [--[no-]power-off] [--kill-grace-ms N]
                       [--self-check]

  The guest agent (docs/guest-protocol.md). Settings default to the kernel command line's matchlock.port=,
  matchlock.runner=, matchlock.user=, matchlock.hostname=, matchlock.dns=A,B; as PID 1 it sets the system up and
  powers the VM off when the job is done. The runner is started through --launcher (default
  ${DEFAULT_LAUNCHER}, the agent's own launcher), which gives it the user's groups. --self-check prints
  what this runtime can do here and exits.`;

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** `matchlock.KEY=VALUE` tokens of a kernel command line. */
export function cmdlineSettings(cmdline: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const token of cmdline.trim().split(/\s+/)) {
    const m = /^matchlock\.([a-z]+)=(.*)$/.exec(token);
    if (m !== null) out.set(m[1]!, m[2]!);
  }
  return out;
}

function usage(message: string): MatchlockError {
  return new MatchlockError(ErrorCodes.USAGE, message, {});
}

export function agentConfig(argv: readonly string[], cmdline: string = readProcCmdline(), pid: number = process.pid): AgentConfig {
  const { values } = parseArgs({
    args: [...argv], strict: true, allowPositionals: false, allowNegative: true,
    options: {
      listen: { type: 'string' }, runner: { type: 'string' }, user: { type: 'string' }, launcher: { type: 'string' }, 'dev-dir': { type: 'string' },
      'system-setup': { type: 'boolean' }, 'power-off': { type: 'boolean' }, 'kill-grace-ms': { type: 'string' }, 'self-check': { type: 'boolean' },
      hostname: { type: 'string' },
    },
  });
  const k = cmdlineSettings(cmdline);
  const hostname = values.hostname ?? k.get('hostname') ?? null;
  if (hostname !== null && !HOSTNAME.test(hostname)) throw usage(`hostname ${hostname}: give letters, digits and "-", at most 63`);
  const dns = (k.get('dns') ?? '').split(',').filter((s) => s !== '');
  for (const d of dns) if (!IPV4.test(d)) throw usage(`matchlock.dns: ${d} is not an IPv4 address`);
  const runner = values.runner ?? k.get('runner') ?? '/actions-runner/run.sh';
  if (!runner.startsWith('/')) throw usage(`--runner ${runner}: give an absolute path`);
  const launcher = values.launcher ?? DEFAULT_LAUNCHER;
  if (!launcher.startsWith('/')) throw usage(`--launcher ${launcher}: give an absolute path`);
  const grace = values['kill-grace-ms'] ?? '10000';
  if (!/^\d{1,7}$/.test(grace)) throw usage(`--kill-grace-ms ${grace}: give milliseconds`);
  const user = values.user ?? k.get('user') ?? 'runner';
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw usage(`--user ${user}: not a user name`);
  return {
    listen: parseListenAddress(values.listen ?? `vsock:${k.get('port') ?? '1024'}`),
    runner,
    user,
    launcher,
    systemSetup: values['system-setup'] ?? pid === 1,
    powerOff: values['power-off'] ?? pid === 1,
    hostname,
    dns,
    devDir: values['dev-dir'] ?? '/dev',
    killGraceMs: Number(grace),
    maxBufferedBytes: 4 * 1024 * 1024,
    selfCheck: values['self-check'] ?? false,
  };
}

function readProcCmdline(): string {
  try {
    return readFileSync('/proc/cmdline', 'utf8');
  } catch {
    return '';
  }
}
