/**
 * Runs `udp bench`'s streams together (`-P N`: each its own socket and session), on one clock
 * of intervals, and sums them up: the interval reports of all streams (stream 0) and the
 * summary of the whole run.
 *
 * @module
 */

import { monotonicMs } from "../net/mod.ts";
import { LatencyStats } from "../stats/mod.ts";
import { IntervalClock, type IntervalSpan, round, within } from "./_bench_intervals.ts";
import type { BenchOptions } from "./bench.ts";
import type { BenchBack, BenchInterval, BenchSummary } from "./bench_report.ts";

/** What the streams record together: every RTT of them all. */
export interface StreamTotals {
  /** RTTs, the reflector's time left out. */
  rtt: LatencyStats;
  /** Round trips, the reflector's time in. */
  roundTrip: LatencyStats;
}

/** One stream, as the runner drives it. */
export interface StreamRun {
  /** Before the clock starts: the reflector's counts, a stream's grant. */
  prepare(): Promise<void>;
  /** Sends from `started` until the end; resolves with the time it took. */
  send(started: number): Promise<number>;
  /** An interval is over (the same spans for every stream). */
  intervalEnded(span: IntervalSpan): void;
  /** After sending: the stragglers, the reflector's counts, the summary. */
  finish(sendingMs: number): Promise<BenchSummary>;
  /** Closes its socket. */
  close(): Promise<void>;
}

/**
 * Runs `count` streams made by `make` together and returns the summary of them all (of a
 * single stream: its own, as stream 0); `onStream` is told each stream's summary when there
 * are several.
 */
export async function runStreams(
  options: BenchOptions,
  count: number,
  make: (options: BenchOptions, totals: StreamTotals | null) => StreamRun,
  onStream?: (summary: BenchSummary) => void,
): Promise<BenchSummary> {
  const totals = count > 1 ? { rtt: new LatencyStats(), roundTrip: new LatencyStats() } : null;
  const sums = count > 1 && options.onInterval ? new IntervalSums(count, options.onInterval) : null;
  const runs: StreamRun[] = [];
  try {
    for (let stream = 1; stream <= count; stream++) {
      const onInterval = sums === null ? options.onInterval : (report: BenchInterval) => {
        options.onInterval!(report);
        sums.add(report);
      };
      runs.push(make({ ...options, stream, onInterval }, totals));
    }
    await Promise.all(runs.map((run) => run.prepare()));
    const started = monotonicMs();
    const { intervalMs, onInterval } = options;
    const clock = new IntervalClock(intervalMs && onInterval ? intervalMs : 0, started);
    const sent = Promise.all(runs.map((run) => run.send(started)));
    await tickUntil(clock, runs, sent.then(() => {}, () => {}), started + options.durationMs);
    const sendingMs = await sent;
    const last = clock.stop();
    if (last !== null) { for (const run of runs) run.intervalEnded(last); }
    const summaries = await Promise.all(runs.map((run, i) => run.finish(sendingMs[i])));
    if (count === 1) return { ...summaries[0], stream: 0 };
    for (const summary of summaries) onStream?.({ ...summary, type: "stream_summary" });
    return sumSummaries(summaries, totals!);
  } finally {
    await Promise.all(runs.map((run) => run.close()));
  }
}

/**
 * Ends each interval on every stream at once, until `done`; an interval that would end within
 * a twentieth of one before `end` (the planned end) runs on to the end instead, so that the
 * last one is no sliver of a millisecond.
 */
async function tickUntil(
  clock: IntervalClock,
  runs: StreamRun[],
  done: Promise<void>,
  end: number,
) {
  let finished = false;
  void done.then(() => finished = true);
  const margin = clock.intervalMs / 20;
  while (!finished && clock.intervalMs > 0 && monotonicMs() + clock.msToNext() < end - margin) {
    await within(done, clock.msToNext());
    const span = finished ? null : clock.tick();
    if (span !== null) { for (const run of runs) run.intervalEnded(span); }
  }
  await done;
}

/** The interval reports of all streams: each interval once every stream has reported it. */
class IntervalSums {
  readonly #count: number;
  readonly #onInterval: (report: BenchInterval) => void;
  readonly #waiting = new Map<string, BenchInterval[]>();

  constructor(count: number, onInterval: (report: BenchInterval) => void) {
    this.#count = count;
    this.#onInterval = onInterval;
  }

  add(report: BenchInterval): void {
    const key = `${report.direction} ${report.start_s}`;
    const reports = this.#waiting.get(key) ?? [];
    reports.push(report);
    if (reports.length < this.#count) {
      this.#waiting.set(key, reports);
      return;
    }
    this.#waiting.delete(key);
    this.#onInterval(sumIntervals(reports));
  }
}

/** The sum of the streams' reports of one interval (null where any stream's is). */
function sumIntervals(reports: BenchInterval[]): BenchInterval {
  const total = (key: keyof BenchInterval) => sum(reports.map((r) => r[key] as number | null));
  const jitters = reports.map((r) => r.jitter_ms).filter((j): j is number => j !== null);
  return {
    type: "interval",
    stream: 0,
    direction: reports[0].direction,
    start_s: Math.min(...reports.map((r) => r.start_s)),
    end_s: Math.max(...reports.map((r) => r.end_s)),
    sent: total("sent"),
    received: total("received"),
    sent_pps: nullableRound(total("sent_pps"), 1),
    received_pps: nullableRound(total("received_pps"), 1),
    received_bps: total("received_bps"),
    lost: total("lost"),
    late: total("late"),
    duplicates: total("duplicates"),
    // The streams' mean, as iperf3 sums jitter; a median of medians would be no median.
    jitter_ms: jitters.length === 0 ? null : jitters.reduce((a, b) => a + b) / jitters.length,
    rtt_p50_ms: null,
  };
}

/**
 * The summary of several streams: counts added up (null where any stream's is), RTTs of them
 * all, jitter their mean; the reflector's kernel drops, which count every source, the largest
 * any stream saw.
 */
export function sumSummaries(summaries: BenchSummary[], totals: StreamTotals): BenchSummary {
  const first = summaries[0];
  const add = (key: keyof BenchSummary) => sum(summaries.map((s) => s[key] as number | null));
  const seconds = Math.max(...summaries.map((s) => s.duration_s));
  const received = add("received");
  const sent = add("sent")!;
  const refusals = summaries.map((s) => s.server_refused);
  const jitters = summaries.map((s) => s.jitter_ms).filter((j): j is number => j !== null);
  const drops = summaries.map((s) => s.server_kernel_drops);
  const icmp = { ...first.icmp };
  for (const summary of summaries.slice(1)) {
    for (const kind of Object.keys(icmp) as (keyof typeof icmp)[]) icmp[kind] += summary.icmp[kind];
  }
  return {
    ...first,
    type: "summary",
    stream: 0,
    streams: summaries.length,
    duration_s: seconds,
    sent,
    received,
    requested_pps: add("requested_pps"),
    offered_pps: round(add("offered_pps")!, 1),
    offered_bps: add("offered_bps")!,
    achieved_pps: round(add("achieved_pps")!, 1),
    achieved_bps: add("achieved_bps")!,
    server_received: add("server_received"),
    server_replied: add("server_replied"),
    server_refused: refusals.some((r) => r === null) ? null : {
      rate_limit: sum(refusals.map((r) => r!.rate_limit))!,
      global_limit: sum(refusals.map((r) => r!.global_limit))!,
      auth: sum(refusals.map((r) => r!.auth))!,
      replay: sum(refusals.map((r) => r!.replay))!,
    },
    server_kernel_drops: drops.some((d) => d === null) ? null : Math.max(...(drops as number[])),
    loss_up: add("loss_up"),
    loss_down: add("loss_down"),
    loss_percent: sent === 0 || received === null ? null : ((sent - received) / sent) * 100,
    duplicates: add("duplicates")!,
    reordered: add("reordered")!,
    corrupted: add("corrupted")!,
    echo_server: summaries.some((s) => s.echo_server),
    errors: add("errors")!,
    icmp,
    rtt_ms: totals.rtt.summary(),
    round_trip_ms: totals.roundTrip.summary(),
    jitter_ms: jitters.length === 0 ? null : jitters.reduce((a, b) => a + b) / jitters.length,
    one_way_answered: add("one_way_answered")!,
    back: sumBack(summaries.map((s) => s.back)),
  };
}

/** The streams' reverse halves added up; null when the run had none. */
function sumBack(backs: (BenchBack | null)[]): BenchBack | null {
  if (backs.some((back) => back === null)) return null;
  const all = backs as BenchBack[];
  const add = (key: keyof BenchBack) => sum(all.map((b) => b[key] as number | null));
  const jitters = all.map((b) => b.jitter_ms).filter((j): j is number => j !== null);
  return {
    requested_pps: add("requested_pps")!,
    granted_pps: add("granted_pps"),
    sent: add("sent"),
    received: add("received")!,
    lost: add("lost"),
    late: add("late")!,
    duplicates: add("duplicates")!,
    corrupted: add("corrupted")!,
    achieved_pps: round(add("achieved_pps")!, 1),
    achieved_bps: add("achieved_bps")!,
    jitter_ms: jitters.length === 0 ? null : jitters.reduce((a, b) => a + b) / jitters.length,
    refused: all.map((b) => b.refused).find((r) => r !== null) ?? null,
  };
}

/** The sum, or null when any value is. */
function sum(values: (number | null)[]): number | null {
  let total = 0;
  for (const value of values) {
    if (value === null) return null;
    total += value;
  }
  return total;
}

function nullableRound(value: number | null, digits: number): number | null {
  return value === null ? null : round(value, digits);
}
