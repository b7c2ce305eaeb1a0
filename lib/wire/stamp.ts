/**
 * STAMP (RFC 8762, with RFC 8972's Session-Sender Identifier and TLVs) as a
 * {@linkcode ProbeFormat}: the session-sender's test packets and the session-reflector's
 * replies, unauthenticated (44-byte base) and authenticated (112-byte base, HMAC-SHA-256
 * truncated to 16 bytes), NTP or PTP timestamps. TWAMP-light (RFC 5357 Appendix I) packets,
 * STAMP's predecessor with the same layout, are answered and understood. docs/stamp.md is the
 * single source of these formats; the TLVs are `stamp_tlv.ts`.
 *
 * @module
 */

import { sameTag, truncatedHmac } from "./auth.ts";
import type {
  AnswerContext,
  ProbeFormat,
  ProbeRequest,
  QuotedRequest,
  ReplyReading,
  RequestReading,
  StampReplyFields,
} from "./probe_format.ts";
import {
  decodeErrorEstimate,
  encodeErrorEstimate,
  readStampTimestamp,
  type TimestampFormat,
  writeStampTimestamp,
} from "./stamp_time.ts";
import {
  hmacTlvOffset,
  readReplyTlvs,
  reflectTlvs,
  type SenderTlv,
  senderTlvsBytes,
  TLVS_PADDING_ONLY,
  writeSenderTlvs,
} from "./stamp_tlv.ts";
import { NO_TIMESTAMP, type Timestamp } from "./timestamp.ts";

/** Where each field of a base packet is, in one mode (docs/stamp.md, "Packets"). */
export interface StampLayout {
  /** Bytes of the base packet, sender's and reflector's alike. */
  readonly base: number;
  /** Sequence Number (the sender's; in a reply, the reflector's). */
  readonly sequence: number;
  /** Timestamp (T1; in a reply, T3). */
  readonly timestamp: number;
  /** Error Estimate of that timestamp's clock. */
  readonly errorEstimate: number;
  /** Session-Sender Identifier (RFC 8972; MBZ in RFC 8762 and TWAMP-light). */
  readonly ssid: number;
  /** Reply: Receive Timestamp (T2). */
  readonly receiveTimestamp: number;
  /** Reply: Session-Sender Sequence Number. */
  readonly senderSequence: number;
  /** Reply: Session-Sender Timestamp (T1). */
  readonly senderTimestamp: number;
  /** Reply: Session-Sender Error Estimate. */
  readonly senderErrorEstimate: number;
  /** Reply: Session-Sender TTL. */
  readonly senderTtl: number;
  /** Authenticated mode: the HMAC, over every byte before it; -1 in unauthenticated mode. */
  readonly hmac: number;
}

/** The unauthenticated layout: RFC 8762 §4.2.1 and §4.3.1, RFC 8972 §3. */
export const UNAUTHENTICATED: StampLayout = Object.freeze({
  base: 44,
  sequence: 0,
  timestamp: 4,
  errorEstimate: 12,
  ssid: 14,
  receiveTimestamp: 16,
  senderSequence: 24,
  senderTimestamp: 28,
  senderErrorEstimate: 36,
  senderTtl: 40,
  hmac: -1,
});

/** The authenticated layout: RFC 8762 §4.2.2 and §4.3.2, RFC 8972 §3. */
export const AUTHENTICATED: StampLayout = Object.freeze({
  base: 112,
  sequence: 0,
  timestamp: 16,
  errorEstimate: 24,
  ssid: 26,
  receiveTimestamp: 32,
  senderSequence: 48,
  senderTimestamp: 64,
  senderErrorEstimate: 72,
  senderTtl: 80,
  hmac: 96,
});

/** Bytes of the HMAC field: HMAC-SHA-256 truncated (RFC 8762 §4.4). */
export const STAMP_HMAC_SIZE = 16;

/**
 * The shortest reply that is understood: a TWAMP-light reflector's header (RFC 5357 §4.2.1)
 * up to the sender's error estimate, 38 bytes, without its MBZ and Sender TTL; an
 * authenticated reply needs its whole base.
 */
export const MIN_UNAUTHENTICATED_REPLY = 38;

/**
 * The shortest unauthenticated test packet answered: a TWAMP-light sender's with RFC 5357's 27
 * bytes of padding (41 bytes), answered with the TWAMP-light reply of its length (up to the
 * Sender TTL, byte 40); anything shorter would need a longer reply.
 */
export const MIN_UNAUTHENTICATED_REQUEST = 41;

/** The well-known port of STAMP (RFC 8762 §4.1). */
export const STAMP_PORT = 862;

/** What this end's clock is worth, as its error estimates say (docs/stamp.md). */
export interface ClockQuality {
  /** Known synchronized to UTC by an external source (the kernel says so). */
  synchronized: boolean;
  /** The clock's error bound in seconds; null when unknown. */
  errorSeconds: number | null;
}

/** Options of {@linkcode stampFormat}. */
export interface StampOptions {
  /** Authenticated mode (112-byte base and its HMAC); default unauthenticated. */
  authenticated?: boolean;
  /** Reflector: keep its own sequence number per session (RFC 8972 §4); default stateless. */
  stateful?: boolean;
  /** The format of this end's timestamps; default NTP. */
  timestamps?: TimestampFormat;
  /** This end's clock, for its error estimates: a value, or a function asked at each packet
   * (it should be cheap: lib/net's localClockQuality reads the kernel once a second); default
   * not synchronized, error unknown. */
  clock?: ClockQuality | (() => ClockQuality);
  /** Sender: the TLVs its test packets carry, besides Extra Padding (the padding). */
  tlvs?: readonly SenderTlv[];
  /** Sender: the DSCP it asks the reflector to reply with (Class of Service TLV). */
  dscpRequested?: number;
}

/** Every reason a reflector counts a STAMP test packet as malformed. */
export const STAMP_MALFORMED_REASONS: readonly string[] = Object.freeze(["too-short"]);

/**
 * A STAMP session-sender's and session-reflector's format.
 *
 * @example A test packet, its reflection and the sender's reading of it
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { newReplyReading, newRequestReading } from "./readings.ts";
 * import { emptySessionCounts } from "./session_counts.ts";
 * import { stampFormat } from "./stamp.ts";
 * const stamp = stampFormat();
 * const sentAt = { seconds: 1_700_000_000, nanos: 0 };
 * const packet = stamp.encodeRequest({
 *   type: "ping", session: 7, sequence: 3, attempt: 0, sentAt,
 *   padding: new Uint8Array(0), authenticated: false,
 * });
 * strictEqual(packet.length, 44);
 * const request = newRequestReading();
 * stamp.readRequest(packet, request);
 * strictEqual(request.kind, "ping");
 * const arrived = { seconds: 1_700_000_000, nanos: 500_000 };
 * const session = emptySessionCounts();
 * session.received = 1;
 * const reply = stamp.answer(packet, request, {
 *   receivedAt: arrived, repliedAt: arrived, counts: null, session, ttl: 250, tos: 0,
 *   from: { hostname: "192.0.2.1", port: 5000 }, local: { hostname: "0.0.0.0", port: 862 },
 *   replyTos: -1, replyTosSettable: false,
 * })!;
 * strictEqual(reply.length, 44);
 * const reading = newReplyReading();
 * stamp.readReply(reply, reading);
 * strictEqual(reading.kind, "reply");
 * strictEqual(reading.sequence, 3);
 * strictEqual(reading.session, 7);
 * strictEqual(reading.stamp?.ttl, 250);
 * strictEqual(reading.receivedAt.nanos, 500_000);
 * ```
 */
export function stampFormat(options: StampOptions = {}): ProbeFormat {
  return new StampFormat(options);
}

class StampFormat implements ProbeFormat {
  readonly name = "stamp";
  readonly malformedReasons = STAMP_MALFORMED_REASONS;
  readonly statsPadding = 0;
  readonly readsIpHeader = true;
  readonly hasStats = false;
  readonly hasAttempts = false;
  readonly sessionLimit = 0xffff;
  readonly sessionsBySource = true;
  readonly #layout: StampLayout;
  readonly #stateful: boolean;
  readonly #timestamps: TimestampFormat;
  readonly #clock: () => ClockQuality;
  #clockRead: ClockQuality | null = null;
  #errorEstimate = 0;
  readonly #tlvs: readonly SenderTlv[];
  readonly #tlvBytes: number;
  readonly #dscpRequested: number;
  readonly #fields: StampReplyFields = newStampFields();

  constructor(options: StampOptions) {
    this.#layout = options.authenticated ? AUTHENTICATED : UNAUTHENTICATED;
    this.#stateful = options.stateful ?? false;
    this.#timestamps = options.timestamps ?? "ntp";
    const clock = options.clock ?? { synchronized: false, errorSeconds: null };
    this.#clock = typeof clock === "function" ? clock : () => clock;
    this.#tlvs = options.tlvs ?? [];
    this.#tlvBytes = senderTlvsBytes(this.#tlvs, options.authenticated ?? false);
    this.#dscpRequested = options.dscpRequested ?? 0;
  }

  /** The error estimate of this end's clock now (encoded again only when it changed). */
  #estimate(): number {
    const clock = this.#clock();
    if (clock !== this.#clockRead) {
      this.#clockRead = clock;
      this.#errorEstimate = encodeErrorEstimate({ ...clock, ptp: this.#timestamps === "ptp" });
    }
    return this.#errorEstimate;
  }

  overhead(): number {
    return this.#layout.base + this.#tlvBytes;
  }

  replyFits(requestBytes: number, replyBytes: number): boolean {
    const least = this.#layout.hmac < 0 ? MIN_UNAUTHENTICATED_REPLY : this.#layout.base;
    return replyBytes >= least && replyBytes <= requestBytes;
  }

  encodeRequest(request: ProbeRequest, into?: Uint8Array): Uint8Array {
    const layout = this.#layout;
    const padding = request.padding.length;
    const length = layout.base + senderTlvsBytes(this.#tlvs, layout.hmac >= 0, padding);
    const bytes = into === undefined ? new Uint8Array(length) : into.subarray(0, length);
    bytes.fill(0);
    const view = new DataView(bytes.buffer, bytes.byteOffset, length);
    view.setUint32(layout.sequence, request.sequence);
    writeStampTimestamp(view, layout.timestamp, request.sentAt, this.#timestamps);
    view.setUint16(layout.errorEstimate, this.#estimate());
    view.setUint16(layout.ssid, request.session & 0xffff);
    writeSenderTlvs(bytes, layout.base, this.#tlvs, {
      padding,
      authenticated: layout.hmac >= 0,
      // Direct Measurement's S_TxC: the probes sent so far, this one included.
      transmitted: request.sequence + 1,
      dscpRequested: this.#dscpRequested,
    });
    return bytes;
  }

  async sign(datagram: Uint8Array, key: CryptoKey): Promise<void> {
    const at = this.#layout.hmac;
    if (at < 0 || datagram.length < at + STAMP_HMAC_SIZE) return;
    datagram.set(await truncatedHmac(key, datagram.subarray(0, at)), at);
    const tlv = hmacTlvOffset(datagram, this.#layout.base);
    if (tlv >= 0) {
      datagram.set(await truncatedHmac(key, hmacTlvText(datagram, this.#layout, tlv)), tlv + 4);
    }
  }

  /** The base packet's HMAC and, when there is one, the HMAC TLV's: a packet whose TLVs fail
   * their check is refused as a whole (docs/stamp.md says why), never reflected with I set. */
  async verify(datagram: Uint8Array, key: CryptoKey): Promise<boolean> {
    const layout = this.#layout;
    const at = layout.hmac;
    if (at < 0 || datagram.length < at + STAMP_HMAC_SIZE) return false;
    const tag = await truncatedHmac(key, datagram.subarray(0, at));
    if (!sameTag(tag, datagram.subarray(at, at + STAMP_HMAC_SIZE))) return false;
    // The base HMAC does not cover the TLVs: unless they are padding alone, an HMAC TLV must
    // cover them, and nothing but padding may follow it (else TLVs could be changed unseen).
    const tlv = hmacTlvOffset(datagram, layout.base);
    if (tlv === TLVS_PADDING_ONLY) return true;
    if (tlv < 0) return false;
    const tlvTag = await truncatedHmac(key, hmacTlvText(datagram, layout, tlv));
    return sameTag(tlvTag, datagram.subarray(tlv + 4, tlv + 4 + STAMP_HMAC_SIZE));
  }

  readQuoted(quoted: Uint8Array): QuotedRequest | null {
    const { sequence, ssid } = this.#layout;
    if (quoted.length < sequence + 4) return null;
    const view = viewOf(quoted);
    const session = quoted.length >= ssid + 2 ? view.getUint16(ssid) : null;
    return { session, sequence: view.getUint32(sequence), attempt: 0 };
  }

  readRequest(datagram: Uint8Array, into: RequestReading): void {
    const layout = this.#layout;
    into.answerable = false;
    into.header = null;
    const least = layout.hmac < 0 ? MIN_UNAUTHENTICATED_REQUEST : layout.base;
    if (datagram.length < least) {
      into.kind = "malformed";
      into.reason = "too-short";
      into.detail = `${datagram.length} bytes, less than the ${least} bytes of the shortest ` +
        `${layout.hmac < 0 ? "unauthenticated" : "authenticated"} test packet it could answer`;
      return;
    }
    const view = viewOf(datagram);
    into.kind = "ping";
    into.header = {
      type: "STAMP",
      session: view.getUint16(layout.ssid),
      sequence: view.getUint32(layout.sequence),
      attempt: 0,
      version: 0,
    };
    into.authenticated = layout.hmac >= 0;
    const format = decodeErrorEstimate(view.getUint16(layout.errorEstimate)).ptp ? "ptp" : "ntp";
    into.sentAt = readStampTimestamp(view, layout.timestamp, format) ?? NO_TIMESTAMP;
  }

  /** STAMP keeps no counts of refusals per session (it has no STATS to report them in). */
  peekSession(): number | null {
    return null;
  }

  answer(datagram: Uint8Array, reading: RequestReading, context: AnswerContext): Uint8Array | null {
    if (reading.kind !== "ping") return null;
    const layout = this.#layout;
    const view = viewOf(datagram);
    // The sender's fields move to their places in the reply before the reflector's overwrite them.
    const senderSequence = view.getUint32(layout.sequence);
    const senderTimestampHigh = view.getUint32(layout.timestamp);
    const senderTimestampLow = view.getUint32(layout.timestamp + 4);
    const senderError = view.getUint16(layout.errorEstimate);
    const ssid = view.getUint16(layout.ssid);
    datagram.fill(0, 0, layout.base);
    const sequence = this.#stateful ? context.session.received - 1 : senderSequence;
    view.setUint32(layout.sequence, sequence);
    writeStampTimestamp(view, layout.timestamp, context.repliedAt, this.#timestamps);
    view.setUint16(layout.errorEstimate, this.#estimate());
    view.setUint16(layout.ssid, ssid);
    writeStampTimestamp(view, layout.receiveTimestamp, context.receivedAt, this.#timestamps);
    view.setUint32(layout.senderSequence, senderSequence);
    view.setUint32(layout.senderTimestamp, senderTimestampHigh);
    view.setUint32(layout.senderTimestamp + 4, senderTimestampLow);
    view.setUint16(layout.senderErrorEstimate, senderError);
    // 0 when unknown: no datagram arrives with a TTL of 0.
    datagram[layout.senderTtl] = context.ttl > 0 ? context.ttl : 0;
    context.replyTos = reflectTlvs(datagram, layout.base, context, {
      synchronized: this.#clockRead!.synchronized,
      authenticated: layout.hmac >= 0,
    });
    return datagram;
  }

  restamp(reply: Uint8Array, now: () => Timestamp): void {
    // The Timestamp field of a reply is T3 (no check covers it; a signed reply is never
    // stamped again).
    const view = viewOf(reply);
    writeStampTimestamp(view, this.#layout.timestamp, now(), this.#timestamps);
  }

  readReply(datagram: Uint8Array, into: ReplyReading): void {
    const layout = this.#layout;
    into.counts = null;
    into.error = null;
    into.stamp = null;
    if (!this.replyFits(Infinity, datagram.length)) {
      into.kind = "foreign";
      into.reason = "malformed";
      return;
    }
    const view = viewOf(datagram);
    const ssid = view.getUint16(layout.ssid);
    into.session = ssid === 0 ? null : ssid;
    into.attempt = 0;
    into.request = "ping";
    into.authenticated = layout.hmac >= 0;
    const replyEstimate = decodeErrorEstimate(view.getUint16(layout.errorEstimate));
    const replyFormat = replyEstimate.ptp ? "ptp" : "ntp";
    const receivedAt = readStampTimestamp(view, layout.receiveTimestamp, replyFormat);
    const senderFormat = decodeErrorEstimate(view.getUint16(layout.senderErrorEstimate)).ptp
      ? "ptp"
      : "ntp";
    const requestSentAt = readStampTimestamp(view, layout.senderTimestamp, senderFormat);
    // A reflector always stamps the arrival and returns the sender's timestamp: with both
    // zero, this is a test packet (its MBZ bytes), ours sent back unchanged or someone's.
    if (isZero(view, layout.receiveTimestamp) && isZero(view, layout.senderTimestamp)) {
      into.kind = "echo";
      into.sequence = view.getUint32(layout.sequence);
      into.receivedAt = NO_TIMESTAMP;
      into.repliedAt = NO_TIMESTAMP;
      return;
    }
    const repliedAt = readStampTimestamp(view, layout.timestamp, replyFormat);
    if (receivedAt === null || repliedAt === null || requestSentAt === null) {
      into.kind = "foreign";
      into.reason = "malformed";
      return;
    }
    into.kind = "reply";
    into.sequence = view.getUint32(layout.senderSequence);
    into.receivedAt = receivedAt;
    into.repliedAt = repliedAt;
    const fields = this.#fields;
    fields.reflectorSequence = view.getUint32(layout.sequence);
    const ttl = datagram.length > layout.senderTtl ? datagram[layout.senderTtl] : 0;
    fields.ttl = ttl === 0 ? null : ttl;
    fields.requestSentAt = requestSentAt;
    fields.reflectorSynchronized = replyEstimate.synchronized;
    fields.reflectorErrorSeconds = replyEstimate.errorSeconds;
    fields.reflectorPtp = replyEstimate.ptp;
    readReplyTlvs(datagram, layout.base, fields);
    into.stamp = fields;
  }
}

/** A reading's STAMP fields before any reply (one object per format, reused). */
function newStampFields(): StampReplyFields {
  return {
    reflectorSequence: 0,
    ttl: null,
    requestSentAt: NO_TIMESTAMP,
    reflectorSynchronized: false,
    reflectorErrorSeconds: 0,
    reflectorPtp: false,
    direct: null,
    classOfService: null,
    timestampInfo: null,
    location: null,
    tlvFlags: { unrecognized: 0, malformed: 0, integrity: 0 },
    tlvsUntouched: false,
  };
}

/** What the HMAC TLV covers (RFC 8972 §4.8): the Sequence Number, then every TLV before it. */
function hmacTlvText(datagram: Uint8Array, layout: StampLayout, tlv: number): Uint8Array {
  const text = new Uint8Array(4 + tlv - layout.base);
  text.set(datagram.subarray(layout.sequence, layout.sequence + 4));
  text.set(datagram.subarray(layout.base, tlv), 4);
  return text;
}

function isZero(view: DataView, offset: number): boolean {
  return view.getUint32(offset) === 0 && view.getUint32(offset + 4) === 0;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
