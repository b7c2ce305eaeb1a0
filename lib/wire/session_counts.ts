/**
 * The payload of a STATS frame (docs/protocol.md, "STATS"): a reflector's counts for one
 * session and two of its own, eight big-endian u32, and, where the request has room, what the
 * session's arrivals looked like (gaps, late, duplicates, one-way jitter, bytes, first and
 * last arrival). Pure; no I/O.
 *
 * @module
 */

import { readTimestamp, type Timestamp, writeTimestamp } from "./timestamp.ts";

/**
 * The payload of a STATS frame: the reflector's counts for one session, and two of its own
 * (all sources), so that a client can tell the server's refusals and its kernel's drops from
 * loss on the path. Counts are modulo 2^32.
 */
export interface SessionCounts {
  /** PINGs of the session the reflector received and accepted. */
  received: number;
  /** PONGs it sent for them. */
  replied: number;
  /** The session's datagrams refused by the per-source rate limit. */
  refusedRateLimit: number;
  /** The session's datagrams refused by the global rate limit. */
  refusedGlobalLimit: number;
  /** The session's requests refused for a missing or wrong tag (authenticated mode). */
  refusedAuth: number;
  /** The session's requests refused as stale or replayed (authenticated mode). */
  refusedReplay: number;
  /** Datagrams its kernel dropped on the socket (receive buffer full), all sources, since it
   * started; {@linkcode UNKNOWN_COUNT} where the kernel does not say. */
  kernelDrops: number;
  /** Datagrams that failed their check (corrupted), all sources, since it started. */
  corrupted: number;
  /** How the session's PINGs arrived, where the STATS carries it; null when it does not (a
   * request without room for it, or a reflector that predates it). */
  arrivals?: ArrivalCounts | null;
}

/**
 * How a session's accepted PINGs arrived at the reflector (docs/protocol.md, "Arrival
 * counts"): what a one-way run (`udp bench --one-way`) learns of its datagrams. Counts are
 * modulo 2^32.
 */
export interface ArrivalCounts {
  /** The highest sequence number received + 1; 0 before any. */
  sequenceEnd: number;
  /** Sequence numbers skipped when a higher one arrived. */
  gaps: number;
  /** PINGs that arrived below the highest received and filled a gap. */
  late: number;
  /** PINGs of a sequence number already received (within the last 1,024). */
  duplicates: number;
  /** RFC 3550 jitter of the PINGs' one-way transit, ns; {@linkcode UNKNOWN_COUNT} until two
   * arrived. */
  jitterNs: number;
  /** Bytes of the PINGs received (UDP payload), modulo 2^64 (exact below 2^53). */
  bytes: number;
  /** The first PING's arrival by the reflector's clock; zero before any. */
  firstArrival: Timestamp;
  /** The last PING's arrival. */
  lastArrival: Timestamp;
}

/** The fields of a STATS payload, in their order on the wire (each a big-endian u32). */
const STATS_FIELDS = [
  "received",
  "replied",
  "refusedRateLimit",
  "refusedGlobalLimit",
  "refusedAuth",
  "refusedReplay",
  "kernelDrops",
  "corrupted",
] as const satisfies readonly (keyof SessionCounts)[];

/** Bytes of a STATS payload: eight big-endian u32. */
export const STATS_PAYLOAD_SIZE = 4 * STATS_FIELDS.length;

/** Bytes of the arrival counts, after the eight counts. */
export const ARRIVAL_COUNTS_SIZE = 44;

/** Bytes of a STATS payload with the arrival counts: what a sender's request carries. */
export const STATS_ARRIVALS_PAYLOAD_SIZE = STATS_PAYLOAD_SIZE + ARRIVAL_COUNTS_SIZE;

/** A count the reflector cannot know (`kernelDrops` where the kernel does not say). */
export const UNKNOWN_COUNT = 0xffff_ffff;

/**
 * A session's counts before anything arrived.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { emptySessionCounts } from "./session_counts.ts";
 * strictEqual(emptySessionCounts().received, 0);
 * ```
 */
export function emptySessionCounts(): SessionCounts {
  return {
    received: 0,
    replied: 0,
    refusedRateLimit: 0,
    refusedGlobalLimit: 0,
    refusedAuth: 0,
    refusedReplay: 0,
    kernelDrops: 0,
    corrupted: 0,
  };
}

/**
 * Writes the counts as a STATS payload at `offset` (each modulo 2^32).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import {
 *   decodeStats, emptySessionCounts, STATS_PAYLOAD_SIZE, writeSessionCounts,
 * } from "./session_counts.ts";
 * const payload = new Uint8Array(STATS_PAYLOAD_SIZE);
 * writeSessionCounts(new DataView(payload.buffer), 0, { ...emptySessionCounts(), replied: 3 });
 * strictEqual(decodeStats(payload)?.replied, 3);
 * ```
 */
export function writeSessionCounts(view: DataView, offset: number, counts: SessionCounts): void {
  STATS_FIELDS.forEach((field, i) => view.setUint32(offset + 4 * i, counts[field] >>> 0));
}

/**
 * Reads the counts from a STATS payload; null when it is too short.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeStats, STATS_PAYLOAD_SIZE } from "./session_counts.ts";
 * const payload = new Uint8Array(STATS_PAYLOAD_SIZE);
 * payload[3] = 2; // received
 * payload[7] = 1; // replied
 * strictEqual(decodeStats(payload)?.received, 2);
 * strictEqual(decodeStats(payload.subarray(0, 8)), null);
 * ```
 */
export function decodeStats(payload: Uint8Array): SessionCounts | null {
  if (payload.length < STATS_PAYLOAD_SIZE) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const counts = emptySessionCounts();
  STATS_FIELDS.forEach((field, i) => counts[field] = view.getUint32(4 * i));
  const arrivals = readArrivalCounts(payload);
  if (arrivals !== null) counts.arrivals = arrivals;
  return counts;
}

/**
 * Writes the arrival counts after the eight counts, at `offset` (the STATS payload's start).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import {
 *   readArrivalCounts, STATS_ARRIVALS_PAYLOAD_SIZE, writeArrivalCounts,
 * } from "./session_counts.ts";
 * const payload = new Uint8Array(STATS_ARRIVALS_PAYLOAD_SIZE);
 * const at = { seconds: 1_700_000_000, nanos: 5 };
 * writeArrivalCounts(new DataView(payload.buffer), 0, {
 *   sequenceEnd: 10, gaps: 1, late: 0, duplicates: 0, jitterNs: 2500, bytes: 2 ** 40,
 *   firstArrival: at, lastArrival: at,
 * });
 * strictEqual(readArrivalCounts(payload)?.bytes, 2 ** 40);
 * ```
 */
export function writeArrivalCounts(view: DataView, offset: number, counts: ArrivalCounts): void {
  const at = offset + STATS_PAYLOAD_SIZE;
  view.setUint32(at, counts.sequenceEnd >>> 0);
  view.setUint32(at + 4, counts.gaps >>> 0);
  view.setUint32(at + 8, counts.late >>> 0);
  view.setUint32(at + 12, counts.duplicates >>> 0);
  view.setUint32(at + 16, counts.jitterNs >>> 0);
  view.setUint32(at + 20, Math.floor(counts.bytes / 2 ** 32) >>> 0);
  view.setUint32(at + 24, counts.bytes >>> 0);
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  writeTimestamp(bytes, at + 28, counts.firstArrival);
  writeTimestamp(bytes, at + 36, counts.lastArrival);
}

/**
 * Fills the arrival counts' room of a STATS request with `ff` bytes: a reflector that does not
 * write them leaves them so, and no reflector that does can (its timestamps' nanoseconds are
 * below 10^9), so {@linkcode readArrivalCounts} tells the two apart.
 */
export function markArrivalsUnwritten(payload: Uint8Array): void {
  payload.fill(0xff, STATS_PAYLOAD_SIZE, STATS_ARRIVALS_PAYLOAD_SIZE);
}

/**
 * Reads the arrival counts of a STATS payload; null when it is too short for them or the
 * reflector did not write them (the request's `ff` bytes are still there).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import {
 *   markArrivalsUnwritten, readArrivalCounts, STATS_ARRIVALS_PAYLOAD_SIZE,
 * } from "./session_counts.ts";
 * const payload = new Uint8Array(STATS_ARRIVALS_PAYLOAD_SIZE);
 * markArrivalsUnwritten(payload);
 * strictEqual(readArrivalCounts(payload), null); // an older reflector's STATS
 * strictEqual(readArrivalCounts(payload.subarray(0, 40)), null);
 * ```
 */
export function readArrivalCounts(payload: Uint8Array): ArrivalCounts | null {
  if (payload.length < STATS_ARRIVALS_PAYLOAD_SIZE) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const at = STATS_PAYLOAD_SIZE;
  const firstArrival = readTimestamp(payload, at + 28);
  const lastArrival = readTimestamp(payload, at + 36);
  if (firstArrival === null || lastArrival === null) return null;
  return {
    sequenceEnd: view.getUint32(at),
    gaps: view.getUint32(at + 4),
    late: view.getUint32(at + 8),
    duplicates: view.getUint32(at + 12),
    jitterNs: view.getUint32(at + 16),
    bytes: view.getUint32(at + 20) * 2 ** 32 + view.getUint32(at + 24),
    firstArrival,
    lastArrival,
  };
}
