/**
 * The search for a NAT mapping's idle lifetime, as a plan of rounds of parallel trials, pure
 * (no sockets, no clock): a trial at T asks for one reply after T seconds of silence on a
 * mapping of its own; it gets it when the mapping outlives T. Round one tries a ladder of T up
 * to the maximum; each further round tries a grid between the largest T that got its reply
 * (`lo`) and the smallest that did not (`hi`), until `hi` has failed twice with nothing at or
 * above it getting through (an expiry, not a loss) and `hi − lo` is within the resolution.
 *
 * A trial that failed while a longer one got its reply was lost, not expired: every mapping
 * lives as long (the same NAT, the same kind of flow), so one that outlived the longer delay
 * outlived the shorter one too.
 *
 * @module
 */

/** Delays of round one, in seconds, as far as the maximum (which is added when missing). */
export const LADDER_S: readonly number[] = [
  1,
  2,
  3,
  5,
  8,
  13,
  20,
  30,
  45,
  60,
  90,
  120,
  180,
  300,
  450,
  600,
];

/** Rounds before the search gives up ("inconclusive": loss kept it from closing in). */
export const MAX_ROUNDS = 8;

/** Points of a grid round between lo and hi (each tried twice, and hi once or twice more). */
const GRID_POINTS = 7;

/** How a search ended. */
export type SearchOutcome =
  /** A longest T that got its reply, below a T that failed twice. */
  | "found"
  /** Every T up to the maximum got its reply: the mapping lasts at least that long. */
  | "at-least-max"
  /** Not even the shortest T got its reply (it failed twice). */
  | "under-min"
  /** The rounds ran out before expiry and loss could be told apart. */
  | "inconclusive";

/** What the search found. */
export interface SearchResult {
  /** How it ended. */
  outcome: SearchOutcome;
  /** The longest T that got its reply; null when none did. */
  lo: number | null;
  /** The shortest T above `lo` that failed twice (the mapping had expired); null if none. */
  hi: number | null;
  /** Every T tried, once or more, in order. */
  tried: number[];
  /** Trials that failed at a T at or below `lo`: lost, not expired. */
  lost: number;
}

interface Point {
  replies: number;
  failures: number;
}

/**
 * One search, round by round: {@linkcode BindingSearch.nextRound} says what to try (null when
 * done), {@linkcode BindingSearch.record} takes each trial's outcome.
 *
 * @example A mapping that lives 7 s, searched up to 12 s at 1 s
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { BindingSearch } from "./_nat_search.ts";
 * const search = new BindingSearch(12, 1);
 * for (let round = search.nextRound(16); round !== null; round = search.nextRound(16)) {
 *   for (const delay of round) {
 *     if (search.worthWaiting(delay)) search.record(delay, delay < 7);
 *   }
 * }
 * deepStrictEqual(search.result(), {
 *   outcome: "found", lo: 6, hi: 7, tried: [1, 2, 3, 5, 6, 7, 8], lost: 0,
 * });
 * ```
 */
export class BindingSearch {
  readonly #max: number;
  readonly #resolution: number;
  readonly #points = new Map<number, Point>();
  #rounds = 0;

  /** A search up to `maxS` seconds, to within `resolutionS`. */
  constructor(maxS: number, resolutionS: number) {
    this.#max = maxS;
    this.#resolution = resolutionS;
  }

  /**
   * The delays (seconds) of the next round's trials, one entry per trial, shortest first,
   * at most `budget` of them (trials the reflector may still hold count against its cap);
   * null when the search is done. An empty round: wait for room.
   */
  nextRound(budget: number): number[] | null {
    if (this.#done() !== null) return null;
    if (this.#rounds >= MAX_ROUNDS) return null;
    if (budget <= 0) return [];
    this.#rounds++;
    const lo = this.#lo() ?? 0;
    const hi = this.#hi(lo);
    // Nothing failed above lo (round one, or a failure that was a loss): the ladder above it.
    if (hi === null) return this.#ladder(budget, lo);
    const trials: number[] = [];
    // hi again until it has failed twice: one failure may be a loss.
    const again = Math.max(0, 2 - this.#point(hi).failures);
    const grid = this.#grid(lo, hi, Math.floor((budget - again) / 2));
    for (const delay of grid) trials.push(delay, delay);
    for (let i = 0; i < again && trials.length < budget; i++) trials.push(hi);
    return trials.sort((a, b) => a - b);
  }

  /** A trial at `delayS` got its reply, or did not. */
  record(delayS: number, replied: boolean): void {
    const point = this.#point(delayS);
    if (replied) point.replies++;
    else point.failures++;
  }

  /** Whether a trial at `delayS` is still worth waiting for: not once a shorter delay has
   * failed (its mapping would have expired too; were that failure a loss, the next round
   * tries it again, and the ladder above it). */
  worthWaiting(delayS: number): boolean {
    const hi = this.#hi(this.#lo() ?? 0);
    return hi === null || delayS <= hi;
  }

  /** What the search found so far (final once nextRound() says null). */
  result(): SearchResult {
    const lo = this.#lo();
    const hi = this.#hi(lo ?? 0);
    const confirmed = hi !== null && this.#point(hi).failures >= 2 ? hi : null;
    let lost = 0;
    for (const [delay, point] of this.#points) {
      if (lo !== null && delay <= lo) lost += point.failures;
    }
    return {
      outcome: this.#done() ?? "inconclusive",
      lo,
      hi: confirmed,
      tried: [...this.#points.keys()].sort((a, b) => a - b),
      lost,
    };
  }

  /** How the search ended, or null while it goes on. */
  #done(): SearchOutcome | null {
    const lo = this.#lo();
    const hi = this.#hi(lo ?? 0);
    if (hi === null) return lo !== null && lo >= this.#max ? "at-least-max" : null;
    if (this.#point(hi).failures < 2) return null;
    if (lo === null) return hi <= this.#smallest() ? "under-min" : null;
    return hi - lo <= this.#resolution + 1e-9 ? "found" : null;
  }

  #ladder(budget: number, above: number): number[] {
    const delays = LADDER_S.filter((delay) => delay > above && delay < this.#max);
    delays.push(this.#max);
    const chosen = delays.slice(0, budget);
    const repeats = Math.max(1, Math.min(2, Math.floor(budget / chosen.length)));
    return chosen.flatMap((delay) => Array(repeats).fill(delay));
  }

  /** Up to `count` delays strictly between lo and hi, a whole number of resolutions apart. */
  #grid(lo: number, hi: number, count: number): number[] {
    const points = Math.min(count, GRID_POINTS);
    if (points <= 0) return [];
    const res = this.#resolution;
    const step = res * Math.max(1, Math.ceil((hi - lo) / (points + 1) / res - 1e-9));
    const grid: number[] = [];
    for (let delay = lo + step; delay < hi - 1e-9 && grid.length < points; delay += step) {
      grid.push(Math.round(delay * 1000) / 1000);
    }
    return grid;
  }

  /** The longest delay that got its reply. */
  #lo(): number | null {
    let lo: number | null = null;
    for (const [delay, point] of this.#points) {
      if (point.replies > 0 && (lo === null || delay > lo)) lo = delay;
    }
    return lo;
  }

  /** The shortest delay above `lo` whose trials all failed. */
  #hi(lo: number): number | null {
    let hi: number | null = null;
    for (const [delay, point] of this.#points) {
      if (delay > lo && point.failures > 0 && (hi === null || delay < hi)) hi = delay;
    }
    return hi;
  }

  #smallest(): number {
    return Math.min(...this.#points.keys());
  }

  #point(delay: number): Point {
    let point = this.#points.get(delay);
    if (point === undefined) {
      point = { replies: 0, failures: 0 };
      this.#points.set(delay, point);
    }
    return point;
  }
}
