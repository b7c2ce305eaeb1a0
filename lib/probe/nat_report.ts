/**
 * What a `udp nat` run reports: its events as they happen, and its summary with the JSON of it.
 *
 * @module
 */

import type { SearchOutcome } from "./_nat_search.ts";

export type { SearchOutcome } from "./_nat_search.ts";

/** Events of a `udp nat` run; `--json` prints each as one NDJSON line. */
export type NatEvent =
  | {
    /** The first probe's answer, at once: where this host is seen from. */
    type: "mapping";
    /** This host's address and port as its socket has them (null where the socket cannot
     * tell its address: Deno's sockets). */
    local_address: string | null;
    /** The address and port the reflector saw. */
    mapped_address: string;
    /** Whether they differ: a NAT (or a proxy) in between; null when the local one is not
     * known. */
    nat: boolean | null;
    /** Whether the mapped port is this host's own. */
    port_preserved: boolean;
  }
  | {
    /** A trial ended: one delayed reply asked for after `delay_s` of silence. */
    type: "trial";
    /** The search's round (1: the ladder). */
    round: number;
    /** The delay asked for, in seconds. */
    delay_s: number;
    /** Whether the reply came within the delay and the wait past it. */
    replied: boolean;
    /** The trial's own source port (a fresh mapping). */
    local_port: number;
    /** The address and port the reflector saw it from; null without a reply. */
    mapped_address: string | null;
    /** From the request's send to the reply's arrival; null without a reply. */
    elapsed_s: number | null;
    /** How long the reflector held the request, by its clock; null when not told. */
    held_s: number | null;
  }
  | {
    /** The reflector answered in a way that ends the run (an ERROR, a delay ignored). */
    type: "error";
    message: string;
  };

/** The final numbers of a run; `--json` prints exactly these keys, in this order. */
export interface NatSummary {
  /** Always "summary". */
  type: "summary";
  /** The reflector, HOST:PORT. */
  target: string;
  /** This host's address and port for the first probe; null when not known. */
  local_address: string | null;
  /** The address and port the reflector saw the first probe from (as STUN reports it);
   * null when it did not answer. */
  mapped_address: string | null;
  /** Whether the mapped address or port differs from this host's; null when not known. */
  nat: boolean | null;
  /** Whether every mapping seen kept this host's source port; null when none was seen. */
  port_preserved: boolean | null;
  /** The longest silence (seconds) after which a reply still came, when a longer one's
   * reply, asked twice, never did; null otherwise (`binding_outcome` says why). */
  binding_timeout_s: number | null;
  /** "found"; "at-least-max": every delay up to `max_s` got its reply (the mapping lasts at
   * least that long); "under-min": not even the shortest got one; "inconclusive": loss kept
   * expiry from being told; "not-searched": the run ended before (no reply, an error, Ctrl-C). */
  binding_outcome: SearchOutcome | "not-searched";
  /** The shortest delay whose reply never came, twice (the mapping had expired by then);
   * null when none. */
  expired_s: number | null;
  /** The longest delay whose reply came; null when none did. */
  longest_replied_s: number | null;
  /** The longest delay the search would try. */
  max_s: number;
  /** Every delay tried, in seconds, in order. */
  tried: number[];
  /** Trials that ran to their end (the first probe not counted). */
  trials: number;
  /** Of them, those whose reply came. */
  replied: number;
  /** Trials whose reply did not come though a longer delay's did: lost, not expired. */
  lost: number;
  /** Trials not waited for to the end: a shorter delay had already expired. */
  cancelled: number;
  /** Run time in milliseconds. */
  time_ms: number;
}

/** Why a run ended. */
export type NatStopReason = "done" | "no-reply" | "protocol-error" | "interrupted";

/** Everything a run found. */
export interface NatResult {
  /** The summary (the JSON object). */
  summary: NatSummary;
  /** Why the run ended. */
  stopReason: NatStopReason;
  /** What ended it, for "protocol-error". */
  error: string | null;
}

/**
 * The summary as JSON (`udp nat --json`'s last line): exactly its keys, in this order.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { natSummaryJson, type NatSummary } from "./nat_report.ts";
 * const summary: NatSummary = {
 *   type: "summary", target: "192.0.2.1:9999", local_address: "10.0.0.2:40000",
 *   mapped_address: "198.51.100.1:40000", nat: true, port_preserved: true,
 *   binding_timeout_s: 29, binding_outcome: "found", expired_s: 30, longest_replied_s: 29,
 *   max_s: 120, tried: [1, 2, 3, 5, 8, 13, 20, 29, 30, 45], trials: 20, replied: 16, lost: 0,
 *   cancelled: 4, time_ms: 92_000,
 * };
 * strictEqual(Object.keys(natSummaryJson(summary)).join(" "), "type target local_address " +
 *   "mapped_address nat port_preserved binding_timeout_s binding_outcome expired_s " +
 *   "longest_replied_s max_s tried trials replied lost cancelled time_ms");
 * ```
 */
export function natSummaryJson(summary: NatSummary): NatSummary {
  return {
    type: "summary",
    target: summary.target,
    local_address: summary.local_address,
    mapped_address: summary.mapped_address,
    nat: summary.nat,
    port_preserved: summary.port_preserved,
    binding_timeout_s: summary.binding_timeout_s,
    binding_outcome: summary.binding_outcome,
    expired_s: summary.expired_s,
    longest_replied_s: summary.longest_replied_s,
    max_s: summary.max_s,
    tried: [...summary.tried],
    trials: summary.trials,
    replied: summary.replied,
    lost: summary.lost,
    cancelled: summary.cancelled,
    time_ms: summary.time_ms,
  };
}
