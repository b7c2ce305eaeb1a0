/**
 * The `udp` wire format, version 1: a pure codec with no I/O.
 *
 * docs/protocol.md is the specification; this module implements it and the tests check the
 * spec's hex test vectors against it. Decoding (`frame_decoding.ts`) never throws: every input
 * is classified as a frame, a raw (non-`udp`) datagram, a frame of an unsupported version, or a
 * malformed frame with a precise reason. Timestamps are in `timestamp.ts`, the STATS payload in
 * `session_counts.ts` and the replies a reflector builds from a request in `replies.ts`.
 *
 * @module
 */

import { crc32c, type FrameSealer } from "./crc32c.ts";
import { type Timestamp, writeTimestamp } from "./timestamp.ts";
import { writeUint16, writeUint32 } from "./_bytes.ts";

/** Payload bytes of a STREAM_REQUEST and of its STREAM_GRANT (docs/protocol.md, "Streams"). */
export const STREAM_PAYLOAD_SIZE = 40;

/** The four bytes every frame starts with: `DA 7A 55 50`. The first byte is not valid UTF-8 on
 * its own, so no text datagram is ever mistaken for a frame. */
export const MAGIC = 0xda7a5550;

/** The protocol version this codec speaks. */
export const PROTOCOL_VERSION = 1;

/** Every version this implementation speaks, in the order of preference. */
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** Size of the version 1 header in bytes; payload (padding) follows it. */
export const HEADER_SIZE = 44;

/** Where the header's timestamps are (8 bytes each): the client's send time, and the reflector's
 * arrival and send times (docs/protocol.md, "Header"). */
export const SENT_AT = 20;
/** See {@linkcode SENT_AT}. */
export const RECEIVED_AT = 28;
/** See {@linkcode SENT_AT}. */
export const REPLIED_AT = 36;

/** Size of the CRC-32C every frame of every version ends with. */
export const CHECK_SIZE = 4;

/** Bytes 0..27 keep their meaning in every protocol version (magic, version, type, flags,
 * length, attempt, session, sequence, sent timestamp), so a server can answer a frame of a
 * version it does not speak. */
export const INVARIANT_SIZE = 28;

/** The largest UDP payload over IPv4 (65,535 − 20 IP − 8 UDP header bytes). */
export const MAX_DATAGRAM_IPV4 = 65507;

/** The largest UDP payload over IPv6 without jumbograms (65,535 − 8 UDP header bytes). */
export const MAX_DATAGRAM_IPV6 = 65527;

/** Flag bits. Unknown bits are ignored by receivers. */
export const Flags = {
  /** The frame ends with a 16-byte HMAC-SHA-256 tag over everything before it. */
  AUTHENTICATED: 0x0001,
  /** PING: report how it arrived (TTL, TOS, source) in the PONG's first 24 payload bytes. */
  PATH: 0x0002,
  /** PING: one PONG, after the delay in payload bytes 24 to 27 (u32 ms), none at once. */
  DELAYED: 0x0004,
  /** PING: count it and send no PONG (`udp bench --one-way`); its session's STATS say what
   * arrived. */
  ONE_WAY: 0x0008,
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

/** Message types. PING, STATS_REQUEST and STREAM_REQUEST are requests; PONG, ERROR, STATS,
 * STREAM_GRANT and STREAM_DATA are never answered. */
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
  /** Asks the reflector for a stream of STREAM_DATA to the sender (`udp bench -R`), or for a
   * cookie that proves the sender receives at its address (`stream.ts`). */
  STREAM_REQUEST: 6,
  /** The answer to a STREAM_REQUEST: a cookie, the stream granted, or why not. */
  STREAM_GRANT: 7,
  /** One datagram of a stream the reflector sends; never answered. */
  STREAM_DATA: 8,
} as const;

/** The message types a reflector answers. */
export const REQUEST_TYPES: readonly number[] = [
  MessageType.PING,
  MessageType.STATS_REQUEST,
  MessageType.STREAM_REQUEST,
];

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
  /** The 16 bytes before the check of an AUTHENTICATED frame. Encoding writes zeros when it
   * is absent: sign the frame afterwards (`auth.ts`). */
  tag?: Uint8Array;
}

/** Why a datagram that starts with {@linkcode MAGIC} is not a valid frame. */
export type MalformedReason =
  | "too-short"
  | "length-mismatch"
  | "unknown-type"
  | "bad-timestamp"
  | "bad-error-payload"
  | "bad-stats-payload"
  | "bad-delay-payload"
  | "bad-stream-payload";

/** Every {@linkcode MalformedReason}, in the order a reflector lists its counts. */
export const MALFORMED_REASONS: readonly MalformedReason[] = [
  "too-short",
  "length-mismatch",
  "unknown-type",
  "bad-timestamp",
  "bad-error-payload",
  "bad-stats-payload",
  "bad-delay-payload",
  "bad-stream-payload",
];

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

/** Options of {@linkcode encodeFrame}. */
export interface EncodeOptions {
  /** Write into this buffer (from offset 0) instead of allocating; it must be large enough. */
  into?: Uint8Array;
  /** Seal with this sealer where it is for frames of this length: the caller's word that the
   * bytes after the header are the sealer's (a sender's fixed padding). */
  sealer?: FrameSealer;
}

/**
 * Encodes a frame: header, then payload. The length field is computed.
 *
 * @example Encode a PING with 8 bytes of padding
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeFrame, MessageType } from "./protocol.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const bytes = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 1, sequence: 0,
 *   sentAt: { seconds: 1_700_000_000, nanos: 0 }, receivedAt: NO_TIMESTAMP,
 *   repliedAt: NO_TIMESTAMP, payload: new Uint8Array(8),
 * });
 * strictEqual(bytes.length, 56);
 * ```
 */
export function encodeFrame(frame: Frame, options: EncodeOptions = {}): Uint8Array {
  const tagged = (frame.flags & Flags.AUTHENTICATED) !== 0;
  const length = frameOverhead(tagged) + frame.payload.length;
  if (length > 0xffff) throw new RangeError(`frame of ${length} bytes exceeds 65535`);
  // A buffer of the frame's length is written as it is: a view of it would cost more than
  // the header (a sender writes every probe into one of its own).
  const into = options.into;
  const out = into === undefined
    ? new Uint8Array(length)
    : into.length === length
    ? into
    : into.subarray(0, length);
  if (out.length < length) throw new RangeError(`buffer of ${out.length} bytes < ${length}`);
  writeUint32(out, 0, MAGIC);
  out[4] = frame.version;
  out[5] = frame.type;
  writeUint16(out, 6, frame.flags);
  writeUint16(out, 8, length);
  writeUint16(out, 10, frame.attempt);
  writeUint32(out, 12, frame.session >>> 0);
  writeUint32(out, 16, frame.sequence >>> 0);
  writeTimestamp(out, SENT_AT, frame.sentAt);
  writeTimestamp(out, RECEIVED_AT, frame.receivedAt);
  writeTimestamp(out, REPLIED_AT, frame.repliedAt);
  out.set(frame.payload, HEADER_SIZE);
  if (tagged) {
    const tag = out.subarray(length - CHECK_SIZE - TAG_SIZE, length - CHECK_SIZE);
    if (frame.tag) tag.set(frame.tag.subarray(0, TAG_SIZE));
    else tag.fill(0);
  }
  sealFrame(out, options.sealer);
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
export function sealFrame(bytes: Uint8Array, sealer?: FrameSealer): void {
  const end = bytes.length - CHECK_SIZE;
  const crc = sealer?.length === bytes.length ? sealer.crc(bytes) : crc32c(bytes, end);
  writeCheck(bytes, crc);
}

/** Writes `crc` as a frame's check (its last 4 bytes, big-endian). */
export function writeCheck(bytes: Uint8Array, crc: number): void {
  const end = bytes.length - CHECK_SIZE;
  bytes[end] = crc >>> 24;
  bytes[end + 1] = (crc >>> 16) & 0xff;
  bytes[end + 2] = (crc >>> 8) & 0xff;
  bytes[end + 3] = crc & 0xff;
}

/** Whether a datagram's last 4 bytes are the CRC-32C of the bytes before them. */
export function checkFrame(bytes: Uint8Array): boolean {
  if (bytes.length < CHECK_SIZE) return false;
  return crc32c(bytes, bytes.length - CHECK_SIZE) === readCheck(bytes);
}

/** A frame's check as written (its last 4 bytes, big-endian); the frame has room for one. */
export function readCheck(bytes: Uint8Array): number {
  const end = bytes.length - CHECK_SIZE;
  return ((bytes[end] << 24) | (bytes[end + 1] << 16) | (bytes[end + 2] << 8) | bytes[end + 3]) >>>
    0;
}

/**
 * Reads the payload of an ERROR frame; null when it is too short for its own count.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { decodeErrorDetail } from "./protocol.ts";
 * assertEquals(decodeErrorDetail(new Uint8Array([1, 1, 1])), { code: 1, values: [1] });
 * assertEquals(decodeErrorDetail(new Uint8Array([1, 2, 1])), null);
 * ```
 */
export function decodeErrorDetail(payload: Uint8Array): ErrorDetail | null {
  if (payload.length < 2 || payload.length < 2 + payload[1]) return null;
  return { code: payload[0], values: Array.from(payload.subarray(2, 2 + payload[1])) };
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
