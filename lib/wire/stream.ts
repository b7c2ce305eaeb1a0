/**
 * Streams from the reflector (docs/protocol.md, "Streams"): the payload of a STREAM_REQUEST
 * and of its STREAM_GRANT (a cookie, what is asked and what is granted), and the STREAM_DATA
 * frames of a stream. Pure; no I/O.
 *
 * @module
 */

import {
  encodeFrame,
  Flags,
  frameOverhead,
  HEADER_SIZE,
  MessageType,
  PROTOCOL_VERSION,
  RECEIVED_AT,
  REPLIED_AT,
  sealFrame,
  SENT_AT,
  STREAM_PAYLOAD_SIZE,
} from "./protocol.ts";
import { NO_TIMESTAMP, type Timestamp, writeTimestamp } from "./timestamp.ts";
import { writeUint32 } from "./_bytes.ts";

/** Bytes of the cookie that proves a sender receives at its address. */
export const COOKIE_SIZE = 16;

/** What a STREAM_GRANT says of the stream. */
export const StreamStatus = {
  /** No stream yet: here is the cookie; send the request again with it. */
  COOKIE: 0,
  /** The stream is running (started or renewed by this request). */
  STREAMING: 1,
  /** The stream is over (its duration, or no renewal for 2 s); `sent` is final. */
  ENDED: 2,
  /** Refused: the reflector runs as many streams as it allows (for this source, or in all). */
  REFUSED_BUSY: 3,
  /** Refused: the rate left within the reflector's limits is less than 1 datagram/s. */
  REFUSED_RATE: 4,
  /** Refused: the datagram size asked for is outside what the reflector sends. */
  REFUSED_SIZE: 5,
} as const;

/** A stream status number. */
export type StreamStatus = typeof StreamStatus[keyof typeof StreamStatus];

/** The fields of a STREAM_REQUEST's (or STREAM_GRANT's) payload. */
export interface StreamFields {
  /** The reflector's cookie for this sender (zeros before it has one). */
  cookie: Uint8Array;
  /** Datagrams per second asked for. */
  rate: number;
  /** Milliseconds asked for. */
  durationMs: number;
  /** Bytes of each STREAM_DATA datagram asked for. */
  size: number;
  /** The grant's status (0 in a request). */
  status: number;
  /** The grant's count of datagrams the stream has sent (0 in a request). */
  sent: number;
  /** The grant's rate, datagrams per second (0 in a request). */
  grantedRate: number;
  /** The grant's duration, ms (0 in a request). */
  grantedMs: number;
}

/**
 * Reads the fields of a STREAM_REQUEST or STREAM_GRANT payload (decodeFrame made sure it is
 * long enough); the cookie is a view into `payload`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readStreamFields, STREAM_FIELDS_EXAMPLE, writeStreamFields } from "./stream.ts";
 * const payload = new Uint8Array(40);
 * writeStreamFields(payload, STREAM_FIELDS_EXAMPLE);
 * strictEqual(readStreamFields(payload).rate, 1000);
 * ```
 */
export function readStreamFields(payload: Uint8Array): StreamFields {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    cookie: payload.subarray(0, COOKIE_SIZE),
    rate: view.getUint32(16),
    durationMs: view.getUint32(20),
    size: view.getUint16(24),
    status: view.getUint16(26),
    sent: view.getUint32(28),
    grantedRate: view.getUint32(32),
    grantedMs: view.getUint32(36),
  };
}

/** Writes the fields into the first {@linkcode STREAM_PAYLOAD_SIZE} bytes of a payload. */
export function writeStreamFields(payload: Uint8Array, fields: StreamFields): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  payload.set(fields.cookie.subarray(0, COOKIE_SIZE), 0);
  view.setUint32(16, fields.rate >>> 0);
  view.setUint32(20, fields.durationMs >>> 0);
  view.setUint16(24, fields.size);
  view.setUint16(26, fields.status);
  view.setUint32(28, fields.sent >>> 0);
  view.setUint32(32, fields.grantedRate >>> 0);
  view.setUint32(36, fields.grantedMs >>> 0);
}

/** The fields of an example request (the doc examples' and the tests'). */
export const STREAM_FIELDS_EXAMPLE: Readonly<StreamFields> = Object.freeze({
  cookie: new Uint8Array(COOKIE_SIZE),
  rate: 1000,
  durationMs: 2000,
  size: 1400,
  status: 0,
  sent: 0,
  grantedRate: 0,
  grantedMs: 0,
});

/**
 * A STREAM_REQUEST of a session: the fields, then zeros; laid out with room for a tag when
 * `authenticated` (sign it before sending).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeFrame } from "./frame_decoding.ts";
 * import { encodeStreamRequest, STREAM_FIELDS_EXAMPLE } from "./stream.ts";
 * const request = encodeStreamRequest(7, 0, { seconds: 1, nanos: 0 }, STREAM_FIELDS_EXAMPLE);
 * const decoded = decodeFrame(request);
 * strictEqual(decoded.kind === "frame" && decoded.frame.type, 6);
 * strictEqual(request.length, 88);
 * ```
 */
export function encodeStreamRequest(
  session: number,
  sequence: number,
  sentAt: Timestamp,
  fields: StreamFields,
  authenticated = false,
): Uint8Array {
  const payload = new Uint8Array(STREAM_PAYLOAD_SIZE);
  writeStreamFields(payload, fields);
  return encodeFrame({
    version: PROTOCOL_VERSION,
    type: MessageType.STREAM_REQUEST,
    flags: authenticated ? Flags.AUTHENTICATED : 0,
    attempt: 0,
    session,
    sequence,
    sentAt,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload,
  });
}

/**
 * Turns a STREAM_REQUEST (as received, valid) into its STREAM_GRANT in place: the type, the
 * reflector's timestamps and the grant's fields (the cookie and what was asked kept unless
 * given), sealed again. Exactly as long as the request: the reflector never amplifies.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { HEADER_SIZE } from "./protocol.ts";
 * import { decodeFrame } from "./frame_decoding.ts";
 * import {
 *   encodeStreamRequest, makeGrant, readStreamFields, STREAM_FIELDS_EXAMPLE, StreamStatus,
 * } from "./stream.ts";
 * const at = { seconds: 1, nanos: 0 };
 * const request = encodeStreamRequest(7, 0, at, STREAM_FIELDS_EXAMPLE);
 * const grant = makeGrant(request, { status: StreamStatus.STREAMING, sent: 5 }, at, at);
 * const decoded = decodeFrame(grant);
 * strictEqual(decoded.kind === "frame" && decoded.frame.type, 7);
 * strictEqual(readStreamFields(grant.subarray(HEADER_SIZE)).sent, 5);
 * ```
 */
export function makeGrant(
  request: Uint8Array,
  grant: Partial<StreamFields>,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): Uint8Array {
  const payload = request.subarray(HEADER_SIZE);
  writeStreamFields(payload, { ...readStreamFields(payload), ...grant });
  request[5] = MessageType.STREAM_GRANT;
  writeTimestamp(request, RECEIVED_AT, receivedAt);
  writeTimestamp(request, REPLIED_AT, repliedAt);
  sealFrame(request);
  return request;
}

/**
 * Lays out a stream's STREAM_DATA frame of `size` bytes in `into` (zero padding): the header
 * once; {@linkcode stampStreamData} then numbers, stamps and seals each datagram.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeFrame } from "./frame_decoding.ts";
 * import { layOutStreamData, stampStreamData } from "./stream.ts";
 * const frame = layOutStreamData(new Uint8Array(100), 7, false);
 * stampStreamData(frame, 42, { seconds: 1, nanos: 5 });
 * const decoded = decodeFrame(frame);
 * strictEqual(decoded.kind === "frame" && decoded.frame.sequence, 42);
 * ```
 */
export function layOutStreamData(
  into: Uint8Array,
  session: number,
  authenticated: boolean,
): Uint8Array {
  const size = into.length;
  if (size < frameOverhead(authenticated)) throw new RangeError(`${size} bytes is too short`);
  into.fill(0);
  return encodeFrame({
    version: PROTOCOL_VERSION,
    type: MessageType.STREAM_DATA,
    flags: authenticated ? Flags.AUTHENTICATED : 0,
    attempt: 0,
    session,
    sequence: 0,
    sentAt: NO_TIMESTAMP,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: new Uint8Array(size - frameOverhead(authenticated)),
  }, { into });
}

/** Numbers a laid-out STREAM_DATA frame, stamps it with its send time and seals it (sign it
 * after, under a key). */
export function stampStreamData(frame: Uint8Array, sequence: number, sentAt: Timestamp): void {
  writeUint32(frame, 16, sequence >>> 0);
  writeTimestamp(frame, SENT_AT, sentAt);
  sealFrame(frame);
}
