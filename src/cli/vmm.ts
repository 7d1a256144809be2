/**
 * `matchlock vmm`: the process the host agent starts (through the jailer) for each VM. It serves the API on a
 * Unix socket and boots when told to (InstanceStart), or boots at once from a config file; it exits when the
 * guest stops, with `matchlock vm run`'s exit statuses.
 */
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import { ApiServer, VmmController, applyConfigFile, now } from '../vmm/api/index.ts';
import type { VmResult } from '../vmm/index.ts';
import { sealVmm } from '../jailer/index.ts';

export const VMM_USAGE = `usage: matchlock vmm --api-sock PATH [--id ID] [--config-file FILE]
       matchlock vmm --no-api --config-file FILE [--id ID]

  --api-sock PATH     serve the API (HTTP/1.1, Firecracker's shapes) on this Unix socket; it must not exist
  --config-file FILE  configure from FILE (the shape of GET /vm/config) and start the VM at once
  --no-api            serve no API (needs --config-file)
  --id ID             the instance id shown by GET / and in metrics (default: anonymous-instance)
  --jailed            set by \`matchlock jailer\`: no program can be started from here on (seccomp)`;

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export async function vmm(args: string[], log: Logger): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      'api-sock': { type: 'string' },
      'config-file': { type: 'string' },
      'no-api': { type: 'boolean' },
      id: { type: 'string' },
      jailed: { type: 'boolean' },
    },
  });
  if (values.jailed === true) sealVmm();
  const noApi = values['no-api'] === true;
  const sock = values['api-sock'];
  if (noApi && values['config-file'] === undefined) throw new MatchlockError(ErrorCodes.USAGE, '--no-api needs --config-file FILE', {});
  if (noApi && sock !== undefined) throw new MatchlockError(ErrorCodes.USAGE, '--no-api and --api-sock together: give one', {});
  if (!noApi && sock === undefined) throw new MatchlockError(ErrorCodes.USAGE, 'no API socket: give --api-sock PATH (or --no-api --config-file FILE)', {});
  const id = values.id ?? 'anonymous-instance';
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new MatchlockError(ErrorCodes.USAGE, `--id "${id}" must be 1 to 64 letters, digits or "-"`, { id });

  const vmLog = log.child({ vm: id });
  const controller = new VmmController({ id, log: vmLog, kvmDevice: process.env['MATCHLOCK_KVM_DEVICE'] ?? '/dev/kvm', processStart: performance.timeOrigin });
  // Before boot a signal ends the process; once the guest runs, the VM takes the signal and stops in order.
  let onSignal: () => void = () => {};
  const signalled = new Promise<null>((resolve) => { onSignal = () => { if (controller.state === 'Not started') resolve(null); }; });
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  let server: ApiServer | null = null;
  try {
    if (sock !== undefined) {
      server = await ApiServer.listen(sock, controller, vmLog);
      controller.boot.apiReady = now();
      vmLog.info({ apiSock: sock }, 'api listening');
    }
    if (values['config-file'] !== undefined) {
      applyConfigFile(controller, values['config-file']);
      if (server === null) controller.boot.apiReady = now();
      await controller.start();
    }
    const result: VmResult | null = await Promise.race([controller.ended, signalled]);
    if (result === null) {
      vmLog.info('stopped before boot');
      return 0;
    }
    const fields = { reason: result.reason, detail: result.detail, exitCode: result.exitCode, vcpu: result.vcpu, exits: result.exits, devices: result.devices };
    if (result.exitCode === 0) vmLog.info(fields, 'vm stopped');
    else vmLog.error({ ...fields, registers: result.registers }, 'vm failed');
    return result.exitCode;
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    await server?.close();
    controller.close();
  }
}
