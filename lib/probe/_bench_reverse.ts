/**
 * `udp bench -R`: the reflector sends, this host counts. A first STREAM_REQUEST gets a cookie
 * (a round trip: this host receives at its address), the second starts the stream, one every
 * half second keeps it going (the reflector stops 2 s after the last), and a last one after
 * the end says how many the reflector sent. What arrived is this host's own count: sequence
 * gaps, late, duplicates, corrupted, RFC 3550 jitter of the one-way transit.
 *
 * @module
 */

import {
  formatAddress,
  monotonicMs,
  type PeerAddress,
  sameAddress,
  type UdpSocket,
  wallClockAt,
  wallClockMs,
} from "../net/mod.ts";
import { ArrivalTracker, LatencyStats } from "../stats/mod.ts";
import {
  COOKIE_SIZE,
  decodeFrame,
  encodeStreamRequest,
  type Frame,
  HEADER_SIZE,
  MessageType,
  readStreamFields,
  signFrame,
  type StreamFields,
  StreamStatus,
  timestampDiffMs,
  timestampFromMs,
  verifyFrame,
} from "../wire/mod.ts";
import {
  intervalReport,
  type IntervalSpan,
  round,
  sleep,
  trackerCounts,
  within,
} from "./_bench_intervals.ts";
import type { StreamRun } from "./_bench_streams.ts";
import { ProbeSender } from "./_sender.ts";
import type { BenchOptions } from "./bench.ts";
import type { BenchBack, BenchSummary } from "./bench_report.ts";
import { IcmpTally } from "./_icmp_tally.ts";

/** Datagrams per second asked for by `--rate max`: the most a reflector grants. */
export const REVERSE_MAX_RATE = 1_000_000;
/** How often the stream is renewed, ms (the reflector stops 2 s after the last renewal). */
const RENEW_MS = 500;
/** Requests per exchange (a cookie, the final count): UDP may lose the question or answer. */
const ATTEMPTS = 4;
/** Sequence numbers of the stream requests (their own range: the replay window's). */
const REQUEST_SEQUENCE = 0xffff_e000;
/** The stream's sequence numbers still told apart as late or duplicate. */
const WINDOW = 65_536;

/** Why the reflector gave no stream, by its grant's status. */
const REFUSALS: Record<number, string> = {
  [StreamStatus.REFUSED_BUSY]: "the reflector runs as many streams as it allows",
  [StreamStatus.REFUSED_RATE]: "no rate is left within the reflector's rate limits",
  [StreamStatus.REFUSED_SIZE]: "the reflector does not send datagrams of that size",
};

/** One reverse stream: its socket, its session's requests and what arrived. */
export class ReverseRun implements StreamRun {
  readonly #options: BenchOptions;
  readonly #sender: ProbeSender;
  readonly #socket: UdpSocket;
  readonly #receiving: Promise<void>;
  readonly #tracker = new ArrivalTracker(WINDOW);
  readonly #rate: number;
  readonly #icmp: IcmpTally;
  #requests = 0;
  #cookie: Uint8Array | null = null;
  #grant: StreamFields | null = null;
  #granted = Promise.withResolvers<void>();
  #refused: string | null = null;
  #corrupted = 0;
  #base = trackerCounts(new ArrivalTracker().snapshot(), null);
  #seconds = 0;

  /** A reverse stream of the options' session (its socket bound). */
  constructor(options: BenchOptions) {
    this.#options = options;
    this.#sender = new ProbeSender({
      target: options.target,
      key: options.key,
      payloadSize: options.payloadSize,
      receiveBuffer: options.receiveBuffer,
      onReceiveBuffer: options.onReceiveBuffer,
      ttl: options.ttl,
      tos: options.tos,
      dontFragment: options.dontFragment,
      source: options.source,
      device: options.device,
    });
    this.#rate = options.rate === "max" ? REVERSE_MAX_RATE : Math.round(options.rate);
    this.#icmp = new IcmpTally(1, () => false);
    this.#socket = this.#sender.bind();
    this.#socket.enableGro(); // a GSO stream arrives in a few reads
    this.#receiving = this.#socket.receiveEach(
      (data, from, arrivedAt) => this.#onDatagram(data, from, arrivedAt),
      undefined,
      { onIcmp: (report) => void this.#icmp.read(report, this.#sender) },
    );
  }

  /** Gets the reflector's cookie (a round trip: proof that this host receives here). */
  async prepare(): Promise<void> {
    await this.#exchange();
    if (this.#cookie === null && this.#refused === null) {
      this.#refused = "the reflector did not answer the stream request (it predates streams, " +
        "or none of four requests and answers got through)";
    }
  }

  /** Starts the stream and renews it until the duration is over or the signal aborts. */
  async send(started: number): Promise<number> {
    const { durationMs, signal } = this.#options;
    if (this.#cookie !== null) {
      // One listener for the whole run, not one a renewal.
      const aborted = new Promise<void>((resolve) =>
        signal?.addEventListener("abort", () => resolve(), { once: true })
      );
      while (!signal?.aborted && monotonicMs() - started < durationMs) {
        await this.#request();
        const left = started + durationMs - monotonicMs();
        await within(aborted, Math.max(1, Math.min(RENEW_MS, left)));
      }
    }
    return monotonicMs() - started;
  }

  /** An interval is over: what arrived in it. */
  intervalEnded(span: IntervalSpan): void {
    const now = trackerCounts(this.#tracker.snapshot(), null);
    const before = this.#base;
    this.#base = now;
    this.#options.onInterval?.(
      intervalReport(this.#options.stream ?? 1, "back", span, this.#sender.datagramBytes, {
        sentBefore: null,
        sentNow: null,
        before,
        now,
        rtt: null,
      }),
    );
  }

  /** Waits for the stragglers, then asks how many the reflector sent. */
  async finish(sendingMs: number): Promise<BenchSummary> {
    await sleep(this.#options.graceMs ?? 500);
    if (this.#cookie !== null) await this.#exchange();
    this.#seconds = sendingMs / 1000;
    return this.#summary(this.#seconds);
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#receiving;
  }

  /** The reflector's stream as it arrived (its rates over the run's time, once finished). */
  get back(): BenchBack {
    const seen = this.#tracker.snapshot();
    const received = seen.arrivals - seen.duplicates;
    const grant = this.#grant;
    const sent = grant !== null && grant.status === StreamStatus.ENDED ? grant.sent : null;
    const seconds = this.#seconds > 0 ? this.#seconds : null;
    const bits = this.#sender.datagramBytes * 8;
    return {
      requested_pps: this.#rate,
      granted_pps: grant === null || grant.grantedRate === 0 ? null : grant.grantedRate,
      sent,
      received,
      lost: sent === null ? null : sent - received,
      late: seen.late,
      duplicates: seen.duplicates,
      corrupted: this.#corrupted,
      achieved_pps: seconds === null ? 0 : round(received / seconds, 1),
      achieved_bps: seconds === null ? 0 : round((received * bits) / seconds, 0),
      jitter_ms: seen.jitterMs,
      refused: this.#refused,
    };
  }

  /** Asks until the reflector answers (up to four times): a cookie, or the final count. */
  async #exchange(): Promise<void> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      this.#granted = Promise.withResolvers<void>();
      await this.#request();
      await within(this.#granted.promise, 250);
      if (this.#cookie !== null && this.#grant?.status !== StreamStatus.STREAMING) return;
      if (this.#refused !== null) return;
    }
  }

  /** One STREAM_REQUEST, with the cookie once there is one. */
  async #request(): Promise<void> {
    const key = this.#options.key;
    const fields: StreamFields = {
      cookie: this.#cookie ?? new Uint8Array(COOKIE_SIZE),
      rate: this.#rate,
      durationMs: this.#options.durationMs,
      size: this.#sender.datagramBytes,
      status: 0,
      sent: 0,
      grantedRate: 0,
      grantedMs: 0,
    };
    const sequence = REQUEST_SEQUENCE + this.#requests++;
    const sentAt = timestampFromMs(wallClockMs());
    const request = encodeStreamRequest(this.#sender.session, sequence, sentAt, fields, !!key);
    if (key) await signFrame(request, key);
    try {
      await this.#socket.send(request, this.#options.target);
    } catch {
      // As a request lost on the way: the next one (or the last exchange) asks again.
    }
  }

  #onDatagram(data: Uint8Array, from: PeerAddress, arrivedAt: number): void | Promise<void> {
    if (!sameAddress(from, this.#options.target)) return;
    const decoded = decodeFrame(data);
    if (decoded.kind === "corrupted") {
      this.#corrupted++;
      return;
    }
    if (decoded.kind !== "frame" || decoded.frame.session !== this.#sender.session) return;
    const frame = decoded.frame;
    if (frame.type !== MessageType.STREAM_DATA && frame.type !== MessageType.STREAM_GRANT) return;
    const key = this.#options.key;
    if (key === undefined) return this.#onFrame(data, frame, arrivedAt);
    if (frame.tag === undefined) return;
    const copy = data.slice(); // verified after an await: the buffer may be reused by then
    return verifyFrame(copy, key).then((valid) => {
      if (valid) this.#onFrame(copy, frame, arrivedAt);
    });
  }

  /** A grant or a datagram of the stream, decoded (and, under a key, verified) once. */
  #onFrame(data: Uint8Array, frame: Frame, arrivedAt: number): void {
    if (frame.type === MessageType.STREAM_GRANT) {
      return this.#onGrant(readStreamFields(data.subarray(HEADER_SIZE)));
    }
    const at = wallClockAt(arrivedAt);
    const transitMs = timestampDiffMs(timestampFromMs(at), frame.sentAt);
    this.#tracker.observe(frame.sequence, transitMs, data.length, at);
  }

  /** A STREAM_GRANT: the cookie to ask with, the stream's state, or why there is none. */
  #onGrant(fields: StreamFields): void {
    const grant = { ...fields, cookie: fields.cookie.slice() };
    if (grant.status === StreamStatus.COOKIE) this.#cookie = grant.cookie;
    else if (grant.status in REFUSALS) this.#refused = REFUSALS[grant.status];
    else this.#grant = grant;
    this.#granted.resolve();
  }

  #summary(seconds: number): BenchSummary {
    const back = this.back;
    return {
      type: "summary",
      stream: this.#options.stream ?? 1,
      streams: 1,
      mode: "reverse",
      target: formatAddress(this.#sender.target),
      datagram_bytes: this.#sender.datagramBytes,
      duration_s: round(seconds, 3),
      sent: 0,
      received: 0,
      requested_pps: this.#options.rate === "max" ? null : this.#options.rate,
      offered_pps: 0,
      offered_bps: 0,
      achieved_pps: 0,
      achieved_bps: 0,
      server_received: null,
      server_replied: null,
      server_refused: null,
      server_kernel_drops: null,
      loss_up: null,
      loss_down: back.lost,
      loss_percent: back.sent === null || back.sent === 0
        ? null
        : ((back.sent - back.received) / back.sent) * 100,
      duplicates: back.duplicates,
      reordered: back.late,
      corrupted: back.corrupted,
      echo_server: false,
      errors: this.#icmp.errors,
      icmp: { ...this.#icmp.counts },
      rtt_ms: new LatencyStats().summary(),
      round_trip_ms: new LatencyStats().summary(),
      jitter_ms: back.jitter_ms,
      one_way_answered: 0,
      back,
    };
  }
}

/** `--bidir`: a one-way stream there and a reverse stream back at once, each its own socket
 * and session; one summary, the way there's, with the way back's in `back`. */
export class BidirRun implements StreamRun {
  readonly #there: StreamRun;
  readonly #back: ReverseRun;

  /** Both halves, the way there made by `there` (a one-way run of the options). */
  constructor(there: StreamRun, back: ReverseRun) {
    this.#there = there;
    this.#back = back;
  }

  async prepare(): Promise<void> {
    await Promise.all([this.#there.prepare(), this.#back.prepare()]);
  }

  async send(started: number): Promise<number> {
    const [there, back] = await Promise.all([this.#there.send(started), this.#back.send(started)]);
    return Math.max(there, back);
  }

  intervalEnded(span: IntervalSpan): void {
    this.#there.intervalEnded(span);
    this.#back.intervalEnded(span);
  }

  async finish(sendingMs: number): Promise<BenchSummary> {
    const [there] = await Promise.all([
      this.#there.finish(sendingMs),
      this.#back.finish(sendingMs),
    ]);
    return { ...there, mode: "bidir", back: this.#back.back };
  }

  async close(): Promise<void> {
    await Promise.all([this.#there.close(), this.#back.close()]);
  }
}
