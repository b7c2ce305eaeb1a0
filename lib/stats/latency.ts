/**
 * Running statistics for RTTs: extremes, mean and deviation, quantiles, RFC 3550 jitter and
 * RFC 4737 reordering, all in bounded memory.
 *
 * @module
 */

import { Histogram } from "./histogram.ts";

/** Quantiles are exact up to this many samples, then read from the histogram. */
export const EXACT_SAMPLE_LIMIT = 4096;

/**
 * Min / mean / max / deviation and quantiles of durations in milliseconds. Memory is bounded:
 * the first {@linkcode EXACT_SAMPLE_LIMIT} samples are kept for exact quantiles; past that,
 * quantiles come from a histogram (within 0.2%) and are clamped to the true min and max.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { LatencyStats } from "./latency.ts";
 * const stats = new LatencyStats();
 * for (const ms of [1, 2, 3, 4, 5]) stats.record(ms);
 * strictEqual(stats.mean, 3);
 * strictEqual(stats.quantile(0.9), 5);
 * ```
 */
export class LatencyStats {
  #count = 0;
  #min = Infinity;
  #max = -Infinity;
  #mean = 0;
  #sumSquares = 0;
  #exact: Float64Array | null = new Float64Array(EXACT_SAMPLE_LIMIT);
  readonly #histogram = new Histogram();

  /** Records one duration in milliseconds. */
  record(ms: number): void {
    if (this.#exact !== null) {
      if (this.#count < EXACT_SAMPLE_LIMIT) this.#exact[this.#count] = ms;
      else this.#exact = null;
    }
    this.#count++;
    // Welford's update: numerically stable over millions of samples.
    const delta = ms - this.#mean;
    this.#mean += delta / this.#count;
    this.#sumSquares += delta * (ms - this.#mean);
    if (ms < this.#min) this.#min = ms;
    if (ms > this.#max) this.#max = ms;
    this.#histogram.record(ms);
  }

  /** Number of samples. */
  get count(): number {
    return this.#count;
  }

  /** Smallest sample, or null when there is none. */
  get min(): number | null {
    return this.#count ? this.#min : null;
  }

  /** Largest sample, or null when there is none. */
  get max(): number | null {
    return this.#count ? this.#max : null;
  }

  /** Arithmetic mean, or null when there is none. */
  get mean(): number | null {
    return this.#count ? this.#mean : null;
  }

  /** Population standard deviation (ping's "mdev"), or null when there is no sample. */
  get deviation(): number | null {
    return this.#count ? Math.sqrt(this.#sumSquares / this.#count) : null;
  }

  /** Whether {@linkcode LatencyStats.quantile} is exact (few enough samples). */
  get exact(): boolean {
    return this.#exact !== null;
  }

  /** The nearest-rank quantile `q` (0 < q ≤ 1), or null when there is no sample. */
  quantile(q: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.min(Math.max(1, Math.ceil(q * this.#count)), this.#count);
    if (this.#exact !== null) return this.#exact.slice(0, this.#count).sort()[rank - 1];
    // The extremes are known exactly; only inner ranks need the histogram.
    if (rank === this.#count) return this.#max;
    if (rank === 1) return this.#min;
    const estimate = this.#histogram.quantile(q) as number;
    return Math.min(Math.max(estimate, this.#min), this.#max);
  }

  /** The figures the reports print, each null when there is no sample. */
  summary(): LatencySummary {
    return {
      min: this.min,
      avg: this.mean,
      max: this.max,
      mdev: this.deviation,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
    };
  }
}

/** {@linkcode LatencyStats.summary}: milliseconds, each null when there is no sample. */
export interface LatencySummary {
  /** Smallest sample. */
  min: number | null;
  /** Arithmetic mean. */
  avg: number | null;
  /** Largest sample. */
  max: number | null;
  /** Population standard deviation (ping's "mdev"). */
  mdev: number | null;
  /** Median (nearest rank, as the other quantiles). */
  p50: number | null;
  /** 90th percentile. */
  p90: number | null;
  /** 99th percentile. */
  p99: number | null;
}

/**
 * The JSON of a latency summary, as every `--json` output has it (under a key ending in
 * `_ms`): `min`, `avg`, `max`, `mdev`, `p50`, `p90`, `p99`, in that order, each null when
 * there was no sample. Numbers are as measured; the writer rounds them to the nanosecond.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { LatencyStats, latencySummaryJson } from "./latency.ts";
 * const stats = new LatencyStats();
 * stats.record(2);
 * strictEqual(
 *   JSON.stringify(latencySummaryJson(stats.summary())),
 *   '{"min":2,"avg":2,"max":2,"mdev":0,"p50":2,"p90":2,"p99":2}',
 * );
 * ```
 */
export function latencySummaryJson(summary: LatencySummary): LatencySummary {
  return {
    min: summary.min,
    avg: summary.avg,
    max: summary.max,
    mdev: summary.mdev,
    p50: summary.p50,
    p90: summary.p90,
    p99: summary.p99,
  };
}

/**
 * The RFC 3550 §6.4.1 interarrival jitter estimator, fed with one transit time per packet in
 * arrival order: J += (|D| − J) / 16, where D is the difference of consecutive transit times.
 * Applied to round-trip times it measures RTT variation.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { JitterEstimator } from "./latency.ts";
 * const jitter = new JitterEstimator();
 * jitter.update(10);
 * strictEqual(jitter.value, null);
 * jitter.update(26);
 * strictEqual(jitter.value, 1);
 * ```
 */
export class JitterEstimator {
  #previous: number | null = null;
  #jitter: number | null = null;

  /** Feeds the next packet's transit (or round-trip) time in milliseconds. */
  update(transitMs: number): void {
    if (this.#previous !== null) {
      const difference = Math.abs(transitMs - this.#previous);
      this.#jitter = (this.#jitter ?? 0) + (difference - (this.#jitter ?? 0)) / 16;
    }
    this.#previous = transitMs;
  }

  /** The current estimate in milliseconds; null until two packets were seen. */
  get value(): number | null {
    return this.#jitter;
  }
}

/**
 * RFC 4737 §3.3 reordering: a packet is reordered when its send index is lower than the next
 * expected index (one more than the highest index seen so far).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { ReorderDetector } from "./latency.ts";
 * const detector = new ReorderDetector();
 * assertEquals([0, 2, 1, 3].map((index) => detector.observe(index)), [false, false, true, false]);
 * strictEqual(detector.reordered, 1);
 * ```
 */
export class ReorderDetector {
  #nextExpected = 0;
  #reordered = 0;

  /** Observes the next arrival's send index; returns whether it is reordered. */
  observe(index: number): boolean {
    if (index < this.#nextExpected) {
      this.#reordered++;
      return true;
    }
    this.#nextExpected = index + 1;
    return false;
  }

  /** How many arrivals were reordered. */
  get reordered(): number {
    return this.#reordered;
  }
}
