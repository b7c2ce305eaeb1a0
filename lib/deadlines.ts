/**
 * Many deadlines on one timer, for per-probe timeouts: setting and clearing a timer per probe
 * costs about 1.7 µs in Deno, a tenth of a loopback round trip.
 *
 * @module
 */

import { monotonicMs } from "./clock.ts";

/**
 * Deadlines kept in a binary min-heap with a single `setTimeout` armed for the earliest.
 * There is no cancelling: when a deadline's work is no longer needed (the probe was
 * answered), the owner ignores it when it comes due, which costs less than removing it.
 *
 * @example
 * ```ts
 * import { DeadlineQueue } from "./deadlines.ts";
 * import { monotonicMs } from "./clock.ts";
 * const due: number[] = [];
 * const done = Promise.withResolvers<void>();
 * const queue = new DeadlineQueue((key) => {
 *   due.push(key);
 *   if (due.length === 3) done.resolve();
 * });
 * const now = monotonicMs();
 * queue.add(now + 30, 3);
 * queue.add(now + 10, 1);
 * queue.add(now + 20, 2);
 * await done.promise;
 * console.log(due); // [1, 2, 3]
 * ```
 */
export class DeadlineQueue {
  readonly #onDue: (key: number) => void;
  readonly #isLive: (key: number) => boolean;
  #times: number[] = [];
  #keys: number[] = [];
  #compactAbove: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  /**
   * `onDue(key)` is called once for each deadline, in time order, once it has passed. When
   * more than `compactAbove` deadlines wait, those for which `isLive(key)` is false are
   * dropped, so that memory stays bounded by the live ones however long the deadlines are.
   */
  constructor(
    onDue: (key: number) => void,
    isLive: (key: number) => boolean = () => true,
    compactAbove = 65_536,
  ) {
    this.#onDue = onDue;
    this.#isLive = isLive;
    this.#compactAbove = compactAbove;
  }

  /** How many deadlines are waiting. */
  get size(): number {
    return this.#times.length;
  }

  /** Adds a deadline at `atMs` (on the {@linkcode monotonicMs} clock) for `key`. */
  add(atMs: number, key: number): void {
    const times = this.#times;
    const keys = this.#keys;
    let i = times.length;
    times.push(atMs);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent] <= atMs) break;
      times[i] = times[parent];
      keys[i] = keys[parent];
      i = parent;
    }
    times[i] = atMs;
    keys[i] = key;
    if (atMs < this.#armedFor) this.#arm();
    if (times.length > this.#compactAbove) this.#compact();
  }

  /** Drops the deadlines that are no longer live; a sorted array is a valid heap. */
  #compact(): void {
    const live: [number, number][] = [];
    for (let i = 0; i < this.#times.length; i++) {
      if (this.#isLive(this.#keys[i])) live.push([this.#times[i], this.#keys[i]]);
    }
    live.sort((a, b) => a[0] - b[0]);
    this.#times = live.map(([time]) => time);
    this.#keys = live.map(([, key]) => key);
    // When most are live, compacting again soon would be wasted work.
    this.#compactAbove = Math.max(this.#compactAbove, 2 * live.length);
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#times = [];
    this.#keys = [];
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const first = this.#times[0];
    this.#armedFor = first;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, first - monotonicMs()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    // Each call may add deadlines (a retransmission): the heap is read afresh every time.
    while (this.#times.length > 0 && this.#times[0] <= monotonicMs()) {
      this.#onDue(this.#pop());
    }
    if (this.#times.length > 0 && this.#timer === undefined) this.#arm();
  }

  #pop(): number {
    const times = this.#times;
    const keys = this.#keys;
    const key = keys[0];
    const lastTime = times.pop() as number;
    const lastKey = keys.pop() as number;
    const size = times.length;
    if (size > 0) {
      let i = 0;
      while (true) {
        let child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && times[child + 1] < times[child]) child++;
        if (times[child] >= lastTime) break;
        times[i] = times[child];
        keys[i] = keys[child];
        i = child;
      }
      times[i] = lastTime;
      keys[i] = lastKey;
    }
    return key;
  }
}
