/**
 * `lib/stats/`: the statistics behind ping's and bench's reports, in bounded memory: latency
 * extremes, mean, deviation and quantiles (exact, then from a histogram), RFC 3550 jitter,
 * RFC 4737 reordering, and one reply's round trip with the reflector's time left out. Each
 * statistics type has its serialiser beside it (the JSON `--json` prints).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { LatencyStats, latencySummaryJson, measureRoundTrip } from "./mod.ts";
 * const stats = new LatencyStats();
 * const held = { seconds: 1, nanos: 0 };
 * stats.record(measureRoundTrip(0, 2, 2, held, { seconds: 1, nanos: 500_000 }).rttMs);
 * assertEquals(latencySummaryJson(stats.summary()), {
 *   min: 1.5, avg: 1.5, max: 1.5, mdev: 0, p50: 1.5, p90: 1.5, p99: 1.5,
 * });
 * ```
 *
 * @module
 */

export { Histogram } from "./histogram.ts";
export {
  EXACT_SAMPLE_LIMIT,
  JitterEstimator,
  LatencyStats,
  type LatencySummary,
  latencySummaryJson,
  ReorderDetector,
} from "./latency.ts";
export { measureRoundTrip, type RoundTrip } from "./rtt.ts";
export { SignedStats, type SignedSummary } from "./signed_stats.ts";
/** The wire's timestamp, which {@linkcode measureRoundTrip} takes (from `lib/wire/`). */
export type { Timestamp } from "../wire/mod.ts";
export { ARRIVAL_WINDOW, type ArrivalSnapshot, ArrivalTracker } from "./arrivals.ts";
