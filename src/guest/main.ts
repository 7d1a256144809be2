/**
 * The guest agent's entry (started as /opt/matchlock/bin/matchlock-agent in a job VM; see docs/guest-protocol.md).
 */
import { ErrorCodes, errorMessage, isMatchlockError } from '../errors.ts';
import { createRootLogger } from '../log.ts';
import { Agent } from './agent.ts';
import { AGENT_USAGE, agentConfig } from './agent-config.ts';
import { endVm, startReaper } from './pid1.ts';
import { selfCheck } from './self-check.ts';
import { mountProcForCmdline, setUpSystem } from './system-setup.ts';
import { listen } from './transport.ts';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(`${AGENT_USAGE}\n`);
    return 0;
  }
  if (process.pid === 1) mountProcForCmdline(); // before the settings are read from /proc/cmdline
  const config = agentConfig(argv);
  if (config.selfCheck) {
    const r = selfCheck();
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return r.ok ? 0 : 1;
  }
  const log = createRootLogger().child({ component: 'agent' });
  if (config.systemSetup) {
    const mounted = setUpSystem(config.hostname, config.dns);
    log.info({ mounted, hostname: config.hostname }, 'system set up');
  }
  const agent = new Agent(config, log);
  if (process.pid === 1) startReaper(() => agent.children);
  const listener = listen(config.listen, (c) => { agent.connect(c); });
  log.info({ listen: config.listen }, 'agent listening');
  await agent.done;
  listener.close();
  if (config.powerOff) endVm();
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
  if (process.exitCode === 0) process.exit(0); // the vsock accept on its worker thread would hold the process
} catch (e: unknown) {
  process.stderr.write(`matchlock-agent: ${errorMessage(e)}${isMatchlockError(e) ? ` [${e.code}]` : ''}\n`);
  process.exitCode = isMatchlockError(e, ErrorCodes.USAGE) ? 2 : 1;
}
