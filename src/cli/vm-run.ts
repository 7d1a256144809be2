import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { Machine, validateVmConfig } from '../vmm/index.ts';

export const VM_RUN_USAGE = `usage: matchlock vm run --kernel PATH [--initrd PATH] [--cmdline TEXT] [--mem MiB] [--vcpus N]
                       [--cpu-template NAME|FILE.json] [--boot-protocol auto|linux|pvh] [--serial-out PATH|-|none]
                       [--serial-in -|none] [--drive PATH[,ro][,cow=OVERLAY][,id=SERIAL][,bps=RATE][,iops=N]]...
                       [--net tap=NAME[,mac=XX:XX:XX:XX:XX:XX][,mtu=N]]... [--vsock cid=N,uds=PATH]`;

/** `matchlock vm run`: boots one VM in this process and returns the exit status. */
export async function vmRun(args: string[], log: Logger): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      cmdline: { type: 'string' },
      mem: { type: 'string' },
      vcpus: { type: 'string' },
      'cpu-template': { type: 'string' },
      'boot-protocol': { type: 'string' },
      'serial-out': { type: 'string' },
      'serial-in': { type: 'string' },
      drive: { type: 'string', multiple: true },
      net: { type: 'string', multiple: true },
      vsock: { type: 'string' },
    },
  });
  const config = validateVmConfig({
    kernel: values.kernel,
    initrd: values.initrd,
    cmdline: values.cmdline,
    memMib: values.mem,
    vcpus: values.vcpus,
    cpuTemplate: values['cpu-template'],
    bootProtocol: values['boot-protocol'],
    serialOut: values['serial-out'],
    serialIn: values['serial-in'],
    drives: values.drive,
    nets: values.net,
    vsock: values.vsock,
  });
  const vmLog = log.child({ vm: 'local' });
  const machine = Machine.create(config, vmLog);
  try {
    const result = await machine.run();
    const fields = { reason: result.reason, detail: result.detail, exitCode: result.exitCode, vcpu: result.vcpu, exits: result.exits, devices: result.devices };
    if (result.exitCode === 0) vmLog.info(fields, 'vm stopped');
    else vmLog.error({ ...fields, registers: result.registers }, 'vm failed');
    return result.exitCode;
  } finally {
    machine.close();
  }
}
