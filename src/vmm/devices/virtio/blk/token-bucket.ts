/** A bucket's size other than the default (one second's worth), and tokens given once on top, spent first. */
export interface BucketSize {
  readonly capacity: number;
  readonly oneTimeBurst: number;
}

/**
 * A token bucket: `rate` tokens a second, holding at most `capacity` (by default one second's worth), plus a
 * one-time burst spent before the bucket. A cost larger than the whole bucket is let through once the bucket
 * is full, and leaves it in debt, so no request waits for ever.
 */
export class TokenBucket {
  readonly rate: number;
  readonly #capacity: number;
  #tokens: number;
  #burst: number;
  #at: number;

  constructor(rate: number, now: number, size: BucketSize | null = null) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`token bucket rate ${rate} must be positive`);
    this.rate = rate;
    this.#capacity = size?.capacity ?? rate;
    if (!(this.#capacity > 0)) throw new RangeError(`token bucket capacity ${this.#capacity} must be positive`);
    this.#tokens = this.#capacity;
    this.#burst = size?.oneTimeBurst ?? 0;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = Math.max(this.#at, now);
  }

  /** Takes `cost` tokens if they are there (or the bucket is full); false to wait. */
  take(cost: number, now: number): boolean {
    if (this.#burst > 0) {
      const fromBurst = Math.min(this.#burst, cost);
      this.#burst -= fromBurst;
      cost -= fromBurst;
      if (cost === 0) return true;
    }
    this.#refill(now);
    if (this.#tokens < Math.min(cost, this.#capacity)) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Milliseconds until `cost` could be taken. */
  waitMs(cost: number, now: number): number {
    this.#refill(now);
    const missing = Math.min(cost - this.#burst, this.#capacity) - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.rate) * 1000);
  }
}
