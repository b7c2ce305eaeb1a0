/**
 * The payload of a STATS frame (docs/protocol.md, "STATS"): a reflector's counts for one
 * session and two of its own, eight big-endian u32. Pure; no I/O.
 *
 * @module
 */

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
  return counts;
}
