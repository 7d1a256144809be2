/**
 * A spin lock in shared memory, for device state that any vCPU thread may touch. Critical sections are a few
 * register updates, so waiters spin briefly and then sleep on the word.
 */
export class SharedLock {
  readonly #word: Int32Array;
  readonly #index: number;

  constructor(word: Int32Array, index: number) {
    this.#word = word;
    this.#index = index;
  }

  with<T>(fn: () => T): T {
    let spins = 0;
    while (Atomics.compareExchange(this.#word, this.#index, 0, 1) !== 0) {
      if (++spins > 100) Atomics.wait(this.#word, this.#index, 1, 1);
    }
    try {
      return fn();
    } finally {
      Atomics.store(this.#word, this.#index, 0);
      Atomics.notify(this.#word, this.#index, 1);
    }
  }
}
