/**
 * The throughput mode behind `udp bench`: paced PINGs at a set rate (or as fast as the socket
 * takes them) to a reflector, counting replies, RTT, jitter, reordering and duplicates in
 * bounded memory, then a STATS exchange so that loss is told apart per direction.
 *
 * @module
 */

import { formatAddress, type ResolvedAddress, sameAddress, wildcardFor } from "../net/address.ts";
import { monotonicMs, wallClockMs } from "../net/clock.ts";
import { signFrame, verifyFrame } from "../wire/auth.ts";
import {
  decodeFrame,
  decodeStats,
  encodeFrame,
  Flags,
  type Frame,
  frameOverhead,
  MessageType,
  NO_TIMESTAMP,
  PROTOCOL_VERSION,
  type SessionCounts,
  STATS_PAYLOAD_SIZE,
  timestampFromMs,
  UNKNOWN_COUNT,
} from "../wire/protocol.ts";
import { type PeerAddress, UdpSocket, yieldToEventLoop } from "../net/socket.ts";
import { measureRoundTrip } from "../stats/rtt.ts";
import { JitterEstimator, LatencyStats, type LatencySummary, ReorderDetector } from "../stats/latency.ts";

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
  /** Authenticated mode: PINGs and STATS requests are tagged, replies without a valid tag are
   * not counted. */
  key?: CryptoKey;
  /** The receive buffer to ask the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Told what the kernel granted for `receiveBuffer` (null: the backend cannot set it). */
  onReceiveBuffer?: (granted: number | null) => void;
}

/** What the reflector refused of this session, by reason (from its STATS reply). */
export interface BenchRefusals {
  /** By the per-source rate limit. */
  rate_limit: number;
  /** By the global rate limit. */
  global_limit: number;
  /** For a missing or wrong tag. */
  auth: number;
  /** As stale or replayed. */
  replay: number;
}

/** One interval report (counts within the interval). */
export interface BenchInterval {
  type: "interval";
  /** Interval start and end, seconds since the start. */
  start_s: number;
  end_s: number;
  sent: number;
  received: number;
  sent_pps: number;
  received_pps: number;
  /** Bits per second of UDP payload received. */
  received_bps: number;
}

/** The result of a run; `--json` prints exactly these keys. */
export interface BenchSummary {
  type: "summary";
  target: string;
  /** Bytes per datagram (header + padding). */
  datagram_bytes: number;
  /** Time spent sending, seconds. */
  duration_s: number;
  /** Datagrams sent, and replies received (each probe counted once). */
  sent: number;
  received: number;
  /** What was asked for (null for "max") and what the sender achieved. */
  requested_pps: number | null;
  offered_pps: number;
  offered_bps: number;
  /** Replies per second and bits per second of reply payload over the sending time. */
  achieved_pps: number;
  achieved_bps: number;
  /** The reflector's counts for this session (null when its STATS reply never came). */
  server_received: number | null;
  server_replied: number | null;
  /** What the reflector refused of this session (its limits and checks: not the network's
   * loss); null without its STATS reply. */
  server_refused: BenchRefusals | null;
  /** Datagrams the reflector's kernel dropped on its socket during the run (receive buffer
   * full), from any source; null when it cannot say or its STATS replies did not come. */
  server_kernel_drops: number | null;
  /** Lost on the way there (sent − server_received − refused; the server kernel's drops
   * included) and back (server_replied − received); null without the server's counts. */
  loss_up: number | null;
  loss_down: number | null;
  /** (sent − received) / sent × 100: everything not back, refusals included; null when
   * nothing was sent. */
  loss_percent: number | null;
  /** Replies that failed their check (damaged on the way): not counted as received. */
  corrupted: number;
  /** Whether the target answered as a plain echo server (no STATS, no timestamps). */
  echo_server: boolean;
  duplicates: number;
  reordered: number;
  /** RTTs as `udp ping` counts them: the reflector's time left out when it says (lib/rtt.ts). */
  rtt_ms: LatencySummary;
  /** The same round trips with the reflector's time in. */
  round_trip_ms: LatencySummary;
  jitter_ms: number | null;
}

/**
 * Runs one throughput trial against a `udp serve`.
 *
 * @example
 * ```ts
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
 * console.log(summary.sent, summary.loss_up); // 200 0
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
  readonly #session = crypto.getRandomValues(new Uint32Array(1))[0];
  readonly #key: CryptoKey | null;
  readonly #payload: Uint8Array;
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
  #received = 0;
  #duplicates = 0;
  #corrupted = 0;
  #echoServer = false;
  #stats: { first: number; last: number; counts: SessionCounts | null } | null = null;
  #statsArrived = Promise.withResolvers<void>();

  constructor(options: BenchOptions) {
    this.#options = options;
    this.#key = options.key ?? null;
    this.#payload = new Uint8Array(options.payloadSize);
    this.#datagramBytes = frameOverhead(this.#key !== null) + options.payloadSize;
    this.#batchBuffers = Array.from(
      { length: SEND_BATCH },
      () => new Uint8Array(this.#datagramBytes),
    );
    this.#socket = UdpSocket.bind(wildcardFor(options.target.family), 0);
    if (options.receiveBuffer !== undefined) {
      options.onReceiveBuffer?.(this.#socket.setReceiveBuffer(options.receiveBuffer));
    }
    this.#receiving = this.#socket.receiveEach((data, from, arrivedAt) =>
      this.#onDatagram(data, from, arrivedAt)
    );
  }

  async run(): Promise<BenchSummary> {
    // The reflector's own counters before the run, so that its kernel's drops during the run
    // can be told (a plain echo server answers with the request itself: no counts).
    const before = await this.#askStats(BASELINE_SEQUENCE);
    const started = monotonicMs();
    const reporter = new IntervalReporter(this.#options, started, this.#datagramBytes);
    try {
      await this.#send(started, () => reporter.tick(this.#sent, this.#received));
    } finally {
      reporter.stop(this.#sent, this.#received);
    }
    const sendingMs = monotonicMs() - started;
    await sleep(this.#options.graceMs ?? 500);
    const after = this.#echoServer ? null : await this.#askStats(this.#sent);
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
    const batch: Uint8Array[] = [];
    const sentAt = timestampFromMs(wallClockMs()); // the batch's frames say when it started
    for (let sequence = this.#sent; sequence < due && batch.length < SEND_BATCH; sequence++) {
      const into = this.#batchBuffers[batch.length];
      batch.push(this.#frame(sequence, MessageType.PING, this.#payload, sentAt, into));
    }
    if (this.#key !== null) await Promise.all(batch.map((frame) => signFrame(frame, this.#key!)));
    const batchStart = monotonicMs();
    for (let sequence = this.#sent; sequence < this.#sent + batch.length; sequence++) {
      this.#sendTimes[sequence % BENCH_WINDOW] = batchStart;
    }
    this.#sent += await this.#socket.sendBatch(batch, this.#options.target);
  }

  #frame(
    sequence: number,
    type: number,
    padding: Uint8Array,
    sentAt = timestampFromMs(wallClockMs()),
    into?: Uint8Array,
  ): Uint8Array {
    return encodeFrame({
      version: PROTOCOL_VERSION,
      type: type as MessageType,
      flags: this.#key === null ? 0 : Flags.AUTHENTICATED,
      attempt: 0,
      session: this.#session,
      sequence,
      sentAt,
      receivedAt: NO_TIMESTAMP,
      repliedAt: NO_TIMESTAMP,
      payload: padding,
    }, { into });
  }

  /**
   * Asks the reflector for this session's counts (and its own), re-asking as UDP may lose the
   * question; null when no answer came. Requests are numbered from `first`.
   */
  async #askStats(first: number): Promise<SessionCounts | null> {
    this.#stats = { first, last: first + STATS_ATTEMPTS - 1, counts: null };
    this.#statsArrived = Promise.withResolvers<void>();
    for (let attempt = 0; attempt < STATS_ATTEMPTS; attempt++) {
      const request = this.#frame(
        first + attempt,
        MessageType.STATS_REQUEST,
        new Uint8Array(STATS_PAYLOAD_SIZE),
      );
      if (this.#key !== null) await signFrame(request, this.#key);
      await this.#socket.send(request, this.#options.target);
      await within(this.#statsArrived.promise, 250);
      if (this.#stats.counts !== null || this.#echoServer) break;
    }
    return this.#stats.counts;
  }

  #onDatagram(data: Uint8Array, from: PeerAddress, arrivedAt: number): void | Promise<void> {
    const now = monotonicMs();
    if (!sameAddress(from, this.#options.target)) return;
    const decoded = decodeFrame(data);
    if (decoded.kind === "corrupted") {
      this.#corrupted++;
      return;
    }
    if (decoded.kind !== "frame" || decoded.frame.session !== this.#session) return;
    if (this.#key === null) return this.#onFrame(decoded.frame, data, arrivedAt, now);
    const key = this.#key;
    // Authenticated: only a reply with a right tag counts (a plain echo of a tagged PING
    // would pass the check without the key, so an echo is never taken for one).
    if ((decoded.frame.flags & Flags.AUTHENTICATED) === 0) return;
    return verifyFrame(data, key).then((valid) => {
      if (valid) this.#onFrame(decoded.frame, data, arrivedAt, now);
    });
  }

  #onFrame(frame: Frame, data: Uint8Array, arrivedAt: number, now: number): void {
    const stats = this.#stats;
    if (frame.type === MessageType.STATS) {
      if (stats === null || frame.sequence < stats.first || frame.sequence > stats.last) return;
      stats.counts ??= decodeStats(frame.payload);
      this.#statsArrived.resolve();
      return;
    }
    // Our own request back unchanged: a plain echo server (udp bench measures those too).
    const echoed = this.#key === null &&
      (frame.type === MessageType.PING || frame.type === MessageType.STATS_REQUEST);
    if (echoed) this.#echoServer = true;
    if (frame.type === MessageType.STATS_REQUEST) {
      this.#statsArrived.resolve();
      return;
    }
    if (frame.type !== MessageType.PONG && !echoed) return;
    if (frame.sequence >= this.#sent || data.length !== this.#datagramBytes) return;
    this.#countReply(frame, arrivedAt, now);
  }

  #countReply(frame: Frame, arrivedAt: number, now: number): void {
    const slot = frame.sequence % BENCH_WINDOW;
    const recent = this.#sent - frame.sequence <= BENCH_WINDOW;
    if (recent && this.#seenTags[slot] === frame.sequence + 1) {
      this.#duplicates++;
      return;
    }
    if (recent) this.#seenTags[slot] = frame.sequence + 1;
    this.#received++;
    this.#reorder.observe(frame.sequence);
    if (!recent) return;
    const trip = measureRoundTrip(
      this.#sendTimes[slot],
      arrivedAt,
      now,
      frame.receivedAt,
      frame.repliedAt,
    );
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
      loss_up: after === null ? null : sent - after.received - refusedTotal,
      loss_down: after === null ? null : after.replied - received,
      loss_percent: sent === 0 ? null : ((sent - received) / sent) * 100,
      duplicates: this.#duplicates,
      reordered: this.#reorder.reordered,
      corrupted: this.#corrupted,
      echo_server: this.#echoServer,
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
