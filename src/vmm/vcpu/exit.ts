/**
 * What one KVM exit means: a plain function from the kvm_run page to an outcome, so that every exit reason is
 * unit-tested with synthetic pages. Port and MMIO accesses are carried out on the buses here.
 */
import type { Bus } from '../devices/bus.ts';
import {
  KVM_EXIT, KVM_EXIT_IO_OUT, KVM_INTERNAL_ERROR, KVM_RUN_OFFSETS as O, KVM_SYSTEM_EVENT, type KvmRun, exitReasonName,
} from '../sys/index.ts';

/** Why a VM stopped. `reset`, `shutdown` and `signal` are orderly ends; the others are failures. */
export type StopReason =
  | 'reset' | 'shutdown' | 'signal' | 'triple-fault' | 'internal-error' | 'fail-entry' | 'guest-crash' | 'unexpected-exit' | 'vmm-error';

export type ExitOutcome =
  | { readonly kind: 'continue' }
  | { readonly kind: 'stop'; readonly reason: StopReason; readonly detail: string; readonly exitReason: number };

const CONTINUE: ExitOutcome = { kind: 'continue' };

export interface ExitCounters {
  /** Accesses to addresses no device claims (reads see all ones; writes are dropped). */
  unclaimedPio: number;
  unclaimedMmio: number;
}

function stop(reason: StopReason, detail: string, exitReason: number): ExitOutcome {
  return { kind: 'stop', reason, detail, exitReason };
}

function handleIo(run: KvmRun, pio: Bus, counters: ExitCounters): ExitOutcome {
  const size = run.u8(O.io_size);
  const port = run.u16(O.io_port);
  const count = run.u32(O.io_count);
  const dataOffset = Number(run.u64(O.io_data_offset));
  const write = run.u8(O.io_direction) === KVM_EXIT_IO_OUT;
  // KVM places the data inside the run page; a value outside it would be a KVM bug, not a guest's doing.
  if ((size !== 1 && size !== 2 && size !== 4) || dataOffset + size * count > run.bytes.length) {
    return stop('unexpected-exit', `bad KVM_EXIT_IO: size ${size} count ${count} offset ${dataOffset}`, KVM_EXIT.IO);
  }
  for (let i = 0; i < count; i++) {
    const data = run.bytes.subarray(dataOffset + i * size, dataOffset + (i + 1) * size);
    const hit = write ? pio.write(port, data) : pio.read(port, data);
    if (!hit) {
      counters.unclaimedPio++;
      if (!write) data.fill(0xff);
    }
  }
  return CONTINUE;
}

function handleMmio(run: KvmRun, mmio: Bus, counters: ExitCounters): ExitOutcome {
  const addr = Number(run.u64(O.mmio_phys_addr));
  const len = run.u32(O.mmio_len);
  if (len === 0 || len > 8) return stop('unexpected-exit', `bad KVM_EXIT_MMIO length ${len}`, KVM_EXIT.MMIO);
  const data = run.bytes.subarray(O.mmio_data, O.mmio_data + len);
  const write = run.u8(O.mmio_is_write) !== 0;
  const hit = write ? mmio.write(addr, data) : mmio.read(addr, data);
  if (!hit) {
    counters.unclaimedMmio++;
    if (!write) data.fill(0xff);
  }
  return CONTINUE;
}

function internalErrorName(sub: number): string {
  for (const [k, v] of Object.entries(KVM_INTERNAL_ERROR)) if (v === sub) return k;
  return String(sub);
}

/** Decodes and handles one exit. */
export function handleExit(run: KvmRun, pio: Bus, mmio: Bus, counters: ExitCounters): ExitOutcome {
  const reason = run.exitReason;
  switch (reason) {
    case KVM_EXIT.IO:
      return handleIo(run, pio, counters);
    case KVM_EXIT.MMIO:
      return handleMmio(run, mmio, counters);
    case KVM_EXIT.INTR:
      return CONTINUE;
    case KVM_EXIT.HLT:
      return stop('shutdown', 'the guest halted with interrupts it cannot receive', reason);
    case KVM_EXIT.SHUTDOWN:
      return stop('triple-fault', 'the guest triple-faulted (KVM_EXIT_SHUTDOWN)', reason);
    case KVM_EXIT.SYSTEM_EVENT: {
      const type = run.u32(O.system_event_type);
      if (type === KVM_SYSTEM_EVENT.RESET) return stop('reset', 'the guest reset the system', reason);
      if (type === KVM_SYSTEM_EVENT.SHUTDOWN) return stop('shutdown', 'the guest powered off', reason);
      if (type === KVM_SYSTEM_EVENT.CRASH) return stop('guest-crash', 'the guest reported a crash', reason);
      return stop('unexpected-exit', `unknown system event ${type}`, reason);
    }
    case KVM_EXIT.INTERNAL_ERROR: {
      const sub = run.u32(O.internal_suberror);
      const ndata = Math.min(run.u32(O.internal_ndata), 16);
      const data: string[] = [];
      for (let i = 0; i < ndata; i++) data.push(`0x${run.u64(O.internal_data + i * 8).toString(16)}`);
      const hint = sub === KVM_INTERNAL_ERROR.EMULATION ? ' (an instruction KVM cannot emulate)' : '';
      return stop('internal-error', `KVM internal error ${internalErrorName(sub)}${hint} data [${data.join(' ')}]`, reason);
    }
    case KVM_EXIT.FAIL_ENTRY: {
      const hw = run.u64(O.fail_entry_reason);
      return stop('fail-entry', `KVM could not enter the guest: hardware reason 0x${hw.toString(16)} on cpu ${run.u32(O.fail_entry_cpu)}`, reason);
    }
    default:
      return stop('unexpected-exit', `unexpected exit ${exitReasonName(reason)}`, reason);
  }
}
