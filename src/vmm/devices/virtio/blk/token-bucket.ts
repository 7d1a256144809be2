/**
 * A token bucket: `rate` tokens a second, holding at most one second's worth (the burst). A cost larger than
 * the whole bucket is let through once the bucket is full, and leaves it in debt, so no request waits for ever.
 */
export class TokenBucket {
  readonly rate: number;
  readonly #capacity: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, now: number) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`token bucket rate ${rate} must be positive`);
    this.rate = rate;
    this.#capacity = rate;
    this.#tokens = rate;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = Math.max(this.#at, now);
  }

  /** Takes `cost` tokens if they are there (or the bucket is full); false to wait. */
  take(cost: number, now: number): boolean {
    this.#refill(now);
    if (this.#tokens < Math.min(cost, this.#capacity)) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Milliseconds until `cost` could be taken. */
  waitMs(cost: number, now: number): number {
    this.#refill(now);
    const missing = Math.min(cost, this.#capacity) - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.rate) * 1000);
  }
}
