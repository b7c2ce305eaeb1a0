/**
 * One target of `udp monitor`: its probes in flight, and its counters since the monitor began
 * probing it. The monitor (monitor.ts) owns the sockets and the clock; this file only accounts,
 * so that a target's counters outlive a reload of the targets file.
 *
 * @module
 */

import type { IcmpCounts, IcmpReport, PeerAddress, ResolvedAddress } from "../net/mod.ts";
import { canonicalHost, formatAddress, wallClockMs } from "../net/mod.ts";
import { JitterEstimator, ReorderDetector } from "../stats/mod.ts";
import { timestampFromMs } from "../wire/mod.ts";
import type { ProbeFormat } from "../wire/mod.ts";
import { ProbeSender } from "./_sender.ts";
import { IcmpTally } from "./_icmp_tally.ts";

/**
 * Upper bounds of `udp_probe_rtt_seconds`'s buckets, in seconds: 10 µs (loopback) to 10 s,
 * in steps of 1, 2.5, 5 per decade, so that a quantile read from them is within a step.
 */
export const RTT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);

/** What a monitor is told of one target. */
export interface MonitorTarget {
  /** Its `target` label: the name given (`NAME=TARGET`), else the target as written. */
  readonly label: string;
  /** Where its reflector is (numeric). */
  readonly address: ResolvedAddress;
  /** Its wire format (`udp`'s frame, or STAMP). */
  readonly format: ProbeFormat;
  /** Padding bytes of its probes; default the monitor's. */
  readonly payloadSize?: number;
}

/** A target's counters, as `/metrics` and `--json` report them. */
export interface TargetCounters {
  /** The `target` label. */
  readonly label: string;
  /** The reflector's address, as text. */
  readonly address: string;
  /** `udp` or `stamp`. */
  readonly protocol: string;
  /** Probes handed to the socket. */
  readonly sent: number;
  /** Probes answered within the timeout. */
  readonly received: number;
  /** Probes not answered within the timeout (a reply after it is also counted late). */
  readonly lost: number;
  /** Probes sent and neither answered nor timed out yet. */
  readonly inFlight: number;
  /** Second and later replies to one probe. */
  readonly duplicates: number;
  /** Replies that arrived after a reply to a later probe (RFC 4737). */
  readonly reordered: number;
  /** Replies from the target whose check failed. */
  readonly corrupted: number;
  /** Replies after their probe's timeout (the probe stays lost). */
  readonly late: number;
  /** Probes the socket would not take (the probe is neither received nor lost). */
  readonly sendErrors: number;
  /** ICMP errors about its probes, by kind (each such probe is lost at once). */
  readonly icmp: Readonly<IcmpCounts>;
  /** Answered probes per {@linkcode RTT_BUCKETS_SECONDS} bucket (not cumulative; the last
   * one is above the largest bound). */
  readonly rttBuckets: Float64Array;
  /** Sum of the RTTs counted, in seconds. */
  readonly rttSumSeconds: number;
  /** RFC 3550 jitter of the RTTs, in milliseconds; null until two replies. */
  readonly jitterMs: number | null;
}

/** RTTs of one interval: the `--json` line's. */
export interface IntervalRtt {
  /** Replies counted this interval. */
  count: number;
  /** Their smallest, mean and largest RTT, ms; null without replies. */
  min: number | null;
  mean: number | null;
  max: number | null;
}

const PENDING = 1;
const ANSWERED = 2;
const LOST = 3;

/**
 * One target's probes and counters. Probes are remembered in a ring as long as they can be
 * answered in time (the window holds a timeout's worth of intervals), so memory per target is
 * a few hundred bytes whatever the run's length.
 */
export class TargetProbes {
  /** Where it is and how it is spoken to; replaced on a reload that keeps the label. */
  target: MonitorTarget;
  /** Encodes its probes and reads its replies. */
  sender: ProbeSender;
  /** When its next probe is due (monotonic ms). */
  nextSendAt = 0;
  /** Removed from the monitor: its timers do nothing. */
  removed = false;
  /** Whether its first probe was sent (an interval has begun). */
  started = false;
  readonly #window: number;
  readonly #tags: Float64Array; // sequence + 1 of each slot's probe
  readonly #states: Uint8Array;
  readonly #sendTimes: Float64Array; // handed to the socket, monotonic ms
  readonly #sentAt: Float64Array; // the T1 it carries, wall clock ms (a STAMP reply returns it)
  #nextSequence = 0;
  #sent = 0;
  #received = 0;
  #lost = 0;
  #duplicates = 0;
  #corrupted = 0;
  #late = 0;
  #sendErrors = 0;
  readonly #icmp: IcmpTally;
  readonly #rttBuckets = new Float64Array(RTT_BUCKETS_SECONDS.length + 1);
  #rttSumSeconds = 0;
  readonly #jitter = new JitterEstimator();
  readonly #reorder = new ReorderDetector();
  #interval: IntervalRtt = { count: 0, min: null, mean: null, max: null };

  /** A target with a ring of `window` probes (a power of two), sending `payloadSize` bytes of
   * padding, tagged with `key` if given. */
  constructor(target: MonitorTarget, window: number, payloadSize: number, key?: CryptoKey) {
    this.target = target;
    this.sender = newSender(target, target.payloadSize ?? payloadSize, key);
    this.#window = window;
    this.#tags = new Float64Array(window);
    this.#states = new Uint8Array(window);
    this.#sendTimes = new Float64Array(window);
    this.#sentAt = new Float64Array(window);
    this.#icmp = new IcmpTally(
      window,
      (sequence) => this.#tags[sequence % window] === sequence + 1,
    );
  }

  /** Points the target at a new address or format (a reload), keeping its counters; probes in
   * flight to the old one will time out. */
  retarget(target: MonitorTarget, payloadSize: number, key?: CryptoKey): void {
    this.target = target;
    this.sender = newSender(target, target.payloadSize ?? payloadSize, key);
  }

  /**
   * Makes the next probe and marks it in flight; returns its sequence and its bytes. A probe
   * still pending in the slot (a timeout longer than the window allows) is counted lost first.
   */
  nextProbe(): { sequence: number; bytes: Uint8Array } {
    const sequence = this.#nextSequence++;
    const slot = sequence % this.#window;
    if (this.#states[slot] === PENDING) this.#expire(slot);
    const sentAt = timestampFromMs(wallClockMs());
    this.#sentAt[slot] = sentAt.seconds * 1000 + sentAt.nanos / 1e6;
    this.#tags[slot] = sequence + 1;
    this.#states[slot] = PENDING;
    this.#sent++;
    return { sequence, bytes: this.sender.encode("ping", sequence, 0, sentAt) };
  }

  /** The probe was handed to the socket at `at` (monotonic ms): its RTT counts from then. */
  handedOver(sequence: number, at: number): void {
    this.#sendTimes[sequence % this.#window] = at;
  }

  /** The socket refused the probe: it was never sent, so it is neither received nor lost. */
  unsent(sequence: number): void {
    const slot = sequence % this.#window;
    if (this.#tags[slot] !== sequence + 1 || this.#states[slot] !== PENDING) return;
    this.#states[slot] = 0;
    this.#sent--;
    this.#sendErrors++;
  }

  /** An ICMP error about one of its probes (port unreachable, ...): counted by kind, and the
   * probe is lost at once (no reply can come); whether it was about one. */
  onIcmp(report: IcmpReport): boolean {
    const event = this.#icmp.read(report, this.sender);
    if (event === null) return false;
    if (event.seq !== null) this.timedOut(event.seq);
    return true;
  }

  /** The probe's timeout passed: lost, unless answered since. */
  timedOut(sequence: number): void {
    const slot = sequence % this.#window;
    if (this.#tags[slot] === sequence + 1 && this.#states[slot] === PENDING) this.#expire(slot);
  }

  #expire(slot: number): void {
    this.#states[slot] = LOST;
    this.#lost++;
  }

  /**
   * Accounts for a datagram from the target, read by {@linkcode TargetProbes.sender} (the
   * caller has checked its tag, with a key): received, duplicate, late, or not ours (false).
   */
  onReply(length: number, arrivedAt: number, now: number): boolean {
    const sender = this.sender;
    const reply = sender.reply;
    const echoed = reply.kind === "echo" && reply.request === "ping" && sender.key === null;
    if (!(reply.kind === "reply" && reply.request === "ping") && !echoed) return false;
    const sequence = reply.sequence;
    if (sequence >= this.#nextSequence || reply.attempt !== 0) return false;
    if (!sender.format.replyFits(sender.datagramBytes, length)) return false;
    const slot = sequence % this.#window;
    if (this.#tags[slot] !== sequence + 1) {
      this.#late++; // a reply to a probe out of the window: timed out long ago
      return true;
    }
    const t1 = reply.stamp?.requestSentAt;
    if (
      t1 !== undefined && Math.abs(t1.seconds * 1000 + t1.nanos / 1e6 - this.#sentAt[slot]) > 1e-3
    ) {
      return false; // another run's T1: a reused port
    }
    switch (this.#states[slot]) {
      case PENDING:
        this.#states[slot] = ANSWERED;
        this.#received++;
        this.#count(sender.roundTrip(this.#sendTimes[slot], arrivedAt, now).rttMs, sequence);
        return true;
      case LOST:
        this.#states[slot] = ANSWERED; // a further copy is a duplicate, not late again
        this.#late++;
        return true;
      case ANSWERED:
        this.#duplicates++;
        return true;
      default:
        return false; // unsent
    }
  }

  /** A datagram from the target failed its check. */
  onCorrupted(): void {
    this.#corrupted++;
  }

  #count(rttMs: number, sequence: number): void {
    const seconds = rttMs / 1000;
    let bucket = 0;
    while (bucket < RTT_BUCKETS_SECONDS.length && seconds > RTT_BUCKETS_SECONDS[bucket]) bucket++;
    this.#rttBuckets[bucket]++;
    this.#rttSumSeconds += seconds;
    this.#jitter.update(rttMs);
    this.#reorder.observe(sequence);
    const interval = this.#interval;
    interval.mean = ((interval.mean ?? 0) * interval.count + rttMs) / (interval.count + 1);
    interval.count++;
    interval.min = Math.min(interval.min ?? Infinity, rttMs);
    interval.max = Math.max(interval.max ?? -Infinity, rttMs);
  }

  /** Probes sent and neither answered nor timed out yet. */
  get inFlight(): number {
    return this.#sent - this.#received - this.#lost;
  }

  /** The RTTs since the last call, and a fresh interval. */
  takeInterval(): IntervalRtt {
    const interval = this.#interval;
    this.#interval = { count: 0, min: null, mean: null, max: null };
    return interval;
  }

  /** Its counters now. */
  counters(): TargetCounters {
    return {
      label: this.target.label,
      address: formatAddress(this.target.address),
      protocol: this.target.format.name,
      sent: this.#sent,
      received: this.#received,
      lost: this.#lost,
      inFlight: this.inFlight,
      duplicates: this.#duplicates,
      reordered: this.#reorder.reordered,
      corrupted: this.#corrupted,
      late: this.#late,
      sendErrors: this.#sendErrors,
      icmp: this.#icmp.counts,
      rttBuckets: this.#rttBuckets,
      rttSumSeconds: this.#rttSumSeconds,
      jitterMs: this.#jitter.value,
    };
  }
}

function newSender(target: MonitorTarget, payloadSize: number, key?: CryptoKey): ProbeSender {
  return new ProbeSender({ target: target.address, format: target.format, key, payloadSize });
}

/** The key a target is found by from its replies' source: one for each spelling of an
 * address. */
export function addressKey(address: { hostname: string; port: number } | PeerAddress): string {
  return `${canonicalHost(address.hostname)} ${address.port}`;
}
