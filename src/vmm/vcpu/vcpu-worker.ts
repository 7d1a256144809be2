/**
 * The body of one vCPU thread: KVM_RUN in a loop, exits handled right here on the thread's own buses, until the
 * guest stops or the host asks. Started by vcpu-threads.ts; talks back only through VcpuMessage.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createBuses, type DeviceContext } from '../devices/index.ts';
import { VcpuFd, VmFd } from '../kvm/index.ts';
import * as sys from '../sys/index.ts';
import { errorMessage } from '../../errors.ts';
import { handleExit, type ExitCounters, type ExitOutcome } from './exit.ts';
import { CONTROL_PARKED, CONTROL_PAUSE, CONTROL_STOP, type VcpuMessage, type VcpuWorkerData } from './protocol.ts';
import { formatRegisters } from './register-dump.ts';

const data = workerData as VcpuWorkerData;
const port = parentPort!;
const control = new Int32Array(data.control);
const vcpu = new VcpuFd(data.vcpuFd, data.index);
const vm = new VmFd(data.vmFd, data.runSize);

let requested: 'reset' | 'shutdown' | null = null;
const ctx: DeviceContext = {
  pulseIrq(irq: number): void {
    vm.pulseIrq(irq);
  },
  requestStop(reason): void {
    requested = reason;
  },
};

const run = new sys.KvmRun(sys.viewMapping(data.runAddress, data.runSize));
const buses = createBuses(data.devices, ctx);
const counters: ExitCounters = { unclaimedPio: 0, unclaimedMmio: 0 };
const exits = new Map<number, number>();

port.postMessage({ type: 'ready', index: data.index, tid: sys.gettid() } satisfies VcpuMessage);

/** Waits outside KVM_RUN while the host holds the vCPUs paused (or until it stops them). */
function park(): void {
  Atomics.add(control, CONTROL_PARKED, 1);
  Atomics.notify(control, CONTROL_PARKED);
  while (Atomics.load(control, CONTROL_PAUSE) !== 0 && Atomics.load(control, CONTROL_STOP) === 0) Atomics.wait(control, CONTROL_PAUSE, 1);
  Atomics.sub(control, CONTROL_PARKED, 1);
  // The host kicked until every thread was parked; a kick that came after this one parked must not linger.
  run.immediateExit = false;
}

let ran = false;

function loop(): (ExitOutcome & { kind: 'stop' }) | null {
  while (Atomics.load(control, CONTROL_STOP) === 0) {
    if (Atomics.load(control, CONTROL_PAUSE) !== 0) {
      park();
      continue;
    }
    const r = sys.ioctlRun(data.vcpuFd, sys.KVM_RUN, 'KVM_RUN');
    if (r < 0) continue; // EINTR or EAGAIN: a kick; the loop condition decides
    if (!ran) {
      ran = true;
      port.postMessage({ type: 'first-exit', index: data.index, at: performance.timeOrigin + performance.now() } satisfies VcpuMessage);
    }
    const reason = run.exitReason;
    exits.set(reason, (exits.get(reason) ?? 0) + 1);
    const outcome = handleExit(run, buses.pio, buses.mmio, counters);
    if (outcome.kind === 'stop') return outcome;
    if (requested !== null) {
      const detail = requested === 'reset' ? 'the guest reset the system through the i8042' : 'the guest powered off';
      return { kind: 'stop', reason: requested, detail, exitReason: reason };
    }
  }
  return null;
}

let outcome: (ExitOutcome & { kind: 'stop' }) | null;
try {
  outcome = loop();
} catch (e: unknown) {
  outcome = { kind: 'stop', reason: 'vmm-error', detail: errorMessage(e), exitReason: -1 };
}

let registers: string | null = null;
if (outcome !== null && outcome.reason !== 'reset' && outcome.reason !== 'shutdown') {
  try {
    registers = formatRegisters(vcpu.getRegs(), vcpu.getSregs());
  } catch (e: unknown) {
    registers = `registers unavailable: ${errorMessage(e)}`;
  }
}

const exitCounts: Record<string, number> = {
  unclaimed_pio: counters.unclaimedPio,
  unclaimed_mmio: counters.unclaimedMmio,
};
for (const [reason, n] of exits) exitCounts[sys.exitReasonName(reason)] = n;

port.postMessage({ type: 'stopped', index: data.index, outcome, registers, exits: exitCounts } satisfies VcpuMessage);
