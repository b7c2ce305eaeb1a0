/**
 * What a bench run reports: its interval reports and its summary, and the JSON of each.
 *
 * @module
 */

import type { IcmpCounts } from "../net/mod.ts";
import { type LatencySummary, latencySummaryJson } from "../stats/mod.ts";

/** What the reflector refused of this session, by reason (from its STATS reply). */
export interface BenchRefusals {
  /** By the per-source rate limit. */
  rate_limit: number;
  /** By the global rate limit. */
  global_limit: number;
  /** For a missing or wrong tag. */
  auth: number;
  /** As stale or replayed. */
  replay: number;
}

/** How a run uses the path: PINGs reflected (the default), PINGs only there (`--one-way`),
 * a stream from the reflector only (`-R`), or both one-way streams at once (`--bidir`). */
export type BenchMode = "reflected" | "one-way" | "reverse" | "bidir";

/** What an interval line counts: replies to PINGs (reflected), PINGs as the reflector
 * received them (there), or the reflector's stream as this host received it (back). */
export type BenchDirection = "reflected" | "there" | "back";

/** One interval report (counts within the interval). A count the receiver's report did not
 * bring (a one-way run's STATS lost) is null, with what is computed from it. */
export interface BenchInterval {
  /** Always "interval". */
  type: "interval";
  /** The stream, 1 to `-P`; 0 for the sum of all streams. */
  stream: number;
  /** What the interval's counts are of. */
  direction: BenchDirection;
  /** Interval start, seconds since the start. */
  start_s: number;
  /** Interval end, seconds since the start. */
  end_s: number;
  /** Datagrams sent in the interval (back: the reflector's stream; null when it has not
   * said). */
  sent: number | null;
  /** Datagrams received in the interval, each sequence number once (reflected: replies). */
  received: number | null;
  /** Datagrams sent per second. */
  sent_pps: number | null;
  /** Datagrams received per second. */
  received_pps: number | null;
  /** Bits per second of UDP payload received. */
  received_bps: number | null;
  /** Sequence numbers found missing in the interval (skipped when a later one arrived). */
  lost: number | null;
  /** Datagrams that arrived in the interval after a later one: they filled a gap counted as
   * lost before (RFC 4737 reordering). */
  late: number | null;
  /** Datagrams received again in the interval. */
  duplicates: number | null;
  /** RFC 3550 jitter at the interval's end, ms: of the RTT (reflected), else of the one-way
   * transit. */
  jitter_ms: number | null;
  /** The median RTT of the interval's replies (reflected only; else null). */
  rtt_p50_ms: number | null;
}

/** The reflector's stream to this host (`-R`, `--bidir`), as it arrived. */
export interface BenchBack {
  /** Datagrams per second asked for. */
  requested_pps: number;
  /** Datagrams per second the reflector granted (its caps), null when it never answered. */
  granted_pps: number | null;
  /** Datagrams the reflector says it sent; null when its last word did not arrive. */
  sent: number | null;
  /** Datagrams received, each sequence number once. */
  received: number;
  /** sent − received (null without the reflector's count). */
  lost: number | null;
  /** Datagrams that arrived after a later one. */
  late: number;
  /** Datagrams received again. */
  duplicates: number;
  /** Datagrams that failed their check: not counted as received. */
  corrupted: number;
  /** Datagrams per second received over the run's time. */
  achieved_pps: number;
  /** Bits per second of UDP payload received. */
  achieved_bps: number;
  /** RFC 3550 jitter of the one-way transit, ms; null until two arrived. */
  jitter_ms: number | null;
  /** Why the reflector refused or stopped the stream, if it did; else null. */
  refused: string | null;
}

/** The result of a run; `--json` prints exactly these keys. */
export interface BenchSummary {
  /** "summary"; "stream_summary" for one stream of several (`-P`). */
  type: "summary" | "stream_summary";
  /** The stream, 1 to `-P`, of a stream summary; 0 for the summary (of them all). */
  stream: number;
  /** How many streams ran (`-P`); 1 on a stream summary. */
  streams: number;
  /** How the run used the path. */
  mode: BenchMode;
  /** The target as HOST:PORT (IPv6 in brackets). */
  target: string;
  /** Bytes per datagram (header + padding). */
  datagram_bytes: number;
  /** Time spent sending, seconds. */
  duration_s: number;
  /** Datagrams sent. */
  sent: number;
  /** Replies received (each probe counted once); a one-way run: the PINGs the reflector
   * received, each once (null when its STATS did not arrive); reverse: 0. */
  received: number | null;
  /** What was asked for (null for "max"). */
  requested_pps: number | null;
  /** Datagrams per second the sender achieved. */
  offered_pps: number;
  /** Bits per second of UDP payload the sender achieved. */
  offered_bps: number;
  /** Replies per second over the sending time. */
  achieved_pps: number;
  /** Bits per second of reply payload over the sending time. */
  achieved_bps: number;
  /** The reflector's count of this session's PINGs (null when its STATS reply never came). */
  server_received: number | null;
  /** The reflector's count of its PONGs to them (null when its STATS reply never came). */
  server_replied: number | null;
  /** What the reflector refused of this session (its limits and checks: not the network's
   * loss); null without its STATS reply. */
  server_refused: BenchRefusals | null;
  /** Datagrams the reflector's kernel dropped on its socket during the run (receive buffer
   * full), from any source; null when it cannot say or its STATS replies did not come. */
  server_kernel_drops: number | null;
  /** Lost on the way there: sent − server_received − refused (the server kernel's drops
   * included); null without the server's counts. */
  loss_up: number | null;
  /** Lost on the way back: server_replied − received; null without the server's counts. */
  loss_down: number | null;
  /** (sent − received) / sent × 100: everything not back, refusals included; null when
   * nothing was sent. */
  loss_percent: number | null;
  /** Replies that failed their check (damaged on the way): not counted as received. */
  corrupted: number;
  /** Whether the target answered as a plain echo server (no STATS, no timestamps). */
  echo_server: boolean;
  /** Datagrams that drew an ICMP error (their loss is not silent). */
  errors: number;
  /** The ICMP errors about the datagrams, by kind. */
  icmp: IcmpCounts;
  /** Further replies to a probe already answered (network duplication). */
  duplicates: number;
  /** Replies that arrived after a later probe's reply (RFC 4737). */
  reordered: number;
  /** RTTs as `udp ping` counts them: the reflector's time left out when it says
   * (lib/stats/rtt.ts). */
  rtt_ms: LatencySummary;
  /** The same round trips with the reflector's time in. */
  round_trip_ms: LatencySummary;
  /** RFC 3550 jitter of the RTTs (a one-way run: of the transit, by the reflector); null
   * until two replies were received. */
  jitter_ms: number | null;
  /** A one-way run's PINGs that were answered all the same (a reflector that predates
   * one-way mode answers them: the way back was not idle); 0 otherwise. */
  one_way_answered: number;
  /** The reflector's stream (`-R`, `--bidir`); null in the other modes. */
  back: BenchBack | null;
}

/**
 * An interval report as JSON (a line of `udp bench --json`): exactly its keys, in this order.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { benchIntervalJson } from "./bench_report.ts";
 * const json = benchIntervalJson({
 *   type: "interval", stream: 1, direction: "reflected", start_s: 0, end_s: 1, sent: 10,
 *   received: 9, sent_pps: 10, received_pps: 9, received_bps: 7488, lost: 1, late: 0,
 *   duplicates: 0, jitter_ms: 0.01, rtt_p50_ms: 0.05,
 * });
 * strictEqual(
 *   JSON.stringify(json),
 *   '{"type":"interval","stream":1,"direction":"reflected","start_s":0,"end_s":1,"sent":10,' +
 *     '"received":9,"sent_pps":10,"received_pps":9,"received_bps":7488,"lost":1,"late":0,' +
 *     '"duplicates":0,"jitter_ms":0.01,"rtt_p50_ms":0.05}',
 * );
 * ```
 */
export function benchIntervalJson(report: BenchInterval): BenchInterval {
  return {
    type: "interval",
    stream: report.stream,
    direction: report.direction,
    start_s: report.start_s,
    end_s: report.end_s,
    sent: report.sent,
    received: report.received,
    sent_pps: report.sent_pps,
    received_pps: report.received_pps,
    received_bps: report.received_bps,
    lost: report.lost,
    late: report.late,
    duplicates: report.duplicates,
    jitter_ms: report.jitter_ms,
    rtt_p50_ms: report.rtt_p50_ms,
  };
}

/**
 * The summary as JSON (`udp bench --json`'s last line, and a search's best trial): exactly
 * its keys, in this order. Numbers are as measured; the writer (`--json`) rounds times to
 * the nanosecond.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { bench } from "./bench.ts";
 * import { benchSummaryJson } from "./bench_report.ts";
 * import { Reflector } from "../reflector/reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const summary = await bench({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   rate: 100,
 *   durationMs: 100,
 *   payloadSize: 56,
 *   graceMs: 100,
 * });
 * await reflector.close();
 * const json = benchSummaryJson(summary);
 * strictEqual(Object.keys(json).slice(0, 5).join(" "), "type stream streams mode target");
 * strictEqual(
 *   JSON.stringify(json.server_refused),
 *   '{"rate_limit":0,"global_limit":0,"auth":0,"replay":0}',
 * );
 * ```
 */
export function benchSummaryJson(summary: BenchSummary): BenchSummary {
  const refused = summary.server_refused;
  const back = summary.back;
  return {
    type: summary.type,
    stream: summary.stream,
    streams: summary.streams,
    mode: summary.mode,
    target: summary.target,
    datagram_bytes: summary.datagram_bytes,
    duration_s: summary.duration_s,
    sent: summary.sent,
    received: summary.received,
    requested_pps: summary.requested_pps,
    offered_pps: summary.offered_pps,
    offered_bps: summary.offered_bps,
    achieved_pps: summary.achieved_pps,
    achieved_bps: summary.achieved_bps,
    server_received: summary.server_received,
    server_replied: summary.server_replied,
    server_refused: refused === null ? null : {
      rate_limit: refused.rate_limit,
      global_limit: refused.global_limit,
      auth: refused.auth,
      replay: refused.replay,
    },
    server_kernel_drops: summary.server_kernel_drops,
    loss_up: summary.loss_up,
    loss_down: summary.loss_down,
    loss_percent: summary.loss_percent,
    duplicates: summary.duplicates,
    reordered: summary.reordered,
    corrupted: summary.corrupted,
    echo_server: summary.echo_server,
    errors: summary.errors,
    icmp: { ...summary.icmp },
    rtt_ms: latencySummaryJson(summary.rtt_ms),
    round_trip_ms: latencySummaryJson(summary.round_trip_ms),
    jitter_ms: summary.jitter_ms,
    one_way_answered: summary.one_way_answered,
    back: back === null ? null : {
      requested_pps: back.requested_pps,
      granted_pps: back.granted_pps,
      sent: back.sent,
      received: back.received,
      lost: back.lost,
      late: back.late,
      duplicates: back.duplicates,
      corrupted: back.corrupted,
      achieved_pps: back.achieved_pps,
      achieved_bps: back.achieved_bps,
      jitter_ms: back.jitter_ms,
      refused: back.refused,
    },
  };
}
