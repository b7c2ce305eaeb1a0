/**
 * The throughput mode behind `udp bench`: paced PINGs at a set rate (or as fast as the socket
 * takes them) to a reflector, counting replies, RTT, jitter, reordering and duplicates in
 * bounded memory, then a STATS exchange so that loss is told apart per direction.
 *
 * @module
 */

import type { DontFragment, PeerAddress, ResolvedAddress, UdpSocket } from "../net/mod.ts";
import {
  formatAddress,
  monotonicMs,
  wallClockAt,
  wallClockMs,
  yieldToEventLoop,
} from "../net/mod.ts";
import { JitterEstimator, LatencyStats, ReorderDetector } from "../stats/mod.ts";
import {
  type ProbeFormat,
  type SessionCounts,
  timestampFromMs,
  UNKNOWN_COUNT,
} from "../wire/mod.ts";
import { ProbeSender } from "./_sender.ts";
import { IcmpTally } from "./_icmp_tally.ts";
import { StampPath } from "./_stamp_path.ts";
import type { BenchInterval, BenchSummary } from "./bench_report.ts";

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
export async function bench(options: BenchOptions): Promise<BenchSummary> {
  const run = new BenchRun(options);
  try {
    return await run.run();
  } finally {
    await run.close();
  }
}

/** The sequence numbers of the STATS requests made before the run (after it: `sent` on). */
const BASELINE_SEQUENCE = 0xffff_ff00;
/** STATS requests per exchange: UDP may lose the question or the answer. */
const STATS_ATTEMPTS = 4;

/** One run's state: the sender, the reply accounting and the STATS exchanges. */
class BenchRun {
  readonly #options: BenchOptions;
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
  #duplicates = 0;
  #corrupted = 0;
  #echoServer = false;
  #stats: { first: number; last: number; counts: SessionCounts | null } | null = null;
  readonly #path: StampPath | null;
  #statsArrived = Promise.withResolvers<void>();

  constructor(options: BenchOptions) {
    this.#options = options;
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
    });
    this.#datagramBytes = this.#sender.datagramBytes;
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
    this.#receiving = this.#socket.receiveEach(
      (data, from, arrivedAt) => this.#onDatagram(data, from, arrivedAt),
      undefined,
      { onIcmp: (report) => void this.#icmp.read(report, this.#sender) },
    );
  }

  async run(): Promise<BenchSummary> {
    // The reflector's own counters before the run, so that its kernel's drops during the run
    // can be told (a plain echo server answers with the request itself: no counts).
    const hasStats = this.#sender.format.hasStats;
    const before = hasStats ? await this.#askStats(BASELINE_SEQUENCE) : null;
    const started = monotonicMs();
    const reporter = new IntervalReporter(this.#options, started, this.#datagramBytes);
    try {
      await this.#send(started, () => reporter.tick(this.#sent, this.#received));
    } finally {
      reporter.stop(this.#sent, this.#received);
    }
    const sendingMs = monotonicMs() - started;
    await sleep(this.#options.graceMs ?? 500);
    const after = this.#echoServer || !hasStats ? null : await this.#askStats(this.#sent);
    return this.#summary(sendingMs / 1000, before, after);
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#receiving;
  }

  /** Sends at the rate asked for until the duration is over or the signal aborts. */
  async #send(started: number, tick: () => void): Promise<void> {
    const { rate, signal } = this.#options;
    const end = started + this.#options.durationMs;
    while (!signal?.aborted) {
      const now = monotonicMs();
      if (now >= end) break;
      tick();
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
  }

  #summary(
    seconds: number,
    before: SessionCounts | null,
    after: SessionCounts | null,
  ): BenchSummary {
    const sent = this.#sent;
    const received = this.#received;
    const bits = this.#datagramBytes * 8;
    const refused = after === null ? null : {
      rate_limit: after.refusedRateLimit,
      global_limit: after.refusedGlobalLimit,
      auth: after.refusedAuth,
      replay: after.refusedReplay,
    };
    const refusedTotal = refused === null
      ? 0
      : refused.rate_limit + refused.global_limit + refused.auth + refused.replay;
    const path = this.#path?.summary(received);
    const knowsDrops = before !== null && after !== null &&
      before.kernelDrops !== UNKNOWN_COUNT && after.kernelDrops !== UNKNOWN_COUNT;
    return {
      type: "summary",
      target: formatAddress(this.#options.target),
      datagram_bytes: this.#datagramBytes,
      duration_s: round(seconds, 3),
      sent,
      received,
      requested_pps: this.#options.rate === "max" ? null : this.#options.rate,
      offered_pps: round(sent / seconds, 1),
      offered_bps: round((sent * bits) / seconds, 0),
      achieved_pps: round(received / seconds, 1),
      achieved_bps: round((received * bits) / seconds, 0),
      server_received: after?.received ?? null,
      server_replied: after?.replied ?? null,
      server_refused: refused,
      server_kernel_drops: knowsDrops ? (after!.kernelDrops - before!.kernelDrops) >>> 0 : null,
      loss_up: after === null ? path?.lost_there ?? null : sent - after.received - refusedTotal,
      loss_down: after === null ? path?.lost_back ?? null : after.replied - received,
      loss_percent: sent === 0 ? null : ((sent - received) / sent) * 100,
      duplicates: this.#duplicates,
      reordered: this.#reorder.reordered,
      corrupted: this.#corrupted,
      echo_server: this.#echoServer,
      errors: this.#icmp.errors,
      icmp: { ...this.#icmp.counts },
      rtt_ms: this.#rtt.summary(),
      round_trip_ms: this.#roundTrip.summary(),
      jitter_ms: this.#jitter.value,
    };
  }
}

/** The interval reports: counts within each interval, told through `onInterval`. */
class IntervalReporter {
  readonly #onInterval?: (report: BenchInterval) => void;
  readonly #intervalMs: number;
  readonly #started: number;
  readonly #datagramBytes: number;
  #last: { at: number; sent: number; received: number };

  constructor(options: BenchOptions, started: number, datagramBytes: number) {
    this.#onInterval = options.intervalMs ? options.onInterval : undefined;
    this.#intervalMs = options.intervalMs ?? 0;
    this.#started = started;
    this.#datagramBytes = datagramBytes;
    this.#last = { at: started, sent: 0, received: 0 };
  }

  /** Reports the interval if it is over. */
  tick(sent: number, received: number): void {
    if (this.#onInterval && monotonicMs() - this.#last.at >= this.#intervalMs) {
      this.#report(sent, received);
    }
  }

  /** Reports the last, partial interval. */
  stop(sent: number, received: number): void {
    if (this.#onInterval) this.#report(sent, received);
  }

  #report(sent: number, received: number): void {
    const now = monotonicMs();
    const last = this.#last;
    const seconds = (now - last.at) / 1000;
    if (seconds <= 0) return;
    this.#last = { at: now, sent, received };
    this.#onInterval?.({
      type: "interval",
      start_s: round((last.at - this.#started) / 1000, 3),
      end_s: round((now - this.#started) / 1000, 3),
      sent: sent - last.sent,
      received: received - last.received,
      sent_pps: round((sent - last.sent) / seconds, 1),
      received_pps: round((received - last.received) / seconds, 1),
      received_bps: round(((received - last.received) * this.#datagramBytes * 8) / seconds, 0),
    });
  }
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, but at most `ms`; the timer never outlives the wait. */
async function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}
