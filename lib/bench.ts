/**
 * The throughput mode behind `udp bench`: paced PINGs at a set rate (or as fast as the socket
 * takes them) to a reflector, counting replies, RTT, jitter, reordering and duplicates in
 * bounded memory, then a STATS exchange so that loss is told apart per direction.
 *
 * @module
 */

import { formatAddress, type ResolvedAddress, sameAddress, wildcardFor } from "./address.ts";
import { monotonicMs, wallClockMs } from "./clock.ts";
import {
  decodeFrame,
  decodeStats,
  encodeFrame,
  HEADER_SIZE,
  MessageType,
  NO_TIMESTAMP,
  PROTOCOL_VERSION,
  type SessionCounts,
  STATS_PAYLOAD_SIZE,
  timestampFromMs,
} from "./protocol.ts";
import { type PeerAddress, UdpSocket, yieldToEventLoop } from "./socket.ts";
import { measureRoundTrip } from "./rtt.ts";
import { JitterEstimator, LatencyStats, type LatencySummary, ReorderDetector } from "./stats.ts";

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
  /** Lost on the way there (sent − server_received) and back (server_replied − received);
   * null without the server's counts. */
  loss_up: number | null;
  loss_down: number | null;
  /** (sent − received) / sent × 100. */
  loss_percent: number;
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
 * import { Reflector } from "./server.ts";
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
  const socket = UdpSocket.bind(wildcardFor(options.target.family), 0);
  const session = crypto.getRandomValues(new Uint32Array(1))[0];
  const payload = new Uint8Array(options.payloadSize);
  const datagramBytes = HEADER_SIZE + options.payloadSize;
  const sendTimes = new Float64Array(BENCH_WINDOW);
  const seenTags = new Float64Array(BENCH_WINDOW); // sequence + 1 of the last reply per slot
  const rtt = new LatencyStats();
  const roundTrip = new LatencyStats();
  const jitter = new JitterEstimator();
  const reorder = new ReorderDetector();
  let sent = 0;
  let received = 0;
  let duplicates = 0;
  let stats: SessionCounts | null = null;
  const statsArrived = Promise.withResolvers<void>();

  const onDatagram = (data: Uint8Array, from: PeerAddress, arrivedAt: number) => {
    const now = monotonicMs();
    if (!sameAddress(from, options.target)) return;
    const decoded = decodeFrame(data);
    if (decoded.kind !== "frame" || decoded.frame.session !== session) return;
    const frame = decoded.frame;
    if (frame.type === MessageType.STATS) {
      stats ??= decodeStats(frame.payload);
      statsArrived.resolve();
      return;
    }
    // A PING coming back unchanged is an echo: udp bench also measures plain echo servers.
    const reply = frame.type === MessageType.PONG || frame.type === MessageType.PING;
    if (!reply || frame.sequence >= sent) return;
    const slot = frame.sequence % BENCH_WINDOW;
    const recent = sent - frame.sequence <= BENCH_WINDOW;
    if (recent && seenTags[slot] === frame.sequence + 1) {
      duplicates++;
      return;
    }
    if (recent) seenTags[slot] = frame.sequence + 1;
    received++;
    reorder.observe(frame.sequence);
    if (recent) {
      const trip = measureRoundTrip(
        sendTimes[slot],
        arrivedAt,
        now,
        frame.receivedAt,
        frame.repliedAt,
      );
      rtt.record(trip.rttMs);
      roundTrip.record(trip.totalMs);
      jitter.update(trip.rttMs);
    }
  };
  const receiving = socket.receiveEach(onDatagram);

  const frameFor = (
    sequence: number,
    type: number,
    padding: Uint8Array,
    sentAt = timestampFromMs(wallClockMs()),
    into?: Uint8Array,
  ) =>
    encodeFrame({
      version: PROTOCOL_VERSION,
      type: type as MessageType,
      flags: 0,
      attempt: 0,
      session,
      sequence,
      sentAt,
      receivedAt: NO_TIMESTAMP,
      repliedAt: NO_TIMESTAMP,
      payload: padding,
    }, { into });
  // A batch is encoded into the same buffers each time: sendBatch() is done with them when it
  // resolves (the native backend copies them into its own batch at once).
  const batchBuffers = Array.from({ length: SEND_BATCH }, () => new Uint8Array(datagramBytes));

  const started = monotonicMs();
  let lastReport = { at: started, sent: 0, received: 0 };
  const report = () => {
    const now = monotonicMs();
    const seconds = (now - lastReport.at) / 1000;
    if (seconds <= 0) return;
    const interval: BenchInterval = {
      type: "interval",
      start_s: round((lastReport.at - started) / 1000, 3),
      end_s: round((now - started) / 1000, 3),
      sent: sent - lastReport.sent,
      received: received - lastReport.received,
      sent_pps: round((sent - lastReport.sent) / seconds, 1),
      received_pps: round((received - lastReport.received) / seconds, 1),
      received_bps: round(((received - lastReport.received) * datagramBytes * 8) / seconds, 0),
    };
    lastReport = { at: now, sent, received };
    options.onInterval?.(interval);
  };
  const reporter = options.intervalMs ? setInterval(report, options.intervalMs) : undefined;

  try {
    const end = started + options.durationMs;
    while (!options.signal?.aborted) {
      const now = monotonicMs();
      if (now >= end) break;
      // Pacing by the count due so far: a late timer is caught up at once, so the average
      // rate holds whatever the timer granularity.
      const due = options.rate === "max"
        ? sent + 64
        : Math.floor(((now - started) / 1000) * options.rate);
      while (sent < due) {
        // In batches (one sendmmsg() each on the native backend). Every frame of a batch is
        // timed from when the batch is handed to the socket, so an RTT may be over-stated by
        // the time the frames before it took to send, never under-stated.
        const batch: Uint8Array[] = [];
        const sentAt = timestampFromMs(wallClockMs()); // the batch's frames say when it started
        for (let sequence = sent; sequence < due && batch.length < SEND_BATCH; sequence++) {
          batch.push(
            frameFor(sequence, MessageType.PING, payload, sentAt, batchBuffers[batch.length]),
          );
        }
        const batchStart = monotonicMs();
        for (let sequence = sent; sequence < sent + batch.length; sequence++) {
          sendTimes[sequence % BENCH_WINDOW] = batchStart;
        }
        sent += await socket.sendBatch(batch, options.target);
      }
      if (options.rate !== "max") await sleep(1);
      else await yieldToEventLoop(); // let the replies be read between batches
    }
    const sendingMs = monotonicMs() - started;
    if (reporter !== undefined) {
      clearInterval(reporter);
      report();
    }
    await sleep(options.graceMs ?? 500);
    // Ask the reflector what it saw of this session, re-asking as UDP may lose the question.
    for (let attempt = 0; attempt < 4 && stats === null; attempt++) {
      const request = frameFor(
        sent + attempt,
        MessageType.STATS_REQUEST,
        new Uint8Array(STATS_PAYLOAD_SIZE),
      );
      await socket.send(request, options.target);
      await within(statsArrived.promise, 250);
    }
    const summaryStats = stats as SessionCounts | null;
    const seconds = sendingMs / 1000;
    return {
      type: "summary",
      target: formatAddress(options.target),
      datagram_bytes: datagramBytes,
      duration_s: round(seconds, 3),
      sent,
      received,
      requested_pps: options.rate === "max" ? null : options.rate,
      offered_pps: round(sent / seconds, 1),
      offered_bps: round((sent * datagramBytes * 8) / seconds, 0),
      achieved_pps: round(received / seconds, 1),
      achieved_bps: round((received * datagramBytes * 8) / seconds, 0),
      server_received: summaryStats?.received ?? null,
      server_replied: summaryStats?.replied ?? null,
      loss_up: summaryStats ? sent - summaryStats.received : null,
      loss_down: summaryStats ? summaryStats.replied - received : null,
      loss_percent: sent === 0 ? 0 : ((sent - received) / sent) * 100,
      duplicates,
      reordered: reorder.reordered,
      rtt_ms: rtt.summary(),
      round_trip_ms: roundTrip.summary(),
      jitter_ms: jitter.value,
    };
  } finally {
    clearInterval(reporter);
    socket.close();
    await receiving;
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
