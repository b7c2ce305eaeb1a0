/**
 * What a receiver can tell of a numbered stream from its arrivals alone, in bounded memory:
 * the sequence numbers skipped (gaps), those that came late into a gap, duplicates, RFC 3550
 * jitter of the one-way transit, bytes, and the first and last arrival. The reflector keeps one
 * per session (its STATS report them: what a one-way run received), `udp bench -R` one for
 * the reflector's stream.
 *
 * @module
 */

import { JitterEstimator } from "./latency.ts";

/** Sequence numbers this far below the highest seen are still told apart as late or
 * duplicate by default; older ones count as late. */
export const ARRIVAL_WINDOW = 1024;

/** A snapshot of an {@linkcode ArrivalTracker}'s counts. */
export interface ArrivalSnapshot {
  /** The highest sequence number seen + 1; 0 before any arrival. */
  sequenceEnd: number;
  /** Arrivals, duplicates included. */
  arrivals: number;
  /** Sequence numbers skipped when a higher one arrived (counted when skipped). */
  gaps: number;
  /** Arrivals below the highest seen that were no duplicate: they filled a gap. */
  late: number;
  /** Arrivals of a sequence number already seen (within the tracker's window). */
  duplicates: number;
  /** RFC 3550 jitter of the one-way transit, ms; null until two arrivals. */
  jitterMs: number | null;
  /** Bytes of every arrival. */
  bytes: number;
  /** The first and the last arrival, wall clock ms; null before any. */
  firstMs: number | null;
  /** The last arrival, wall clock ms; null before any. */
  lastMs: number | null;
}

/**
 * The arrivals of one numbered stream.
 *
 * @example A gap, filled late, and a duplicate
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { ArrivalTracker } from "./arrivals.ts";
 * const tracker = new ArrivalTracker();
 * for (const sequence of [0, 1, 4, 2, 2]) tracker.observe(sequence, 5, 100, 1000 + sequence);
 * const { sequenceEnd, arrivals, gaps, late, duplicates, bytes } = tracker.snapshot();
 * assertEquals(
 *   { sequenceEnd, arrivals, gaps, late, duplicates, bytes },
 *   { sequenceEnd: 5, arrivals: 5, gaps: 2, late: 1, duplicates: 1, bytes: 500 },
 * );
 * ```
 */
export class ArrivalTracker {
  #end = 0;
  #arrivals = 0;
  #gaps = 0;
  #late = 0;
  #duplicates = 0;
  #bytes = 0;
  #first: number | null = null;
  #last: number | null = null;
  readonly #jitter = new JitterEstimator();
  readonly #window: number;
  /** Bit `s % window` is set when `s` (within the window below #end) arrived. */
  readonly #seen: Uint32Array;

  /** A tracker telling duplicates from late arrivals within `window` sequence numbers (a
   * multiple of 32) below the highest seen. */
  constructor(window = ARRIVAL_WINDOW) {
    this.#window = window;
    this.#seen = new Uint32Array(window / 32);
  }

  /** Counts an arrival: its sequence number, one-way transit (any constant offset: only its
   * changes count), bytes and wall-clock time. */
  observe(sequence: number, transitMs: number, bytes: number, atMs: number): void {
    this.#arrivals++;
    this.#bytes += bytes;
    this.#first ??= atMs;
    this.#last = atMs;
    this.#jitter.update(transitMs);
    if (sequence >= this.#end) {
      this.#gaps += sequence - this.#end;
      this.#clear(this.#end, sequence);
      this.#end = sequence + 1;
      this.#mark(sequence);
    } else if (this.#end - sequence > this.#window) {
      this.#late++; // too old to tell a duplicate from a late one
    } else if (this.#marked(sequence)) {
      this.#duplicates++;
    } else {
      this.#mark(sequence);
      this.#late++;
    }
  }

  /** The counts now. */
  snapshot(): ArrivalSnapshot {
    return {
      sequenceEnd: this.#end,
      arrivals: this.#arrivals,
      gaps: this.#gaps,
      late: this.#late,
      duplicates: this.#duplicates,
      jitterMs: this.#jitter.value,
      bytes: this.#bytes,
      firstMs: this.#first,
      lastMs: this.#last,
    };
  }

  /** Forgets the bits of sequence numbers `from` up to `to` (exclusive): they are new. */
  #clear(from: number, to: number): void {
    if (to - from >= this.#window) {
      this.#seen.fill(0);
      return;
    }
    for (let sequence = from; sequence < to; sequence++) {
      const bit = sequence % this.#window;
      this.#seen[bit >>> 5] &= ~(1 << (bit & 31));
    }
  }

  #mark(sequence: number): void {
    const bit = sequence % this.#window;
    this.#seen[bit >>> 5] |= 1 << (bit & 31);
  }

  #marked(sequence: number): boolean {
    const bit = sequence % this.#window;
    return (this.#seen[bit >>> 5] & (1 << (bit & 31))) !== 0;
  }
}
