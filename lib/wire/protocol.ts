/**
 * The `udp` wire format, version 1: a pure codec with no I/O.
 *
 * docs/protocol.md is the specification; this module implements it and the tests check the
 * spec's hex test vectors against it. Decoding never throws: every input is classified as a
 * frame, a raw (non-`udp`) datagram, a frame of an unsupported version, or a malformed frame
 * with a precise reason.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";

/** The four bytes every frame starts with: `DA 7A 55 50`. The first byte is not valid UTF-8 on
 * its own, so no text datagram is ever mistaken for a frame. */
export const MAGIC = 0xda7a5550;

/** The protocol version this codec speaks. */
export const PROTOCOL_VERSION = 1;

/** Every version this implementation speaks, in the order of preference. */
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** Size of the version 1 header in bytes; payload (padding) follows it. */
export const HEADER_SIZE = 44;

/** Size of the CRC-32C every frame of every version ends with. */
export const CHECK_SIZE = 4;

/** Bytes 0..27 keep their meaning in every protocol version (magic, version, type, flags,
 * length, attempt, session, sequence, sent timestamp), so a server can answer a frame of a
 * version it does not speak. */
export const INVARIANT_SIZE = 28;

/** The shortest datagram that can be a frame of any version: the magic and the check. */
const MIN_FRAME_SIZE = 4 + CHECK_SIZE;

/** The largest UDP payload over IPv4 (65,535 − 20 IP − 8 UDP header bytes). */
export const MAX_DATAGRAM_IPV4 = 65507;

/** The largest UDP payload over IPv6 without jumbograms (65,535 − 8 UDP header bytes). */
export const MAX_DATAGRAM_IPV6 = 65527;

/** Flag bits. Unknown bits are ignored by receivers. */
export const Flags = {
  /** The frame ends with a 16-byte HMAC-SHA-256 tag over everything before it. */
  AUTHENTICATED: 0x0001,
} as const;

/** Size of the authentication tag of an AUTHENTICATED frame (HMAC-SHA-256 truncated). */
export const TAG_SIZE = 16;

/**
 * Bytes a frame adds to its payload: the header and the check, and the tag when
 * authenticated.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { frameOverhead } from "./protocol.ts";
 * strictEqual(frameOverhead(false), 48);
 * strictEqual(frameOverhead(true), 64);
 * ```
 */
export function frameOverhead(authenticated: boolean): number {
  return HEADER_SIZE + CHECK_SIZE + (authenticated ? TAG_SIZE : 0);
}

/** Message types. PING and STATS_REQUEST are requests; PONG, ERROR and STATS are replies and
 * are never answered. */
export const MessageType = {
  /** A probe: the reflector answers it with a PONG of exactly the same length. */
  PING: 1,
  /** The reflector's answer to a PING. */
  PONG: 2,
  /** The reflector's answer to a frame it cannot serve. */
  ERROR: 3,
  /** Asks how many PINGs of this session the reflector received and answered. */
  STATS_REQUEST: 4,
  /** The answer to a STATS_REQUEST (see {@linkcode SessionCounts}). */
  STATS: 5,
} as const;

/** The message types a reflector answers. */
export const REQUEST_TYPES: readonly number[] = [MessageType.PING, MessageType.STATS_REQUEST];

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
 * import { emptySessionCounts } from "./protocol.ts";
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

/** A message type number defined by version 1. */
export type MessageType = typeof MessageType[keyof typeof MessageType];

/** Error codes carried in the payload of an ERROR frame. */
export const ErrorCode = {
  /** The request's protocol version is not spoken; values list the versions that are. */
  UNSUPPORTED_VERSION: 1,
  /** The request's message type is not served; values list the request types that are. */
  UNSUPPORTED_TYPE: 2,
} as const;

/** An error code number defined by version 1. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/** A point in time as the wire carries it: whole seconds since the Unix epoch and
 * nanoseconds (0..999,999,999). All zero means "not set". */
export interface Timestamp {
  /** Whole seconds since 1970-01-01T00:00:00Z (0..4,294,967,295). */
  seconds: number;
  /** Nanoseconds within the second (0..999,999,999). */
  nanos: number;
}

/** The "not set" timestamp. */
export const NO_TIMESTAMP: Timestamp = Object.freeze({ seconds: 0, nanos: 0 });

/** A decoded (or to-be-encoded) frame. */
export interface Frame {
  /** Protocol version number (1 for frames this codec produces). */
  version: number;
  /** Message type. */
  type: MessageType;
  /** Flag bits ({@linkcode Flags}); receivers ignore bits they do not know. */
  flags: number;
  /** Retransmission number of this probe, 0 for the first attempt. */
  attempt: number;
  /** Random per-run identifier chosen by the client. */
  session: number;
  /** Probe number within the session. */
  sequence: number;
  /** The client's send time, echoed unchanged by the reflector. */
  sentAt: Timestamp;
  /** The reflector's receive time (PONG and ERROR only). */
  receivedAt: Timestamp;
  /** The reflector's send time (PONG and ERROR only). */
  repliedAt: Timestamp;
  /** Bytes after the header (and before the tag): padding in PING and PONG, the error detail
   * in ERROR. */
  payload: Uint8Array;
  /** The last 16 bytes of an AUTHENTICATED frame. Encoding writes zeros when it is absent:
   * sign the frame afterwards (lib/auth.ts). */
  tag?: Uint8Array;
}

/** Why a datagram that starts with {@linkcode MAGIC} is not a valid frame. */
export type MalformedReason =
  | "too-short"
  | "length-mismatch"
  | "unknown-type"
  | "bad-timestamp"
  | "bad-error-payload"
  | "bad-stats-payload";

/** The fields every version carries at fixed offsets (see {@linkcode INVARIANT_SIZE}). */
export interface Invariants {
  /** Message type number as sent. */
  type: number;
  /** Retransmission number. */
  attempt: number;
  /** Session identifier. */
  session: number;
  /** Sequence number. */
  sequence: number;
}

/** The classification of one datagram. */
export type Decoded =
  | { kind: "frame"; frame: Frame }
  | { kind: "raw" }
  | {
    /** A frame damaged on the way: its CRC-32C does not match (see {@linkcode checkFrame}). */
    kind: "corrupted";
    /** One line for people. */
    detail: string;
  }
  | {
    kind: "unsupported-version";
    version: number;
    /** Present when the datagram is long enough and its length field is consistent. */
    invariants: Invariants | null;
  }
  | {
    kind: "malformed";
    reason: MalformedReason;
    /** One line for people, e.g. "length field says 60 bytes but the datagram has 48". */
    detail: string;
    /** Present when the type could be read, so a server can still answer. */
    invariants: Invariants | null;
  };

/** The detail of an ERROR frame's payload. */
export interface ErrorDetail {
  /** The error code. */
  code: number;
  /** Versions spoken (UNSUPPORTED_VERSION) or request types served (UNSUPPORTED_TYPE). */
  values: number[];
}

const NANOS_PER_MS = 1_000_000;
const MAX_NANOS = 999_999_999;
const MAX_U32 = 0xffff_ffff;

/**
 * The timestamp of a time in milliseconds since the Unix epoch (as `Date.now()` or
 * `performance.timeOrigin + performance.now()` give it), rounded to the nanosecond.
 *
 * @example
 * ```ts
 * import { timestampFromMs } from "./protocol.ts";
 * console.log(timestampFromMs(1_700_000_000_123.5)); // { seconds: 1700000000, nanos: 123500000 }
 * ```
 */
export function timestampFromMs(ms: number): Timestamp {
  if (!(ms > 0)) return NO_TIMESTAMP;
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * NANOS_PER_MS);
  if (nanos > MAX_NANOS) {
    seconds += 1;
    nanos -= 1_000_000_000;
  }
  return { seconds: Math.min(seconds, MAX_U32), nanos };
}

/**
 * The difference `later − earlier` in milliseconds, computed without losing the nanoseconds.
 *
 * @example
 * ```ts
 * import { timestampDiffMs } from "./protocol.ts";
 * const a = { seconds: 10, nanos: 999_000_000 };
 * const b = { seconds: 11, nanos: 1_000 };
 * console.log(timestampDiffMs(b, a)); // 1.001
 * ```
 */
export function timestampDiffMs(later: Timestamp, earlier: Timestamp): number {
  // Integer nanoseconds stay exact for differences up to about 104 days.
  const nanos = (later.seconds - earlier.seconds) * 1_000_000_000 + (later.nanos - earlier.nanos);
  return nanos / NANOS_PER_MS;
}

/**
 * Whether a timestamp is set (not all zero).
 *
 * @example
 * ```ts
 * import { isTimestampSet, NO_TIMESTAMP } from "./protocol.ts";
 * console.log(isTimestampSet(NO_TIMESTAMP)); // false
 * ```
 */
export function isTimestampSet(timestamp: Timestamp): boolean {
  return timestamp.seconds !== 0 || timestamp.nanos !== 0;
}

/** Options of {@linkcode encodeFrame}. */
export interface EncodeOptions {
  /** Write into this buffer (from offset 0) instead of allocating; it must be large enough. */
  into?: Uint8Array;
}

/**
 * Encodes a frame: header, then payload. The length field is computed.
 *
 * @example Encode a PING with 8 bytes of padding
 * ```ts
 * import { encodeFrame, MessageType, NO_TIMESTAMP } from "./protocol.ts";
 * const bytes = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 1, sequence: 0,
 *   sentAt: { seconds: 1_700_000_000, nanos: 0 }, receivedAt: NO_TIMESTAMP,
 *   repliedAt: NO_TIMESTAMP, payload: new Uint8Array(8),
 * });
 * console.log(bytes.length); // 52
 * ```
 */
export function encodeFrame(frame: Frame, options: EncodeOptions = {}): Uint8Array {
  const tagged = (frame.flags & Flags.AUTHENTICATED) !== 0;
  const length = frameOverhead(tagged) + frame.payload.length;
  if (length > 0xffff) throw new RangeError(`frame of ${length} bytes exceeds 65535`);
  const out = options.into ? options.into.subarray(0, length) : new Uint8Array(length);
  if (out.length < length) throw new RangeError(`buffer of ${out.length} bytes < ${length}`);
  const view = new DataView(out.buffer, out.byteOffset, length);
  view.setUint32(0, MAGIC);
  view.setUint8(4, frame.version);
  view.setUint8(5, frame.type);
  view.setUint16(6, frame.flags);
  view.setUint16(8, length);
  view.setUint16(10, frame.attempt);
  view.setUint32(12, frame.session >>> 0);
  view.setUint32(16, frame.sequence >>> 0);
  writeTimestamp(view, 20, frame.sentAt);
  writeTimestamp(view, 28, frame.receivedAt);
  writeTimestamp(view, 36, frame.repliedAt);
  out.set(frame.payload, HEADER_SIZE);
  if (tagged) {
    const tag = out.subarray(length - CHECK_SIZE - TAG_SIZE, length - CHECK_SIZE);
    if (frame.tag) tag.set(frame.tag.subarray(0, TAG_SIZE));
    else tag.fill(0);
  }
  sealFrame(out);
  return out;
}

/**
 * Writes a frame's check: the CRC-32C of every byte before it, big-endian, in its last 4
 * bytes. Whoever changes a frame's bytes (a reflector turning a PING into a PONG, a tag being
 * written) seals it again last.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { checkFrame, sealFrame } from "./protocol.ts";
 * const bytes = new Uint8Array(12);
 * sealFrame(bytes);
 * strictEqual(checkFrame(bytes), true);
 * bytes[3] ^= 0x10;
 * strictEqual(checkFrame(bytes), false);
 * ```
 */
export function sealFrame(bytes: Uint8Array): void {
  const end = bytes.length - CHECK_SIZE;
  const crc = crc32c(bytes.subarray(0, end));
  bytes[end] = crc >>> 24;
  bytes[end + 1] = (crc >>> 16) & 0xff;
  bytes[end + 2] = (crc >>> 8) & 0xff;
  bytes[end + 3] = crc & 0xff;
}

/** Whether a datagram's last 4 bytes are the CRC-32C of the bytes before them. */
export function checkFrame(bytes: Uint8Array): boolean {
  if (bytes.length < CHECK_SIZE) return false;
  const end = bytes.length - CHECK_SIZE;
  const stored = ((bytes[end] << 24) | (bytes[end + 1] << 16) | (bytes[end + 2] << 8) |
    bytes[end + 3]) >>> 0;
  return crc32c(bytes.subarray(0, end)) === stored;
}

/** Whether a 32-bit word differs from {@linkcode MAGIC} in exactly one bit. */
function isDamagedMagic(word: number): boolean {
  const diff = (word ^ MAGIC) >>> 0;
  return diff !== 0 && (diff & (diff - 1)) === 0;
}

/**
 * Classifies and decodes one datagram. Never throws. The returned payload is a view into
 * `bytes`: copy it if `bytes` is a buffer that will be reused.
 *
 * @example
 * ```ts
 * import { decodeFrame } from "./protocol.ts";
 * const result = decodeFrame(new TextEncoder().encode("hello"));
 * console.log(result.kind); // "raw"
 * ```
 */
export function decodeFrame(bytes: Uint8Array): Decoded {
  if (bytes.length < 4) return { kind: "raw" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== MAGIC) {
    // One bit off the magic and failing the check: a frame damaged in its first bytes, not
    // data of another protocol (which is unlikely to be one bit from it and also end in a
    // CRC-32C of the rest that fails only because of that bit).
    if (isDamagedMagic(magic) && bytes.length >= MIN_FRAME_SIZE && !checkFrame(bytes)) {
      return { kind: "corrupted", detail: "the magic number is damaged" };
    }
    return { kind: "raw" };
  }
  if (bytes.length < MIN_FRAME_SIZE) {
    return malformed("too-short", `${bytes.length} bytes has no room for the checksum`, null);
  }
  if (!checkFrame(bytes)) {
    return { kind: "corrupted", detail: "the CRC-32C does not match the bytes" };
  }
  if (bytes.length < INVARIANT_SIZE + CHECK_SIZE) {
    const version = bytes.length > MIN_FRAME_SIZE ? view.getUint8(4) : PROTOCOL_VERSION;
    if (version !== PROTOCOL_VERSION) {
      return { kind: "unsupported-version", version, invariants: null };
    }
    return malformed("too-short", `${bytes.length} bytes is shorter than the header`, null);
  }
  const version = view.getUint8(4);
  const lengthField = view.getUint16(8);
  const invariants: Invariants = {
    type: view.getUint8(5),
    attempt: view.getUint16(10),
    session: view.getUint32(12),
    sequence: view.getUint32(16),
  };
  if (version !== PROTOCOL_VERSION) {
    return {
      kind: "unsupported-version",
      version,
      invariants: lengthField === bytes.length ? invariants : null,
    };
  }
  if (bytes.length < HEADER_SIZE + CHECK_SIZE) {
    return malformed(
      "too-short",
      `${bytes.length} bytes is shorter than the ${HEADER_SIZE}-byte header and its checksum`,
      null,
    );
  }
  if (lengthField !== bytes.length) {
    return malformed(
      "length-mismatch",
      `length field says ${lengthField} bytes but the datagram has ${bytes.length}`,
      null,
    );
  }
  const type = invariants.type;
  if (type < MessageType.PING || type > MessageType.STATS) {
    return malformed("unknown-type", `message type ${type} is not defined`, invariants);
  }
  const sentAt = readTimestamp(view, 20);
  const receivedAt = readTimestamp(view, 28);
  const repliedAt = readTimestamp(view, 36);
  if (!sentAt || !receivedAt || !repliedAt) {
    return malformed("bad-timestamp", "a timestamp has 1,000,000,000 or more nanoseconds", null);
  }
  const flags = view.getUint16(6);
  const tagged = (flags & Flags.AUTHENTICATED) !== 0;
  if (tagged && bytes.length < frameOverhead(true)) {
    return malformed("too-short", "an authenticated frame has no room for its 16-byte tag", null);
  }
  const payloadEnd = bytes.length - CHECK_SIZE - (tagged ? TAG_SIZE : 0);
  const payload = bytes.subarray(HEADER_SIZE, payloadEnd);
  if (type === MessageType.ERROR && decodeErrorDetail(payload) === null) {
    return malformed("bad-error-payload", "ERROR payload is shorter than its count says", null);
  }
  if (type === MessageType.STATS && payload.length < STATS_PAYLOAD_SIZE) {
    return malformed(
      "bad-stats-payload",
      `STATS payload is shorter than ${STATS_PAYLOAD_SIZE} bytes`,
      null,
    );
  }
  const frame: Frame = {
    version,
    type: type as MessageType,
    flags,
    attempt: invariants.attempt,
    session: invariants.session,
    sequence: invariants.sequence,
    sentAt,
    receivedAt,
    repliedAt,
    payload,
  };
  if (tagged) frame.tag = bytes.subarray(payloadEnd, payloadEnd + TAG_SIZE);
  return { kind: "frame", frame };
}

/**
 * Turns a valid PING (as received) into its PONG, written into `out`: the same bytes with the
 * type changed and the reflector's timestamps filled in, so the PONG is exactly as long as
 * the PING and the reflector never amplifies.
 *
 * @example
 * ```ts
 * import { encodeFrame, makePong, MessageType, NO_TIMESTAMP } from "./protocol.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 7, sequence: 3,
 *   sentAt: { seconds: 1, nanos: 0 }, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(4),
 * });
 * const pong = makePong(ping, new Uint8Array(ping.length), { seconds: 2, nanos: 0 }, {
 *   seconds: 2,
 *   nanos: 500,
 * });
 * console.log(pong.length === ping.length); // true
 * ```
 */
export function makePong(
  ping: Uint8Array,
  out: Uint8Array,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): Uint8Array {
  const pong = out.subarray(0, ping.length);
  if (pong.buffer !== ping.buffer || pong.byteOffset !== ping.byteOffset) pong.set(ping);
  const view = new DataView(pong.buffer, pong.byteOffset, pong.byteLength);
  view.setUint8(5, MessageType.PONG);
  writeTimestamp(view, 28, receivedAt);
  writeTimestamp(view, 36, repliedAt);
  sealFrame(pong);
  return pong;
}

/**
 * Builds the ERROR reply to a request, or returns null when the ERROR would be longer than the
 * request (the reflector never amplifies). Session, sequence, attempt and the client's
 * timestamp are copied from the request so the client can match the reply. An ERROR is always
 * laid out as version 1, whatever versions the server speaks, so every client can read it.
 *
 * @example
 * ```ts
 * import { encodeError, ErrorCode } from "./protocol.ts";
 * const now = { seconds: 1_700_000_000, nanos: 0 };
 * const reply = encodeError(
 *   { attempt: 0, session: 1, sequence: 0, sentAt: now },
 *   { code: ErrorCode.UNSUPPORTED_VERSION, values: [1] },
 *   100, now, now,
 * );
 * console.log(reply?.length); // 47
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
 * Reads the payload of an ERROR frame; null when it is too short for its own count.
 *
 * @example
 * ```ts
 * import { decodeErrorDetail } from "./protocol.ts";
 * console.log(decodeErrorDetail(new Uint8Array([1, 1, 1]))); // { code: 1, values: [ 1 ] }
 * ```
 */
export function decodeErrorDetail(payload: Uint8Array): ErrorDetail | null {
  if (payload.length < 2 || payload.length < 2 + payload[1]) return null;
  return { code: payload[0], values: Array.from(payload.subarray(2, 2 + payload[1])) };
}

/**
 * Builds the STATS reply to a STATS_REQUEST (given as received) in place: the same bytes with
 * the type changed, the reflector's timestamps and the counts in the first
 * {@linkcode STATS_PAYLOAD_SIZE} payload bytes, sealed again. Returns null when the request has
 * no room for them (the reply is never longer).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import {
 *   decodeFrame, emptySessionCounts, encodeFrame, makeStats, MessageType, NO_TIMESTAMP,
 *   STATS_PAYLOAD_SIZE,
 * } from "./protocol.ts";
 * const request = encodeFrame({
 *   version: 1, type: MessageType.STATS_REQUEST, flags: 0, attempt: 0, session: 7, sequence: 9,
 *   sentAt: NO_TIMESTAMP, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(STATS_PAYLOAD_SIZE),
 * });
 * const counts = { ...emptySessionCounts(), received: 5, replied: 4, refusedRateLimit: 2 };
 * const reply = makeStats(request, counts, NO_TIMESTAMP, NO_TIMESTAMP)!;
 * const decoded = decodeFrame(reply);
 * assertEquals(decoded.kind === "frame" && decoded.frame.type, MessageType.STATS);
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
  STATS_FIELDS.forEach((field, i) => view.setUint32(HEADER_SIZE + 4 * i, counts[field] >>> 0));
  sealFrame(reply);
  return reply;
}

/**
 * Reads the counts from a STATS payload; null when it is too short.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeStats, STATS_PAYLOAD_SIZE } from "./protocol.ts";
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

/**
 * Reads the client's send timestamp of a frame of any version (it is one of the invariants),
 * or no timestamp when the datagram is too short or the field invalid: an ERROR copies it so
 * the client can match and time the reply.
 *
 * @example
 * ```ts
 * import { peekSentAt } from "./protocol.ts";
 * console.log(peekSentAt(new Uint8Array(10))); // { seconds: 0, nanos: 0 }
 * ```
 */
export function peekSentAt(bytes: Uint8Array): Timestamp {
  if (bytes.length < INVARIANT_SIZE) return NO_TIMESTAMP;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return readTimestamp(view, 20) ?? NO_TIMESTAMP;
}

/**
 * The name of a message type for people, e.g. "PING", or "type 9".
 *
 * @example
 * ```ts
 * import { messageTypeName } from "./protocol.ts";
 * console.log(messageTypeName(2)); // "PONG"
 * ```
 */
export function messageTypeName(type: number): string {
  switch (type) {
    case MessageType.PING:
      return "PING";
    case MessageType.PONG:
      return "PONG";
    case MessageType.ERROR:
      return "ERROR";
    case MessageType.STATS_REQUEST:
      return "STATS_REQUEST";
    case MessageType.STATS:
      return "STATS";
    default:
      return `type ${type}`;
  }
}

/**
 * The largest payload (bytes between the header and the tag or check) a frame can carry over
 * an address family.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { maxPayloadSize } from "./protocol.ts";
 * strictEqual(maxPayloadSize("ipv4"), 65_459);
 * strictEqual(maxPayloadSize("ipv6", true), 65_463);
 * ```
 */
export function maxPayloadSize(family: "ipv4" | "ipv6", authenticated = false): number {
  return (family === "ipv6" ? MAX_DATAGRAM_IPV6 : MAX_DATAGRAM_IPV4) -
    frameOverhead(authenticated);
}

function malformed(
  reason: MalformedReason,
  detail: string,
  invariants: Invariants | null,
): Decoded {
  return { kind: "malformed", reason, detail, invariants };
}

/** Timestamps are two big-endian u32: whole seconds since the Unix epoch, then nanoseconds. */
function writeTimestamp(view: DataView, offset: number, timestamp: Timestamp): void {
  view.setUint32(offset, timestamp.seconds);
  view.setUint32(offset + 4, timestamp.nanos);
}

function readTimestamp(view: DataView, offset: number): Timestamp | null {
  const seconds = view.getUint32(offset);
  const nanos = view.getUint32(offset + 4);
  return nanos > MAX_NANOS ? null : { seconds, nanos };
}
