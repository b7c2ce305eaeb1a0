/**
 * What one reply says of its round trip, the way `udp ping` and `udp bench` count it.
 *
 * An RTT is the network's: from the moment the probe is handed to the kernel to the moment its
 * reply reaches the client's socket (the kernel's arrival timestamp, as ping(8) uses), minus
 * the time the reflector held it (its reply timestamp minus its own arrival timestamp), as
 * irtt and TWAMP (RFC 5357) count it. Neither program's own wake-up nor its queue is network.
 * The whole round trip, reflector included, is kept beside it (what sockperf reports).
 *
 * @module
 */

import { isTimestampSet, type Timestamp, timestampDiffMs } from "../wire/mod.ts";

/** One reply's round trip, in milliseconds. */
export interface RoundTrip {
  /** From the probe's send to its reply's arrival, everything included. */
  totalMs: number;
  /**
   * How long the reflector held the probe, by its own clock; null when it did not say (an
   * echo server) or said something impossible (negative, or longer than the round trip).
   */
  serverMs: number | null;
  /** The network's share: `totalMs` minus `serverMs` when that is known. */
  rttMs: number;
}

/**
 * Measures a reply's round trip. `sentAt`, `arrivedAt` and `handledAt` are monotonic
 * milliseconds: the probe's send, its reply's arrival at the socket, and now. Should the
 * arrival read earlier than the send (the real-time clock behind the kernel's timestamp
 * stepped), the reply counts as arriving now, which is late but never early.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { measureRoundTrip } from "./rtt.ts";
 * const receivedAt = { seconds: 1700000000, nanos: 0 };
 * const repliedAt = { seconds: 1700000000, nanos: 250_000 }; // held 0.25 ms
 * const trip = measureRoundTrip(10, 11, 11.1, receivedAt, repliedAt);
 * assertEquals(trip, { totalMs: 1, serverMs: 0.25, rttMs: 0.75 });
 * // An echo server gives no timestamps: nothing is left out.
 * const noTime = { seconds: 0, nanos: 0 };
 * assertEquals(measureRoundTrip(10, 11, 11.1, noTime, noTime), {
 *   totalMs: 1,
 *   serverMs: null,
 *   rttMs: 1,
 * });
 * ```
 */
export function measureRoundTrip(
  sentAt: number,
  arrivedAt: number,
  handledAt: number,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): RoundTrip {
  const totalMs = (arrivedAt >= sentAt ? arrivedAt : handledAt) - sentAt;
  const held = timestampDiffMs(repliedAt, receivedAt);
  const serverMs = isTimestampSet(receivedAt) && isTimestampSet(repliedAt) && held >= 0 &&
      held <= totalMs
    ? held
    : null;
  return { totalMs, serverMs, rttMs: serverMs === null ? totalMs : totalMs - serverMs };
}
