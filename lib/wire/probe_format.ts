/**
 * The probe format: what the reflector, ping and bench need of a wire format, so that a
 * second one (STAMP, RFC 8762, say) is one module implementing {@linkcode ProbeFormat}. The
 * `udp` frame format (`udp_format.ts`) is the first. A listener or a sender is told its format
 * by configuration, never by sniffing bytes.
 *
 * Reading a datagram fills in an object the caller keeps and reuses ({@linkcode
 * RequestReading}, {@linkcode ReplyReading}; `readings.ts` makes them), so that a reflector
 * costs no allocation per datagram for it; what a reading refers to (its header, timestamps
 * and counts) is made afresh for each datagram and may be kept. This module holds the
 * interface's types only.
 *
 * @module
 */

import type { PathReport } from "./path_report.ts";
import type { FrameSealer } from "./crc32c.ts";
import type { SessionCounts } from "./session_counts.ts";
import type { Timestamp } from "./timestamp.ts";

/** The two requests a sender makes: a probe to time, or a question for the reflector's
 * counts of its session. */
export type RequestType = "ping" | "stats";

/** What a reflector makes of a datagram: a request to answer ("ping", "stats", "stream": a
 * request for a stream, udp's own), or what it counts instead. */
export type RequestKind =
  | RequestType
  | "stream"
  | "corrupted"
  | "raw"
  | "malformed"
  | "unsupported-version"
  | "unexpected";

/** A request's fields as far as they could be read, for logs. */
export interface RequestHeader {
  /** The message type for people, e.g. "PING" or "type 9". */
  type: string;
  /** Session identifier. */
  session: number;
  /** Sequence number. */
  sequence: number;
  /** Retransmission number. */
  attempt: number;
  /** Protocol version. */
  version: number;
}

/**
 * One datagram as a reflector's format read it ({@linkcode ProbeFormat.readRequest}). Only the
 * fields of its kind are meaningful; the others hold what an earlier datagram left.
 */
export interface RequestReading {
  /** What the datagram is. */
  kind: RequestKind;
  /** "malformed": why, one of the format's {@linkcode ProbeFormat.malformedReasons}. */
  reason: string;
  /** "malformed": one line for people. */
  detail: string;
  /** Requests and "unexpected" frames: the header. "malformed" and "unsupported-version":
   * the header when it could be read, else null; other kinds: null. */
  header: RequestHeader | null;
  /** Requests: whether it is laid out as authenticated (it carries a tag to verify). */
  authenticated: boolean;
  /** Requests: the sender's clock when it sent it (for the replay window). */
  sentAt: Timestamp;
  /** "malformed" and "unsupported-version": whether the format has an error reply to it (one
   * the sender can match); whether to send it is the reflector's policy. */
  answerable: boolean;
  /** "ping": the delay in milliseconds its one reply is asked to wait, none being sent at once
   * (udp's DELAYED flag); -1: answer at once. Whether it is granted is the reflector's. */
  delayMs: number;
  /** "ping": to be counted and not answered (udp's ONE_WAY flag: `udp bench --one-way`). */
  oneWay: boolean;
}

/** Why a datagram is no reply at all, as the format tells. */
export type NotAReply = "raw" | "malformed" | "unsupported-version";

/** What a sender makes of a datagram that reached it. */
export type ReplyReadingKind = "reply" | "echo" | "error" | "corrupted" | "foreign";

/** A reflector's error reply (udp's ERROR frame), read. */
export interface ProbeError {
  /** The error code. */
  code: number;
  /** What it says, for people, after the reflector's address: e.g. "does not speak protocol
   * version 1 (it speaks: 2)". */
  message: string;
  /** Whether it names what was sent as supported: the answer to a request damaged on the way
   * (a flipped version or type byte), not the reflector's verdict on the sender. */
  damagedRequest: boolean;
}

/**
 * One datagram as a sender's format read it ({@linkcode ProbeFormat.readReply}). Only the
 * fields of its kind are meaningful; the others hold what an earlier datagram left.
 */
export interface ReplyReading {
  /** "reply": a reflector's answer; "echo": a request of the format back unchanged (a plain
   * echo server's answer, or someone's request); "error": a reflector's error reply;
   * "corrupted": damaged on the way; "foreign": no reply at all ({@linkcode reason}). */
  kind: ReplyReadingKind;
  /** "foreign": why. */
  reason: NotAReply;
  /** "reply" and "echo": the request it answers, or is. */
  request: RequestType;
  /** "reply", "echo", "error": the session it names; null when it names none (a STAMP
   * reflector that predates RFC 8972 returns no Session-Sender Identifier). */
  session: number | null;
  /** "reply", "echo", "error": the sequence number it names. */
  sequence: number;
  /** "reply", "echo", "error": the attempt it names. */
  attempt: number;
  /** "reply", "echo", "error": whether it is laid out as authenticated (verify its tag). */
  authenticated: boolean;
  /** "reply", "echo": the request's arrival at the reflector, by its clock; not set when the
   * reflector did not say. */
  receivedAt: Timestamp;
  /** "reply", "echo": when the reflector sent the reply; not set when it did not say. */
  repliedAt: Timestamp;
  /** A "reply" to a "stats" request: the reflector's counts. */
  counts: SessionCounts | null;
  /** "error": what the reflector said. */
  error: ProbeError | null;
  /** "reply" in a STAMP format: what the reflector said beyond its timestamps; else null. */
  stamp: StampReplyFields | null;
  /** "reply" to a request that asked for it ({@linkcode ProbeRequest.path}): what the
   * reflector reported of the request's arrival; null when it was not asked, had no room, or
   * the reflector knew nothing (one that does not write reports). */
  path: PathReport | null;
}

/** What a STAMP reflector's reply says besides its two timestamps (docs/stamp.md). */
export interface StampReplyFields {
  /** The reflector's own sequence number: its count of the session's packets before this
   * one when stateful, the sender's sequence number when stateless. */
  reflectorSequence: number;
  /** The TTL (IPv6: hop limit) the request arrived with, as the reflector saw it; null when
   * it did not say (0, or a TWAMP-light reply too short to carry it). */
  ttl: number | null;
  /** The request's own timestamp (T1) as the reflector returned it. */
  requestSentAt: Timestamp;
  /** Whether the reflector's error estimate says its clock is synchronized to UTC (S bit). */
  reflectorSynchronized: boolean;
  /** The reflector's error estimate in seconds. */
  reflectorErrorSeconds: number;
  /** Whether the reflector's timestamps are PTP's (Z bit), else NTP's. */
  reflectorPtp: boolean;
  /** Direct Measurement TLV, as the reflector filled it in; null when absent or not filled. */
  direct:
    | { senderTransmitted: number; reflectorReceived: number; reflectorTransmitted: number }
    | null;
  /** Class of Service TLV: the DSCP asked for the reply, the DSCP and ECN the request arrived
   * with; null when absent or not filled. */
  classOfService: { dscpRequested: number; dscpReceived: number; ecnReceived: number } | null;
  /** Timestamp Information TLV as the reflector filled it in (RFC 8972 codes); null when absent. */
  timestampInfo: { syncSource: number; methodIn: number; methodOut: number } | null;
  /** Location TLV: the source address and port the reflector saw; null when absent. */
  location: { address: string | null; port: number } | null;
  /** TLVs the reflector flagged it does not know (U), found malformed (M) or failing
   * integrity (I). */
  tlvFlags: { unrecognized: number; malformed: number; integrity: number };
  /** Whether the reflector returned the TLVs as they were sent: it does not process them
   * (RFC 8762 without RFC 8972, or TWAMP-light). */
  tlvsUntouched: boolean;
}

/** A request to encode ({@linkcode ProbeFormat.encodeRequest}). */
export interface ProbeRequest {
  /** A probe, or a question for the session's counts. */
  type: RequestType;
  /** The sender's session. */
  session: number;
  /** Probe number within the session. */
  sequence: number;
  /** Retransmission number, 0 for the first transmission. */
  attempt: number;
  /** The sender's clock now. */
  sentAt: Timestamp;
  /** The bytes the request carries besides the format's own (a "stats" request needs
   * {@linkcode ProbeFormat.statsPadding} of them). */
  padding: Uint8Array;
  /** Laid out with room for a tag: sign it ({@linkcode ProbeFormat.sign}) before sending. */
  authenticated: boolean;
  /** A "ping": ask the reflector to report how it arrived (udp's PATH flag), where the
   * padding has room for the report; formats without one ignore it. */
  path?: boolean;
  /** A "ping": ask for its one reply after this many milliseconds of silence, none at once
   * (udp's DELAYED flag; the padding needs room for the delay). Formats without it ignore it. */
  delayMs?: number;
  /** A "ping": to be counted and not answered (udp's ONE_WAY flag); formats without it
   * ignore it (their reflectors answer). */
  oneWay?: boolean;
  /** A "ping": seal with this where its length fits (the sender's word that the bytes after
   * the header are the sealer's: its fixed padding); formats without one ignore it. */
  sealer?: FrameSealer;
}

/** A request as an ICMP error quoted it ({@linkcode ProbeFormat.readQuoted}). */
export interface QuotedRequest {
  /** The session it names; null when the quote is too short to say (a STAMP packet's). */
  session: number | null;
  /** Its probe number. */
  sequence: number;
  /** Its retransmission number (0 for a format without them). */
  attempt: number;
}

/**
 * A wire format for probes, as its senders (ping, bench) and its reflector use it. Every method
 * is pure (no I/O, no clock) and never throws on what it reads.
 */
export interface ProbeFormat {
  /** The format's name, e.g. "udp". */
  readonly name: string;
  /** Every reason {@linkcode ProbeFormat.readRequest} may give a malformed datagram, in the
   * order a reflector lists its counts. */
  readonly malformedReasons: readonly string[];
  /** Bytes of padding a "stats" request needs, for the reply's counts. */
  readonly statsPadding: number;

  /** Bytes a request or its reply adds to its padding, authenticated or not. */
  overhead(authenticated: boolean): number;
  /** Writes a request into `into` (from offset 0; it must be large enough) or, without it,
   * into a new buffer, and returns the datagram. */
  encodeRequest(request: ProbeRequest, into?: Uint8Array): Uint8Array;
  /** Writes the tag of a datagram laid out as authenticated, in place. */
  sign(datagram: Uint8Array, key: CryptoKey): Promise<void>;
  /** Whether a datagram laid out as authenticated carries its right tag. */
  verify(datagram: Uint8Array, key: CryptoKey): Promise<boolean>;
  /** Reads a datagram a sender received into `into`. */
  readReply(datagram: Uint8Array, into: ReplyReading): void;
  /**
   * Which request an ICMP error is about, from what it quoted of it (the datagram's first
   * bytes, mostly all of them): null when too little was quoted to tell, or it is not a
   * request of the format. Unchecked (a quote may be cut short before the check).
   */
  readQuoted(quoted: Uint8Array): QuotedRequest | null;

  /** Reads a datagram a reflector received into `into`. */
  readRequest(datagram: Uint8Array, into: RequestReading): void;
  /** The session a probe names, read without checking it (for counting what a rate limit
   * refused before decoding); null when it does not look like one of the format's probes. */
  peekSession(datagram: Uint8Array): number | null;
  /**
   * The reply to a datagram `readRequest` read as `reading`, built in place in its bytes (or,
   * for an error, beside them) and never longer: a request's answer (a "stats" one carries
   * `context.counts`, the reflector's for the session), or an "answerable" datagram's error
   * reply. Null when there is none: no room for it, no counts, or nothing to answer. Unsigned:
   * a reflector with a key signs it.
   */
  answer(datagram: Uint8Array, reading: RequestReading, context: AnswerContext): Uint8Array | null;
  /**
   * Writes `now()` as the send time of a reply `answer` built (unsigned), as it is about to
   * leave, with the rest of the reply as it was (a check made right again), reading the clock
   * as late as it can: what the reflector did between building and sending it is its own time,
   * not the network's.
   */
  restamp(reply: Uint8Array, now: () => Timestamp): void;

  /** Whether a reply of `replyBytes` can answer a request of `requestBytes`: equal for udp's
   * frames; a STAMP reply may be shorter (a TWAMP-light reflector's), never longer. */
  replyFits(requestBytes: number, replyBytes: number): boolean;
  /** Whether its replies tell the TTL and TOS byte a request arrived with (STAMP's Sender TTL
   * and Class of Service TLV): its reflector asks the socket for them. */
  readonly readsIpHeader: boolean;
  /** Whether it has "stats" requests (udp's STATS; STAMP has none). */
  readonly hasStats: boolean;
  /** Whether its requests carry a retransmission number (STAMP's do not). */
  readonly hasAttempts: boolean;
  /** The largest session number; sessions are 1 to this. */
  readonly sessionLimit: number;
  /** Whether a reflector tells sessions apart by their source address and port as well as by
   * number (STAMP's 16-bit Session-Sender Identifier is not unique across senders). */
  readonly sessionsBySource: boolean;
}

/**
 * What a reflector knows of a request beyond its bytes, for {@linkcode ProbeFormat.answer}:
 * one object the reflector reuses, valid during the call.
 */
export interface AnswerContext {
  /** When the request arrived, by the reflector's clock. */
  receivedAt: Timestamp;
  /** When the reply leaves, by the reflector's clock. */
  repliedAt: Timestamp;
  /** A "stats" request's answer: the reflector's counts for the session; else null. */
  counts: SessionCounts | null;
  /** The request's session as the reflector counts it: `received` includes this request,
   * `replied` does not include its reply. */
  session: SessionCounts;
  /** The TTL (IPv6: hop limit) the request arrived with; -1 when unknown. */
  ttl: number;
  /** The TOS byte (IPv6: traffic class) the request arrived with; -1 when unknown. */
  tos: number;
  /** Where the request came from (canonical address). */
  from: { hostname: string; port: number };
  /** Where it arrived: the reflector's bound address (a wildcard when bound to one). */
  local: { hostname: string; port: number };
  /** Whether the reflector's socket can send a reply with a TOS byte of its choice. */
  replyTosSettable: boolean;
  /** Set by `answer`: the TOS byte the reply asks to leave with (STAMP's Class of Service
   * TLV), or -1 for the socket's own. */
  replyTos: number;
}
