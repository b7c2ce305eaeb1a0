/**
 * What a ping run reports: its events as they happen, its summary (and the JSON of it) and
 * what the text report adds to it.
 *
 * @module
 */

import type { IcmpCounts, IcmpKind } from "../net/mod.ts";
import { type LatencySummary, latencySummaryJson } from "../stats/mod.ts";
import type { StampPathNotes, StampPathSummary } from "./_stamp_path.ts";
import type { ArrivalSummary } from "./_path_arrival.ts";

export type { StampPathNotes, StampPathSummary } from "./_stamp_path.ts";
export type { ArrivalSummary } from "./_path_arrival.ts";

/** Why a datagram that reached the pinger was not a reply to it. */
export type ForeignReason =
  | "wrong-source"
  | "raw"
  | "malformed"
  | "unsupported-version"
  | "other-session"
  | "not-a-reply"
  | "unknown-probe"
  | "wrong-length"
  | "corrupted-request"
  | "bad-tag";

/** Events of a ping run; `--json` prints each as one NDJSON line. */
export type PingEvent =
  | {
    /** The first reply to a probe, within its timeout. */
    type: "reply";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    /** The network's round trip: the reflector's time (`server_ms`) left out (see
     * lib/stats/rtt.ts). */
    rtt_ms: number;
    /** How long the reflector held the probe (its reply minus its arrival timestamp), when given. */
    server_ms: number | null;
    /** Whether it arrived after a later-sent probe's reply (RFC 4737). */
    reordered: boolean;
  }
  | {
    /** A further reply to the same attempt of a probe: the network duplicated a datagram. */
    type: "duplicate";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    rtt_ms: number;
  }
  | {
    /** The first reply to a probe that had already timed out; the probe stays lost. */
    type: "late";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    /** null when the probe is too old for its send time to be remembered. */
    rtt_ms: number | null;
  }
  | {
    /** A reply to another attempt of a probe that already has its first reply. */
    type: "redundant";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    rtt_ms: number;
  }
  | { type: "timeout"; seq: number; attempts: number }
  | { type: "retransmit"; seq: number; attempt: number }
  | { type: "foreign"; from: string; bytes: number; reason: ForeignReason }
  | {
    /** A datagram from the target that failed its check: damaged on the way, not a reply. */
    type: "corrupted";
    from: string;
    bytes: number;
  }
  | {
    /** Once, at the first echoed PING: the target is a plain echo server, not a reflector. */
    type: "echo_server";
    from: string;
  }
  | {
    type: "send_error";
    seq: number;
    attempt: number;
    error: string;
    /** For "Message too long", the MTU of this host's link, where the kernel named it. */
    mtu: number | null;
  }
  | IcmpEvent
  | {
    /** The reflector answered with an ERROR frame; the run stops. */
    type: "error";
    from: string;
    code: number;
    message: string;
  };

/**
 * An ICMP error about one of the run's probes (port, host or net unreachable, filtered, too
 * big, TTL exceeded), as ping(8) reports it: the probe is not answered by it (it stays
 * pending until its timeout, then lost), but its loss is not silent.
 */
export interface IcmpEvent {
  /** Always "icmp". */
  type: "icmp";
  /** The probe it is about; null when it is older than the window. */
  seq: number | null;
  /** The transmission it is about. */
  attempt: number | null;
  /** Its kind. */
  kind: IcmpKind;
  /** The address that sent it (a router, or the target); null when the kernel did not say. */
  from: string | null;
  /** The ICMP (or ICMPv6) type. */
  icmp_type: number;
  /** The ICMP code. */
  icmp_code: number;
  /** The next-hop MTU of a "fragmentation needed" (ICMPv6: "packet too big"); else null. */
  mtu: number | null;
}

/** The final numbers of a run; `--json` prints exactly these keys. The path's keys
 * ({@linkcode StampPathSummary}) are STAMP's: null (or no samples) against udp serve; how the
 * probes arrived ({@linkcode ArrivalSummary}) both formats tell (udp's path report). */
export interface PingSummary extends StampPathSummary, ArrivalSummary {
  /** Always "summary". */
  type: "summary";
  /** The target as HOST:PORT (IPv6 in brackets). */
  target: string;
  /** Probes sent (retransmissions not counted). */
  transmitted: number;
  /** Probes answered within their timeout. */
  received: number;
  /** Probes whose timeout (after all retries) expired without a reply. */
  lost: number;
  /** Probes sent whose timeout had not expired when the run ended (Ctrl-C, -w): neither
   * received nor lost; transmitted = received + lost + in_flight. */
  in_flight: number;
  /** (transmitted − received) / transmitted × 100, as ping(8): a probe without a reply is
   * never counted as delivered, however the run ended; null when nothing was transmitted. */
  loss_percent: number | null;
  /** Further replies to an attempt that was already answered (network duplication). */
  duplicates: number;
  /** Received replies that arrived after a later-sent transmission's reply (RFC 4737). */
  reordered: number;
  /** Probes first answered after their timeout (they stay lost). */
  late: number;
  /** Datagrams that were not replies to this run. */
  foreign: number;
  /** Datagrams from the target that failed their check (damaged on the way): not replies. */
  corrupted: number;
  /** Whether the target answered as a plain echo server (the PINGs back unchanged, without
   * reflector timestamps) rather than a reflector. */
  echo_server: boolean;
  /** Retransmissions sent (`--retries`). */
  retransmitted: number;
  /** Run time in milliseconds. */
  time_ms: number;
  /**
   * RTTs of received probes in milliseconds: from the probe's send to its reply's arrival at
   * the socket, minus the time the reflector held it when it said (as irtt and TWAMP count).
   */
  rtt_ms: LatencySummary;
  /** The same round trips with the reflector's time in (what sockperf reports). */
  round_trip_ms: LatencySummary;
  /** How long the reflector held each probe, when it said (udp serve does; an echo does not). */
  server_ms: LatencySummary;
  /** RFC 3550 jitter of the RTTs; null until two replies were received. */
  jitter_ms: number | null;
  /** Probes that drew an ICMP error (ping(8)'s "+N errors"); each also received or lost. */
  errors: number;
  /** The ICMP errors about the run's probes, by kind. */
  icmp: IcmpCounts;
}

/** Why a run ended. */
export type StopReason = "count" | "deadline" | "interrupted" | "protocol-error";

/** Everything a run measured: the summary plus what the text report adds to it. */
export interface PingResult {
  /** The summary (the JSON object). */
  summary: PingSummary;
  /** Replies to retransmissions of probes that were already answered. */
  redundant: number;
  /** Transmissions that failed locally (not counted as transmitted). */
  sendErrors: number;
  /** Replies rejected for a missing or wrong tag (authenticated mode; also in `foreign`). */
  authFailures: number;
  /** Whether the quantiles are exact (few samples) rather than from the histogram. */
  exactQuantiles: boolean;
  /** Why the run ended. */
  stopReason: StopReason;
  /** The reflector's ERROR, when stopReason is "protocol-error". */
  protocolError?: string;
  /** STAMP: what the text report says of the path besides the summary; else null. */
  path: StampPathNotes | null;
}

/**
 * The summary as JSON (`udp ping --json`'s last line): exactly its keys, in this order.
 * Numbers are as measured; the writer (`--json`) rounds times to the nanosecond.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/reflector.ts";
 * import { ping } from "./ping.ts";
 * import { pingSummaryJson } from "./ping_report.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const { summary } = await ping({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   count: 1,
 * });
 * await reflector.close();
 * const json = pingSummaryJson(summary);
 * strictEqual(Object.keys(json).join(" "), "type target transmitted received lost in_flight " +
 *   "loss_percent duplicates reordered late foreign corrupted echo_server retransmitted " +
 *   "time_ms rtt_ms round_trip_ms server_ms jitter_ms errors icmp lost_there lost_back ipdv_there_ms " +
 *   "ipdv_back_ms one_way_there_ms one_way_back_ms hops_there dscp_sent dscp_received " +
 *   "ecn_sent ecn_received seen_as");
 * strictEqual(json.loss_percent, 0);
 * strictEqual(json.jitter_ms, null);
 * ```
 */
export function pingSummaryJson(summary: PingSummary): PingSummary {
  return {
    type: "summary",
    target: summary.target,
    transmitted: summary.transmitted,
    received: summary.received,
    lost: summary.lost,
    in_flight: summary.in_flight,
    loss_percent: summary.loss_percent,
    duplicates: summary.duplicates,
    reordered: summary.reordered,
    late: summary.late,
    foreign: summary.foreign,
    corrupted: summary.corrupted,
    echo_server: summary.echo_server,
    retransmitted: summary.retransmitted,
    time_ms: summary.time_ms,
    rtt_ms: latencySummaryJson(summary.rtt_ms),
    round_trip_ms: latencySummaryJson(summary.round_trip_ms),
    server_ms: latencySummaryJson(summary.server_ms),
    jitter_ms: summary.jitter_ms,
    errors: summary.errors,
    icmp: { ...summary.icmp },
    lost_there: summary.lost_there,
    lost_back: summary.lost_back,
    ipdv_there_ms: { ...summary.ipdv_there_ms },
    ipdv_back_ms: { ...summary.ipdv_back_ms },
    one_way_there_ms: summary.one_way_there_ms && { ...summary.one_way_there_ms },
    one_way_back_ms: summary.one_way_back_ms && { ...summary.one_way_back_ms },
    hops_there: summary.hops_there,
    dscp_sent: summary.dscp_sent,
    dscp_received: summary.dscp_received,
    ecn_sent: summary.ecn_sent,
    ecn_received: summary.ecn_received,
    seen_as: summary.seen_as,
  };
}
