/**
 * The reflector behind `udp serve`: answers PING with PONG, raw datagrams per the raw mode,
 * frames of other versions with an ERROR, and counts every datagram by kind. No datagram can
 * stop it, and no reply is ever longer than its request except the documented `ack:` prefix.
 *
 * @module
 */

import {
  CanonicalPeers,
  errorKind,
  monotonicMs,
  type PeerAddress,
  type ReceiveMeta,
  type SendReceipt,
  UdpSocket,
  wallClockAt,
  wallClockMs,
} from "../net/mod.ts";
import {
  type AnswerContext,
  newAnswerContext,
  newRequestReading,
  NO_TIMESTAMP,
  type ProbeFormat,
  type RequestReading,
  type SessionCounts,
  type Timestamp,
  timestampDiffMs,
  timestampFromMs,
  udpFormat,
  UNKNOWN_COUNT,
} from "../wire/mod.ts";
import { SourceLimiter, TokenBucket } from "./ratelimit.ts";
import {
  type DatagramEvent,
  emptyStats,
  type ReflectorStats,
  type RefusalReason,
  type ReplyKind,
} from "./reflector_stats.ts";
import { ReplayGuard } from "./replay.ts";
import { DEFAULT_REPLAY_WINDOW_MS, type ReflectorOptions } from "./reflector_options.ts";
import { arrivalCounts, SessionTable } from "./_sessions.ts";
import { DelayedReplies } from "./_delayed.ts";
import { StreamServer } from "./_streams.ts";

import { ackReply, type RawMode } from "./raw.ts";

export { ackReply, RAW_MODES, type RawMode } from "./raw.ts";
export { MAX_SESSIONS } from "./_sessions.ts";

// What a reflector reports, also from here (where lib/cli imports it from).
export type * from "./reflector_stats.ts";
export { DEFAULT_REPLAY_WINDOW_MS, type ReflectorOptions } from "./reflector_options.ts";

/**
 * A running reflector: limits, authentication, counting and sending; what a datagram is and
 * what answers it are its wire format's ({@linkcode ReflectorOptions.format}).
 *
 * @example Start a reflector on a free loopback port and stop it
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { Reflector } from "./reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * ok(reflector.address.port > 0);
 * await reflector.close();
 * strictEqual(reflector.stats.received, 0);
 * ```
 */
export class Reflector {
  readonly #socket: UdpSocket;
  readonly #format: ProbeFormat;
  readonly #raw: RawMode;
  readonly #onDatagram?: (event: DatagramEvent) => void;
  readonly #stats: ReflectorStats;
  readonly #key: CryptoKey | null;
  readonly #replay: ReplayGuard | null;
  readonly #sourceLimiter: SourceLimiter | null;
  readonly #globalLimiter: TokenBucket | null;
  /** PINGs received and answered per session, and what was refused of each. */
  readonly #sessions: SessionTable;
  /** What the format's answer is told besides the datagram, one for all (as #request). */
  readonly #context: AnswerContext = newAnswerContext();
  /** The format's reading of the datagram being handled, one for all: a datagram is read and
   * answered before the next is, but under a key, whose datagrams are handled one at a time
   * (see the constructor), so it still holds the datagram's reading after its awaits. */
  readonly #request: RequestReading = newRequestReading();
  readonly #finished: Promise<void>;
  readonly #receiveBuffer: number | null;
  /** PINGs whose one reply waits for its delay (DELAYED). */
  readonly #delayed: DelayedReplies;
  /** The streams it sends to senders that asked (STREAM_REQUEST). */
  readonly #streams: StreamServer;
  /** The datagram being handled's arrival, monotonic (what a delay counts from) and by the
   * wall clock (its session's arrival counts), and where it was sent to (ReceiveMeta.local). */
  readonly #arrival = { at: 0, wallMs: 0, local: null as string | null };

  readonly #peers = new CanonicalPeers();
  readonly #ackBuffer = new Uint8Array(2048); // for acks: one array each is dear (off V8's heap)
  readonly #boundHost: string;

  private constructor(socket: UdpSocket, options: ReflectorOptions) {
    this.#socket = socket;
    this.#boundHost = socket.address.hostname;
    this.#context.local = { ...socket.address };
    this.#context.replyTosSettable = socket.canSetTos;
    this.#format = options.format ?? udpFormat;
    this.#stats = emptyStats(this.#format);
    this.#sessions = new SessionTable(this.#format.sessionsBySource);
    this.#delayed = new DelayedReplies(socket, this.#format, this.#stats, options.key ?? null);
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
    this.#streams = new StreamServer(socket, this.#format, this.#key, {
      sourceRate: options.rateLimit?.rate ?? Infinity,
      globalRate: options.globalLimit?.rate ?? Infinity,
    });
    this.#finished = socket.receiveEach(
      (data, from, arrivedAt, arrival) => this.#handle(data, from, arrivedAt, arrival),
      (error) => this.#countError(`receive: ${errorKind(error)}`),
      // Datagrams are handled independently, so a batch may be handled together and answered
      // with one system call; not with a key, whose checks take a varying time and would let
      // replies overtake each other.
      { concurrent: this.#key === null, ttlAndTos: this.#format.readsIpHeader },
    );
  }

  /** Binds and starts serving. Throws a NetError when the address cannot be bound. */
  static listen(options: ReflectorOptions): Reflector {
    const socket = UdpSocket.bind(options.hostname, options.port);
    if (options.gro) socket.enableGro();
    return new Reflector(socket, options);
  }

  /** The bound address, with the real port. */
  get address(): PeerAddress {
    return this.#socket.address;
  }

  /** A snapshot of the counters. */
  get stats(): ReflectorStats {
    const stats = structuredClone(this.#stats);
    stats.kernelDrops = this.#socket.kernelDrops;
    stats.streams = { ...this.#streams.counts };
    return stats;
  }

  /** The receive buffer the kernel granted for `receiveBuffer` (Linux doubles the request);
   * null when none was asked for or the backend cannot set it. */
  get receiveBuffer(): number | null {
    return this.#receiveBuffer;
  }

  /** Resolves when the reflector has stopped. */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Stops serving; the datagram being handled, if any, is finished and counted first, and
   * the delayed replies still waiting are dropped (counted). */
  async close(): Promise<void> {
    await this.#delayed.close();
    await this.#streams.close();
    this.#socket.close();
    await this.#finished;
  }

  /**
   * Counts, classifies and answers one datagram. Synchronous unless it must wait (a key's
   * checks, or a reply queued with a batch's), so that a datagram costs no promise when
   * nothing is awaited: at 10 ms between probes, or under load, that is time in every RTT.
   */
  #handle(
    data: Uint8Array,
    from: PeerAddress,
    arrivedAt: number,
    arrival: ReceiveMeta,
  ): void | Promise<void> {
    // Stamped with its arrival at the socket, so the time a client leaves out of its RTT as
    // ours includes our wake-up and queue: that is this host's, not the network's.
    const arrivedWallMs = wallClockAt(arrivedAt);
    const receivedAt = timestampFromMs(arrivedWallMs);
    this.#stats.received++;
    this.#stats.bytesReceived += data.length;
    const peer = this.#peers.of(from);
    const source = peer.hostname;
    const event: DatagramEvent = {
      from: peer,
      bytes: data.length,
      kind: "raw",
      reply: "none",
      replyBytes: 0,
    };
    let reply: Uint8Array | null | Promise<Uint8Array | null> = null;
    const context = this.#context;
    context.ttl = arrival.ttl;
    context.tos = arrival.tos;
    context.from = event.from;
    context.replyTos = -1;
    // Bound to a wildcard address, the socket says where each datagram was sent to: that is
    // this reflector's address for it (STAMP's Location TLV) and where its reply comes from.
    const local = arrival.local;
    context.local.hostname = local ?? this.#boundHost;
    this.#arrival.at = arrivedAt;
    this.#arrival.wallMs = arrivedWallMs;
    this.#arrival.local = local;
    try {
      const refusal = this.#overLimit(source);
      reply = refusal === null ? this.#classify(data, event, receivedAt) : null;
      if (refusal !== null) {
        this.#refuse(event, refusal);
        this.#sessions.countRefusal(this.#format.peekSession(data), refusal);
      }
    } catch (error) {
      return this.#classifyFailed(error, event, from);
    }
    if (reply instanceof Promise) {
      return reply.then(
        (classified) => this.#answer(classified, event, from, context.replyTos, local),
        (error) => this.#classifyFailed(error, event, from),
      );
    }
    return this.#answer(reply, event, from, context.replyTos, local);
  }

  /** The codec never throws; this guards the counters against a bug, not against input. */
  #classifyFailed(error: unknown, event: DatagramEvent, from: PeerAddress): void {
    this.#countError(`internal: ${errorKind(error)}`);
    this.#answer(null, event, from);
  }

  /** Sends the reply, if any (with the TOS byte its format asked for, where the socket can,
   * and from the address its request was sent to), and counts it once it has left (or
   * failed). */
  #answer(
    reply: Uint8Array | null,
    event: DatagramEvent,
    from: PeerAddress,
    tos = -1,
    local: string | null = null,
  ): void | Promise<void> {
    this.#stats.kinds[event.kind]++;
    if (reply === null) {
      this.#onDatagram?.(event);
      return;
    }
    const replyTos = this.#socket.canSetTos ? tos : -1;
    return this.#socket.sendCountedReply(reply, from, replyTos, local, this.#receipt, event);
  }

  /** Told what became of each reply: counted once it has left (or failed). */
  readonly #receipt: SendReceipt<DatagramEvent> = {
    sent: (event, bytes) => this.#sent(bytes, event),
    failed: (event, error) => this.#sendFailed(error, event),
    sending: (event, reply, now) => this.#restamp(event, reply, now),
  };

  // The stamp of the last send time asked for: a batch's replies leave at one time, so it is
  // made once for them all.
  #stampedAt = NaN;
  #stamp: Timestamp = NO_TIMESTAMP;
  readonly #sendStamp = (): Timestamp => this.#stamp;

  /**
   * A reply the format built is stamped as sent now, as it is handed to the kernel, not when it
   * was built: between the two lie its check and the way to the socket (tens of µs when a probe
   * every 10 ms finds everything cold) or, among a batch's replies, the handling of those after
   * it (tens of µs under load), which the sender would count as network. A signed reply keeps
   * its time (its tag covers it).
   */
  #restamp(event: DatagramEvent, reply: Uint8Array, now: number): void {
    if (this.#key !== null) return;
    if (event.reply !== "pong" && event.reply !== "stats" && event.reply !== "error") return;
    if (now !== this.#stampedAt) {
      this.#stampedAt = now;
      this.#stamp = timestampFromMs(wallClockAt(now));
    }
    this.#format.restamp(reply, this.#sendStamp);
  }

  #sent(bytes: number, event: DatagramEvent): void {
    this.#stats.replied++;
    this.#stats.bytesReplied += bytes;
    event.replyBytes = bytes;
    this.#onDatagram?.(event);
  }

  #sendFailed(error: unknown, event: DatagramEvent): void {
    // Counted as its session's reply when it was built: it never left after all.
    const session = event.kind === "ping" ? this.#sessions.get(this.#sessionKey(event)) : undefined;
    if (session !== undefined) session.replied--;
    event.sendError = errorKind(error);
    this.#countError(event.sendError);
    event.reply = "none";
    this.#onDatagram?.(event);
  }

  /** Rate limits come first and cost no decoding: a flood is dropped as cheaply as possible. */
  #overLimit(source: string): RefusalReason | null {
    if (this.#sourceLimiter === null && this.#globalLimiter === null) return null; // no clock
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

  /** Has the format read the datagram, classifies the event and returns the reply, if any: at
   * once, or under a key (asynchronous checks) as a promise. No ERROR is sent under a key. */
  #classify(
    data: Uint8Array,
    event: DatagramEvent,
    receivedAt: Timestamp,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    const request = this.#request;
    this.#format.readRequest(data, request);
    const key = this.#key;
    switch (request.kind) {
      case "ping":
      case "stats":
      case "stream":
        event.frame = request.header!;
        if (key !== null) return this.#classifyAuthenticated(data, event, receivedAt, key);
        return this.#replyTo(data, event, receivedAt);
      case "unexpected":
        // Replies are never answered, so two reflectors can never bounce frames forever.
        event.kind = "unexpected";
        event.frame = request.header!;
        return null;
      case "raw":
        return this.#rawReply(data, event);
      case "malformed":
        event.kind = "malformed";
        event.malformed = { reason: request.reason, detail: request.detail };
        this.#stats.malformed[request.reason]++;
        if (!request.answerable || key !== null) return null;
        event.frame = request.header!;
        return this.#build(data, event, receivedAt, "error", null);
      case "unsupported-version":
        event.kind = "unsupported-version";
        if (request.header !== null) event.frame = request.header;
        if (!request.answerable || key !== null) return null;
        return this.#build(data, event, receivedAt, "error", null);
      case "corrupted":
        // Damaged on the way: no field of it can be trusted, so it is never answered.
        event.kind = "corrupted";
        return null;
    }
  }

  #rawReply(data: Uint8Array, event: DatagramEvent): Uint8Array | null {
    event.kind = "raw";
    event.payload = data;
    if (this.#raw === "ignore") return null;
    event.reply = this.#raw;
    if (this.#raw === "echo") return data;
    return ackReply(data, this.#ackBuffer); // copied or sent before the next datagram is read
  }

  /** A request under a key: its tag and the replay window checked (refused silently: no reply
   * tells an attacker which check failed), then the reply signed. */
  async #classifyAuthenticated(
    data: Uint8Array,
    event: DatagramEvent,
    receivedAt: Timestamp,
    key: CryptoKey,
  ): Promise<Uint8Array | null> {
    const header = event.frame!;
    const { authenticated, sentAt } = this.#request;
    // A session's refusals count its probes only: its STATS requests are not part of its load.
    const session = this.#request.kind === "ping" ? header.session : null;
    if (!authenticated) {
      this.#sessions.countRefusal(session, "auth-missing");
      return this.#refuse(event, "auth-missing");
    }
    if (!(await this.#format.verify(data, key))) {
      this.#sessions.countRefusal(session, "auth-failed");
      return this.#refuse(event, "auth-failed");
    }
    const replay = this.#replay as ReplayGuard;
    const verdict = replay.check(
      // STAMP's 16-bit session numbers repeat across senders: its key has the source too.
      this.#sessionKey(event),
      header.sequence,
      header.attempt,
      sentAt,
      receivedAt,
    );
    if (verdict !== "ok") {
      const reason = verdict === "full" ? "replay-cache-full" : verdict;
      this.#sessions.countRefusal(session, reason);
      return this.#refuse(event, reason);
    }
    const reply = await this.#replyTo(data, event, receivedAt);
    if (reply !== null) await this.#format.sign(reply, key);
    return reply;
  }

  /** The answer to a request that passed every check: a PONG, the session's STATS, or a
   * stream's grant. */
  #replyTo(
    data: Uint8Array,
    event: DatagramEvent,
    receivedAt: Timestamp,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    const { kind, delayMs } = this.#request;
    if (kind === "stream") {
      event.kind = "stream";
      event.reply = "grant";
      // A copy: the grant is built after an await, when the receive buffer may be reused.
      return this.#streams.answer(data.slice(), event.frame!.session, event.from, receivedAt);
    }
    const delayed = kind === "ping" && delayMs >= 0;
    const refusal = delayed
      ? this.#delayed.refusal(delayMs, data.length, event.from.hostname)
      : null;
    if (refusal !== null) return this.#refuse(event, refusal);
    const session = this.#sessions.countsFor(this.#sessionKey(event));
    this.#context.session = session;
    if (kind === "ping") {
      event.kind = "ping";
      session.received++;
      const transitMs = timestampDiffMs(receivedAt, this.#request.sentAt);
      session.tracker.observe(event.frame!.sequence, transitMs, data.length, this.#arrival.wallMs);
      if (delayed) return this.#hold(data, event, receivedAt, delayMs);
      if (this.#request.oneWay) return null; // counted, and its STATS will say what arrived
      // Counted when built, not once sent: a batch's replies leave together, and STAMP's
      // Direct Measurement counts the replies before this one (R_TxC) at once.
      const reply = this.#build(data, event, receivedAt, "pong", null);
      if (reply !== null) session.replied++;
      return reply;
    }
    event.kind = "stats";
    // A STATS request makes its session known, as a PING does: a sender that asks first (udp
    // bench does) has what a limit refuses of its probes counted even if none gets through.
    const counts = {
      ...session,
      kernelDrops: this.#socket.kernelDrops ?? UNKNOWN_COUNT,
      corrupted: this.#stats.kinds.corrupted,
      arrivals: arrivalCounts(session.tracker),
    };
    return this.#build(data, event, receivedAt, "stats", counts);
  }

  /** A DELAYED PING accepted: its one reply leaves `delayMs` after its arrival, none now. */
  #hold(data: Uint8Array, event: DatagramEvent, receivedAt: Timestamp, delayMs: number): null {
    this.#context.receivedAt = receivedAt;
    this.#delayed.hold(data, this.#request, this.#context, this.#arrival, delayMs);
    event.reply = "delayed";
    event.delayMs = delayMs;
    return null;
  }

  /** The wire format's reply to the datagram just read, stamped as sent now. */
  #build(
    data: Uint8Array,
    event: DatagramEvent,
    receivedAt: Timestamp,
    kind: ReplyKind,
    counts: SessionCounts | null,
  ): Uint8Array | null {
    const context = this.#context;
    context.receivedAt = receivedAt;
    context.repliedAt = timestampFromMs(wallClockMs());
    context.counts = counts;
    const reply = this.#format.answer(data, this.#request, context);
    if (reply !== null) event.reply = kind;
    return reply;
  }

  /** The key of the session a request belongs to. */
  #sessionKey(event: DatagramEvent): number | string {
    return this.#sessions.keyOf(event.frame!.session, event.from);
  }

  #countError(kind: string): void {
    this.#stats.errors[kind] = (this.#stats.errors[kind] ?? 0) + 1;
  }
}
