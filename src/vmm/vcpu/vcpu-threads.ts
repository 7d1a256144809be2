/**
 * The host side of the vCPU threads: starts one worker per vCPU, learns the first stop, and stops them all by
 * setting the stop word, `immediate_exit`, and kicking each thread out of KVM_RUN with a signal.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { LegacyShared } from '../devices/index.ts';
import type { VcpuFd, VmFd } from '../kvm/index.ts';
import * as sys from '../sys/index.ts';
import { CONTROL_PARKED, CONTROL_PAUSE, CONTROL_STOP, CONTROL_WORDS, KICK_SIGNAL, KICK_SIGNAL_NUMBER, type VcpuMessage, type VcpuWorkerData } from './protocol.ts';

type Stopped = VcpuMessage & { type: 'stopped' };

interface ThreadState {
  tid: number;
  /** When the guest first left KVM_RUN on this vCPU (wall-clock ms), 0 until then. */
  firstExitAt: number;
}

interface Thread {
  readonly worker: Worker;
  readonly mapping: sys.Mapping;
  readonly run: sys.KvmRun;
  readonly state: ThreadState;
  readonly stopped: Promise<Stopped>;
}

const noop = (): void => {};

export class VcpuThreads {
  readonly #threads: Thread[];
  readonly #control: Int32Array;
  readonly #log: Logger;
  /** The first vCPU to stop on its own, which ends the VM. */
  readonly firstStop: Promise<Stopped>;

  private constructor(threads: Thread[], control: Int32Array, log: Logger) {
    this.#threads = threads;
    this.#control = control;
    this.#log = log;
    this.firstStop = Promise.race(threads.map((t) => t.stopped));
  }

  static async start(vm: VmFd, vcpus: readonly VcpuFd[], devices: LegacyShared, log: Logger): Promise<VcpuThreads> {
    // The kick signal must not kill the process; the handler itself does nothing.
    process.on(KICK_SIGNAL, noop);
    const controlBuf = new SharedArrayBuffer(CONTROL_WORDS * 4);
    const control = new Int32Array(controlBuf);
    const threads: Thread[] = [];
    const ready: Promise<void>[] = [];
    // Map every run page first: once a worker runs it sits in KVM_RUN, so nothing may fail after the first starts.
    const mappings: sys.Mapping[] = [];
    try {
      for (const vcpu of vcpus) mappings.push(sys.mapShared(vcpu.fd, vm.vcpuMmapSize));
    } catch (e: unknown) {
      for (const m of mappings) sys.unmap(m.address, m.size);
      throw e;
    }
    for (const [i, vcpu] of vcpus.entries()) {
      const mapping = mappings[i]!;
      const wd: VcpuWorkerData = {
        index: vcpu.index, vcpuFd: vcpu.fd, vmFd: vm.fd, runSize: vm.vcpuMmapSize, runAddress: mapping.address, devices, control: controlBuf,
      };
      const worker = new Worker(new URL('./vcpu-worker.ts', import.meta.url), { workerData: wd, name: `vcpu${vcpu.index}` });
      const state: ThreadState = { tid: 0, firstExitAt: 0 };
      let markReady: () => void = noop;
      ready.push(new Promise<void>((resolve) => { markReady = resolve; }));
      const stopped = new Promise<Stopped>((resolve) => {
        worker.on('message', (m: VcpuMessage) => {
          if (m.type === 'ready') {
            state.tid = m.tid;
            markReady();
          } else if (m.type === 'first-exit') {
            state.firstExitAt = m.at;
          } else {
            resolve(m);
          }
        });
        worker.on('error', (e: Error) => {
          markReady();
          resolve({
            type: 'stopped', index: vcpu.index, registers: null, exits: {},
            outcome: { kind: 'stop', reason: 'vmm-error', detail: `vCPU thread ${vcpu.index} failed: ${e.message}`, exitReason: -1 },
          });
        });
        worker.on('exit', () => {
          markReady();
          resolve({ type: 'stopped', index: vcpu.index, outcome: null, registers: null, exits: {} });
        });
      });
      threads.push({ worker, mapping, run: new sys.KvmRun(mapping.bytes), state, stopped });
      log.debug({ vcpu: vcpu.index }, 'vcpu thread started');
    }
    await Promise.all(ready);
    return new VcpuThreads(threads, control, log);
  }

  /** The earliest first exit from KVM_RUN of any vCPU (wall-clock ms), or null while no vCPU has exited yet. */
  get firstExitAt(): number | null {
    const times = this.#threads.map((t) => t.state.firstExitAt).filter((t) => t > 0);
    return times.length === 0 ? null : Math.min(...times);
  }

  /** Kicks every thread out of KVM_RUN, again and again, until `done` settles. */
  async #kickUntil(done: Promise<unknown>): Promise<void> {
    let settled = false;
    void done.then(() => { settled = true; });
    for (let round = 0; !settled; round++) {
      for (const t of this.#threads) {
        t.run.immediateExit = true;
        if (t.state.tid > 0) sys.signalThread(t.state.tid, KICK_SIGNAL_NUMBER);
      }
      await Promise.race([done, new Promise((r) => setTimeout(r, Math.min(100, 5 * (round + 1))))]);
    }
  }

  /**
   * Holds every vCPU outside KVM_RUN. Resolves true once all are parked, false if the VM stopped meanwhile
   * (a guest that reset or failed while being paused).
   */
  async pause(): Promise<boolean> {
    Atomics.store(this.#control, CONTROL_PAUSE, 1);
    const n = this.#threads.length;
    let stopped = false;
    const parked = (async (): Promise<boolean> => {
      while (!stopped) {
        const now = Atomics.load(this.#control, CONTROL_PARKED);
        if (now >= n) return true;
        const r = Atomics.waitAsync(this.#control, CONTROL_PARKED, now, 50);
        if (r.async) await r.value;
      }
      return false;
    })();
    const stoppedMeanwhile = this.firstStop.then(() => { stopped = true; return false; });
    const outcome = Promise.race([parked, stoppedMeanwhile]);
    await this.#kickUntil(outcome);
    return outcome;
  }

  /** Lets paused vCPUs run again. */
  resume(): void {
    Atomics.store(this.#control, CONTROL_PAUSE, 0);
    Atomics.notify(this.#control, CONTROL_PAUSE);
  }

  /** Stops every vCPU thread and waits for all of them; returns what each reported. */
  async stopAll(): Promise<Stopped[]> {
    Atomics.store(this.#control, CONTROL_STOP, 1);
    this.resume(); // parked threads wake, see the stop word and end
    const results = this.#threads.map((t) => t.stopped);
    // Kick until every thread has reported: a thread between two KVM_RUNs sees immediate_exit or the stop word.
    await this.#kickUntil(Promise.all(results));
    const stopped = await Promise.all(results);
    await Promise.all(this.#threads.map((t) => t.worker.terminate()));
    for (const t of this.#threads) sys.unmap(t.mapping.address, t.mapping.size);
    process.off(KICK_SIGNAL, noop);
    this.#log.debug({ vcpus: stopped.length }, 'vcpu threads stopped');
    return stopped;
  }
}
