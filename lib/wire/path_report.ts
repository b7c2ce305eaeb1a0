/**
 * What a PING's flags ask of the reflector beyond a plain PONG (docs/protocol.md, "The path
 * report" and "Delayed replies"): PATH, a report of how the PING arrived (its TTL and TOS and
 * the source address the reflector saw) in the PONG's first 24 payload bytes, and DELAYED, one
 * PONG after the delay the PING names in payload bytes 24 to 27. Pure; no I/O.
 *
 * @module
 */

import { addressBytes, formatIpv6 } from "./ip_address.ts";

/** Bytes of the path report, at the start of the payload. */
export const PATH_REPORT_SIZE = 24;

/** Where a DELAYED PING's delay (u32, milliseconds) is in its payload: after the report's room. */
export const DELAY_OFFSET = 24;

/** The least payload a DELAYED PING carries: the report's room and the delay. */
export const DELAYED_PAYLOAD_SIZE = 28;

/** The longest delay a reflector accepts: 10 minutes. A longer one is refused (counted). */
export const MAX_DELAY_MS = 600_000;

/** The most delayed replies a reflector holds for one source address (any port): a sender
 * keeps no more than this many waiting. More are refused (counted). */
export const DELAYED_PER_SOURCE = 16;

/** The most delayed replies a reflector holds in all. */
export const DELAYED_TOTAL = 1024;

/** The longest DELAYED PING a reflector holds (it needs 76 bytes): at most 1 MiB in all. */
export const MAX_DELAYED_BYTES = 1024;

/** Bits of the report's first byte: which of its fields the reflector knew. */
export const PathKnown = {
  /** Byte 1 holds the TTL (IPv6: hop limit) the PING arrived with. */
  TTL: 0x01,
  /** Byte 2 holds the TOS byte (IPv6: traffic class) the PING arrived with. */
  TOS: 0x02,
  /** Bytes 3 to 21 hold the source's family, port and address as the reflector saw them. */
  ADDRESS: 0x04,
} as const;

/** A path report as read by the sender; a field the reflector did not know is null. */
export interface PathReport {
  /** The TTL (IPv6: hop limit) the PING arrived with. */
  ttl: number | null;
  /** The TOS byte (IPv6: traffic class) the PING arrived with: DSCP `tos >> 2`, ECN `tos & 3`. */
  tos: number | null;
  /** The source address the reflector saw: IPv4 dotted, IPv6 per RFC 5952. */
  address: string | null;
  /** The source port the reflector saw (null with the address). */
  port: number | null;
}

/** The last address written, and its report bytes: a reflector's peers repeat. */
let cachedText = "";
let cachedBytes: number[] | null = null;

/**
 * Writes the report of a PING's arrival into the first {@linkcode PATH_REPORT_SIZE} bytes of
 * `payload` (which must have them): `ttl` and `tos` as the socket told them (-1: unknown), and
 * the source `from` (a numeric address; an IPv4-mapped IPv6 one is reported as IPv4).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readPathReport, writePathReport } from "./path_report.ts";
 * const payload = new Uint8Array(24);
 * writePathReport(payload, 64, -1, { hostname: "::ffff:192.0.2.7", port: 40000 });
 * deepStrictEqual(readPathReport(payload), {
 *   ttl: 64, tos: null, address: "192.0.2.7", port: 40000,
 * });
 * ```
 */
export function writePathReport(
  payload: Uint8Array,
  ttl: number,
  tos: number,
  from: { hostname: string; port: number },
): void {
  payload.fill(0, 0, PATH_REPORT_SIZE);
  let known = 0;
  if (ttl >= 0 && ttl <= 255) {
    known |= PathKnown.TTL;
    payload[1] = ttl;
  }
  if (tos >= 0 && tos <= 255) {
    known |= PathKnown.TOS;
    payload[2] = tos;
  }
  if (from.hostname !== cachedText) {
    cachedText = from.hostname;
    cachedBytes = reportedAddress(from.hostname);
  }
  const address = cachedBytes;
  if (address !== null) {
    known |= PathKnown.ADDRESS;
    payload[3] = address.length === 4 ? 4 : 6;
    payload[4] = from.port >> 8;
    payload[5] = from.port & 0xff;
    payload.set(address, 6);
  }
  payload[0] = known;
}

/** An address's bytes as a report carries them: IPv4 (mapped ones too) 4, IPv6 16. */
function reportedAddress(text: string): number[] | null {
  const bytes = addressBytes(text);
  if (bytes === null || bytes.length === 4) return bytes;
  const mapped = bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/**
 * Reads the path report at the start of a PONG's payload; null when there is no room for one,
 * or it says nothing is known (a reflector that does not write reports returns the zeros the
 * sender put there).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readPathReport } from "./path_report.ts";
 * strictEqual(readPathReport(new Uint8Array(24)), null);
 * strictEqual(readPathReport(new Uint8Array(23)), null);
 * ```
 */
export function readPathReport(payload: Uint8Array): PathReport | null {
  if (payload.length < PATH_REPORT_SIZE) return null;
  const known = payload[0];
  if ((known & (PathKnown.TTL | PathKnown.TOS | PathKnown.ADDRESS)) === 0) return null;
  const family = payload[3];
  const withAddress = (known & PathKnown.ADDRESS) !== 0 && (family === 4 || family === 6);
  return {
    ttl: known & PathKnown.TTL ? payload[1] : null,
    tos: known & PathKnown.TOS ? payload[2] : null,
    address: !withAddress
      ? null
      : family === 4
      ? payload.subarray(6, 10).join(".")
      : formatIpv6(payload.subarray(6, 22)),
    port: withAddress ? (payload[4] << 8) | payload[5] : null,
  };
}

/**
 * The delay a DELAYED PING's payload names, in milliseconds; null when it has no room for one.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readDelay, writeDelay } from "./path_report.ts";
 * const payload = new Uint8Array(28);
 * writeDelay(payload, 7000);
 * strictEqual(readDelay(payload), 7000);
 * strictEqual(readDelay(payload.subarray(0, 27)), null);
 * ```
 */
export function readDelay(payload: Uint8Array): number | null {
  if (payload.length < DELAYED_PAYLOAD_SIZE) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return view.getUint32(DELAY_OFFSET);
}

/** Writes a delay in milliseconds (0 to 2^32 − 1) into a DELAYED PING's payload. */
export function writeDelay(payload: Uint8Array, delayMs: number): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  view.setUint32(DELAY_OFFSET, delayMs);
}
