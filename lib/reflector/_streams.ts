/**
 * The streams a reflector sends (`udp bench -R`, `--bidir`; docs/protocol.md, "Streams"): to
 * an address that proved it receives there (a cookie it was sent, returned), at most what it
 * asked for, for at most the time it asked, within the reflector's caps and rate limits, and
 * only while it keeps asking (a renewal at least every 2 s). docs/security.md says why this
 * cannot make the reflector an amplifier for an address that did not ask.
 *
 * @module
 */

import {
  canonicalHost,
  monotonicMs,
  type PeerAddress,
  type UdpSocket,
  wallClockMs,
} from "../net/mod.ts";
import {
  COOKIE_SIZE,
  frameOverhead,
  HEADER_SIZE,
  layOutStreamData,
  makeGrant,
  type ProbeFormat,
  readStreamFields,
  stampStreamData,
  type StreamFields,
  StreamStatus,
  type Timestamp,
  timestampFromMs,
} from "../wire/mod.ts";
import type { StreamCounts } from "./reflector_stats.ts";

/** The most datagrams per second one stream is granted. */
export const MAX_STREAM_RATE = 1_000_000;
/** The longest a stream is granted, ms. */
export const MAX_STREAM_MS = 60_000;
/** Streams at once from one source address. */
export const MAX_STREAMS_PER_SOURCE = 4;
/** Streams at once in all. */
export const MAX_STREAMS = 16;
/** A stream stops when its sender has not renewed it for this long, ms. */
export const STREAM_RENEWAL_MS = 2000;
/** How long an ended stream is remembered (its final count for a last request), ms. */
const ENDED_KEPT_MS = 10_000;
/** A cookie is good for the time slot it was made in and the one after: 30 to 60 s. */
const COOKIE_SLOT_MS = 30_000;
/** Datagrams handed to the socket at once, and the most a stream sends in one turn. */
const BATCH = 64;
/** The buffers of one stream's batch hold at most this many bytes. */
const BATCH_BYTES = 1 << 20;

/** One stream: where it goes, how fast, until when, and what it has sent. */
interface Stream {
  readonly key: string;
  readonly source: string;
  readonly to: PeerAddress;
  readonly session: number;
  readonly rate: number;
  readonly grantedMs: number;
  readonly startedAt: number;
  renewedAt: number;
  sent: number;
  endedAt: number | null;
  readonly frames: Uint8Array[];
}

/** The streams of one reflector's socket. */
export class StreamServer {
  readonly #socket: UdpSocket;
  readonly #format: ProbeFormat;
  readonly #key: CryptoKey | null;
  /** The rate the reflector's limits leave a stream (per source), and all of them together. */
  readonly #sourceRate: number;
  readonly #globalRate: number;
  readonly #streams = new Map<string, Stream>();
  readonly counts: StreamCounts = { started: 0, refused: 0, active: 0, datagrams: 0 };
  #secret: Promise<CryptoKey> | null = null;
  /** The pump, while it runs; cleared by the pump itself as it returns (not a microtask
   * later, when a stream started meanwhile would find it still set and never be sent). */
  #pumping: Promise<void> | null = null;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;

  /** Streams sent on `socket` in `format` (tagged under `key`), within the reflector's rate
   * limits (datagrams per second per source and in all; Infinity: none). */
  constructor(
    socket: UdpSocket,
    format: ProbeFormat,
    key: CryptoKey | null,
    limits: { sourceRate: number; globalRate: number },
  ) {
    this.#socket = socket;
    this.#format = format;
    this.#key = key;
    this.#sourceRate = limits.sourceRate;
    this.#globalRate = limits.globalRate;
  }

  /**
   * The STREAM_GRANT for a valid STREAM_REQUEST (as received: the grant is built in its place)
   * of `session` from `from`: a cookie, the stream started or renewed, its end, or why not.
   */
  async answer(
    request: Uint8Array,
    session: number,
    from: PeerAddress,
    receivedAt: Timestamp,
  ): Promise<Uint8Array> {
    const asked = readStreamFields(request.subarray(HEADER_SIZE));
    const source = canonicalHost(from.hostname);
    const key = `${source} ${from.port} ${session}`;
    const now = monotonicMs();
    this.#forgetEnded(now);
    const grant = (fields: Partial<StreamFields>) =>
      makeGrant(request, fields, receivedAt, timestampFromMs(wallClockMs()));
    if (!(await this.#cookieValid(asked.cookie, key))) {
      return grant({ status: StreamStatus.COOKIE, cookie: await this.#cookie(key, 0) });
    }
    const existing = this.#streams.get(key);
    if (existing !== undefined) {
      if (existing.endedAt === null) existing.renewedAt = now;
      return grant(this.#state(existing));
    }
    const refusal = this.#refusal(asked, source);
    if (refusal !== null) {
      this.counts.refused++;
      return grant({ status: refusal });
    }
    const stream = this.#start(key, source, { ...from, hostname: source }, session, asked, now);
    return grant(this.#state(stream));
  }

  /** Stops every stream and the pump. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#pumping;
  }

  /** What a grant says of a stream now. */
  #state(stream: Stream): Partial<StreamFields> {
    return {
      status: stream.endedAt === null ? StreamStatus.STREAMING : StreamStatus.ENDED,
      sent: stream.sent,
      grantedRate: stream.rate,
      grantedMs: stream.grantedMs,
    };
  }

  /** Why a new stream cannot be granted (null: it can). */
  #refusal(asked: StreamFields, source: string): number | null {
    const overhead = frameOverhead(this.#key !== null);
    const most = source.includes(":") ? 65_527 : 65_507;
    if (asked.size < overhead || asked.size > most) return StreamStatus.REFUSED_SIZE;
    const running = [...this.#streams.values()].filter((s) => s.endedAt === null);
    const fromSource = running.filter((s) => s.source === source).length;
    if (running.length >= MAX_STREAMS || fromSource >= MAX_STREAMS_PER_SOURCE) {
      return StreamStatus.REFUSED_BUSY;
    }
    if (this.#rateLeft(source) < 1 || asked.rate < 1 || asked.durationMs < 1) {
      return StreamStatus.REFUSED_RATE;
    }
    return null;
  }

  /** Datagrams per second a new stream to `source` may have within the limits. */
  #rateLeft(source: string): number {
    let fromSource = 0;
    let all = 0;
    for (const stream of this.#streams.values()) {
      if (stream.endedAt !== null) continue;
      all += stream.rate;
      if (stream.source === source) fromSource += stream.rate;
    }
    return Math.floor(
      Math.min(MAX_STREAM_RATE, this.#sourceRate - fromSource, this.#globalRate - all),
    );
  }

  #start(
    key: string,
    source: string,
    to: PeerAddress,
    session: number,
    asked: StreamFields,
    now: number,
  ): Stream {
    const count = Math.max(1, Math.min(BATCH, Math.floor(BATCH_BYTES / asked.size)));
    const authenticated = this.#key !== null;
    const stream: Stream = {
      key,
      source,
      to,
      session,
      rate: Math.min(asked.rate, this.#rateLeft(source)),
      grantedMs: Math.min(asked.durationMs, MAX_STREAM_MS),
      startedAt: now,
      renewedAt: now,
      sent: 0,
      endedAt: null,
      frames: Array.from(
        { length: count },
        () => layOutStreamData(new Uint8Array(asked.size), session, authenticated),
      ),
    };
    this.#streams.set(key, stream);
    this.counts.started++;
    this.counts.active++;
    // A failure (a signing error under a key) stops the streams, never the reflector.
    this.#pumping ??= this.#pump().catch(() => {
      this.#pumping = null;
      for (const stream of this.#streams.values()) this.#end(stream, monotonicMs());
    });
    this.#wake?.();
    return stream;
  }

  /** Sends what each running stream is due, a turn at a time, until none runs. */
  async #pump(): Promise<void> {
    while (!this.#closed) {
      const now = monotonicMs();
      let running = 0;
      let behind = false;
      for (const stream of this.#streams.values()) {
        if (stream.endedAt !== null) continue;
        const over = now - stream.startedAt >= stream.grantedMs ||
          now - stream.renewedAt > STREAM_RENEWAL_MS;
        if (over) {
          this.#end(stream, now);
          continue;
        }
        running++;
        behind = (await this.#sendDue(stream, now)) || behind;
      }
      if (running === 0) {
        this.#pumping = null;
        return;
      }
      // Behind: at once (after a turn of the event loop); else at the next millisecond.
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, behind ? 0 : 1);
      });
      clearTimeout(this.#timer);
      this.#wake = null;
    }
    for (const stream of this.#streams.values()) this.#end(stream, monotonicMs());
  }

  /** Sends one batch of what `stream` is due by `now`; whether more is due still. */
  async #sendDue(stream: Stream, now: number): Promise<boolean> {
    const due = Math.floor(((now - stream.startedAt) / 1000) * stream.rate);
    const count = Math.min(due - stream.sent, stream.frames.length);
    if (count <= 0) return false;
    const batch = stream.frames.slice(0, count);
    const sentAt = timestampFromMs(wallClockMs());
    batch.forEach((frame, i) => stampStreamData(frame, stream.sent + i, sentAt));
    const key = this.#key;
    if (key !== null) await Promise.all(batch.map((frame) => this.#format.sign(frame, key)));
    let sent: number;
    try {
      sent = await this.#socket.sendBatch(batch, stream.to);
    } catch {
      sent = 0; // the socket refused (its buffer full, the peer gone): due again next turn
    }
    stream.sent += sent;
    this.counts.datagrams += sent;
    return sent === count && due - stream.sent > 0;
  }

  #end(stream: Stream, now: number): void {
    if (stream.endedAt !== null) return;
    stream.endedAt = now;
    this.counts.active--;
  }

  #forgetEnded(now: number): void {
    for (const [key, stream] of this.#streams) {
      if (stream.endedAt !== null && now - stream.endedAt > ENDED_KEPT_MS) {
        this.#streams.delete(key);
      }
    }
  }

  /** The cookie of a sender (address, port, session) in the time slot `back` slots ago. */
  async #cookie(key: string, back: number): Promise<Uint8Array> {
    this.#secret ??= crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]) as Promise<CryptoKey>;
    const slot = Math.floor(wallClockMs() / COOKIE_SLOT_MS) - back;
    const text = new TextEncoder().encode(`${key} ${slot}`);
    const mac = await crypto.subtle.sign("HMAC", await this.#secret, text);
    return new Uint8Array(mac, 0, COOKIE_SIZE);
  }

  async #cookieValid(cookie: Uint8Array, key: string): Promise<boolean> {
    if (cookie.every((byte) => byte === 0)) return false;
    for (const back of [0, 1]) {
      const expected = await this.#cookie(key, back);
      if (expected.every((byte, i) => byte === cookie[i])) return true;
    }
    return false;
  }
}
