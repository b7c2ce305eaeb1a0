/**
 * What a reflector sends back for a `udp` request, built from the request's bytes: a PONG, a
 * STATS or an ERROR, never longer than the request (docs/protocol.md, "Message types"). Pure;
 * no I/O.
 *
 * @module
 */

import {
  CHECK_SIZE,
  encodeFrame,
  type ErrorDetail,
  Flags,
  type Frame,
  frameOverhead,
  HEADER_SIZE,
  INVARIANT_SIZE,
  MessageType,
  PROTOCOL_VERSION,
  readCheck,
  RECEIVED_AT,
  REPLIED_AT,
  sealFrame,
  SENT_AT,
  writeCheck,
} from "./protocol.ts";
import { crc32cShift, crc32cUpdate } from "./crc32c.ts";
import {
  type SessionCounts,
  STATS_ARRIVALS_PAYLOAD_SIZE,
  STATS_PAYLOAD_SIZE,
  writeArrivalCounts,
  writeSessionCounts,
} from "./session_counts.ts";
import { NO_TIMESTAMP, readTimestamp, type Timestamp, writeTimestamp } from "./timestamp.ts";

/** A timestamp's bytes: seconds and nanoseconds, 32 bits each. */
const TIMESTAMP_BYTES = 8;

/**
 * Turns a valid PING (as received) into its PONG, written into `out`: the same bytes with the
 * type changed and the reflector's timestamps filled in, so the PONG is exactly as long as
 * the PING and the reflector never amplifies.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeFrame, MessageType } from "./protocol.ts";
 * import { decodeFrame } from "./frame_decoding.ts";
 * import { makePong } from "./replies.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 7, sequence: 3,
 *   sentAt: { seconds: 1, nanos: 0 }, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(4),
 * });
 * const pong = makePong(ping, new Uint8Array(ping.length), { seconds: 2, nanos: 0 }, {
 *   seconds: 2,
 *   nanos: 500,
 * });
 * strictEqual(pong.length, ping.length);
 * const decoded = decodeFrame(pong);
 * strictEqual(decoded.kind === "frame" && decoded.frame.type, MessageType.PONG);
 * ```
 */
export function makePong(
  ping: Uint8Array,
  out: Uint8Array,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
  patch?: CheckPatch,
): Uint8Array {
  // In place (a reflector's own receive buffer) costs no new view: making one is dearer than
  // the PONG's whole header.
  const inPlace = out === ping;
  const pong = inPlace ? ping : out.subarray(0, ping.length);
  if (!inPlace && (pong.buffer !== ping.buffer || pong.byteOffset !== ping.byteOffset)) {
    pong.set(ping);
  }
  pong[5] = MessageType.PONG;
  writeTimestamp(pong, RECEIVED_AT, receivedAt);
  writeTimestamp(pong, REPLIED_AT, repliedAt);
  if (patch === undefined) sealFrame(pong);
  else patchCheck(pong, patch);
  return pong;
}

/**
 * How a frame that was valid changed: only its first `headBytes`, whose linear CRC-32C
 * (register from 0) was `before`. Its new check is then its old one patched (CRC-32C is linear:
 * the old and new frames differ only there), reading the head, not the whole frame.
 */
export interface CheckPatch {
  /** Bytes from the start that may have changed. */
  headBytes: number;
  /** `crc32cUpdate(0, frame, 0, headBytes)` before the change. */
  before: number;
}

/** Frames shorter than this are sealed again in full: reading them costs less than patching. */
export const PATCH_MIN_BYTES = 256;

/**
 * The patch of a valid frame about to change in its first `headBytes` (see
 * {@linkcode CheckPatch}), or undefined when it is short enough to seal again in full.
 *
 * @example A PONG patched, not read again, equals a PONG sealed anew
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { checkFrame, encodeFrame, MessageType } from "./protocol.ts";
 * import { checkPatchOf, makePong } from "./replies.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 7, sequence: 3,
 *   sentAt: { seconds: 1, nanos: 0 }, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(1400).fill(5),
 * });
 * const at = { seconds: 2, nanos: 9 };
 * const sealed = makePong(ping, new Uint8Array(ping.length), at, at);
 * const patched = makePong(ping, ping, at, at, checkPatchOf(ping, 44));
 * strictEqual(patched.toHex(), sealed.toHex());
 * strictEqual(checkFrame(patched), true);
 * ```
 */
export function checkPatchOf(frame: Uint8Array, headBytes: number): CheckPatch | undefined {
  if (frame.length < PATCH_MIN_BYTES) return undefined;
  return { headBytes, before: crc32cUpdate(0, frame, 0, headBytes) };
}

/** Writes the check of a frame changed as `patch` says (its old check still in place). */
function patchCheck(frame: Uint8Array, patch: CheckPatch): void {
  patchRange(frame, 0, patch.headBytes, patch.before);
}

/**
 * Writes the check of a valid frame whose bytes `from..to` changed, their linear CRC-32C
 * (register from 0) having been `before` (its old check still in place): the old check and the
 * new differ by the change's CRC carried over the bytes after it.
 */
function patchRange(frame: Uint8Array, from: number, to: number, before: number): void {
  const end = frame.length - CHECK_SIZE;
  const delta = before ^ crc32cUpdate(0, frame, from, to);
  writeCheck(frame, (readCheck(frame) ^ crc32cShift(delta, end - to)) >>> 0);
}

/**
 * Writes `now()` as the send time of a reply built with another (a PONG, a STATS or an ERROR,
 * valid, unsigned) and makes its check right again: so a reflector stamps a reply as it leaves,
 * not when it was built. Reads the 8 bytes of the time, not the frame, and the clock as late as
 * it can: what can be done before (the old time's part of the check, and the tables the rest
 * will read, which a quiet spell leaves out of the cache) is done first.
 *
 * @example A PONG stamped again equals one built with that time
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { checkFrame, encodeFrame, MessageType } from "./protocol.ts";
 * import { makePong, restampReply } from "./replies.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 7, sequence: 3,
 *   sentAt: { seconds: 1, nanos: 0 }, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(20),
 * });
 * const received = { seconds: 2, nanos: 9 };
 * const later = makePong(ping, new Uint8Array(ping.length), received, { seconds: 2, nanos: 70 });
 * const pong = makePong(ping, new Uint8Array(ping.length), received, received);
 * restampReply(pong, () => ({ seconds: 2, nanos: 70 }));
 * strictEqual(pong.toHex(), later.toHex());
 * strictEqual(checkFrame(pong), true);
 * ```
 */
export function restampReply(frame: Uint8Array, now: () => Timestamp): void {
  const to = REPLIED_AT + TIMESTAMP_BYTES;
  const before = crc32cUpdate(0, frame, REPLIED_AT, to);
  crc32cShift(before, frame.length - CHECK_SIZE - to); // its tables into the cache; no result
  writeTimestamp(frame, REPLIED_AT, now());
  patchRange(frame, REPLIED_AT, to, before);
}

/**
 * Builds the ERROR reply to a request, or returns null when the ERROR would be longer than the
 * request (the reflector never amplifies). Session, sequence, attempt and the client's
 * timestamp are copied from the request so the client can match the reply. An ERROR is always
 * laid out as version 1, whatever versions the server speaks, so every client can read it.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ErrorCode } from "./protocol.ts";
 * import { encodeError } from "./replies.ts";
 * const now = { seconds: 1_700_000_000, nanos: 0 };
 * const request = { attempt: 0, session: 1, sequence: 0, sentAt: now };
 * const detail = { code: ErrorCode.UNSUPPORTED_VERSION, values: [1] };
 * strictEqual(encodeError(request, detail, 100, now, now)?.length, 51);
 * strictEqual(encodeError(request, detail, 50, now, now), null);
 * ```
 */
export function encodeError(
  request: Pick<Frame, "attempt" | "session" | "sequence" | "sentAt">,
  detail: ErrorDetail,
  requestLength: number,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): Uint8Array | null {
  const payload = new Uint8Array(2 + detail.values.length);
  payload[0] = detail.code;
  payload[1] = detail.values.length;
  payload.set(detail.values, 2);
  if (frameOverhead(false) + payload.length > requestLength) return null;
  return encodeFrame({
    version: PROTOCOL_VERSION,
    type: MessageType.ERROR,
    flags: 0,
    attempt: request.attempt,
    session: request.session,
    sequence: request.sequence,
    sentAt: request.sentAt,
    receivedAt,
    repliedAt,
    payload,
  });
}

/**
 * Builds the STATS reply to a STATS_REQUEST (given as received) in place: the same bytes with
 * the type changed, the reflector's timestamps and the counts in the first
 * {@linkcode STATS_PAYLOAD_SIZE} payload bytes (and the arrival counts after them, where the
 * counts have them and the request has room), sealed again. Returns null when the request has
 * no room for the counts (the reply is never longer).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { encodeFrame, MessageType } from "./protocol.ts";
 * import { decodeFrame } from "./frame_decoding.ts";
 * import { makeStats } from "./replies.ts";
 * import { decodeStats, emptySessionCounts, STATS_PAYLOAD_SIZE } from "./session_counts.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const request = encodeFrame({
 *   version: 1, type: MessageType.STATS_REQUEST, flags: 0, attempt: 0, session: 7, sequence: 9,
 *   sentAt: NO_TIMESTAMP, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(STATS_PAYLOAD_SIZE),
 * });
 * const counts = { ...emptySessionCounts(), received: 5, replied: 4, refusedRateLimit: 2 };
 * const reply = makeStats(request, counts, NO_TIMESTAMP, NO_TIMESTAMP)!;
 * const decoded = decodeFrame(reply);
 * strictEqual(decoded.kind === "frame" && decoded.frame.type, MessageType.STATS);
 * assertEquals(decoded.kind === "frame" && decodeStats(decoded.frame.payload), counts);
 * ```
 */
export function makeStats(
  request: Uint8Array,
  counts: SessionCounts,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): Uint8Array | null {
  const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
  const tagged = (view.getUint16(6) & Flags.AUTHENTICATED) !== 0;
  const room = request.length - frameOverhead(tagged);
  if (room < STATS_PAYLOAD_SIZE) return null;
  const reply = makePong(request, request, receivedAt, repliedAt);
  view.setUint8(5, MessageType.STATS);
  writeSessionCounts(view, HEADER_SIZE, counts);
  if (counts.arrivals && room >= STATS_ARRIVALS_PAYLOAD_SIZE) {
    writeArrivalCounts(view, HEADER_SIZE, counts.arrivals);
  }
  sealFrame(reply);
  return reply;
}

/**
 * Reads the client's send timestamp of a frame of any version (it is one of the invariants),
 * or no timestamp when the datagram is too short or the field invalid: an ERROR copies it so
 * the client can match and time the reply.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { peekSentAt } from "./replies.ts";
 * assertEquals(peekSentAt(new Uint8Array(10)), { seconds: 0, nanos: 0 });
 * ```
 */
export function peekSentAt(bytes: Uint8Array): Timestamp {
  if (bytes.length < INVARIANT_SIZE) return NO_TIMESTAMP;
  return readTimestamp(bytes, SENT_AT) ?? NO_TIMESTAMP;
}
