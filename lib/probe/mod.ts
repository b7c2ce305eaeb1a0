/**
 * `lib/probe/`: the senders. `ping` sends probes, retransmits unanswered ones and accounts for
 * every reply exactly once (received, duplicate, late, redundant or foreign); `bench` sends
 * paced load and asks the reflector for its counts (STATS) so that loss is told apart per
 * direction. Both speak a wire format of `lib/wire/` (the `udp` frame format unless told
 * otherwise); each report has its serialiser beside it (the JSON `--json` prints).
 *
 * @example Ping a local reflector, and the summary's JSON
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/mod.ts";
 * import { ping, pingSummaryJson } from "./mod.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const result = await ping({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   count: 2,
 *   intervalMs: 0,
 * });
 * await reflector.close();
 * strictEqual(pingSummaryJson(result.summary).received, 2);
 * ```
 *
 * @module
 */

export {
  DEFAULT_INTERVAL_MS,
  DEFAULT_PAYLOAD_SIZE,
  DEFAULT_TIMEOUT_MS,
  MAX_RETRIES,
  ping,
  type PingOptions,
  PROBE_WINDOW,
} from "./ping.ts";
export {
  type ArrivalSummary,
  type ForeignReason,
  type IcmpEvent,
  type PingEvent,
  type PingResult,
  type PingSummary,
  pingSummaryJson,
  type StampPathNotes,
  type StampPathSummary,
  type StopReason,
} from "./ping_report.ts";
export { bench, BENCH_WINDOW, type BenchOptions, benchStreams } from "./bench.ts";
export { probeBytes } from "./_sender.ts";
export {
  type BenchBack,
  type BenchDirection,
  type BenchInterval,
  benchIntervalJson,
  type BenchMode,
  type BenchRefusals,
  type BenchSummary,
  benchSummaryJson,
} from "./bench_report.ts";
export {
  type IntervalRtt,
  Monitor,
  type MonitorOptions,
  type MonitorTarget,
  RTT_BUCKETS_SECONDS,
  type TargetCounters,
} from "./monitor.ts";
export { monitorMetrics } from "./monitor_metrics.ts";
export {
  DEFAULT_NAT_MAX_S,
  DEFAULT_NAT_RESOLUTION_S,
  DEFAULT_NAT_WAIT_MS,
  LADDER_S,
  MAX_NAT_S,
  MAX_ROUNDS,
  nat,
  NAT_SPACING_MS,
  type NatOptions,
} from "./nat.ts";
export {
  type NatEvent,
  type NatResult,
  type NatStopReason,
  type NatSummary,
  natSummaryJson,
  type SearchOutcome,
} from "./nat_report.ts";
// Types of other folders this face's API refers to.
export type { Family, ResolvedAddress } from "../net/mod.ts";
export type { LatencySummary } from "../stats/mod.ts";
export type * from "../wire/probe_format.ts";
export type { SessionCounts, Timestamp } from "../wire/mod.ts";
