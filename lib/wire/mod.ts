/**
 * `lib/wire/`: the codecs, pure (no I/O, no clock). The `udp` frame of docs/protocol.md
 * (`protocol.ts`, decoded by `frame_decoding.ts`; its timestamps, STATS payload and reflector
 * replies beside it), its CRC-32C
 * check, frame authentication (HMAC-SHA-256, as STAMP), and the probe format the reflector,
 * ping and bench share: {@linkcode ProbeFormat}, with {@linkcode udpFormat} its first
 * implementation.
 *
 * @example A PING encoded, answered and read back, by the probe format
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import {
 *   emptySessionCounts, newReplyReading, newRequestReading, timestampFromMs, udpFormat,
 * } from "./mod.ts";
 * const ping = udpFormat.encodeRequest({
 *   type: "ping", session: 1, sequence: 0, attempt: 0, sentAt: timestampFromMs(Date.now()),
 *   padding: new Uint8Array(56), authenticated: false,
 * });
 * const request = newRequestReading();
 * udpFormat.readRequest(ping, request);
 * const now = timestampFromMs(Date.now());
 * const pong = udpFormat.answer(ping, request, {
 *   receivedAt: now, repliedAt: now, counts: null, session: emptySessionCounts(),
 *   ttl: -1, tos: -1, from: { hostname: "127.0.0.1", port: 9 }, replyTos: -1, replyTosSettable: false,
 *   local: { hostname: "127.0.0.1", port: 7 },
 * })!;
 * const reply = newReplyReading();
 * udpFormat.readReply(pong, reply);
 * strictEqual(reply.kind, "reply");
 * strictEqual(pong.length, 104);
 * ```
 *
 * @module
 */

export * from "./protocol.ts";
export * from "./frame_decoding.ts";
export { messageTypeName } from "./type_names.ts";
export {
  type CheckPatch,
  checkPatchOf,
  encodeError,
  makePong,
  makeStats,
  peekSentAt,
  restampReply,
} from "./replies.ts";
export {
  type ArrivalCounts,
  decodeStats,
  emptySessionCounts,
  markArrivalsUnwritten,
  readArrivalCounts,
  type SessionCounts,
  STATS_ARRIVALS_PAYLOAD_SIZE,
  STATS_PAYLOAD_SIZE,
  UNKNOWN_COUNT,
} from "./session_counts.ts";
export {
  isTimestampSet,
  NO_TIMESTAMP,
  type Timestamp,
  timestampDiffMs,
  timestampFromMs,
} from "./timestamp.ts";
export {
  computeTag,
  importKey,
  MAX_KEY_BYTES,
  MIN_KEY_BYTES,
  signFrame,
  verifyFrame,
} from "./auth.ts";
export type * from "./probe_format.ts";
export { newAnswerContext, newReplyReading, newRequestReading } from "./readings.ts";
export {
  DELAYED_PAYLOAD_SIZE,
  DELAYED_PER_SOURCE,
  DELAYED_TOTAL,
  MAX_DELAY_MS,
  MAX_DELAYED_BYTES,
  PATH_REPORT_SIZE,
  PathKnown,
  type PathReport,
  readDelay,
  readPathReport,
  writeDelay,
  writePathReport,
} from "./path_report.ts";
export { udpFormat } from "./udp_format.ts";
export {
  AUTHENTICATED as STAMP_AUTHENTICATED,
  type ClockQuality,
  STAMP_HMAC_SIZE,
  STAMP_MALFORMED_REASONS,
  STAMP_PORT,
  stampFormat,
  type StampLayout,
  type StampOptions,
  UNAUTHENTICATED as STAMP_UNAUTHENTICATED,
} from "./stamp.ts";
export {
  decodeErrorEstimate,
  encodeErrorEstimate,
  type ErrorEstimate,
  NTP_UNIX_OFFSET,
  readStampTimestamp,
  TAI_UTC_OFFSET,
  type TimestampFormat,
  writeStampTimestamp,
} from "./stamp_time.ts";
export {
  LocationSubTlv,
  SENDER_TLVS,
  type SenderTlv,
  SyncSource,
  TimestampMethod,
  TlvFlag,
  TlvType,
} from "./stamp_tlv.ts";
export {
  COOKIE_SIZE,
  encodeStreamRequest,
  layOutStreamData,
  makeGrant,
  readStreamFields,
  stampStreamData,
  STREAM_FIELDS_EXAMPLE,
  type StreamFields,
  StreamStatus,
  writeStreamFields,
} from "./stream.ts";
export {
  crc32c,
  crc32cAccelerated,
  crc32cShift,
  crc32cUpdate,
  FrameSealer,
  softwareCrc32cUpdate,
  useCrc32cUpdate,
} from "./crc32c.ts";
