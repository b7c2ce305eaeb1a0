/**
 * The reflector behind `udp serve`: answers PING with PONG, raw datagrams per the raw mode,
 * frames of other versions with an ERROR, and counts every datagram by kind. No datagram can
 * stop it, and no reply is ever longer than its request except the documented `ack:` prefix.
 *
 * @module
 */

import { canonicalHost } from "../net/address.ts";
import { signFrame, verifyFrame } from "../wire/auth.ts";
import { monotonicMs, wallClockAt, wallClockMs } from "../net/clock.ts";
import {
  decodeFrame,
  emptySessionCounts,
  encodeError,
  ErrorCode,
  Flags,
  type Frame,
  makePong,
  makeStats,
  type MalformedReason,
  MessageType,
  messageTypeName,
  peekSentAt,
  REQUEST_TYPES,
  type SessionCounts,
  SUPPORTED_VERSIONS,
  type Timestamp,
  timestampFromMs,
  UNKNOWN_COUNT,
} from "../wire/protocol.ts";
import { SourceLimiter, TokenBucket } from "./ratelimit.ts";
import { ReplayGuard } from "./replay.ts";
import { errorKind, type PeerAddress, UdpSocket } from "../net/socket.ts";

/** What the reflector does with raw (non-`udp`) datagrams. */
export type RawMode = "ack" | "echo" | "ignore";

/** Every raw mode, for option validation. */
export const RAW_MODES: readonly RawMode[] = ["ack", "echo", "ignore"];

/** How the reflector classified a datagram: "refused" covers datagrams dropped by a rate
 * limit and, with a key, PINGs without a valid tag or replayed or stale ones. */
export type DatagramKind =
  | "ping"
  | "corrupted"
  | "raw"
  | "malformed"
  | "unsupported-version"
  | "unexpected"
  | "refused"
  | "stats";

/** Why a datagram was refused without a reply. */
export type RefusalReason =
  | "rate-limit"
  | "global-limit"
  | "auth-missing"
  | "auth-failed"
  | "stale"
  | "replayed"
  | "replay-cache-full";

/** What the reflector sent back. */
export type ReplyKind = "pong" | "error" | "stats" | "ack" | "echo" | "none";

/** One datagram as the reflector saw and answered it (for `-v` and `--json` logs). */
export interface DatagramEvent {
  /** The sender. */
  from: PeerAddress;
  /** Size of the datagram. */
  bytes: number;
  /** Its classification. */
  kind: DatagramKind;
  /** For frames: type, session, sequence and attempt as far as they could be read. */
  frame?: { type: string; session: number; sequence: number; attempt: number; version: number };
  /** For malformed frames: the reason and a one-line detail. */
  malformed?: { reason: MalformedReason; detail: string };
  /** For raw datagrams: the data, a view valid only during the callback. */
  payload?: Uint8Array;
  /** For refused datagrams: why. */
  refused?: RefusalReason;
  /** The reply sent, if any. */
  reply: ReplyKind;
  /** Size of the reply (0 when none was sent). */
  replyBytes: number;
  /** Why sending the reply failed, if it did. */
  sendError?: string;
}

/** Counters of everything the reflector received and sent. */
export interface ReflectorStats {
  /** Datagrams received. */
  received: number;
  /** Bytes received (UDP payload). */
  bytesReceived: number;
  /** Replies sent successfully. */
  replied: number;
  /** Bytes sent in replies. */
  bytesReplied: number;
  /** Datagrams by classification. */
  kinds: Record<DatagramKind, number>;
  /** Malformed frames by reason. */
  malformed: Record<MalformedReason, number>;
  /** Refused datagrams by reason. */
  refused: Record<RefusalReason, number>;
  /** Errors by kind: replies that could not be sent, receive errors, internal errors. */
  errors: Record<string, number>;
  /** Datagrams the kernel dropped on the socket before the reflector could read them (its
   * receive buffer was full), as of the last one read; null where the kernel does not say. */
  kernelDrops: number | null;
}

/** Options of {@linkcode Reflector.listen}. */
export interface ReflectorOptions {
  /** Numeric address to bind (resolve names first). */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** Raw datagram handling; default "ack". */
  raw?: RawMode;
  /** Called after each datagram has been handled. */
  onDatagram?: (event: DatagramEvent) => void;
  /** With a key, only PINGs with a valid tag are answered (and PONGs are tagged); everything
   * else is dropped without a reply and counted. */
  key?: CryptoKey;
  /** With a key: how far a PING's timestamp may be from this clock, and how long its
   * (session, sequence, attempt) is remembered against replays. Default 30 s. */
  replayWindowMs?: number;
  /** Per source address: datagrams per second and burst; more are dropped and counted. */
  rateLimit?: { rate: number; burst: number };
  /** All sources together: datagrams per second and burst. */
  globalLimit?: { rate: number; burst: number };
  /** The socket's receive buffer to ask the kernel for, in bytes (see
   * {@linkcode Reflector.receiveBuffer}). */
  receiveBuffer?: number;
}

/** Sessions whose PING counts a reflector keeps for STATS_REQUEST. */
export const MAX_SESSIONS = 4096;

/** Default of {@linkcode ReflectorOptions.replayWindowMs}. */
export const DEFAULT_REPLAY_WINDOW_MS = 30_000;

const ACK_PREFIX = new TextEncoder().encode("ack:");

/**
 * A running reflector.
 *
 * @example Start a reflector on a free loopback port and stop it
 * ```ts
 * import { Reflector } from "./reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * console.log(reflector.address.port > 0); // true
 * await reflector.close();
 * console.log(reflector.stats.received); // 0
 * ```
 */
export class Reflector {
  readonly #socket: UdpSocket;
  readonly #raw: RawMode;
  readonly #onDatagram?: (event: DatagramEvent) => void;
  readonly #stats: ReflectorStats = {
    received: 0,
    bytesReceived: 0,
    replied: 0,
    bytesReplied: 0,
    kinds: {
      ping: 0,
      corrupted: 0,
      raw: 0,
      malformed: 0,
      "unsupported-version": 0,
      unexpected: 0,
      refused: 0,
      stats: 0,
    },
    malformed: {
      "too-short": 0,
      "length-mismatch": 0,
      "unknown-type": 0,
      "bad-timestamp": 0,
      "bad-error-payload": 0,
      "bad-stats-payload": 0,
    },
    refused: {
      "rate-limit": 0,
      "global-limit": 0,
      "auth-missing": 0,
      "auth-failed": 0,
      stale: 0,
      replayed: 0,
      "replay-cache-full": 0,
    },
    errors: {},
    kernelDrops: null,
  };
  readonly #key: CryptoKey | null;
  readonly #replay: ReplayGuard | null;
  readonly #sourceLimiter: SourceLimiter | null;
  readonly #globalLimiter: TokenBucket | null;
  /** PINGs received and answered per session, for STATS_REQUEST; the oldest session is
   * forgotten when the table is full. */
  readonly #sessions = new Map<number, SessionCounts>();
  readonly #finished: Promise<void>;
  readonly #receiveBuffer: number | null;

  private constructor(socket: UdpSocket, options: ReflectorOptions) {
    this.#socket = socket;
    this.#receiveBuffer = options.receiveBuffer === undefined
      ? null
      : socket.setReceiveBuffer(options.receiveBuffer);
    this.#raw = options.raw ?? (options.key ? "ignore" : "ack");
    this.#onDatagram = options.onDatagram;
    this.#key = options.key ?? null;
    this.#replay = options.key
      ? new ReplayGuard({ windowMs: options.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS })
      : null;
    this.#sourceLimiter = options.rateLimit ? new SourceLimiter(options.rateLimit) : null;
    this.#globalLimiter = options.globalLimit
      ? new TokenBucket(options.globalLimit.rate, options.globalLimit.burst, monotonicMs())
      : null;
    this.#finished = socket.receiveEach(
      (data, from, arrivedAt) => this.#handle(data, from, arrivedAt),
      (error) => this.#countError(`receive: ${errorKind(error)}`),
      // Datagrams are handled independently, so a batch may be handled together and answered
      // with one system call; not with a key, whose checks take a varying time and would let
      // replies overtake each other.
      { concurrent: this.#key === null },
    );
  }

  /** Binds and starts serving. Throws a UsageError when the address cannot be bound. */
  static listen(options: ReflectorOptions): Reflector {
    return new Reflector(UdpSocket.bind(options.hostname, options.port), options);
  }

  /** The bound address, with the real port. */
  get address(): PeerAddress {
    return this.#socket.address;
  }

  /** A snapshot of the counters. */
  get stats(): ReflectorStats {
    const stats = structuredClone(this.#stats);
    stats.kernelDrops = this.#socket.kernelDrops;
    return stats;
  }

  /**
   * The receive buffer the kernel granted for `receiveBuffer`, as it reports it (Linux doubles
   * the request); null when none was asked for or the backend cannot set it.
   */
  get receiveBuffer(): number | null {
    return this.#receiveBuffer;
  }

  /** Resolves when the reflector has stopped. */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Stops serving; the datagram being handled, if any, is finished and counted first. */
  async close(): Promise<void> {
    this.#socket.close();
    await this.#finished;
  }

  /**
   * Counts, classifies and answers one datagram. Synchronous unless it must wait (a key's
   * checks, or a reply queued with a batch's), so that a datagram costs no promise when
   * nothing is awaited: at 10 ms between probes, or under load, that is time in every RTT.
   */
  #handle(data: Uint8Array, from: PeerAddress, arrivedAt: number): void | Promise<void> {
    // Stamped with its arrival at the socket, so the time a client leaves out of its RTT as
    // ours includes our wake-up and queue: that is this host's, not the network's.
    const receivedAt = timestampFromMs(wallClockAt(arrivedAt));
    this.#stats.received++;
    this.#stats.bytesReceived += data.length;
    const source = canonicalHost(from.hostname);
    const event: DatagramEvent = {
      from: { ...from, hostname: source },
      bytes: data.length,
      kind: "raw",
      reply: "none",
      replyBytes: 0,
    };
    let reply: Uint8Array | null | Promise<Uint8Array | null> = null;
    try {
      const refusal = this.#overLimit(source);
      reply = refusal === null ? this.#classify(data, event, receivedAt) : null;
      if (refusal !== null) {
        this.#refuse(event, refusal);
        this.#countRefusal(peekSession(data), refusal);
      }
    } catch (error) {
      return this.#classifyFailed(error, event, from);
    }
    if (reply instanceof Promise) {
      return reply.then(
        (classified) => this.#answer(classified, event, from),
        (error) => this.#classifyFailed(error, event, from),
      );
    }
    return this.#answer(reply, event, from);
  }

  /** The codec never throws; this guards the counters against a bug, not against input. */
  #classifyFailed(error: unknown, event: DatagramEvent, from: PeerAddress): void {
    this.#countError(`internal: ${errorKind(error)}`);
    this.#answer(null, event, from);
  }

  /** Sends the reply, if any, and counts it once it has left (or failed). */
  #answer(reply: Uint8Array | null, event: DatagramEvent, from: PeerAddress): void | Promise<void> {
    this.#stats.kinds[event.kind]++;
    if (reply === null) {
      this.#onDatagram?.(event);
      return;
    }
    let sent: number | Promise<number>;
    try {
      sent = this.#socket.sendSoon(reply, from);
    } catch (error) {
      return this.#sendFailed(error, event);
    }
    if (typeof sent === "number") return this.#sent(sent, event);
    return sent.then(
      (bytes) => this.#sent(bytes, event),
      (error) => this.#sendFailed(error, event),
    );
  }

  #sent(bytes: number, event: DatagramEvent): void {
    this.#stats.replied++;
    this.#stats.bytesReplied += bytes;
    event.replyBytes = bytes;
    if (event.kind === "ping") this.#countsFor(event.frame!.session).replied++;
    this.#onDatagram?.(event);
  }

  #sendFailed(error: unknown, event: DatagramEvent): void {
    event.sendError = errorKind(error);
    this.#countError(event.sendError);
    event.reply = "none";
    this.#onDatagram?.(event);
  }

  /** Rate limits come first and cost no decoding: a flood is dropped as cheaply as possible. */
  #overLimit(source: string): RefusalReason | null {
    const now = monotonicMs();
    if (this.#sourceLimiter && !this.#sourceLimiter.allow(source, now)) return "rate-limit";
    if (this.#globalLimiter && !this.#globalLimiter.take(now)) return "global-limit";
    return null;
  }

  #refuse(event: DatagramEvent, reason: RefusalReason): null {
    event.kind = "refused";
    event.refused = reason;
    this.#stats.refused[reason]++;
    return null;
  }

  /**
   * Fills in the event's classification and returns the reply to send, if any: at once,
   * or, with a key (whose checks are asynchronous), as a promise.
   */
  #classify(
    data: Uint8Array,
    event: DatagramEvent,
    receivedAt: Timestamp,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    const decoded = decodeFrame(data);
    const key = this.#key;
    switch (decoded.kind) {
      case "corrupted":
        // Damaged on the way: no field of it can be trusted, so it is never answered.
        event.kind = "corrupted";
        return null;
      case "frame": {
        const { frame } = decoded;
        event.frame = {
          type: messageTypeName(frame.type),
          session: frame.session,
          sequence: frame.sequence,
          attempt: frame.attempt,
          version: frame.version,
        };
        if (frame.type !== MessageType.PING && frame.type !== MessageType.STATS_REQUEST) {
          // Replies are never answered, so two reflectors can never bounce frames forever.
          event.kind = "unexpected";
          return null;
        }
        if (key !== null) return this.#classifyAuthenticated(data, frame, event, receivedAt, key);
        return this.#replyTo(data, frame, event, receivedAt);
      }
      case "raw":
        event.kind = "raw";
        event.payload = data;
        if (this.#raw === "ignore") return null;
        event.reply = this.#raw;
        if (this.#raw === "echo") return data;
        return ackReply(data);
      case "unsupported-version": {
        event.kind = "unsupported-version";
        const invariants = decoded.invariants;
        if (invariants === null) return null;
        event.frame = { ...invariants, type: `type ${invariants.type}`, version: decoded.version };
        if (key !== null || !REQUEST_TYPES.includes(invariants.type)) return null;
        return this.#error(
          data,
          invariants,
          ErrorCode.UNSUPPORTED_VERSION,
          [
            ...SUPPORTED_VERSIONS,
          ],
          event,
          receivedAt,
        );
      }
      case "malformed": {
        event.kind = "malformed";
        event.malformed = { reason: decoded.reason, detail: decoded.detail };
        this.#stats.malformed[decoded.reason]++;
        const invariants = decoded.invariants;
        if (decoded.reason !== "unknown-type" || invariants === null || key !== null) return null;
        event.frame = { ...invariants, type: `type ${invariants.type}`, version: 1 };
        return this.#error(
          data,
          invariants,
          ErrorCode.UNSUPPORTED_TYPE,
          [...REQUEST_TYPES],
          event,
          receivedAt,
        );
      }
    }
  }

  /**
   * A request under a key: checks its tag and the replay window (refusing silently, so that no
   * reply tells an attacker which check failed), then signs the reply.
   */
  async #classifyAuthenticated(
    data: Uint8Array,
    frame: Frame,
    event: DatagramEvent,
    receivedAt: Timestamp,
    key: CryptoKey,
  ): Promise<Uint8Array | null> {
    if ((frame.flags & Flags.AUTHENTICATED) === 0) {
      this.#countRefusal(frame.session, "auth-missing");
      return this.#refuse(event, "auth-missing");
    }
    if (!(await verifyFrame(data, key))) {
      this.#countRefusal(frame.session, "auth-failed");
      return this.#refuse(event, "auth-failed");
    }
    const verdict = (this.#replay as ReplayGuard).check(
      frame.session,
      frame.sequence,
      frame.attempt,
      frame.sentAt,
      receivedAt,
    );
    if (verdict !== "ok") {
      const reason = verdict === "full" ? "replay-cache-full" : verdict;
      this.#countRefusal(frame.session, reason);
      return this.#refuse(event, reason);
    }
    const reply = this.#replyTo(data, frame, event, receivedAt);
    if (reply !== null) await signFrame(reply, key);
    return reply;
  }

  /** The PONG or STATS answering a request that passed every check. */
  #replyTo(
    data: Uint8Array,
    frame: Frame,
    event: DatagramEvent,
    receivedAt: Timestamp,
  ): Uint8Array | null {
    if (frame.type === MessageType.PING) {
      event.kind = "ping";
      event.reply = "pong";
      this.#countsFor(frame.session).received++;
      // In place: the receive buffer is not reused before this reply has been sent.
      return makePong(data, data, receivedAt, timestampFromMs(wallClockMs()));
    }
    event.kind = "stats";
    const counts = {
      ...(this.#sessions.get(frame.session) ?? emptySessionCounts()),
      kernelDrops: this.#socket.kernelDrops ?? UNKNOWN_COUNT,
      corrupted: this.#stats.kinds.corrupted,
    };
    const reply = makeStats(data, counts, receivedAt, timestampFromMs(wallClockMs()));
    if (reply !== null) event.reply = "stats";
    return reply;
  }

  #error(
    data: Uint8Array,
    request: { attempt: number; session: number; sequence: number },
    code: ErrorCode,
    values: number[],
    event: DatagramEvent,
    receivedAt: Timestamp,
  ): Uint8Array | null {
    const reply = encodeError(
      { ...request, sentAt: peekSentAt(data) },
      { code, values },
      data.length,
      receivedAt,
      timestampFromMs(wallClockMs()),
    );
    if (reply !== null) event.reply = "error";
    return reply;
  }

  #countsFor(session: number): SessionCounts {
    let counts = this.#sessions.get(session);
    if (counts === undefined) {
      if (this.#sessions.size >= MAX_SESSIONS) {
        this.#sessions.delete(this.#sessions.keys().next().value as number);
      }
      counts = emptySessionCounts();
      this.#sessions.set(session, counts);
    }
    return counts;
  }

  /**
   * Counts a refusal for the session it belongs to, when that session is known (it had a PING
   * accepted): never a new entry, so a flood of made-up sessions cannot push real ones out.
   */
  #countRefusal(session: number | null, reason: RefusalReason): void {
    const counts = session === null ? undefined : this.#sessions.get(session);
    if (counts === undefined) return;
    if (reason === "rate-limit") counts.refusedRateLimit++;
    else if (reason === "global-limit") counts.refusedGlobalLimit++;
    else if (reason === "auth-missing" || reason === "auth-failed") counts.refusedAuth++;
    else counts.refusedReplay++;
  }

  #countError(kind: string): void {
    this.#stats.errors[kind] = (this.#stats.errors[kind] ?? 0) + 1;
  }
}

/** The session of a datagram that starts like a frame, read without decoding it; else null. */
function peekSession(data: Uint8Array): number | null {
  if (data.length < 16 || data[0] !== 0xda || data[1] !== 0x7a || data[2] !== 0x55) return null;
  if (data[3] !== 0x50) return null;
  return ((data[12] << 24) | (data[13] << 16) | (data[14] << 8) | data[15]) >>> 0;
}

/**
 * The classic tutorial server's answer to a raw datagram: `ack:` followed by the data.
 *
 * @example
 * ```ts
 * import { ackReply } from "./reflector.ts";
 * console.log(new TextDecoder().decode(ackReply(new TextEncoder().encode("hi")))); // ack:hi
 * ```
 */
export function ackReply(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(ACK_PREFIX.length + data.length);
  out.set(ACK_PREFIX);
  out.set(data, ACK_PREFIX.length);
  return out;
}
