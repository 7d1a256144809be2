/**
 * matchlock's command line. Errors a user can hit print one line (what is wrong, what to do) and exit non-zero.
 */
import { isMatchlockError, errorMessage, ErrorCodes } from '../errors.ts';
import { createRootLogger, type Logger } from '../log.ts';
import { vmRun, VM_RUN_USAGE } from './vm-run.ts';
import { vmm, VMM_USAGE } from './vmm.ts';
import { JAILER_USAGE, parseJailArgs, runJailed } from '../jailer/index.ts';
import { image, IMAGE_USAGE } from './image.ts';
import { kernel, KERNEL_USAGE } from './kernel.ts';
import { cache, CACHE_USAGE } from './cache.ts';
import { VERSION } from '../version.ts';

const USAGE = `matchlock ${VERSION}: GitHub Actions jobs in throwaway microVMs

usage: matchlock <command> [options]

commands:
  vm run      boot one microVM in this process (see: matchlock vm run --help)
  vmm         one VMM process controlled through its API socket, or a config file (see: matchlock vmm --help)
  jailer      run one VMM confined: namespaces, cgroups, uid/gid, seccomp (see: matchlock jailer --help)
  image       build golden images (OCI, docker-archive, rootfs tarballs), list, inspect, rm, gc (see: matchlock image --help)
  kernel      import a guest kernel (vmlinux or bzImage) after checking it, or list them (see: matchlock kernel --help)
  cache       list, reset or remove the cache disks leased to jobs (see: matchlock cache --help)
  version     print the version

exit status: 0 ok (or the guest reset / powered off / was stopped by SIGTERM or SIGINT),
             1 error, 2 usage error, 3 the guest failed (triple fault, KVM internal error, ...)`;

export const EXIT_USAGE = 2;

interface Command {
  readonly usage: string;
  /** Print the usage and exit 2 when given no arguments (rather than run and complain). */
  readonly emptyIsUsage: boolean;
  readonly wantsHelp: (args: readonly string[]) => boolean;
  readonly run: (args: string[], log: Logger) => Promise<number>;
}

const anywhere = (args: readonly string[]): boolean => args.includes('--help');

/** Commands of one word; the jailer's help is only its first argument (what follows "--" is the VMM's). */
const COMMANDS: Readonly<Record<string, Command>> = {
  vmm: { usage: VMM_USAGE, emptyIsUsage: false, wantsHelp: anywhere, run: vmm },
  image: { usage: IMAGE_USAGE, emptyIsUsage: true, wantsHelp: anywhere, run: image },
  kernel: { usage: KERNEL_USAGE, emptyIsUsage: true, wantsHelp: anywhere, run: kernel },
  cache: { usage: CACHE_USAGE, emptyIsUsage: true, wantsHelp: anywhere, run: cache },
  jailer: { usage: JAILER_USAGE, emptyIsUsage: true, wantsHelp: (args) => args[0] === '--help', run: (args, log) => runJailed(parseJailArgs(args), log) },
};

async function dispatch(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd === undefined ? EXIT_USAGE : 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (cmd === 'vm' && sub === 'run') {
    if (rest.includes('--help')) {
      process.stdout.write(`${VM_RUN_USAGE}\n`);
      return 0;
    }
    return vmRun(rest, createRootLogger());
  }
  const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (command !== undefined) {
    const args = argv.slice(1);
    if (args.length === 0 && command.emptyIsUsage) {
      process.stdout.write(`${command.usage}\n`);
      return EXIT_USAGE;
    }
    if (command.wantsHelp(args)) {
      process.stdout.write(`${command.usage}\n`);
      return 0;
    }
    return command.run(args, createRootLogger());
  }
  process.stderr.write(`matchlock: unknown command "${argv.join(' ')}"\n${USAGE}\n`);
  return EXIT_USAGE;
}

function isUsageError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return isMatchlockError(e, ErrorCodes.USAGE) || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
}

try {
  process.exitCode = await dispatch(process.argv.slice(2));
} catch (e: unknown) {
  const code = isMatchlockError(e) ? ` [${e.code}]` : '';
  process.stderr.write(`matchlock: ${errorMessage(e)}${code}\n`);
  process.exitCode = isUsageError(e) ? EXIT_USAGE : 1;
}
