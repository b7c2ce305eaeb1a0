/**
 * The reflector's delayed replies (docs/protocol.md, "Delayed replies"): a PING that asks for
 * one PONG after a delay is copied and held, and its PONG built, signed and sent when the
 * delay has passed, once, to the address and port it came from. Bounded: the delay, the
 * request's size, how many wait per source address and in all; what still waits when the
 * reflector stops is dropped, and every outcome is counted.
 *
 * @module
 */

import { errorKind, type PeerAddress, type UdpSocket, wallClockMs } from "../net/mod.ts";
import {
  type AnswerContext,
  DELAYED_PER_SOURCE,
  DELAYED_TOTAL,
  MAX_DELAY_MS,
  MAX_DELAYED_BYTES,
  newAnswerContext,
  type ProbeFormat,
  type RequestReading,
  type SessionCounts,
  type Timestamp,
  timestampFromMs,
} from "../wire/mod.ts";
import type { ReflectorStats, RefusalReason } from "./reflector_stats.ts";

/** What a held request's reply will need: its bytes and reading, and how it arrived. */
interface Held {
  /** A copy of the request. */
  bytes: Uint8Array;
  /** The format's reading of it (what it refers to is made afresh per datagram). */
  reading: RequestReading;
  /** Its arrival, by the reflector's clock. */
  receivedAt: Timestamp;
  ttl: number;
  tos: number;
  from: PeerAddress;
  /** The address it was sent to (a wildcard-bound socket's), to answer from; else null. */
  local: string | null;
  /** Its session's counts (the reply counts there when it leaves). */
  session: SessionCounts;
  /** Cancels its timer. */
  cancel: () => void;
}

/**
 * The replies a reflector holds back, each on a timer of its socket's.
 *
 * @example A delayed PING's one PONG, after 50 ms
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "./reflector.ts";
 * import { UdpSocket } from "../net/mod.ts";
 * import { newReplyReading, udpFormat } from "../wire/mod.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = UdpSocket.bind("127.0.0.1", 0);
 * const replied = Promise.withResolvers<number>();
 * const receiving = client.receiveEach(() => replied.resolve(performance.now()));
 * const ping = udpFormat.encodeRequest({
 *   type: "ping", session: 1, sequence: 0, attempt: 0, sentAt: { seconds: 1, nanos: 0 },
 *   padding: new Uint8Array(28), authenticated: false, path: true, delayMs: 50,
 * });
 * const sent = performance.now();
 * await client.send(ping, reflector.address);
 * strictEqual((await replied.promise) - sent >= 50, true);
 * client.close();
 * await receiving;
 * await reflector.close();
 * strictEqual(reflector.stats.delayed.sent, 1);
 * ```
 */
export class DelayedReplies {
  readonly #socket: UdpSocket;
  readonly #format: ProbeFormat;
  readonly #stats: ReflectorStats;
  readonly #key: CryptoKey | null;
  readonly #held = new Set<Held>();
  readonly #bySource = new Map<string, number>();
  /** Replies being signed or sent: closing waits for them. */
  readonly #inFlight = new Set<Promise<void>>();
  /** The format's answer is told this, for one reply at a time (not the reflector's, which a
   * request being handled under a key may be using meanwhile). */
  readonly #context: AnswerContext = newAnswerContext();

  /**
   * Delayed replies for a reflector: its socket (the timers, and the replies' way out), its
   * wire format (which builds them), its counters (`delayed`, `replied`, `bytesReplied`,
   * `errors`) and, with a key, the key each reply is signed with.
   */
  constructor(
    socket: UdpSocket,
    format: ProbeFormat,
    stats: ReflectorStats,
    key: CryptoKey | null,
  ) {
    this.#socket = socket;
    this.#format = format;
    this.#stats = stats;
    this.#key = key;
    this.#context.local = { ...socket.address };
  }

  /**
   * Why a request of `bytes` bytes from `source` (a canonical address) asking for a delay of
   * `delayMs` is refused, or null when it may be held.
   */
  refusal(delayMs: number, bytes: number, source: string): RefusalReason | null {
    if (delayMs > MAX_DELAY_MS) return "delay-too-long";
    if (bytes > MAX_DELAYED_BYTES) return "delayed-too-large";
    if ((this.#bySource.get(source) ?? 0) >= DELAYED_PER_SOURCE) return "delayed-source-cap";
    if (this.#held.size >= DELAYED_TOTAL) return "delayed-global-cap";
    return null;
  }

  /**
   * Holds a request ({@linkcode DelayedReplies.refusal} said it may be) and sends its reply
   * `delayMs` after its arrival (`arrival.at`, monotonic milliseconds; `arrival.local`: the
   * address it was sent to, if told): `data` and `reading` are copied, `context` (the
   * reflector's, for this request) is read now.
   */
  hold(
    data: Uint8Array,
    reading: RequestReading,
    context: AnswerContext,
    arrival: { at: number; local: string | null },
    delayMs: number,
  ): void {
    const from = { ...context.from } as PeerAddress;
    const held: Held = {
      bytes: data.slice(),
      reading: { ...reading },
      receivedAt: context.receivedAt,
      ttl: context.ttl,
      tos: context.tos,
      from,
      local: arrival.local,
      session: context.session,
      cancel: () => {},
    };
    this.#held.add(held);
    this.#bySource.set(from.hostname, (this.#bySource.get(from.hostname) ?? 0) + 1);
    const delayed = this.#stats.delayed;
    delayed.held++;
    delayed.pending++;
    held.cancel = this.#socket.wakeAt(arrival.at + delayMs, () => this.#due(held));
  }

  /** Drops every reply still waiting (the reflector stops), counted; then waits for those
   * being signed or sent. */
  async close(): Promise<void> {
    const delayed = this.#stats.delayed;
    for (const held of this.#held) {
      held.cancel();
      delayed.dropped++;
      delayed.pending--;
    }
    this.#held.clear();
    this.#bySource.clear();
    await Promise.all(this.#inFlight);
  }

  #forget(held: Held): void {
    this.#held.delete(held);
    const source = held.from.hostname;
    const count = (this.#bySource.get(source) ?? 1) - 1;
    if (count > 0) this.#bySource.set(source, count);
    else this.#bySource.delete(source);
    this.#stats.delayed.pending--;
  }

  /** The delay has passed: the reply is built now (its send time, the report), and sent. */
  #due(held: Held): void {
    if (!this.#held.has(held)) return;
    this.#forget(held);
    const format = this.#format;
    const key = this.#key;
    const context = this.#context;
    context.receivedAt = held.receivedAt;
    context.repliedAt = timestampFromMs(wallClockMs());
    context.ttl = held.ttl;
    context.tos = held.tos;
    context.from = held.from;
    context.local.hostname = held.local ?? this.#socket.address.hostname;
    context.session = held.session;
    const reply = format.answer(held.bytes, held.reading, context);
    if (reply === null) return this.#failed(held, "internal: no reply built");
    if (key === null) return this.#send(held, reply);
    this.#track(
      format.sign(reply, key).then(
        () => this.#send(held, reply),
        (error) => this.#failed(held, `internal: ${errorKind(error)}`),
      ),
    );
  }

  #send(held: Held, reply: Uint8Array): void {
    let sent: number | Promise<number>;
    try {
      sent = this.#socket.sendReply(reply, held.from, -1, held.local);
    } catch (error) {
      return this.#failed(held, errorKind(error));
    }
    if (typeof sent === "number") return this.#sent(held, sent);
    this.#track(sent.then(
      (bytes) => this.#sent(held, bytes),
      (error) => this.#failed(held, errorKind(error)),
    ));
  }

  #track(work: Promise<void>): void {
    const tracked = work.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  #sent(held: Held, bytes: number): void {
    const stats = this.#stats;
    stats.delayed.sent++;
    stats.replied++;
    stats.bytesReplied += bytes;
    held.session.replied++;
  }

  #failed(_held: Held, kind: string): void {
    const stats = this.#stats;
    stats.delayed.failed++;
    stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
  }
}
