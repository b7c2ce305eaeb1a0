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
  readonly #times: number[] = [];
  readonly #keys: number[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  /** `onDue(key)` is called once for each deadline, in time order, once it has passed. */
  constructor(onDue: (key: number) => void) {
    this.#onDue = onDue;
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
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#times.length = 0;
    this.#keys.length = 0;
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
