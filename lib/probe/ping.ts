/**
 * The pinger behind `udp ping`: sends PING probes, retransmits unanswered ones, matches PONGs
 * by session + sequence + attempt + source address, and accounts for every reply exactly once
 * as received, duplicate, late, redundant or foreign. Memory is bounded for any run length.
 *
 * @module
 */

import { formatAddress, type ResolvedAddress, sameAddress, wildcardFor } from "../net/address.ts";
import { signFrame, verifyFrame } from "../wire/auth.ts";
import { monotonicMs, wallClockMs } from "../net/clock.ts";
import { DeadlineQueue } from "../net/deadlines.ts";
import {
  decodeErrorDetail,
  decodeFrame,
  encodeFrame,
  ErrorCode,
  Flags,
  type Frame,
  frameOverhead,
  MessageType,
  NO_TIMESTAMP,
  PROTOCOL_VERSION,
  timestampFromMs,
} from "../wire/protocol.ts";
import { measureRoundTrip } from "../stats/rtt.ts";
import { JitterEstimator, LatencyStats, type LatencySummary, ReorderDetector } from "../stats/latency.ts";
import { errorKind, type PeerAddress, UdpSocket } from "../net/socket.ts";

/** Default payload (padding) size in bytes, as ping(8). */
export const DEFAULT_PAYLOAD_SIZE = 56;
/** Default time between probes. */
export const DEFAULT_INTERVAL_MS = 1000;
/** Default time to wait for the reply to one attempt. */
export const DEFAULT_TIMEOUT_MS = 2000;
/** The most retransmissions a probe may have. */
export const MAX_RETRIES = 10;
/** Attempts per probe in a timeout's key: more than MAX_RETRIES + 1. */
const ATTEMPT_KEYS = 16;
/** Probes whose state is remembered, for classifying late and duplicate replies; also the
 * most probes that can be in flight at once. */
export const PROBE_WINDOW = 16384;

/** Options of {@linkcode ping}. */
export interface PingOptions {
  /** Where the reflector is (numeric address). */
  target: ResolvedAddress;
  /** Probes to send; with `deadlineMs`, replies to wait for. Unbounded when absent. */
  count?: number;
  /** Time between probe starts; 0 sends the next probe as soon as the previous one is
   * answered or timed out. Default 1000. */
  intervalMs?: number;
  /** Time to wait for the reply to the first attempt; attempt k waits timeoutMs·2^k·(1..1.25).
   * Default 2000. */
  timeoutMs?: number;
  /** Stop after this long whatever has been sent or received. */
  deadlineMs?: number;
  /** Retransmissions of an unanswered probe (0..10). Default 0. */
  retries?: number;
  /** After the last probe is answered or timed out, keep listening this long for late and
   * duplicate replies (as irtt's --wait). Default 0: stop at once, as ping(8). */
  lingerMs?: number;
  /** Padding bytes after the header. Default 56. */
  payloadSize?: number;
  /** Authenticated mode: PINGs carry an HMAC tag, and PONGs without a valid one are rejected
   * (counted as foreign, reason "bad-tag"). */
  key?: CryptoKey;
  /** Stops the run (as Ctrl-C does); the summary is still produced. */
  signal?: AbortSignal;
  /** Receives every event as it happens. */
  onEvent?: (event: PingEvent) => void;
  /** The session ID; random by default. */
  session?: number;
  /** Random numbers in [0, 1) for backoff jitter; Math.random by default. */
  random?: () => number;
  /** The receive buffer to ask the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Told what the kernel granted for `receiveBuffer` (null: the backend cannot set it). */
  onReceiveBuffer?: (granted: number | null) => void;
}

/** Why a datagram that reached the pinger was not a reply to it. */
export type ForeignReason =
  | "wrong-source"
  | "raw"
  | "malformed"
  | "unsupported-version"
  | "other-session"
  | "not-a-reply"
  | "unknown-probe"
  | "wrong-length"
  | "corrupted-request"
  | "bad-tag";

/** Events of a ping run; `--json` prints each as one NDJSON line. */
export type PingEvent =
  | {
    /** The first reply to a probe, within its timeout. */
    type: "reply";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    /** The network's round trip: the reflector's time (`server_ms`) left out (see lib/rtt.ts). */
    rtt_ms: number;
    /** How long the reflector held the probe (its reply minus its arrival timestamp), when given. */
    server_ms: number | null;
    /** Whether it arrived after a later-sent probe's reply (RFC 4737). */
    reordered: boolean;
  }
  | {
    /** A further reply to the same attempt of a probe: the network duplicated a datagram. */
    type: "duplicate";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    rtt_ms: number;
  }
  | {
    /** The first reply to a probe that had already timed out; the probe stays lost. */
    type: "late";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    /** null when the probe is too old for its send time to be remembered. */
    rtt_ms: number | null;
  }
  | {
    /** A reply to another attempt of a probe that already has its first reply. */
    type: "redundant";
    seq: number;
    attempt: number;
    bytes: number;
    from: string;
    rtt_ms: number;
  }
  | { type: "timeout"; seq: number; attempts: number }
  | { type: "retransmit"; seq: number; attempt: number }
  | { type: "foreign"; from: string; bytes: number; reason: ForeignReason }
  | {
    /** A datagram from the target that failed its check: damaged on the way, not a reply. */
    type: "corrupted";
    from: string;
    bytes: number;
  }
  | {
    /** Once, at the first echoed PING: the target is a plain echo server, not a reflector. */
    type: "echo_server";
    from: string;
  }
  | { type: "send_error"; seq: number; attempt: number; error: string }
  | {
    /** The reflector answered with an ERROR frame; the run stops. */
    type: "error";
    from: string;
    code: number;
    message: string;
  };

/** The final numbers of a run; `--json` prints exactly these keys. */
export interface PingSummary {
  /** Always "summary". */
  type: "summary";
  /** The target as HOST:PORT (IPv6 in brackets). */
  target: string;
  /** Probes sent (retransmissions not counted). */
  transmitted: number;
  /** Probes answered within their timeout. */
  received: number;
  /** Probes whose timeout (after all retries) expired without a reply. */
  lost: number;
  /** Probes sent whose timeout had not expired when the run ended (Ctrl-C, -w): neither
   * received nor lost; transmitted = received + lost + in_flight. */
  in_flight: number;
  /** (transmitted − received) / transmitted × 100, as ping(8): a probe without a reply is
   * never counted as delivered, however the run ended; null when nothing was transmitted. */
  loss_percent: number | null;
  /** Further replies to an attempt that was already answered (network duplication). */
  duplicates: number;
  /** Received replies that arrived after a later-sent transmission's reply (RFC 4737). */
  reordered: number;
  /** Probes first answered after their timeout (they stay lost). */
  late: number;
  /** Datagrams that were not replies to this run. */
  foreign: number;
  /** Datagrams from the target that failed their check (damaged on the way): not replies. */
  corrupted: number;
  /** Whether the target answered as a plain echo server (the PINGs back unchanged, without
   * reflector timestamps) rather than a reflector. */
  echo_server: boolean;
  /** Retransmissions sent (`--retries`). */
  retransmitted: number;
  /** Run time in milliseconds. */
  time_ms: number;
  /**
   * RTTs of received probes in milliseconds: from the probe's send to its reply's arrival at
   * the socket, minus the time the reflector held it when it said (as irtt and TWAMP count).
   */
  rtt_ms: LatencySummary;
  /** The same round trips with the reflector's time in (what sockperf reports). */
  round_trip_ms: LatencySummary;
  /** How long the reflector held each probe, when it said (udp serve does; an echo does not). */
  server_ms: LatencySummary;
  /** RFC 3550 jitter of the RTTs; null until two replies were received. */
  jitter_ms: number | null;
}

/** Why a run ended. */
export type StopReason = "count" | "deadline" | "interrupted" | "protocol-error";

/** Everything a run measured: the summary plus what the text report adds to it. */
export interface PingResult {
  /** The summary (the JSON object). */
  summary: PingSummary;
  /** Replies to retransmissions of probes that were already answered. */
  redundant: number;
  /** Transmissions that failed locally (not counted as transmitted). */
  sendErrors: number;
  /** Replies rejected for a missing or wrong tag (authenticated mode; also in `foreign`). */
  authFailures: number;
  /** Whether the quantiles are exact (few samples) rather than from the histogram. */
  exactQuantiles: boolean;
  /** Why the run ended. */
  stopReason: StopReason;
  /** The reflector's ERROR, when stopReason is "protocol-error". */
  protocolError?: string;
}

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
 * import { Reflector } from "../reflector/reflector.ts";
 * import { ping } from "./ping.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const result = await ping({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   count: 3,
 *   intervalMs: 0,
 * });
 * await reflector.close();
 * console.log(result.summary.received); // 3
 * ```
 */
export function ping(options: PingOptions): Promise<PingResult> {
  return new Pinger(options).run();
}

class Pinger {
  readonly #target: ResolvedAddress;
  readonly #targetText: string;
  readonly #count?: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #deadlineMs?: number;
  readonly #retries: number;
  readonly #lingerMs: number;
  readonly #payload: Uint8Array;
  readonly #signal?: AbortSignal;
  readonly #emit: (event: PingEvent) => void;
  readonly #session: number;
  readonly #random: () => number;
  readonly #attemptsPerProbe: number;
  readonly #key: CryptoKey | null;
  readonly #receiveBuffer?: number;
  readonly #onReceiveBuffer?: (granted: number | null) => void;
  #outbox: Promise<void> = Promise.resolve();
  #authFailures = 0;

  // Per-probe state in a ring of PROBE_WINDOW slots, indexed by sequence % PROBE_WINDOW.
  readonly #tags = new Float64Array(PROBE_WINDOW); // sequence + 1 of the slot's probe
  readonly #states = new Uint8Array(PROBE_WINDOW);
  readonly #attemptsSent = new Uint8Array(PROBE_WINDOW);
  readonly #answered = new Uint16Array(PROBE_WINDOW); // bit k: attempt k was answered
  readonly #sendTimes: Float64Array;
  readonly #transmissionIndex: Float64Array;
  // Attempt timeouts, keyed sequence × ATTEMPT_KEYS + attempt; stale ones are ignored.
  readonly #timeouts = new DeadlineQueue<number>(
    (key) => this.#onAttemptTimeout(Math.floor(key / ATTEMPT_KEYS), key % ATTEMPT_KEYS),
    (key) => this.#awaitsAttempt(Math.floor(key / ATTEMPT_KEYS), key % ATTEMPT_KEYS),
  );

  #socket: UdpSocket | null = null;
  #nextSequence = 0;
  #transmissions = 0;
  #outstanding = 0;
  #stopped = false;
  #stopReason: StopReason = "count";
  #protocolError?: string;
  #waiter: { ready: () => boolean; resolve: () => void; cancel?: () => void } | null = null;

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

  constructor(options: PingOptions) {
    this.#target = options.target;
    this.#targetText = formatAddress(options.target);
    this.#count = options.count;
    this.#intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#deadlineMs = options.deadlineMs;
    this.#retries = Math.min(options.retries ?? 0, MAX_RETRIES);
    this.#lingerMs = options.lingerMs ?? 0;
    this.#payload = new Uint8Array(options.payloadSize ?? DEFAULT_PAYLOAD_SIZE);
    this.#signal = options.signal;
    this.#emit = options.onEvent ?? (() => {});
    this.#session = options.session ?? crypto.getRandomValues(new Uint32Array(1))[0];
    this.#random = options.random ?? Math.random;
    this.#attemptsPerProbe = this.#retries + 1;
    this.#key = options.key ?? null;
    this.#receiveBuffer = options.receiveBuffer;
    this.#onReceiveBuffer = options.onReceiveBuffer;
    this.#sendTimes = new Float64Array(PROBE_WINDOW * this.#attemptsPerProbe);
    this.#transmissionIndex = new Float64Array(PROBE_WINDOW * this.#attemptsPerProbe);
  }

  async run(): Promise<PingResult> {
    const socket = UdpSocket.bind(wildcardFor(this.#target.family), 0);
    this.#socket = socket;
    if (this.#receiveBuffer !== undefined) {
      this.#onReceiveBuffer?.(socket.setReceiveBuffer(this.#receiveBuffer));
    }
    const receiving = socket.receiveEach((data, from, arrivedAt) =>
      this.#onDatagram(data, from, arrivedAt)
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
      await this.#outbox;
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
    const frame: Frame = {
      version: PROTOCOL_VERSION,
      type: MessageType.PING,
      flags: this.#key ? Flags.AUTHENTICATED : 0,
      attempt,
      session: this.#session,
      sequence,
      sentAt: timestampFromMs(wallClockMs()),
      receivedAt: NO_TIMESTAMP,
      repliedAt: NO_TIMESTAMP,
      payload: this.#payload,
    };
    const bytes = encodeFrame(frame);
    this.#attemptsSent[slot] = attempt + 1;
    this.#transmissionIndex[index] = this.#transmissions++;
    const wait = attempt === 0
      ? this.#timeoutMs
      : this.#timeoutMs * 2 ** attempt * (1 + this.#random() / 4);
    this.#timeouts.add(monotonicMs() + wait, sequence * ATTEMPT_KEYS + attempt);
    const socket = this.#socket as UdpSocket;
    const key = this.#key;
    if (key === null) {
      // Timed as it is handed to the socket: what udp does before that is not network.
      this.#sendTimes[index] = monotonicMs();
      socket.send(bytes, this.#target).catch((error) =>
        this.#onSendError(sequence, attempt, error)
      );
      return;
    }
    // Signing is asynchronous: chained, so probes still leave in the order they were made,
    // and timed from the moment the signed frame is handed to the socket.
    this.#outbox = this.#outbox.then(async () => {
      await signFrame(bytes, key);
      this.#sendTimes[index] = monotonicMs();
      await socket.send(bytes, this.#target);
    }).catch((error) => this.#onSendError(sequence, attempt, error));
  }

  #onSendError(sequence: number, attempt: number, error: unknown): void {
    if (this.#stopped) return;
    this.#sendErrors++;
    this.#emit({ type: "send_error", seq: sequence, attempt, error: errorKind(error) });
    const slot = sequence % PROBE_WINDOW;
    if (this.#states[slot] !== ProbeState.Pending || this.#tags[slot] !== sequence + 1) return;
    if (attempt > 0) {
      this.#retransmitted--; // it never left; the probe waits out this attempt's timeout
      return;
    }
    this.#states[slot] = ProbeState.Unsent; // its timeout, when due, finds it not pending
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
    this.#states[slot] = ProbeState.Lost;
    this.#lost++;
    this.#emit({ type: "timeout", seq: sequence, attempts });
    this.#resolveOutstanding();
  }

  async #onDatagram(data: Uint8Array, from: PeerAddress, arrivedAt: number): Promise<void> {
    const now = monotonicMs();
    if (this.#stopped) return;
    if (!sameAddress(from, this.#target)) return this.#foreign(from, data, "wrong-source");
    const decoded = decodeFrame(data);
    if (decoded.kind === "corrupted") {
      this.#corrupted++;
      this.#emit({ type: "corrupted", from: formatAddress(from), bytes: data.length });
      return;
    }
    if (decoded.kind !== "frame") {
      return this.#foreign(from, data, decoded.kind === "raw" ? "raw" : decoded.kind);
    }
    const frame = decoded.frame;
    if (frame.session !== this.#session) return this.#foreign(from, data, "other-session");
    // Our own PING back unchanged is a plain echo server's answer: a reply without reflector
    // timestamps. Not under a key: anyone can send a tagged PING back without it.
    const echoed = frame.type === MessageType.PING && this.#key === null;
    if (frame.type !== MessageType.PONG && frame.type !== MessageType.ERROR && !echoed) {
      return this.#foreign(from, data, "not-a-reply");
    }
    const sequence = frame.sequence;
    if (sequence >= this.#nextSequence) return this.#foreign(from, data, "unknown-probe");
    if (this.#key !== null) {
      // In authenticated mode nothing untagged counts as late, duplicate or anything else, and
      // a forged ERROR cannot stop the run.
      const valid = (frame.flags & Flags.AUTHENTICATED) !== 0 &&
        await verifyFrame(data, this.#key);
      if (!valid) {
        this.#authFailures++;
        return this.#foreign(from, data, "bad-tag");
      }
    }
    const slot = sequence % PROBE_WINDOW;
    const fromText = formatAddress(from);
    if (this.#tags[slot] !== sequence + 1) {
      // Older than the window: a reply to a probe finalised long ago.
      this.#late++;
      this.#emit({
        type: "late",
        seq: sequence,
        attempt: frame.attempt,
        bytes: data.length,
        from: fromText,
        rtt_ms: null,
      });
      return;
    }
    if (frame.attempt >= this.#attemptsSent[slot]) {
      return this.#foreign(from, data, "unknown-probe");
    }
    if (frame.type === MessageType.ERROR) return this.#onError(frame, from, data);
    if (data.length !== frameOverhead(this.#key !== null) + this.#payload.length) {
      return this.#foreign(from, data, "wrong-length");
    }
    if (echoed && !this.#echoServer) {
      this.#echoServer = true;
      this.#emit({ type: "echo_server", from: fromText });
    }
    const index = slot * this.#attemptsPerProbe + frame.attempt;
    const trip = measureRoundTrip(
      this.#sendTimes[index],
      arrivedAt,
      now,
      frame.receivedAt,
      frame.repliedAt,
    );
    const rtt = trip.rttMs;
    const bit = 1 << frame.attempt;
    const base = { seq: sequence, attempt: frame.attempt, bytes: data.length, from: fromText };
    if (this.#answered[slot] & bit) {
      this.#duplicates++;
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
        this.#emit({ type: "reply", ...base, rtt_ms: rtt, server_ms: trip.serverMs, reordered });
        this.#resolveOutstanding();
        return;
      }
      case ProbeState.Lost:
        this.#states[slot] = ProbeState.Late;
        this.#late++;
        this.#emit({ type: "late", ...base, rtt_ms: rtt });
        return;
      default:
        this.#redundant++;
        this.#emit({ type: "redundant", ...base, rtt_ms: rtt });
    }
  }

  #onError(frame: Frame, fromAddress: PeerAddress, data: Uint8Array): void {
    const detail = decodeErrorDetail(frame.payload);
    // An ERROR that names what we sent as supported answers a request that was corrupted on
    // the way (a flipped version or type byte): not the reflector's verdict on us.
    if (
      (detail?.code === ErrorCode.UNSUPPORTED_VERSION &&
        detail.values.includes(PROTOCOL_VERSION)) ||
      (detail?.code === ErrorCode.UNSUPPORTED_TYPE && detail.values.includes(MessageType.PING))
    ) {
      return this.#foreign(fromAddress, data, "corrupted-request");
    }
    const from = formatAddress(fromAddress);
    const values = detail?.values.join(", ") ?? "";
    const message = detail?.code === ErrorCode.UNSUPPORTED_VERSION
      ? `${from} does not speak protocol version ${PROTOCOL_VERSION} (it speaks: ${values})`
      : detail?.code === ErrorCode.UNSUPPORTED_TYPE
      ? `${from} does not serve PING (it serves types: ${values})`
      : `${from} answered with error code ${detail?.code}`;
    this.#protocolError = message;
    this.#emit({ type: "error", from, code: detail?.code ?? 0, message });
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

  /** Resolves when `ready()` holds, the time `untilMs` (monotonic) is reached, or the run
   * stops. Only the sending loop waits, so one waiter is enough. */
  #waitFor(ready: () => boolean, untilMs?: number): Promise<void> {
    if (this.#stopped || ready()) return Promise.resolve();
    if (untilMs !== undefined && untilMs <= monotonicMs()) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: { ready: () => boolean; resolve: () => void; cancel?: () => void } = {
        ready,
        resolve,
      };
      if (untilMs !== undefined) {
        // The socket's timer: on the native backend, the probe this lets out is followed at
        // once by the wait for its reply, with no turn of the event loop in the RTT.
        waiter.cancel = (this.#socket as UdpSocket).wakeAt(untilMs, () => this.#wake());
        waiter.ready = () => ready() || monotonicMs() >= untilMs;
      }
      this.#waiter = waiter;
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    this.#waiter = null;
    waiter.cancel?.();
    waiter.resolve();
  }

  #notify(): void {
    if (this.#waiter !== null && (this.#stopped || this.#waiter.ready())) this.#wake();
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
    };
    return {
      summary,
      redundant: this.#redundant,
      sendErrors: this.#sendErrors,
      authFailures: this.#authFailures,
      exactQuantiles: this.#rtt.exact,
      stopReason: this.#stopReason,
      protocolError: this.#protocolError,
    };
  }
}
