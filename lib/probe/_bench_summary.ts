/**
 * The summary of one `udp bench` stream from what its run counted, and the sum of several
 * (`-P`).
 *
 * @module
 */

import { formatAddress } from "../net/mod.ts";
import type { LatencyStats } from "../stats/mod.ts";
import { type SessionCounts, UNKNOWN_COUNT } from "../wire/mod.ts";
import type { IcmpTally } from "./_icmp_tally.ts";
import type { StampPath } from "./_stamp_path.ts";
import { round } from "./_bench_intervals.ts";
import type { BenchOptions } from "./bench.ts";
import type { BenchMode, BenchSummary } from "./bench_report.ts";

/** What a run counted of its replies. */
export interface ReplyFigures {
  /** Replies, each probe once. */
  received: number;
  /** Further replies to a probe already answered. */
  duplicates: number;
  /** Replies that came after a later probe's. */
  reordered: number;
  /** RTTs, the reflector's time left out. */
  rtt: LatencyStats;
  /** Round trips, the reflector's time in. */
  roundTrip: LatencyStats;
  /** RFC 3550 jitter of the RTTs. */
  jitterMs: number | null;
}

/** Everything one run's summary is made of. */
export interface RunFacts {
  /** The run's options. */
  options: BenchOptions;
  /** How it used the path. */
  mode: BenchMode;
  /** Bytes of each datagram. */
  datagramBytes: number;
  /** Time spent sending. */
  seconds: number;
  /** Datagrams sent. */
  sent: number;
  /** Its replies. */
  replies: ReplyFigures;
  /** Replies that failed their check. */
  corrupted: number;
  /** Whether the target echoed the requests. */
  echoServer: boolean;
  /** ICMP errors about the datagrams. */
  icmp: IcmpTally;
  /** A STAMP run's per-direction accounting. */
  path: StampPath | null;
  /** Replies to one-way PINGs. */
  oneWayAnswered: number;
  /** The reflector's counts before the run, and after it. */
  before: SessionCounts | null;
  /** After it. */
  after: SessionCounts | null;
}

/** The summary of one run. */
export function benchSummary(facts: RunFacts): BenchSummary {
  const { seconds, before, after, replies } = facts;
  const sent = facts.sent;
  const oneWay = facts.mode === "one-way";
  const arrivals = after?.arrivals ?? null;
  // One-way: what arrived is the reflector's count, each sequence number once.
  const received = !oneWay
    ? replies.received
    : after === null || arrivals === null
    ? null
    : after.received - arrivals.duplicates;
  const bits = facts.datagramBytes * 8;
  const refused = after === null ? null : {
    rate_limit: after.refusedRateLimit,
    global_limit: after.refusedGlobalLimit,
    auth: after.refusedAuth,
    replay: after.refusedReplay,
  };
  const refusedTotal = refused === null
    ? 0
    : refused.rate_limit + refused.global_limit + refused.auth + refused.replay;
  const path = facts.path?.summary(replies.received);
  const knowsDrops = before !== null && after !== null &&
    before.kernelDrops !== UNKNOWN_COUNT && after.kernelDrops !== UNKNOWN_COUNT;
  const lossUp = after === null
    ? path?.lost_there ?? null
    : oneWay
    ? received === null ? null : sent - received - refusedTotal
    : sent - after.received - refusedTotal;
  return {
    type: "summary",
    stream: facts.options.stream ?? 1,
    streams: 1,
    mode: facts.mode,
    target: formatAddress(facts.options.target),
    datagram_bytes: facts.datagramBytes,
    duration_s: round(seconds, 3),
    sent,
    received,
    requested_pps: facts.options.rate === "max" ? null : facts.options.rate,
    offered_pps: round(sent / seconds, 1),
    offered_bps: round((sent * bits) / seconds, 0),
    achieved_pps: round((received ?? 0) / seconds, 1),
    achieved_bps: round(((received ?? 0) * bits) / seconds, 0),
    server_received: after?.received ?? null,
    server_replied: after?.replied ?? null,
    server_refused: refused,
    server_kernel_drops: knowsDrops ? (after!.kernelDrops - before!.kernelDrops) >>> 0 : null,
    loss_up: lossUp,
    loss_down: oneWay
      ? null
      : after === null
      ? path?.lost_back ?? null
      : after.replied - replies.received,
    loss_percent: sent === 0 || received === null ? null : ((sent - received) / sent) * 100,
    duplicates: oneWay ? arrivals?.duplicates ?? 0 : replies.duplicates,
    reordered: oneWay ? arrivals?.late ?? 0 : replies.reordered,
    corrupted: facts.corrupted,
    echo_server: facts.echoServer,
    errors: facts.icmp.errors,
    icmp: { ...facts.icmp.counts },
    rtt_ms: replies.rtt.summary(),
    round_trip_ms: replies.roundTrip.summary(),
    jitter_ms: oneWay
      ? arrivals === null || arrivals.jitterNs === UNKNOWN_COUNT ? null : arrivals.jitterNs / 1e6
      : replies.jitterMs,
    one_way_answered: facts.oneWayAnswered,
    back: null,
  };
}
