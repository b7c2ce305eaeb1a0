/**
 * Statistics of values that may be negative: delay variations (IPDV, RFC 5481) and one-way
 * delays between two clocks, which a histogram of latencies cannot hold.
 *
 * @module
 */

/** The summary of a {@linkcode SignedStats}: all null before the first value. */
export interface SignedSummary {
  /** How many values. */
  samples: number;
  /** The smallest. */
  min: number | null;
  /** The mean. */
  avg: number | null;
  /** The largest. */
  max: number | null;
  /** The mean of the absolute values (for IPDV: the mean delay variation either way). */
  mean_abs: number | null;
}

/**
 * Count, minimum, mean, maximum and mean absolute value of a stream, in constant memory.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { SignedStats } from "./signed_stats.ts";
 * const stats = new SignedStats();
 * for (const value of [-2, 1, 4]) stats.record(value);
 * deepStrictEqual(stats.summary(), { samples: 3, min: -2, avg: 1, max: 4, mean_abs: 7 / 3 });
 * ```
 */
export class SignedStats {
  #samples = 0;
  #min = Infinity;
  #max = -Infinity;
  #sum = 0;
  #sumAbs = 0;

  /** Adds a value. */
  record(value: number): void {
    this.#samples++;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    this.#sum += value;
    this.#sumAbs += Math.abs(value);
  }

  /** The values' summary so far. */
  summary(): SignedSummary {
    const n = this.#samples;
    if (n === 0) return { samples: 0, min: null, avg: null, max: null, mean_abs: null };
    return {
      samples: n,
      min: this.#min,
      avg: this.#sum / n,
      max: this.#max,
      mean_abs: this.#sumAbs / n,
    };
  }
}
