/**
 * The `udp` frame format (docs/protocol.md) as a {@linkcode ProbeFormat}: what PINGs, PONGs,
 * STATS and ERRORs mean to a sender and to a reflector. The codec itself is `protocol.ts`.
 *
 * @module
 */

import { signFrame, verifyFrame } from "./auth.ts";
import type {
  AnswerContext,
  ProbeError,
  ProbeFormat,
  ProbeRequest,
  QuotedRequest,
  ReplyReading,
  RequestHeader,
  RequestReading,
} from "./probe_format.ts";
import {
  decodeErrorDetail,
  encodeFrame,
  ErrorCode,
  type ErrorDetail,
  Flags,
  frameOverhead,
  HEADER_SIZE,
  type Invariants,
  MAGIC,
  MALFORMED_REASONS,
  MessageType,
  PROTOCOL_VERSION,
  RECEIVED_AT,
  REPLIED_AT,
  REQUEST_TYPES,
  sealFrame,
  SUPPORTED_VERSIONS,
} from "./protocol.ts";
import { frameFlags, frameVerdict, payloadOf, readInvariants } from "./frame_decoding.ts";
import {
  DELAYED_PAYLOAD_SIZE,
  PATH_REPORT_SIZE,
  readDelay,
  readPathReport,
  writeDelay,
  writePathReport,
} from "./path_report.ts";
import {
  checkPatchOf,
  encodeError,
  makePong,
  makeStats,
  peekSentAt,
  restampReply,
} from "./replies.ts";
import {
  decodeStats,
  markArrivalsUnwritten,
  STATS_ARRIVALS_PAYLOAD_SIZE,
} from "./session_counts.ts";
import { NO_TIMESTAMP, readTimestamp, type Timestamp } from "./timestamp.ts";
import { messageTypeName } from "./type_names.ts";
import { readUint32 } from "./_bytes.ts";

/**
 * The `udp` frame format, version 1: the default of every reflector and sender.
 *
 * @example A PING, its PONG, and what the sender makes of it
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { newReplyReading, newRequestReading } from "./readings.ts";
 * import { emptySessionCounts } from "./session_counts.ts";
 * import { udpFormat } from "./udp_format.ts";
 * const sentAt = { seconds: 1_700_000_000, nanos: 0 };
 * const ping = udpFormat.encodeRequest({
 *   type: "ping", session: 7, sequence: 3, attempt: 1, sentAt,
 *   padding: new Uint8Array(8), authenticated: false,
 * });
 * strictEqual(ping.length, udpFormat.overhead(false) + 8);
 * const request = newRequestReading();
 * udpFormat.readRequest(ping, request);
 * strictEqual(request.kind, "ping");
 * strictEqual(request.header?.type, "PING");
 * const arrived = { seconds: 1_700_000_000, nanos: 500_000 };
 * const context = { receivedAt: arrived, repliedAt: arrived, counts: null, replyTos: -1, replyTosSettable: false,
 *   session: emptySessionCounts(), ttl: -1, tos: -1, from: { hostname: "::1", port: 9 }, local: { hostname: "::1", port: 7 } };
 * const pong = udpFormat.answer(ping, request, context)!;
 * strictEqual(pong.length, ping.length);
 * const reply = newReplyReading();
 * udpFormat.readReply(pong, reply);
 * strictEqual(reply.kind, "reply");
 * strictEqual(reply.request, "ping");
 * strictEqual(reply.sequence, 3);
 * strictEqual(reply.attempt, 1);
 * strictEqual(reply.receivedAt.nanos, 500_000);
 * ```
 */
export const udpFormat: ProbeFormat = {
  name: "udp",
  malformedReasons: MALFORMED_REASONS,
  // Room for the arrival counts, which a reflector that predates them leaves as sent (ff).
  statsPadding: STATS_ARRIVALS_PAYLOAD_SIZE,
  overhead: frameOverhead,
  encodeRequest,
  sign: signFrame,
  verify: verifyFrame,
  readReply,
  readQuoted,
  readRequest,
  peekSession,
  answer,
  restamp: restampReply,
  replyFits: (requestBytes, replyBytes) => requestBytes === replyBytes,
  // The path report tells the TTL and TOS each PING arrived with.
  readsIpHeader: true,
  hasStats: true,
  hasAttempts: true,
  sessionLimit: 0xffff_ffff,
  sessionsBySource: false,
};

function encodeRequest(request: ProbeRequest, into?: Uint8Array): Uint8Array {
  const ping = request.type === "ping";
  const padding = request.padding;
  let flags = request.authenticated ? Flags.AUTHENTICATED : 0;
  if (ping && request.path && padding.length >= PATH_REPORT_SIZE) flags |= Flags.PATH;
  if (ping && request.oneWay) flags |= Flags.ONE_WAY;
  const delayMs = ping ? request.delayMs : undefined;
  if (delayMs !== undefined) {
    if (padding.length < DELAYED_PAYLOAD_SIZE) {
      throw new RangeError(`a DELAYED PING needs ${DELAYED_PAYLOAD_SIZE} bytes of padding`);
    }
    flags |= Flags.DELAYED;
  }
  const bytes = encodeFrame({
    version: PROTOCOL_VERSION,
    type: ping ? MessageType.PING : MessageType.STATS_REQUEST,
    flags,
    attempt: request.attempt,
    session: request.session,
    sequence: request.sequence,
    sentAt: request.sentAt,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: padding,
  }, {
    into,
    // Only a flag in the header (ONE_WAY) may differ from the frame the sealer was made from.
    sealer: ping && (flags & ~Flags.ONE_WAY) === 0 ? request.sealer : undefined,
  });
  if (!ping && padding.length >= STATS_ARRIVALS_PAYLOAD_SIZE) {
    markArrivalsUnwritten(bytes.subarray(HEADER_SIZE));
    sealFrame(bytes);
    return bytes;
  }
  if ((flags & (Flags.PATH | Flags.DELAYED)) === 0) return bytes;
  // The report's room goes out as zeros: a reflector that does not write reports returns them,
  // which reads as "nothing known".
  const payload = bytes.subarray(HEADER_SIZE);
  payload.fill(0, 0, PATH_REPORT_SIZE);
  if (delayMs !== undefined) writeDelay(payload, delayMs);
  sealFrame(bytes);
  return bytes;
}

function readReply(datagram: Uint8Array, into: ReplyReading): void {
  // Read from the bytes, not from a decoded frame: a sender reads every reply this way.
  const verdict = frameVerdict(datagram);
  if (verdict?.kind === "corrupted") {
    into.kind = "corrupted";
    return;
  }
  if (verdict !== null) {
    into.kind = "foreign";
    into.reason = verdict.kind;
    return;
  }
  const { type, session, sequence, attempt } = readInvariants(datagram);
  const flags = frameFlags(datagram);
  into.session = session;
  into.sequence = sequence;
  into.attempt = attempt;
  into.authenticated = (flags & Flags.AUTHENTICATED) !== 0;
  // Valid: frameVerdict checked their nanoseconds.
  into.receivedAt = readTimestamp(datagram, RECEIVED_AT)!;
  into.repliedAt = readTimestamp(datagram, REPLIED_AT)!;
  into.counts = null;
  into.error = null;
  into.stamp = null;
  into.path = type === MessageType.PONG && (flags & Flags.PATH) !== 0
    ? readPathReport(payloadOf(datagram))
    : null;
  // A PING or STATS_REQUEST that comes back is our own request echoed (or anyone's request).
  into.kind = type === MessageType.ERROR
    ? "error"
    : type === MessageType.PONG || type === MessageType.STATS
    ? "reply"
    : "echo";
  into.request = type === MessageType.STATS || type === MessageType.STATS_REQUEST
    ? "stats"
    : "ping";
  if (type === MessageType.STATS) into.counts = decodeStats(payloadOf(datagram));
  if (type === MessageType.ERROR) into.error = readError(payloadOf(datagram));
}

/** What an ERROR says (its payload is valid: frameVerdict checked it). */
function readError(payload: Uint8Array): ProbeError {
  const detail = decodeErrorDetail(payload);
  const code = detail?.code;
  const values = detail?.values ?? [];
  // An ERROR that names what we sent as supported answers a request that was corrupted on
  // the way (a flipped version or type byte): not the reflector's verdict on us.
  const damagedRequest =
    (code === ErrorCode.UNSUPPORTED_VERSION && values.includes(PROTOCOL_VERSION)) ||
    (code === ErrorCode.UNSUPPORTED_TYPE && values.includes(MessageType.PING));
  const listed = values.join(", ");
  const message = code === ErrorCode.UNSUPPORTED_VERSION
    ? `does not speak protocol version ${PROTOCOL_VERSION} (it speaks: ${listed})`
    : code === ErrorCode.UNSUPPORTED_TYPE
    ? `does not serve PING (it serves types: ${listed})`
    : `answered with error code ${code}`;
  return { code: code ?? 0, message, damagedRequest };
}

function readRequest(datagram: Uint8Array, into: RequestReading): void {
  // Read from the bytes, not from a decoded frame: a reflector reads every PING this way.
  const verdict = frameVerdict(datagram);
  into.header = null;
  into.answerable = false;
  into.delayMs = -1;
  into.oneWay = false;
  if (verdict === null) {
    readValidRequest(datagram, into);
    return;
  }
  switch (verdict.kind) {
    case "unsupported-version":
      into.kind = "unsupported-version";
      if (verdict.invariants === null) return;
      into.header = headerOf(verdict.invariants, verdict.version);
      into.answerable = REQUEST_TYPES.includes(verdict.invariants.type);
      return;
    case "malformed":
      into.kind = "malformed";
      into.reason = verdict.reason;
      into.detail = verdict.detail;
      // Only an unknown type leaves the fields readable: it gets an UNSUPPORTED_TYPE.
      if (verdict.invariants === null) return;
      into.header = headerOf(verdict.invariants, PROTOCOL_VERSION);
      into.answerable = true;
      return;
    default:
      into.kind = verdict.kind;
  }
}

/** The fields of a frame frameVerdict found valid, as a request. */
function readValidRequest(datagram: Uint8Array, into: RequestReading): void {
  const invariants = readInvariants(datagram);
  const type = invariants.type;
  const flags = frameFlags(datagram);
  // Replies are never answered, so two reflectors can never bounce frames forever.
  const kind = type === MessageType.PING
    ? "ping"
    : type === MessageType.STATS_REQUEST
    ? "stats"
    : type === MessageType.STREAM_REQUEST
    ? "stream"
    : "unexpected";
  into.kind = kind;
  into.header = {
    type: messageTypeName(type),
    session: invariants.session,
    sequence: invariants.sequence,
    attempt: invariants.attempt,
    version: PROTOCOL_VERSION,
  };
  into.authenticated = (flags & Flags.AUTHENTICATED) !== 0;
  into.sentAt = peekSentAt(datagram);
  // frameVerdict made sure that a DELAYED PING has room for its delay.
  if (kind === "ping" && flags & Flags.DELAYED) into.delayMs = readDelay(payloadOf(datagram))!;
  into.oneWay = kind === "ping" && (flags & Flags.ONE_WAY) !== 0;
}

function headerOf(invariants: Invariants, version: number): RequestHeader {
  return {
    type: `type ${invariants.type}`,
    session: invariants.session,
    sequence: invariants.sequence,
    attempt: invariants.attempt,
    version,
  };
}

/**
 * The session of a datagram that starts like a PING, read without decoding it; else null: a
 * sender's STATS requests are not probes, so what a limit refuses of them is not counted.
 */
function peekSession(data: Uint8Array): number | null {
  if (data.length < 16 || data[5] !== MessageType.PING) return null;
  if (readUint32(data, 0) !== MAGIC) return null;
  return readUint32(data, 12);
}

/** A PING or STATS request as an ICMP error quoted it: its first 20 bytes are enough. */
function readQuoted(data: Uint8Array): QuotedRequest | null {
  if (data.length < 20) return null;
  if (data[5] !== MessageType.PING && data[5] !== MessageType.STATS_REQUEST) return null;
  if (readUint32(data, 0) !== MAGIC) return null;
  return {
    session: readUint32(data, 12),
    sequence: readUint32(data, 16),
    attempt: (data[10] << 8) | data[11],
  };
}

function answer(
  datagram: Uint8Array,
  reading: RequestReading,
  context: AnswerContext,
): Uint8Array | null {
  const { receivedAt, repliedAt, counts } = context;
  switch (reading.kind) {
    case "ping": {
      // The PING's check was verified: the PONG's is patched from it, over the bytes that
      // change (the header, and the report's room when one is written), not read in full.
      const patch = checkPatchOf(datagram, HEADER_SIZE + PATH_REPORT_SIZE);
      writeReport(datagram, context);
      // In place: the receive buffer is not reused before this reply has been sent.
      return makePong(datagram, datagram, receivedAt, repliedAt, patch);
    }
    case "stats":
      return counts === null ? null : makeStats(datagram, counts, receivedAt, repliedAt);
    case "unsupported-version":
    case "malformed": {
      const [code, values] = reading.kind === "malformed"
        ? [ErrorCode.UNSUPPORTED_TYPE, REQUEST_TYPES]
        : [ErrorCode.UNSUPPORTED_VERSION, SUPPORTED_VERSIONS];
      return errorReply(datagram, reading, { code, values: [...values] }, receivedAt, repliedAt);
    }
    default:
      return null;
  }
}

/** A PING that asks for a path report (PATH) and has room for it gets it, in place. */
function writeReport(datagram: Uint8Array, { ttl, tos, from }: AnswerContext): void {
  const flags = (datagram[6] << 8) | datagram[7];
  if ((flags & Flags.PATH) === 0) return;
  const payload = datagram.length - frameOverhead((flags & Flags.AUTHENTICATED) !== 0);
  if (payload < PATH_REPORT_SIZE) return;
  writePathReport(datagram.subarray(HEADER_SIZE, HEADER_SIZE + PATH_REPORT_SIZE), ttl, tos, from);
}

/** An ERROR matching the request (null when it would be longer than the request). */
function errorReply(
  datagram: Uint8Array,
  reading: RequestReading,
  detail: ErrorDetail,
  receivedAt: Timestamp,
  repliedAt: Timestamp,
): Uint8Array | null {
  const header = reading.header;
  if (!reading.answerable || header === null) return null;
  return encodeError(
    {
      attempt: header.attempt,
      session: header.session,
      sequence: header.sequence,
      sentAt: peekSentAt(datagram),
    },
    detail,
    datagram.length,
    receivedAt,
    repliedAt,
  );
}
