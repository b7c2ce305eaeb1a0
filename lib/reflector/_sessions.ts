/**
 * The reflector's table of sessions: each one's counts of PINGs received and answered and of
 * what was refused of it, for STATS_REQUEST (and STAMP's stateful sequence and Direct
 * Measurement). Bounded: the oldest session (STAMP: the least recently used) is forgotten when
 * the table is full.
 *
 * @module
 */

import { ArrivalTracker } from "../stats/mod.ts";
import {
  type ArrivalCounts,
  emptySessionCounts,
  NO_TIMESTAMP,
  type SessionCounts,
  timestampFromMs,
  UNKNOWN_COUNT,
} from "../wire/mod.ts";
import type { RefusalReason } from "./reflector_stats.ts";

/** Sessions whose PING counts a reflector keeps for STATS_REQUEST. */
export const MAX_SESSIONS = 4096;

/** A session's counts, and how its PINGs arrived (its STATS's arrival counts). */
export interface Session extends SessionCounts {
  /** Every accepted PING of the session, by sequence number. */
  readonly tracker: ArrivalTracker;
}

/**
 * The arrival counts a STATS carries, from a session's tracker.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ArrivalTracker } from "../stats/mod.ts";
 * import { arrivalCounts } from "./_sessions.ts";
 * const tracker = new ArrivalTracker();
 * tracker.observe(0, 3, 64, 1_700_000_000_000);
 * strictEqual(arrivalCounts(tracker).jitterNs, 0xffff_ffff); // one arrival: no jitter yet
 * strictEqual(arrivalCounts(tracker).firstArrival.seconds, 1_700_000_000);
 * ```
 */
export function arrivalCounts(tracker: ArrivalTracker): ArrivalCounts {
  const seen = tracker.snapshot();
  return {
    sequenceEnd: seen.sequenceEnd,
    gaps: seen.gaps,
    late: seen.late,
    duplicates: seen.duplicates,
    jitterNs: seen.jitterMs === null
      ? UNKNOWN_COUNT
      : Math.min(Math.round(seen.jitterMs * 1e6), UNKNOWN_COUNT - 1),
    bytes: seen.bytes,
    firstArrival: seen.firstMs === null ? NO_TIMESTAMP : timestampFromMs(seen.firstMs),
    lastArrival: seen.lastMs === null ? NO_TIMESTAMP : timestampFromMs(seen.lastMs),
  };
}

/**
 * Sessions keyed by number, or, where the format says sessions are told apart by source too
 * (STAMP's 16-bit Session-Sender Identifier), by source, port and number.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { SessionTable } from "./_sessions.ts";
 * const table = new SessionTable(false);
 * const from = { hostname: "127.0.0.1", port: 9 };
 * table.countsFor(table.keyOf(7, from)).received++;
 * table.countRefusal(7, "rate-limit");
 * table.countRefusal(8, "rate-limit"); // unknown: not counted, no entry made
 * strictEqual(table.get(7)?.refusedRateLimit, 1);
 * strictEqual(table.get(8), undefined);
 * ```
 */
export class SessionTable {
  readonly #sessions = new Map<number | string, Session>();
  readonly #bySource: boolean;

  /** A table keyed by session number, or by source, port and number when `bySource`. */
  constructor(bySource: boolean) {
    this.#bySource = bySource;
  }

  /** The key of session `session` from `from`. */
  keyOf(session: number, from: { hostname: string; port: number }): number | string {
    if (!this.#bySource) return session;
    return `${from.hostname} ${from.port} ${session}`;
  }

  /** The counts of a known session; undefined for another. */
  get(key: number | string): Session | undefined {
    return this.#sessions.get(key);
  }

  /** The counts of a session, made (forgetting the oldest when full) if it is new. */
  countsFor(key: number | string): Session {
    let counts = this.#sessions.get(key);
    if (counts !== undefined && this.#bySource) {
      // Used now: to the end of the order, so that the table forgets the least recently used
      // (a STAMP session's counts are its stateful sequence and Direct Measurement).
      this.#sessions.delete(key);
      this.#sessions.set(key, counts);
    }
    if (counts === undefined) {
      if (this.#sessions.size >= MAX_SESSIONS) {
        this.#sessions.delete(this.#sessions.keys().next().value!);
      }
      counts = { ...emptySessionCounts(), tracker: new ArrivalTracker() };
      this.#sessions.set(key, counts);
    }
    return counts;
  }

  /**
   * Counts a refusal for the session it belongs to, when that session is known (it had a
   * request accepted): never a new entry, so a flood of made-up sessions cannot push real
   * ones out.
   */
  countRefusal(session: number | null, reason: RefusalReason): void {
    const counts = session === null ? undefined : this.#sessions.get(session);
    if (counts === undefined) return;
    if (reason === "rate-limit") counts.refusedRateLimit++;
    else if (reason === "global-limit") counts.refusedGlobalLimit++;
    else if (reason === "auth-missing" || reason === "auth-failed") counts.refusedAuth++;
    else counts.refusedReplay++;
  }
}
