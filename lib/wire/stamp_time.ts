/**
 * STAMP's clocks on the wire (docs/stamp.md, "Timestamps"): the NTP 64-bit and PTPv2
 * truncated timestamp formats, and the error estimate that says which one a packet uses, how
 * good its clock is and whether it is synchronized (RFC 4656 §4.1.2, RFC 8186 §2.3).
 *
 * @module
 */

import type { Timestamp } from "./timestamp.ts";

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01). */
export const NTP_UNIX_OFFSET = 2_208_988_800;

/**
 * TAI − UTC in seconds, fixed since 2017-01-01 (IERS Bulletin C): PTP counts TAI seconds since
 * 1970, so a PTP timestamp is the UTC clock plus this.
 */
export const TAI_UTC_OFFSET = 37;

const TWO_32 = 0x1_0000_0000;
const NANOS = 1_000_000_000;

/** The two timestamp formats of RFC 8762 §4.2.1. */
export type TimestampFormat = "ntp" | "ptp";

/**
 * Writes `timestamp` (Unix seconds and nanoseconds, UTC) at `offset` in `format`.
 *
 * @example NTP carries seconds since 1900 and a binary fraction of a second
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { writeStampTimestamp } from "./stamp_time.ts";
 * const view = new DataView(new ArrayBuffer(8));
 * writeStampTimestamp(view, 0, { seconds: 0, nanos: 500_000_000 }, "ntp");
 * strictEqual(view.getUint32(0), 2_208_988_800);
 * strictEqual(view.getUint32(4), 0x8000_0000);
 * ```
 */
export function writeStampTimestamp(
  view: DataView,
  offset: number,
  timestamp: Timestamp,
  format: TimestampFormat,
): void {
  if (format === "ptp") {
    view.setUint32(offset, (timestamp.seconds + TAI_UTC_OFFSET) % TWO_32);
    view.setUint32(offset + 4, timestamp.nanos);
    return;
  }
  let seconds = timestamp.seconds + NTP_UNIX_OFFSET;
  // Rounded to the nearest fraction; a round up to the next second carries.
  let fraction = Math.round(timestamp.nanos * TWO_32 / NANOS);
  if (fraction === TWO_32) {
    fraction = 0;
    seconds++;
  }
  view.setUint32(offset, seconds % TWO_32); // era 1 (after 2036-02-07) wraps, as NTP does
  view.setUint32(offset + 4, fraction);
}

/**
 * Reads a timestamp written in `format` at `offset` as Unix seconds and nanoseconds (UTC);
 * null for a PTP timestamp whose nanoseconds are out of range. NTP seconds before 1970 are
 * taken as era 1 (after 2036).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readStampTimestamp, writeStampTimestamp } from "./stamp_time.ts";
 * const view = new DataView(new ArrayBuffer(8));
 * const at = { seconds: 1_700_000_000, nanos: 123_456_789 };
 * writeStampTimestamp(view, 0, at, "ptp");
 * deepStrictEqual(readStampTimestamp(view, 0, "ptp"), at);
 * writeStampTimestamp(view, 0, at, "ntp");
 * deepStrictEqual(readStampTimestamp(view, 0, "ntp"), at);
 * ```
 */
export function readStampTimestamp(
  view: DataView,
  offset: number,
  format: TimestampFormat,
): Timestamp | null {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  if (format === "ptp") {
    if (low >= NANOS) return null;
    return { seconds: (high - TAI_UTC_OFFSET + TWO_32) % TWO_32, nanos: low };
  }
  let nanos = Math.round(low * NANOS / TWO_32);
  let seconds = (high - NTP_UNIX_OFFSET + TWO_32) % TWO_32;
  if (nanos === NANOS) {
    nanos = 0;
    seconds = (seconds + 1) % TWO_32;
  }
  return { seconds, nanos };
}

/** The error estimate of RFC 4656 §4.1.2 with RFC 8186's Z bit, decoded. */
export interface ErrorEstimate {
  /** S: the clock is synchronized to UTC by an external source. */
  synchronized: boolean;
  /** Z: the packet's timestamps are PTP's (else NTP's). */
  ptp: boolean;
  /** Multiplier × 2^(Scale − 32): the clock's error in seconds. */
  errorSeconds: number;
}

/** The largest error an estimate can say: Scale 63, Multiplier 255 (about 2^39 s). */
const MAX_SCALE = 63;

/**
 * Encodes an error estimate: the smallest Scale whose Multiplier (1 to 255, rounded up, so the
 * estimate never understates the error) can say `errorSeconds`; an unknown or unsayable error
 * (null, not finite, or larger than the format holds) is the largest estimate, Scale 63 and
 * Multiplier 255.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeErrorEstimate, encodeErrorEstimate } from "./stamp_time.ts";
 * strictEqual(encodeErrorEstimate({ synchronized: false, ptp: false, errorSeconds: null }), 0x3fff);
 * const word = encodeErrorEstimate({ synchronized: true, ptp: true, errorSeconds: 0.001 });
 * const back = decodeErrorEstimate(word);
 * strictEqual(back.synchronized && back.ptp, true);
 * strictEqual(back.errorSeconds >= 0.001 && back.errorSeconds < 0.001 * 1.01, true);
 * ```
 */
export function encodeErrorEstimate(
  estimate: { synchronized: boolean; ptp: boolean; errorSeconds: number | null },
): number {
  const flags = (estimate.synchronized ? 0x8000 : 0) | (estimate.ptp ? 0x4000 : 0);
  const error = estimate.errorSeconds;
  if (error === null || !Number.isFinite(error) || error < 0) {
    return flags | (MAX_SCALE << 8) | 0xff;
  }
  for (let scale = 0; scale <= MAX_SCALE; scale++) {
    const multiplier = Math.max(1, Math.ceil(error / 2 ** (scale - 32)));
    if (multiplier <= 0xff) return flags | (scale << 8) | multiplier;
  }
  return flags | (MAX_SCALE << 8) | 0xff;
}

/**
 * Decodes an error estimate (a 16-bit word). A Multiplier of 0, which RFC 4656 forbids, reads
 * as an error of 0.
 */
export function decodeErrorEstimate(word: number): ErrorEstimate {
  const scale = (word >> 8) & 0x3f;
  return {
    synchronized: (word & 0x8000) !== 0,
    ptp: (word & 0x4000) !== 0,
    errorSeconds: (word & 0xff) * 2 ** (scale - 32),
  };
}
