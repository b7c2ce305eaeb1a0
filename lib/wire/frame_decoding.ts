/**
 * Decoding the `udp` frame (docs/protocol.md): what a datagram is, and a valid frame's fields.
 * {@linkcode frameVerdict} finds a datagram valid without building anything, so the hot paths
 * (a reflector's PINGs, a sender's replies) read the fields they need from the bytes;
 * {@linkcode decodeFrame} builds the whole frame.
 *
 * @module
 */

import {
  CHECK_SIZE,
  checkFrame,
  type Decoded,
  decodeErrorDetail,
  Flags,
  type Frame,
  frameOverhead,
  HEADER_SIZE,
  INVARIANT_SIZE,
  type Invariants,
  MAGIC,
  type MalformedReason,
  MessageType,
  PROTOCOL_VERSION,
  RECEIVED_AT,
  REPLIED_AT,
  SENT_AT,
  STREAM_PAYLOAD_SIZE,
  TAG_SIZE,
} from "./protocol.ts";
import { DELAYED_PAYLOAD_SIZE } from "./path_report.ts";
import { STATS_PAYLOAD_SIZE } from "./session_counts.ts";
import { readTimestamp, timestampValidAt } from "./timestamp.ts";
import { readUint16, readUint32 } from "./_bytes.ts";

/** The shortest datagram that can be a frame of any version: the magic and the check. */
const MIN_FRAME_SIZE = 4 + CHECK_SIZE;

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
 * import { strictEqual } from "node:assert/strict";
 * import { decodeFrame } from "./frame_decoding.ts";
 * const result = decodeFrame(new TextEncoder().encode("hello"));
 * strictEqual(result.kind, "raw");
 * ```
 */
export function decodeFrame(bytes: Uint8Array): Decoded {
  return frameVerdict(bytes) ?? { kind: "frame", frame: readValidFrame(bytes) };
}

/** What {@linkcode decodeFrame} says of a datagram that is no valid frame. */
export type FrameVerdict = Exclude<Decoded, { kind: "frame" }>;

/**
 * What {@linkcode decodeFrame} says of a datagram that is no valid frame of version 1, or null
 * for one that is, found so without building anything: a reflector reads the few fields of a
 * PING it needs itself, since the frame's objects and its payload's view cost more than the
 * checks. Never throws.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeFrame, MessageType } from "./protocol.ts";
 * import { frameVerdict } from "./frame_decoding.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 1, sequence: 0,
 *   sentAt: NO_TIMESTAMP, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array(8),
 * });
 * strictEqual(frameVerdict(ping), null);
 * ping[30] ^= 1;
 * strictEqual(frameVerdict(ping)?.kind, "corrupted");
 * ```
 */
export function frameVerdict(bytes: Uint8Array): FrameVerdict | null {
  if (bytes.length < 4) return { kind: "raw" };
  const magic = readUint32(bytes, 0);
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
    const version = bytes.length > MIN_FRAME_SIZE ? bytes[4] : PROTOCOL_VERSION;
    if (version !== PROTOCOL_VERSION) {
      return { kind: "unsupported-version", version, invariants: null };
    }
    return malformed("too-short", `${bytes.length} bytes is shorter than the header`, null);
  }
  const version = bytes[4];
  const lengthField = readUint16(bytes, 8);
  if (version !== PROTOCOL_VERSION) {
    return {
      kind: "unsupported-version",
      version,
      invariants: lengthField === bytes.length ? readInvariants(bytes) : null,
    };
  }
  return version1Verdict(bytes, lengthField);
}

/**
 * The fields every version has at fixed offsets (see {@linkcode INVARIANT_SIZE}), of a
 * datagram long enough for them.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readInvariants } from "./frame_decoding.ts";
 * const bytes = new Uint8Array(20);
 * bytes[5] = 1;
 * bytes[15] = 7;
 * deepStrictEqual(readInvariants(bytes), { type: 1, attempt: 0, session: 7, sequence: 0 });
 * ```
 */
export function readInvariants(bytes: Uint8Array): Invariants {
  return {
    type: bytes[5],
    attempt: readUint16(bytes, 10),
    session: readUint32(bytes, 12),
    sequence: readUint32(bytes, 16),
  };
}

/**
 * The flags of a frame {@linkcode frameVerdict} found valid.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Flags } from "./protocol.ts";
 * import { frameFlags } from "./frame_decoding.ts";
 * const bytes = new Uint8Array(8);
 * bytes[7] = Flags.AUTHENTICATED;
 * strictEqual(frameFlags(bytes), Flags.AUTHENTICATED);
 * ```
 */
export function frameFlags(bytes: Uint8Array): number {
  return readUint16(bytes, 6);
}

/** Where a valid frame's payload ends (its tag, if any, and its check follow). */
function payloadEndOf(bytes: Uint8Array, flags: number): number {
  return bytes.length - CHECK_SIZE - ((flags & Flags.AUTHENTICATED) !== 0 ? TAG_SIZE : 0);
}

/** The rest of {@linkcode frameVerdict} for a frame of version 1 whose check is right. */
function version1Verdict(bytes: Uint8Array, lengthField: number): FrameVerdict | null {
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
  const type = bytes[5];
  if (type < MessageType.PING || type > MessageType.STREAM_DATA) {
    return malformed("unknown-type", `message type ${type} is not defined`, readInvariants(bytes));
  }
  if (
    !timestampValidAt(bytes, SENT_AT) || !timestampValidAt(bytes, RECEIVED_AT) ||
    !timestampValidAt(bytes, REPLIED_AT)
  ) {
    return malformed("bad-timestamp", "a timestamp has 1,000,000,000 or more nanoseconds", null);
  }
  const flags = frameFlags(bytes);
  const tagged = (flags & Flags.AUTHENTICATED) !== 0;
  if (tagged && bytes.length < frameOverhead(true)) {
    return malformed("too-short", "an authenticated frame has no room for its 16-byte tag", null);
  }
  const payloadLength = payloadEndOf(bytes, flags) - HEADER_SIZE;
  if (
    type === MessageType.ERROR &&
    decodeErrorDetail(bytes.subarray(HEADER_SIZE, HEADER_SIZE + payloadLength)) === null
  ) {
    return malformed("bad-error-payload", "ERROR payload is shorter than its count says", null);
  }
  if (type === MessageType.STATS && payloadLength < STATS_PAYLOAD_SIZE) {
    return malformed(
      "bad-stats-payload",
      `STATS payload is shorter than ${STATS_PAYLOAD_SIZE} bytes`,
      null,
    );
  }
  const stream = type === MessageType.STREAM_REQUEST || type === MessageType.STREAM_GRANT;
  if (stream && payloadLength < STREAM_PAYLOAD_SIZE) {
    const name = type === MessageType.STREAM_REQUEST ? "STREAM_REQUEST" : "STREAM_GRANT";
    const detail = `a ${name} needs ${STREAM_PAYLOAD_SIZE} payload bytes`;
    return malformed("bad-stream-payload", detail, null);
  }
  const delayed = type === MessageType.PING && (flags & Flags.DELAYED) !== 0;
  if (delayed && payloadLength < DELAYED_PAYLOAD_SIZE) {
    const detail = `a DELAYED PING needs ${DELAYED_PAYLOAD_SIZE} payload bytes for its delay`;
    return malformed("bad-delay-payload", detail, null);
  }
  return null;
}

/**
 * The payload of a frame {@linkcode frameVerdict} found valid: a view into `bytes`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeFrame, MessageType } from "./protocol.ts";
 * import { payloadOf } from "./frame_decoding.ts";
 * import { NO_TIMESTAMP } from "./timestamp.ts";
 * const ping = encodeFrame({
 *   version: 1, type: MessageType.PING, flags: 0, attempt: 0, session: 1, sequence: 0,
 *   sentAt: NO_TIMESTAMP, receivedAt: NO_TIMESTAMP, repliedAt: NO_TIMESTAMP,
 *   payload: new Uint8Array([1, 2, 3]),
 * });
 * strictEqual(payloadOf(ping).join(), "1,2,3");
 * ```
 */
export function payloadOf(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(HEADER_SIZE, payloadEndOf(bytes, frameFlags(bytes)));
}

/** The frame of a datagram {@linkcode frameVerdict} found valid. */
function readValidFrame(bytes: Uint8Array): Frame {
  const flags = frameFlags(bytes);
  const payloadEnd = payloadEndOf(bytes, flags);
  const { type, attempt, session, sequence } = readInvariants(bytes);
  const frame: Frame = {
    version: PROTOCOL_VERSION,
    type: type as MessageType,
    flags,
    attempt,
    session,
    sequence,
    // Valid: frameVerdict checked their nanoseconds.
    sentAt: readTimestamp(bytes, SENT_AT)!,
    receivedAt: readTimestamp(bytes, RECEIVED_AT)!,
    repliedAt: readTimestamp(bytes, REPLIED_AT)!,
    payload: bytes.subarray(HEADER_SIZE, payloadEnd),
  };
  if ((flags & Flags.AUTHENTICATED) !== 0) {
    frame.tag = bytes.subarray(payloadEnd, payloadEnd + TAG_SIZE);
  }
  return frame;
}

function malformed(
  reason: MalformedReason,
  detail: string,
  invariants: Invariants | null,
): FrameVerdict {
  return { kind: "malformed", reason, detail, invariants };
}
