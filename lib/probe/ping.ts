/**
 * The pinger behind `udp ping`: sends PING probes, retransmits unanswered ones, matches PONGs
 * by session + sequence + attempt + source address, and accounts for every reply exactly once
 * as received, duplicate, late, redundant or foreign. Memory is bounded for any run length.
 *
 * @module
 */

import type { IcmpReport, PeerAddress, ReceiveMeta, ResolvedAddress } from "../net/mod.ts";
import type { SendReceipt } from "../net/mod.ts";
import { DeadlineQueue, errorKind, formatAddress, type UdpSocket } from "../net/mod.ts";
import { monotonicMs, wallClockAt, wallClockMs } from "../net/mod.ts";
import { JitterEstimator, LatencyStats, ReorderDetector } from "../stats/mod.ts";
import { type ProbeError, timestampFromMs } from "../wire/mod.ts";
import { ProbeSender } from "./_sender.ts";
import { StampPath, UNKNOWN_PATH } from "./_stamp_path.ts";
import { ATTEMPT_KEYS, DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS } from "./ping_options.ts";
import { MAX_RETRIES, type PingOptions, pingSenderOptions, PROBE_WINDOW } from "./ping_options.ts";
import { IcmpTally } from "./_icmp_tally.ts";
import { PathArrival } from "./_path_arrival.ts";
import { LoopWaiter } from "./_waiter.ts";
import type { ForeignReason, PingEvent, PingResult } from "./ping_report.ts";
import type { PingSummary, StopReason } from "./ping_report.ts";

// What a ping run reports and takes, also from here (where lib/cli imports it from).
export type * from "./ping_report.ts";
export { DEFAULT_INTERVAL_MS, DEFAULT_PAYLOAD_SIZE, DEFAULT_TIMEOUT_MS } from "./ping_options.ts";
export { MAX_RETRIES, type PingOptions, PROBE_WINDOW } from "./ping_options.ts";

const enum ProbeState {
  None = 0,
  Pending = 1,
  Received = 2,
  Lost = 3,
  Late = 4,
  Unsent = 5,
}

/**
 * Runs a ping session to a reflector and resolves with its result when the count is done,
 * the deadline passes, the signal aborts or the reflector answers with an ERROR.
 *
 * @example Ping a local reflector three times
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/reflector.ts";
 * import { ping } from "./ping.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const result = await ping({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   count: 3,
 *   intervalMs: 0,
 * });
 * await reflector.close();
 * strictEqual(result.summary.received, 3);
 * strictEqual(result.summary.loss_percent, 0);
 * strictEqual(result.stopReason, "count");
 * ```
 */
export function ping(options: PingOptions): Promise<PingResult> {
  return new Pinger(options).run();
}

class Pinger {
  readonly #target: ResolvedAddress;
  readonly #targetText: string;
  readonly #sender: ProbeSender;
  readonly #count?: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #deadlineMs?: number;
  readonly #retries: number;
  readonly #lingerMs: number;
  readonly #signal?: AbortSignal;
  readonly #emit: (event: PingEvent) => void;
  readonly #random: () => number;
  readonly #attemptsPerProbe: number;
  #authFailures = 0;

  // Per-probe state in a ring of PROBE_WINDOW slots, indexed by sequence % PROBE_WINDOW.
  readonly #tags = new Float64Array(PROBE_WINDOW); // sequence + 1 of the slot's probe
  readonly #states = new Uint8Array(PROBE_WINDOW);
  readonly #attemptsSent = new Uint8Array(PROBE_WINDOW);
  readonly #answered = new Uint16Array(PROBE_WINDOW); // bit k: attempt k was answered
  readonly #sendTimes: Float64Array;
  readonly #sentAt: Float64Array; // each transmission's own timestamp (T1), in ms
  readonly #transmissionIndex: Float64Array;
  // Attempt timeouts, keyed sequence × ATTEMPT_KEYS + attempt; stale ones are ignored.
  // On the socket's timer (set only once it is open): on the native backend the reactor wakes
  // for a timeout, so the probe sent then (-i 0) is followed at once by the wait for its reply.
  readonly #timeouts = new DeadlineQueue<number>(
    (key) => this.#onAttemptTimeout(Math.floor(key / ATTEMPT_KEYS), key % ATTEMPT_KEYS),
    (key) => this.#awaitsAttempt(Math.floor(key / ATTEMPT_KEYS), key % ATTEMPT_KEYS),
    undefined,
    (atMs, fire) => (this.#socket as UdpSocket).wakeAt(atMs, fire),
  );

  #socket: UdpSocket | null = null;
  #nextSequence = 0;
  #transmissions = 0;
  #outstanding = 0;
  #stopped = false;
  #stopReason: StopReason = "count";
  #protocolError?: string;
  #waiter: LoopWaiter | null = null;

  #transmitted = 0;
  #received = 0;
  #lost = 0;
  #duplicates = 0;
  #late = 0;
  #foreignCount = 0;
  #corrupted = 0;
  #echoServer = false;
  #retransmitted = 0;
  #redundant = 0;
  #sendErrors = 0;
  readonly #rtt = new LatencyStats();
  readonly #roundTrip = new LatencyStats();
  readonly #server = new LatencyStats();
  readonly #jitter = new JitterEstimator();
  readonly #reorder = new ReorderDetector();
  readonly #synchronized: boolean;
  #path: StampPath | null = null;
  readonly #icmp = new IcmpTally(PROBE_WINDOW, (sequence, attempt) => {
    const slot = sequence % PROBE_WINDOW;
    return this.#tags[slot] === sequence + 1 && attempt < this.#attemptsSent[slot];
  });
  readonly #arrival: PathArrival;

  constructor(options: PingOptions) {
    this.#target = options.target;
    this.#targetText = formatAddress(options.target);
    this.#count = options.count;
    this.#intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#deadlineMs = options.deadlineMs;
    this.#retries = Math.min(options.retries ?? 0, MAX_RETRIES);
    this.#lingerMs = options.lingerMs ?? 0;
    this.#sender = new ProbeSender(pingSenderOptions(options));
    this.#arrival = new PathArrival(this.#sender);
    this.#synchronized = options.synchronized ?? false;
    this.#signal = options.signal;
    this.#emit = options.onEvent ?? (() => {});
    this.#random = options.random ?? Math.random;
    this.#attemptsPerProbe = this.#retries + 1;
    const format = this.#sender.format;
    if (!format.hasAttempts && this.#retries > 0) {
      throw new RangeError(`${format.name} probes carry no retransmission number: no retries`);
    }
    this.#sendTimes = new Float64Array(PROBE_WINDOW * this.#attemptsPerProbe);
    this.#sentAt = new Float64Array(PROBE_WINDOW * this.#attemptsPerProbe);
    this.#transmissionIndex = new Float64Array(PROBE_WINDOW * this.#attemptsPerProbe);
  }

  async run(): Promise<PingResult> {
    const socket = this.#sender.bind();
    this.#socket = socket;
    this.#waiter = new LoopWaiter(socket, () => this.#stopped);
    const path = { window: PROBE_WINDOW, synchronized: this.#synchronized, arrival: this.#arrival };
    if (this.#sender.format.name === "stamp") this.#path = new StampPath(path);
    const receiving = socket.receiveEach(
      (data, from, arrivedAt, arrival) => this.#onDatagram(data, from, arrivedAt, arrival),
      undefined,
      // The TOS the replies arrive with: what the path did to the DSCP asked for them.
      { ttlAndTos: this.#path !== null, onIcmp: (report) => this.#onIcmp(report) },
    );
    const started = monotonicMs();
    const onAbort = () => this.#stop("interrupted");
    this.#signal?.addEventListener("abort", onAbort);
    const deadline = this.#deadlineMs === undefined
      ? undefined
      : setTimeout(() => this.#stop("deadline"), this.#deadlineMs);
    try {
      if (this.#signal?.aborted) this.#stop("interrupted");
      await this.#sendProbes(started);
      await this.#waitFor(() => this.#outstanding === 0);
      if (this.#lingerMs > 0) await this.#waitFor(() => false, monotonicMs() + this.#lingerMs);
    } finally {
      this.#stop("count");
      clearTimeout(deadline);
      this.#signal?.removeEventListener("abort", onAbort);
      await this.#sender.sent;
      socket.close();
      await receiving;
    }
    return this.#result(monotonicMs() - started);
  }

  async #sendProbes(started: number): Promise<void> {
    while (!this.#stopped && this.#wantsMore()) {
      const sequence = this.#nextSequence;
      if (this.#intervalMs > 0) {
        await this.#waitFor(() => false, started + sequence * this.#intervalMs);
      } else {
        await this.#waitFor(() => this.#outstanding === 0);
      }
      const slot = sequence % PROBE_WINDOW;
      await this.#waitFor(() => this.#states[slot] !== ProbeState.Pending);
      if (this.#stopped || !this.#wantsMore()) return;
      this.#nextSequence++;
      this.#tags[slot] = sequence + 1;
      this.#states[slot] = ProbeState.Pending;
      this.#attemptsSent[slot] = 0;
      this.#answered[slot] = 0;
      this.#transmitted++;
      this.#outstanding++;
      this.#transmit(sequence, 0);
    }
  }

  #wantsMore(): boolean {
    if (this.#count === undefined) return true;
    // As ping(8): with a deadline, -c counts replies; without one, it counts probes sent.
    if (this.#deadlineMs !== undefined) return this.#received < this.#count;
    return this.#nextSequence < this.#count;
  }

  #transmit(sequence: number, attempt: number): void {
    const slot = sequence % PROBE_WINDOW;
    const index = slot * this.#attemptsPerProbe + attempt;
    const sender = this.#sender;
    const sentAt = timestampFromMs(wallClockMs());
    this.#sentAt[index] = sentAt.seconds * 1000 + sentAt.nanos / 1e6;
    const bytes = sender.encode("ping", sequence, attempt, sentAt);
    this.#attemptsSent[slot] = attempt + 1;
    this.#transmissionIndex[index] = this.#transmissions++;
    const wait = this.#timeoutMs * (attempt === 0 ? 1 : 2 ** attempt * (1 + this.#random() / 4));
    const key = sequence * ATTEMPT_KEYS + attempt;
    this.#timeouts.add(monotonicMs() + wait, key);
    // Timed again as it is handed to the kernel (#probes): what udp does before that (a cold
    // path after 10 ms asleep, signing) is not network.
    this.#sendTimes[index] = monotonicMs();
    sender.send(this.#socket as UdpSocket, bytes, this.#probes, key);
  }

  /** Told of each probe's send, keyed as its timeout: timed at the socket's last moment. */
  readonly #probes: SendReceipt<number> = {
    sending: (key, _data, now) => {
      const slot = Math.floor(key / ATTEMPT_KEYS) % PROBE_WINDOW;
      this.#sendTimes[slot * this.#attemptsPerProbe + key % ATTEMPT_KEYS] = now;
    },
    sent: () => {},
    failed: (key, error) =>
      this.#onSendError(Math.floor(key / ATTEMPT_KEYS), key % ATTEMPT_KEYS, error),
  };

  #onSendError(sequence: number, attempt: number, error: unknown): void {
    if (this.#stopped) return;
    this.#sendErrors++;
    const kind = errorKind(error);
    const mtu = kind === "Message too long" ? this.#icmp.localMtu : null;
    this.#emit({ type: "send_error", seq: sequence, attempt, error: kind, mtu });
    const slot = sequence % PROBE_WINDOW;
    if (this.#states[slot] !== ProbeState.Pending || this.#tags[slot] !== sequence + 1) return;
    if (attempt > 0) {
      this.#retransmitted--; // it never left; the probe waits out this attempt's timeout
      return;
    }
    this.#states[slot] = ProbeState.Unsent; // its timeout, when due, finds it not pending
    this.#path?.onUnsent(sequence);
    this.#transmitted--;
    this.#resolveOutstanding();
  }

  /** Whether the probe still waits for a reply to this attempt, its latest (else: stale). */
  #awaitsAttempt(sequence: number, attempt: number): boolean {
    const slot = sequence % PROBE_WINDOW;
    return !this.#stopped && this.#states[slot] === ProbeState.Pending &&
      this.#tags[slot] === sequence + 1 && this.#attemptsSent[slot] === attempt + 1;
  }

  #onAttemptTimeout(sequence: number, attempt: number): void {
    // Answered since, or another probe in the slot, or a later attempt already out: stale.
    if (!this.#awaitsAttempt(sequence, attempt)) return;
    const slot = sequence % PROBE_WINDOW;
    const attempts = this.#attemptsSent[slot];
    if (attempts <= this.#retries) {
      this.#retransmitted++;
      this.#emit({ type: "retransmit", seq: sequence, attempt: attempts });
      this.#transmit(sequence, attempts);
      return;
    }
    this.#emit({ type: "timeout", seq: sequence, attempts });
    this.#settleLost(slot);
  }

  #settleLost(slot: number): void {
    this.#states[slot] = ProbeState.Lost;
    this.#lost++;
    this.#resolveOutstanding();
  }

  async #onDatagram(
    data: Uint8Array,
    from: PeerAddress,
    arrivedAt: number,
    arrival: ReceiveMeta,
  ): Promise<void> {
    const arrivedTos = arrival.tos; // read before any await: the socket reuses it
    const now = monotonicMs();
    if (this.#stopped) return;
    const sender = this.#sender;
    const stranger = sender.read(data, from);
    if (stranger === "corrupted") {
      this.#corrupted++;
      this.#emit({ type: "corrupted", from: formatAddress(from), bytes: data.length });
      return;
    }
    if (stranger !== null) return this.#foreign(from, data, stranger);
    const reply = sender.reply;
    // Our own PING back unchanged is a plain echo server's answer: a reply without reflector
    // timestamps. Not under a key: anyone can send a tagged PING back without it.
    const echoed = reply.kind === "echo" && reply.request === "ping" && sender.key === null;
    const pong = reply.kind === "reply" && reply.request === "ping";
    if (!pong && reply.kind !== "error" && !echoed) {
      return this.#foreign(from, data, "not-a-reply");
    }
    const sequence = reply.sequence;
    if (sequence >= this.#nextSequence) return this.#foreign(from, data, "unknown-probe");
    // In authenticated mode nothing untagged counts as late, duplicate or anything else, and
    // a forged ERROR cannot stop the run.
    if (sender.key !== null && !(reply.authenticated && await sender.verify(data))) {
      this.#authFailures++;
      return this.#foreign(from, data, "bad-tag");
    }
    const slot = sequence % PROBE_WINDOW;
    const fromText = formatAddress(from);
    const base = { seq: sequence, attempt: reply.attempt, bytes: data.length, from: fromText };
    if (this.#tags[slot] !== sequence + 1) {
      // Older than the window: a reply to a probe finalised long ago.
      this.#late++;
      return this.#emit({ type: "late", ...base, rtt_ms: null });
    }
    // A STAMP reply returns our T1: one from another run (a reused port, no SSID) has not ours.
    const t1 = reply.stamp?.requestSentAt;
    const sentMs = this.#sentAt[slot * this.#attemptsPerProbe + reply.attempt];
    if (
      reply.attempt >= this.#attemptsSent[slot] ||
      (t1 !== undefined && Math.abs(t1.seconds * 1000 + t1.nanos / 1e6 - sentMs) > 1e-3)
    ) return this.#foreign(from, data, "unknown-probe");
    if (reply.kind === "error") return this.#onError(reply.error!, from, data);
    if (!sender.format.replyFits(sender.datagramBytes, data.length)) {
      return this.#foreign(from, data, "wrong-length");
    }
    if (echoed && !this.#echoServer) {
      this.#echoServer = true;
      this.#emit({ type: "echo_server", from: fromText });
    }
    this.#onReply(slot, data.length, fromText, arrivedAt, now, arrivedTos);
  }

  /** Accounts for the reply just read, to a probe in the window: received, duplicate, late or
   * redundant. */
  #onReply(
    slot: number,
    bytes: number,
    fromText: string,
    arrivedAt: number,
    now: number,
    arrivedTos: number,
  ): void {
    const reply = this.#sender.reply;
    const { sequence, attempt } = reply;
    const index = slot * this.#attemptsPerProbe + attempt;
    const trip = this.#sender.roundTrip(this.#sendTimes[index], arrivedAt, now);
    const rtt = trip.rttMs;
    const bit = 1 << attempt;
    const base = { seq: sequence, attempt, bytes, from: fromText };
    if (this.#answered[slot] & bit) {
      this.#duplicates++;
      if (reply.stamp !== null) this.#path?.onDuplicate(sequence, reply.stamp);
      this.#emit({ type: "duplicate", ...base, rtt_ms: rtt });
      return;
    }
    this.#answered[slot] |= bit;
    switch (this.#states[slot]) {
      case ProbeState.Pending: {
        this.#states[slot] = ProbeState.Received;
        this.#received++;
        this.#rtt.record(rtt);
        this.#roundTrip.record(trip.totalMs);
        this.#jitter.update(rtt);
        const reordered = this.#reorder.observe(this.#transmissionIndex[index]);
        if (trip.serverMs !== null) this.#server.record(trip.serverMs);
        if (reply.path !== null) this.#arrival.observeReport(reply.path);
        if (reply.stamp !== null) {
          this.#path?.onReply(
            sequence,
            reply.stamp,
            reply.receivedAt,
            reply.repliedAt,
            wallClockAt(arrivedAt),
            arrivedTos,
          );
        }
        this.#emit({ type: "reply", ...base, rtt_ms: rtt, server_ms: trip.serverMs, reordered });
        this.#resolveOutstanding();
        return;
      }
      case ProbeState.Lost:
        this.#states[slot] = ProbeState.Late;
        this.#late++;
        if (reply.stamp !== null) this.#path?.onLate(sequence, reply.stamp);
        this.#emit({ type: "late", ...base, rtt_ms: rtt });
        return;
      default:
        this.#redundant++;
        this.#emit({ type: "redundant", ...base, rtt_ms: rtt });
    }
  }

  /** An ICMP error about a probe: counted and told; if about its last attempt, the probe is
   * lost at once (no reply can come), not silently. */
  #onIcmp(report: IcmpReport): void {
    const event = this.#stopped ? null : this.#icmp.read(report, this.#sender);
    if (event !== null) this.#emit(event);
    const { seq, attempt } = event ?? { seq: null, attempt: null };
    if (seq === null || attempt !== this.#retries || !this.#awaitsAttempt(seq, attempt)) return;
    this.#settleLost(seq % PROBE_WINDOW);
  }

  #onError(error: ProbeError, fromAddress: PeerAddress, data: Uint8Array): void {
    if (error.damagedRequest) return this.#foreign(fromAddress, data, "corrupted-request");
    const from = formatAddress(fromAddress);
    const message = `${from} ${error.message}`;
    this.#protocolError = message;
    this.#emit({ type: "error", from, code: error.code, message });
    this.#stop("protocol-error");
  }

  #foreign(from: PeerAddress, data: Uint8Array, reason: ForeignReason): void {
    this.#foreignCount++;
    this.#emit({ type: "foreign", from: formatAddress(from), bytes: data.length, reason });
  }

  #resolveOutstanding(): void {
    this.#outstanding--;
    this.#notify();
  }

  #stop(reason: StopReason): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopReason = reason;
    this.#timeouts.clear();
    this.#notify();
  }

  /** See {@linkcode LoopWaiter.waitFor}: the sending loop's one wait. */
  #waitFor(ready: () => boolean, untilMs?: number): Promise<void> {
    return (this.#waiter as LoopWaiter).waitFor(ready, untilMs);
  }

  #notify(): void {
    this.#waiter?.notify();
  }

  #result(elapsedMs: number): PingResult {
    const transmitted = this.#transmitted;
    const summary: PingSummary = {
      type: "summary",
      target: this.#targetText,
      transmitted,
      received: this.#received,
      lost: this.#lost,
      in_flight: transmitted - this.#received - this.#lost,
      loss_percent: transmitted === 0 ? null : ((transmitted - this.#received) / transmitted) * 100,
      duplicates: this.#duplicates,
      reordered: this.#reorder.reordered,
      late: this.#late,
      foreign: this.#foreignCount,
      corrupted: this.#corrupted,
      echo_server: this.#echoServer,
      retransmitted: this.#retransmitted,
      time_ms: Math.round(elapsedMs),
      rtt_ms: this.#rtt.summary(),
      round_trip_ms: this.#roundTrip.summary(),
      server_ms: this.#server.summary(),
      jitter_ms: this.#jitter.value,
      errors: this.#icmp.errors,
      icmp: { ...this.#icmp.counts },
      ...(this.#path?.summary(this.#received + this.#late) ?? UNKNOWN_PATH),
      ...this.#arrival.summary(),
    };
    return {
      summary,
      path: this.#path?.notes() ?? null,
      redundant: this.#redundant,
      sendErrors: this.#sendErrors,
      authFailures: this.#authFailures,
      exactQuantiles: this.#rtt.exact,
      stopReason: this.#stopReason,
      protocolError: this.#protocolError,
    };
  }
}
