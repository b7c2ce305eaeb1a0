/**
 * `udp bench`'s interval reports: what happened within each interval, from cumulative counts
 * taken at its ends. The counts of the direction there come from the reflector's STATS (a
 * one-way run), those of the way back from this host's own arrivals (a reflected run's
 * replies, a reverse run's stream).
 *
 * @module
 */

import { monotonicMs } from "../net/mod.ts";
import type { ArrivalSnapshot, Histogram } from "../stats/mod.ts";
import type { ArrivalCounts, SessionCounts } from "../wire/mod.ts";
import { UNKNOWN_COUNT } from "../wire/mod.ts";
import type { BenchDirection, BenchInterval } from "./bench_report.ts";

/** Cumulative counts of one direction at an interval's end. */
export interface DirectionCounts {
  /** Datagrams sent; null where the sender's count is not known here. */
  sent: number | null;
  /** Datagrams received (each sequence number once). */
  received: number;
  /** Sequence numbers skipped when a higher one arrived. */
  gaps: number;
  /** Arrivals that filled a gap. */
  late: number;
  /** Arrivals of a sequence number already received. */
  duplicates: number;
  /** RFC 3550 jitter now, ms (of the RTT for a reflected run, else of the one-way transit). */
  jitterMs: number | null;
}

/** An interval's span, seconds since the start. */
export interface IntervalSpan {
  /** The interval's start. */
  start_s: number;
  /** Its end. */
  end_s: number;
}

/**
 * The counts of a receiver's arrival tracker (a reflected run's replies, a reverse run's
 * stream), sent count given.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ArrivalTracker } from "../stats/mod.ts";
 * import { trackerCounts } from "./_bench_intervals.ts";
 * const tracker = new ArrivalTracker();
 * tracker.observe(0, 1, 64, 0);
 * tracker.observe(0, 1, 64, 0);
 * strictEqual(trackerCounts(tracker.snapshot(), 1).received, 1);
 * ```
 */
export function trackerCounts(seen: ArrivalSnapshot, sent: number | null): DirectionCounts {
  return {
    sent,
    received: seen.arrivals - seen.duplicates,
    gaps: seen.gaps,
    late: seen.late,
    duplicates: seen.duplicates,
    jitterMs: seen.jitterMs,
  };
}

/**
 * The counts a reflector's STATS gives of a one-way run's datagrams, sent count given.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { NO_TIMESTAMP } from "../wire/mod.ts";
 * import { statsCounts } from "./_bench_intervals.ts";
 * const arrivals = {
 *   sequenceEnd: 10, gaps: 1, late: 0, duplicates: 2, jitterNs: 1_500_000, bytes: 640,
 *   firstArrival: NO_TIMESTAMP, lastArrival: NO_TIMESTAMP,
 * };
 * const counts = statsCounts(11, arrivals, 10);
 * strictEqual(counts.received, 9);
 * strictEqual(counts.jitterMs, 1.5);
 * ```
 */
export function statsCounts(
  received: number,
  arrivals: ArrivalCounts,
  sent: number,
): DirectionCounts {
  return {
    sent,
    received: received - arrivals.duplicates,
    gaps: arrivals.gaps,
    late: arrivals.late,
    duplicates: arrivals.duplicates,
    jitterMs: arrivals.jitterNs === UNKNOWN_COUNT ? null : arrivals.jitterNs / 1e6,
  };
}

/** The counts of a direction before anything was sent. */
export const NOTHING_YET: DirectionCounts = {
  sent: 0,
  received: 0,
  gaps: 0,
  late: 0,
  duplicates: 0,
  jitterMs: null,
};

/**
 * One interval's report from the counts at its start and its end; the receiver's counts are
 * null when they did not come (a one-way run's STATS lost), and so are its figures then.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { intervalReport, NOTHING_YET } from "./_bench_intervals.ts";
 * const end = { ...NOTHING_YET, sent: 100, received: 97, gaps: 3 };
 * const report = intervalReport(1, "reflected", { start_s: 0, end_s: 1 }, 64, {
 *   sentBefore: 0, sentNow: 100, before: NOTHING_YET, now: end, rtt: null,
 * });
 * strictEqual(report.lost, 3);
 * strictEqual(report.received_bps, 97 * 64 * 8);
 * ```
 */
export function intervalReport(
  stream: number,
  direction: BenchDirection,
  span: IntervalSpan,
  datagramBytes: number,
  counts: {
    sentBefore: number | null;
    sentNow: number | null;
    before: DirectionCounts | null;
    now: DirectionCounts | null;
    rtt: Histogram | null;
  },
): BenchInterval {
  const seconds = span.end_s - span.start_s;
  const { before, now } = counts;
  const known = before !== null && now !== null;
  const sent = counts.sentBefore === null || counts.sentNow === null
    ? null
    : counts.sentNow - counts.sentBefore;
  const received = known ? now.received - before.received : null;
  const perSecond = (count: number | null) =>
    count === null || seconds <= 0 ? null : round(count / seconds, 1);
  return {
    type: "interval",
    stream,
    direction,
    start_s: span.start_s,
    end_s: span.end_s,
    sent,
    received,
    sent_pps: perSecond(sent),
    received_pps: perSecond(received),
    received_bps: received === null || seconds <= 0
      ? null
      : Math.round((received * datagramBytes * 8) / seconds),
    lost: known ? now.gaps - before.gaps : null,
    late: known ? now.late - before.late : null,
    duplicates: known ? now.duplicates - before.duplicates : null,
    jitter_ms: now?.jitterMs ?? null,
    rtt_p50_ms: counts.rtt === null ? null : counts.rtt.quantile(0.5),
  };
}

/** A one-way run's interval waiting for its STATS: reported once, with them or without. */
export class PendingInterval {
  readonly index: number;
  readonly #report: (counts: DirectionCounts | null) => void;
  readonly #answered = Promise.withResolvers<void>();
  #done = false;

  /** Interval `index`, reported by `report`. */
  constructor(index: number, report: (counts: DirectionCounts | null) => void) {
    this.index = index;
    this.#report = report;
  }

  /** Resolves once reported. */
  get answered(): Promise<void> {
    return this.#answered.promise;
  }

  /** Reports the interval (once): with the reflector's counts at its end, or null. */
  emit(counts: DirectionCounts | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#report(counts);
    this.#answered.resolve();
  }
}

/** When each interval ends: ticks from the send loop, and the last, partial one at the end. */
export class IntervalClock {
  readonly #intervalMs: number;
  readonly #started: number;
  #last: number;

  /** A clock of intervals of `intervalMs` (0: none) from `started` (monotonic ms). */
  constructor(intervalMs: number, started: number) {
    this.#intervalMs = intervalMs;
    this.#started = started;
    this.#last = started;
  }

  /** The length of an interval, ms (0: none are reported). */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Milliseconds until the current interval ends (at least 1). */
  msToNext(): number {
    return Math.max(1, this.#last + this.#intervalMs - monotonicMs());
  }

  /** The interval just ended, if one did. */
  tick(): IntervalSpan | null {
    if (this.#intervalMs === 0 || monotonicMs() - this.#last < this.#intervalMs) return null;
    return this.#span();
  }

  /** The last, partial interval (null when none is being reported, or it has no length). */
  stop(): IntervalSpan | null {
    return this.#intervalMs === 0 ? null : this.#span();
  }

  #span(): IntervalSpan | null {
    const now = monotonicMs();
    if (now <= this.#last) return null;
    const span = {
      start_s: round((this.#last - this.#started) / 1000, 3),
      end_s: round((now - this.#started) / 1000, 3),
    };
    this.#last = now;
    return span;
  }
}

/**
 * A one-way run's intervals: each reported once the reflector's STATS for its end came (its
 * counts less those of the interval before), or, when they did not come in time, with the
 * reflector's figures null.
 */
export class ThereIntervals {
  readonly #stream: number;
  readonly #datagramBytes: number;
  readonly #onInterval?: (report: BenchInterval) => void;
  /** The latest STATS that came, by interval (0: the start, nothing counted). */
  #latest: { index: number; counts: DirectionCounts } = { index: 0, counts: NOTHING_YET };
  #pending: PendingInterval | null = null;
  /** The sender's count at the end of the intervals still of use. */
  readonly #sentAt: Record<number, number> = { 0: 0 };

  /** Intervals of `stream`, told to `onInterval`. */
  constructor(
    stream: number,
    datagramBytes: number,
    onInterval?: (report: BenchInterval) => void,
  ) {
    this.#stream = stream;
    this.#datagramBytes = datagramBytes;
    this.#onInterval = onInterval;
  }

  /** An interval ended with `sent` sent so far: returns its number, to ask STATS for. */
  ended(span: IntervalSpan, sent: number): number {
    this.#pending?.emit(null); // its STATS never came
    const index = (this.#pending?.index ?? 0) + 1;
    this.#sentAt[index] = sent;
    delete this.#sentAt[index - 2];
    this.#pending = new PendingInterval(index, (now) => {
      // The counts at the interval's start: the previous interval's STATS, if they came (late
      // ones too: they still count for where they came from).
      const base = this.#latest;
      this.#onInterval?.(intervalReport(this.#stream, "there", span, this.#datagramBytes, {
        sentBefore: this.#sentAt[index - 1] ?? null,
        sentNow: this.#sentAt[index],
        before: base.index === index - 1 ? base.counts : null,
        now,
        rtt: null,
      }));
    });
    return index;
  }

  /** The STATS of interval `index` came: it is reported, if still waiting. */
  onStats(index: number, counts: SessionCounts): void {
    if (counts.arrivals === undefined || counts.arrivals === null) return;
    if (index <= this.#latest.index) return; // older than what came already
    const now = statsCounts(counts.received, counts.arrivals, this.#sentAt[index] ?? 0);
    if (this.#pending?.index === index) this.#pending.emit(now);
    this.#latest = { index, counts: now };
  }

  /** Waits up to `ms` for the last interval's STATS, then reports it without. */
  async finish(ms: number): Promise<void> {
    const pending = this.#pending;
    if (pending === null) return;
    await within(pending.answered, ms);
    pending.emit(null);
  }
}

/** `value` rounded to `digits` decimals. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Waits for `promise`, but at most `ms`; the timer never outlives the wait. */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/** Settles after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
