/** Order statistics for benchmark samples. Every function takes the samples as given and does not modify them. */

function sorted(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new Error('no samples');
  for (const s of samples) if (!Number.isFinite(s)) throw new Error(`not a finite sample: ${s}`);
  return [...samples].sort((a, b) => a - b);
}

/** The median; for an even count, the mean of the two middle samples. */
export function median(samples: readonly number[]): number {
  const s = sorted(samples);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile (0 < p <= 100) by the nearest-rank method: the smallest sample with at least p% at or below it. */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new Error(`percentile out of range: ${p}`);
  const s = sorted(samples);
  return s[Math.ceil((p / 100) * s.length) - 1]!;
}

export function minimum(samples: readonly number[]): number {
  return sorted(samples)[0]!;
}

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly min: number;
}

export function summarize(samples: readonly number[]): Summary {
  return { n: samples.length, median: median(samples), p90: percentile(samples, 90), min: minimum(samples) };
}
