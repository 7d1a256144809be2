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
  /** Int32Array words: see CONTROL_*. */
  readonly control: SharedArrayBuffer;
}

/** The host wants the threads to end. */
export const CONTROL_STOP = 0;
/** The host wants the vCPUs paused: each thread parks outside KVM_RUN until the word is 0 again. */
export const CONTROL_PAUSE = 1;
/** How many threads are parked. */
export const CONTROL_PARKED = 2;
export const CONTROL_WORDS = 3;

/** The signal that kicks a vCPU thread out of KVM_RUN (the process ignores it otherwise). */
export const KICK_SIGNAL = 'SIGUSR2';
export const KICK_SIGNAL_NUMBER = 12;

export type VcpuMessage =
  | { readonly type: 'ready'; readonly index: number; readonly tid: number }
  /** The first exit from KVM_RUN (so the guest has run): wall-clock milliseconds, as performance.timeOrigin + now(). */
  | { readonly type: 'first-exit'; readonly index: number; readonly at: number }
  | {
    readonly type: 'stopped';
    readonly index: number;
    /** null when the host asked the thread to stop. */
    readonly outcome: (ExitOutcome & { kind: 'stop' }) | null;
    /** Register dump for failures, one line per group. */
    readonly registers: string | null;
    readonly exits: Readonly<Record<string, number>>;
  };
