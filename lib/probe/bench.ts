/**
 * The throughput mode behind `udp bench`: paced PINGs at a set rate (or as fast as the socket
 * takes them) to a reflector, counting replies, RTT, jitter, reordering and duplicates in
 * bounded memory, then a STATS exchange so that loss is told apart per direction. One-way
 * (`--one-way`): the PINGs ask for no reply, and the reflector's STATS, each interval and at
 * the end, say what arrived.
 *
 * @module
 */

import type { DontFragment, PeerAddress, ResolvedAddress, UdpSocket } from "../net/mod.ts";
import { monotonicMs, wallClockAt, wallClockMs, yieldToEventLoop } from "../net/mod.ts";
import { Histogram, JitterEstimator, LatencyStats, ReorderDetector } from "../stats/mod.ts";
import { type ProbeFormat, type SessionCounts, timestampFromMs } from "../wire/mod.ts";
import { ProbeSender } from "./_sender.ts";
import { benchSummary } from "./_bench_summary.ts";
import { runStreams, type StreamRun, type StreamTotals } from "./_bench_streams.ts";
import { BidirRun, ReverseRun } from "./_bench_reverse.ts";
import { IcmpTally } from "./_icmp_tally.ts";
import { StampPath } from "./_stamp_path.ts";
import type { BenchInterval, BenchMode, BenchSummary } from "./bench_report.ts";
import {
  type DirectionCounts,
  intervalReport,
  type IntervalSpan,
  NOTHING_YET,
  sleep,
  ThereIntervals,
  within,
} from "./_bench_intervals.ts";

// What a bench run reports, also from here (where lib/cli imports it from).
export type * from "./bench_report.ts";

/** Replies to probes this many sequence numbers old are still timed and deduplicated. */
export const BENCH_WINDOW = 65_536;
/** Frames handed to the socket at once, the size of a native `sendmmsg()` batch. */
const SEND_BATCH = 64;

/** Options of {@linkcode bench}. */
export interface BenchOptions {
  /** The reflector (numeric address). */
  target: ResolvedAddress;
  /** Datagrams per second, or "max": as fast as the socket accepts them. */
  rate: number | "max";
  /** How long to send. */
  durationMs: number;
  /** Padding bytes per datagram (after the 44-byte header). */
  payloadSize: number;
  /** Time between interval reports (0: none). */
  intervalMs?: number;
  /** Time to wait for replies after the last datagram (default 500). */
  graceMs?: number;
  /** Stops sending early; the summary is still produced. */
  signal?: AbortSignal;
  /** Receives each interval report. */
  onInterval?: (report: BenchInterval) => void;
  /** The wire format of the probes; default the `udp` frame format. */
  format?: ProbeFormat;
  /** Authenticated mode: PINGs and STATS requests are tagged, replies without a valid tag are
   * not counted. */
  key?: CryptoKey;
  /** The receive buffer to ask the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Told what the kernel granted for `receiveBuffer` (null: the backend cannot set it). */
  onReceiveBuffer?: (granted: number | null) => void;
  /** The IP TTL (IPv6: hop limit); default the system's, 255 for STAMP. */
  ttl?: number;
  /** The TOS byte (IPv6: traffic class): DSCP and ECN; default the system's. */
  tos?: number;
  /** Don't-fragment (`-M`); default the system's. */
  dontFragment?: DontFragment;
  /** The address to send from (`-I`). */
  source?: string;
  /** The network interface to send through (`--interface`). */
  device?: string;
  /** How the run uses the path; default "reflected". STAMP reflectors only reflect. */
  mode?: BenchMode;
  /** The stream's number in its interval reports and summary (`-P`); default 1. */
  stream?: number;
}

/**
 * Runs one throughput trial against a `udp serve`.
 *
 * @example
 * ```ts
 * import { ok, strictEqual } from "node:assert/strict";
 * import { bench } from "./bench.ts";
 * import { Reflector } from "../reflector/reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const summary = await bench({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   rate: 1000,
 *   durationMs: 200,
 *   payloadSize: 56,
 *   graceMs: 100,
 * });
 * await reflector.close();
 * ok(summary.sent > 150 && summary.sent <= 200); // 1000 pps for 200 ms, paced
 * strictEqual(summary.loss_up, 0);
 * strictEqual(summary.server_received, summary.sent);
 * strictEqual(summary.echo_server, false);
 * ```
 */
export function bench(options: BenchOptions): Promise<BenchSummary> {
  return benchStreams(options, 1);
}

/**
 * Runs `count` streams at once (`-P`), each its own socket and session at the options' rate,
 * and returns the summary of them all; `onStream` is told each stream's own when there are
 * several. Interval reports come per stream and, with several, summed (stream 0).
 *
 * @example Two streams, one summary
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { benchStreams } from "./bench.ts";
 * import { Reflector } from "../reflector/reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const streams: number[] = [];
 * const summary = await benchStreams({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   rate: 500,
 *   durationMs: 100,
 *   payloadSize: 56,
 *   graceMs: 100,
 * }, 2, (stream) => streams.push(stream.sent));
 * await reflector.close();
 * strictEqual(summary.streams, 2);
 * strictEqual(summary.sent, streams[0] + streams[1]);
 * strictEqual(summary.server_received, summary.sent);
 * ```
 */
export function benchStreams(
  options: BenchOptions,
  count: number,
  onStream?: (summary: BenchSummary) => void,
): Promise<BenchSummary> {
  return runStreams(options, count, (run, totals) => makeRun(run, totals), onStream);
}

/** A stream of the options' mode. */
function makeRun(options: BenchOptions, totals: StreamTotals | null): StreamRun {
  if (options.mode === "reverse") return new ReverseRun(options);
  if (options.mode !== "bidir") return new BenchRun(options, totals);
  const there = new BenchRun({ ...options, mode: "one-way" }, totals);
  try {
    return new BidirRun(there, new ReverseRun(options));
  } catch (error) {
    void there.close();
    throw error;
  }
}

/** The sequence numbers of the STATS requests made before the run (after it: `sent` on). */
const BASELINE_SEQUENCE = 0xffff_ff00;
/** STATS requests per exchange: UDP may lose the question or the answer. */
const STATS_ATTEMPTS = 4;
/** The sequence number of a one-way run's STATS request at the end of interval `n` is this +
 * n (one request each, not retried: a lost one leaves that interval's counts unknown). */
const INTERVAL_SEQUENCE = 0xfff0_0000;
/** How long the last interval's STATS is waited for. */
const LAST_INTERVAL_WAIT_MS = 250;

/** One stream's state: the sender, the reply accounting and the STATS exchanges. */
export class BenchRun implements StreamRun {
  readonly #options: BenchOptions;
  readonly #mode: BenchMode;
  readonly #socket: UdpSocket;
  readonly #receiving: Promise<void>;
  readonly #sender: ProbeSender;
  readonly #datagramBytes: number;
  readonly #sendTimes = new Float64Array(BENCH_WINDOW);
  readonly #seenTags = new Float64Array(BENCH_WINDOW); // sequence + 1 of the last reply per slot
  readonly #rtt = new LatencyStats();
  readonly #roundTrip = new LatencyStats();
  readonly #jitter = new JitterEstimator();
  readonly #reorder = new ReorderDetector();
  // A batch is encoded into the same buffers each time: sendBatch() is done with them when it
  // resolves (the native backend copies them into its own batch at once).
  readonly #batchBuffers: Uint8Array[];
  #sent = 0;
  // ICMP errors about the datagrams, by kind: a closed port or a filter is no silent loss.
  readonly #icmp = new IcmpTally(BENCH_WINDOW, (sequence) => sequence < this.#sent);
  #received = 0;
  /** The highest sequence number answered + 1, and the numbers skipped below it. */
  #replyEnd = 0;
  #gaps = 0;
  /** The RTTs of the current interval's replies. */
  #intervalRtt = new Histogram();
  #duplicates = 0;
  #corrupted = 0;
  #echoServer = false;
  /** Replies to one-way PINGs (a reflector that predates the flag). */
  #oneWayAnswered = 0;
  #stats: { first: number; last: number; counts: SessionCounts | null } | null = null;
  readonly #path: StampPath | null;
  #statsArrived = Promise.withResolvers<void>();
  /** A reflected run's counts at the last interval's end. */
  #intervalBase: DirectionCounts = NOTHING_YET;
  /** A one-way run's intervals, reported as the reflector's STATS for them come. */
  readonly #there: ThereIntervals | null;
  #before: SessionCounts | null = null;
  /** Where every RTT also goes: the sum of several streams' (`-P`). */
  readonly #totals: StreamTotals | null;

  /** A stream's run (its socket bound), its RTTs also recorded in `totals`. */
  constructor(options: BenchOptions, totals: StreamTotals | null = null) {
    this.#options = options;
    this.#totals = totals;
    this.#mode = options.mode ?? "reflected";
    this.#sender = new ProbeSender({
      target: options.target,
      format: options.format,
      key: options.key,
      payloadSize: options.payloadSize,
      receiveBuffer: options.receiveBuffer,
      onReceiveBuffer: options.onReceiveBuffer,
      ttl: options.ttl ?? (options.format?.name === "stamp" ? 255 : undefined),
      tos: options.tos,
      dontFragment: options.dontFragment,
      source: options.source,
      device: options.device,
      oneWay: this.#mode === "one-way",
    });
    if (this.#mode !== "reflected" && this.#sender.format.name !== "udp") {
      throw new RangeError(`a ${this.#mode} run needs udp's own protocol (its STATS)`);
    }
    this.#datagramBytes = this.#sender.datagramBytes;
    this.#there = this.#mode === "one-way"
      ? new ThereIntervals(options.stream ?? 1, this.#datagramBytes, options.onInterval)
      : null;
    // STAMP has no STATS: a stateful reflector's sequence numbers (or Direct Measurement)
    // tell the loss per direction instead.
    this.#path = this.#sender.format.name === "stamp"
      ? new StampPath({ window: BENCH_WINDOW, synchronized: false, arrival: null })
      : null;
    this.#batchBuffers = Array.from(
      { length: SEND_BATCH },
      () => new Uint8Array(this.#datagramBytes),
    );
    this.#socket = this.#sender.bind();
    this.#socket.enableGro(); // its own drops are not reported: coalescing costs nothing here
    this.#receiving = this.#socket.receiveEach(
      (data, from, arrivedAt) => this.#onDatagram(data, from, arrivedAt),
      undefined,
      { onIcmp: (report) => void this.#icmp.read(report, this.#sender) },
    );
  }

  /** Asks the reflector for its counts before the run, so that its kernel's drops during
   * the run can be told (a plain echo server answers with the request itself: no counts). */
  async prepare(): Promise<void> {
    if (this.#sender.format.hasStats) this.#before = await this.#askStats(BASELINE_SEQUENCE);
  }

  /** Sends from `started` (monotonic ms) until the duration is over or the signal aborts;
   * resolves with the time it took. */
  async send(started: number): Promise<number> {
    await this.#send(started);
    return monotonicMs() - started;
  }

  /** Waits for the stragglers, asks for the reflector's counts and sums the run up. */
  async finish(sendingMs: number): Promise<BenchSummary> {
    await sleep(this.#options.graceMs ?? 500);
    await this.#there?.finish(LAST_INTERVAL_WAIT_MS);
    const before = this.#before;
    const hasStats = this.#sender.format.hasStats;
    const after = this.#echoServer || !hasStats ? null : await this.#askStats(this.#sent);
    return benchSummary({
      options: this.#options,
      mode: this.#mode,
      datagramBytes: this.#datagramBytes,
      seconds: sendingMs / 1000,
      sent: this.#sent,
      replies: {
        received: this.#received,
        duplicates: this.#duplicates,
        reordered: this.#reorder.reordered,
        rtt: this.#rtt,
        roundTrip: this.#roundTrip,
        jitterMs: this.#jitter.value,
      },
      corrupted: this.#corrupted,
      echoServer: this.#echoServer,
      icmp: this.#icmp,
      path: this.#path,
      oneWayAnswered: this.#oneWayAnswered,
      before,
      after,
    });
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#receiving;
  }

  /** Sends at the rate asked for until the duration is over or the signal aborts. */
  async #send(started: number): Promise<void> {
    const { rate, signal } = this.#options;
    const end = started + this.#options.durationMs;
    while (!signal?.aborted) {
      const now = monotonicMs();
      if (now >= end) break;
      // Pacing by the count due so far: a late timer is caught up at once, so the average
      // rate holds whatever the timer granularity.
      const due = rate === "max" ? this.#sent + 64 : Math.floor(((now - started) / 1000) * rate);
      while (this.#sent < due) await this.#sendBatch(due);
      if (rate !== "max") await sleep(1);
      else await yieldToEventLoop(); // let the replies be read between batches
    }
  }

  /**
   * One batch (one sendmmsg() on the native backend). Every frame of it is timed from when the
   * batch is handed to the socket, so an RTT may be over-stated by the time the frames before
   * it took to send, never under-stated.
   */
  async #sendBatch(due: number): Promise<void> {
    const sender = this.#sender;
    const batch: Uint8Array[] = [];
    const sentAt = timestampFromMs(wallClockMs()); // the batch's frames say when it started
    for (let sequence = this.#sent; sequence < due && batch.length < SEND_BATCH; sequence++) {
      batch.push(sender.encode("ping", sequence, 0, sentAt, this.#batchBuffers[batch.length]));
    }
    if (sender.key !== null) await Promise.all(batch.map((frame) => sender.sign(frame)));
    const batchStart = monotonicMs();
    for (let sequence = this.#sent; sequence < this.#sent + batch.length; sequence++) {
      this.#sendTimes[sequence % BENCH_WINDOW] = batchStart;
    }
    this.#sent += await this.#socket.sendBatch(batch, this.#options.target);
  }

  /** An interval is over: reported now (reflected: this host's counts), or, one-way, once
   * the reflector's STATS for it came (or the next interval ended without it). */
  intervalEnded(span: IntervalSpan): void {
    const options = this.#options;
    const stream = options.stream ?? 1;
    if (this.#mode === "reflected") {
      const now: DirectionCounts = {
        sent: this.#sent,
        received: this.#received,
        gaps: this.#gaps,
        late: this.#reorder.reordered,
        duplicates: this.#duplicates,
        jitterMs: this.#jitter.value,
      };
      const rtt = this.#intervalRtt;
      this.#intervalRtt = new Histogram();
      const before = this.#intervalBase;
      this.#intervalBase = now;
      options.onInterval?.(intervalReport(stream, "reflected", span, this.#datagramBytes, {
        sentBefore: before.sent,
        sentNow: now.sent,
        before,
        now,
        rtt: rtt.total > 0 ? rtt : null,
      }));
      return;
    }
    const index = this.#there!.ended(span, this.#sent);
    void this.#askIntervalStats(index);
  }

  /** The one STATS request of interval `index` (a one-way run). */
  async #askIntervalStats(index: number): Promise<void> {
    const sender = this.#sender;
    const request = sender.encode(
      "stats",
      INTERVAL_SEQUENCE + index,
      0,
      timestampFromMs(wallClockMs()),
    );
    if (sender.key !== null) await sender.sign(request);
    try {
      await this.#socket.send(request, this.#options.target);
    } catch {
      // Taken as lost, as a request lost on the way is: the interval's report says null.
    }
  }

  /**
   * Asks the reflector for this session's counts (and its own), re-asking as UDP may lose the
   * question; null when no answer came. Requests are numbered from `first`.
   */
  async #askStats(first: number): Promise<SessionCounts | null> {
    const sender = this.#sender;
    this.#stats = { first, last: first + STATS_ATTEMPTS - 1, counts: null };
    this.#statsArrived = Promise.withResolvers<void>();
    for (let attempt = 0; attempt < STATS_ATTEMPTS; attempt++) {
      const request = sender.encode("stats", first + attempt, 0, timestampFromMs(wallClockMs()));
      if (sender.key !== null) await sender.sign(request);
      await this.#socket.send(request, this.#options.target);
      await within(this.#statsArrived.promise, 250);
      if (this.#stats.counts !== null || this.#echoServer) break;
    }
    return this.#stats.counts;
  }

  #onDatagram(data: Uint8Array, from: PeerAddress, arrivedAt: number): void | Promise<void> {
    const now = monotonicMs();
    const sender = this.#sender;
    const stranger = sender.read(data, from);
    if (stranger === "corrupted") this.#corrupted++;
    if (stranger !== null) return;
    if (sender.key === null) return this.#onReading(data.length, arrivedAt, now);
    // Authenticated: only a reply with a right tag counts (a plain echo of a tagged PING
    // would pass the check without the key, so an echo is never taken for one).
    if (!sender.reply.authenticated) return;
    return sender.verify(data).then((valid) => {
      if (valid) this.#onReading(data.length, arrivedAt, now);
    });
  }

  /** What the datagram just read (of this session, and tagged right under a key) counts as. */
  #onReading(bytes: number, arrivedAt: number, now: number): void {
    const reply = this.#sender.reply;
    const stats = this.#stats;
    if (reply.kind === "reply" && reply.request === "stats") {
      const interval = reply.sequence - INTERVAL_SEQUENCE;
      if (interval > 0 && interval < BASELINE_SEQUENCE - INTERVAL_SEQUENCE && reply.counts) {
        return this.#there?.onStats(interval, reply.counts);
      }
      if (stats === null || reply.sequence < stats.first || reply.sequence > stats.last) return;
      stats.counts ??= reply.counts;
      this.#statsArrived.resolve();
      return;
    }
    // Our own request back unchanged: a plain echo server (udp bench measures those too).
    const echoed = this.#sender.key === null && reply.kind === "echo";
    if (echoed) this.#echoServer = true;
    if (reply.kind === "echo" && reply.request === "stats") {
      this.#statsArrived.resolve();
      return;
    }
    if (reply.kind !== "reply" && !echoed) return;
    if (reply.sequence >= this.#sent) return;
    if (!this.#sender.format.replyFits(this.#datagramBytes, bytes)) return;
    if (this.#mode === "one-way") {
      this.#oneWayAnswered++; // not asked for: the way back carried it all the same
      return;
    }
    this.#countReply(reply.sequence, arrivedAt, now);
  }

  #countReply(sequence: number, arrivedAt: number, now: number): void {
    const slot = sequence % BENCH_WINDOW;
    const recent = this.#sent - sequence <= BENCH_WINDOW;
    if (recent && this.#seenTags[slot] === sequence + 1) {
      this.#duplicates++;
      const stamp = this.#sender.reply.stamp;
      if (stamp !== null) this.#path?.onDuplicate(sequence, stamp);
      return;
    }
    if (recent) this.#seenTags[slot] = sequence + 1;
    this.#received++;
    if (sequence >= this.#replyEnd) {
      this.#gaps += sequence - this.#replyEnd;
      this.#replyEnd = sequence + 1;
    }
    const reply = this.#sender.reply;
    if (this.#path !== null && reply.stamp !== null) {
      this.#path.onReply(
        sequence,
        reply.stamp,
        reply.receivedAt,
        reply.repliedAt,
        wallClockAt(arrivedAt),
        -1,
      );
    }
    this.#reorder.observe(sequence);
    if (!recent) return;
    const trip = this.#sender.roundTrip(this.#sendTimes[slot], arrivedAt, now);
    this.#rtt.record(trip.rttMs);
    this.#roundTrip.record(trip.totalMs);
    this.#jitter.update(trip.rttMs);
    this.#intervalRtt.record(trip.rttMs);
    this.#totals?.rtt.record(trip.rttMs);
    this.#totals?.roundTrip.record(trip.totalMs);
  }
}
