import type { LegacyShared } from '../devices/index.ts';
import type { ExitOutcome } from './exit.ts';

/** What a vCPU thread is started with. */
export interface VcpuWorkerData {
  readonly index: number;
  readonly vcpuFd: number;
  readonly vmFd: number;
  readonly runSize: number;
  /** The vCPU's kvm_run page, mapped by the host side, which unmaps it after the thread has ended. */
  readonly runAddress: bigint;
  readonly devices: LegacyShared;
  /** Int32Array words: [0] = stop requested. */
  readonly control: SharedArrayBuffer;
}

export const CONTROL_STOP = 0;

/** The signal that kicks a vCPU thread out of KVM_RUN (the process ignores it otherwise). */
export const KICK_SIGNAL = 'SIGUSR2';
export const KICK_SIGNAL_NUMBER = 12;

export type VcpuMessage =
  | { readonly type: 'ready'; readonly index: number; readonly tid: number }
  | {
    readonly type: 'stopped';
    readonly index: number;
    /** null when the host asked the thread to stop. */
    readonly outcome: (ExitOutcome & { kind: 'stop' }) | null;
    /** Register dump for failures, one line per group. */
    readonly registers: string | null;
    readonly exits: Readonly<Record<string, number>>;
  };
