/**
 * Many deadlines on one timer: for per-probe timeouts (setting and clearing a timer per probe
 * costs about 1.7 µs in Deno, a tenth of a loopback round trip) and for the proxy's delayed and
 * rate-limited copies.
 *
 * @module
 */

import { monotonicMs } from "./clock.ts";

/**
 * Deadlines kept in a binary min-heap with a single `setTimeout` armed for the earliest; ties
 * come due in the order they were added. There is no cancelling: when a deadline's work is no
 * longer needed (the probe was answered), the owner ignores it when it comes due, which costs
 * less than removing it.
 *
 * @example
 * ```ts
 * import { DeadlineQueue } from "./deadlines.ts";
 * import { monotonicMs } from "./clock.ts";
 * const due: string[] = [];
 * const done = Promise.withResolvers<void>();
 * const queue = new DeadlineQueue<string>((item) => {
 *   due.push(item);
 *   if (due.length === 3) done.resolve();
 * });
 * const now = monotonicMs();
 * queue.add(now + 30, "c");
 * queue.add(now + 10, "a");
 * queue.add(now + 20, "b");
 * await done.promise;
 * console.log(due); // ["a", "b", "c"]
 * ```
 */
export class DeadlineQueue<T> {
  readonly #onDue: (item: T) => void;
  readonly #isLive: (item: T) => boolean;
  // The heap, as parallel arrays: time, then order of addition, break ties.
  #times: number[] = [];
  #orders: number[] = [];
  #items: T[] = [];
  #added = 0;
  #compactAbove: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  /**
   * `onDue(item)` is called once for each deadline, in time order, once it has passed. When
   * more than `compactAbove` deadlines wait, those for which `isLive(item)` is false are
   * dropped, so that memory stays bounded by the live ones however long the deadlines are.
   */
  constructor(
    onDue: (item: T) => void,
    isLive: (item: T) => boolean = () => true,
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

  /** Adds a deadline at `atMs` (on the {@linkcode monotonicMs} clock) for `item`. */
  add(atMs: number, item: T): void {
    const order = this.#added++;
    const times = this.#times;
    const orders = this.#orders;
    const items = this.#items;
    let i = times.length;
    times.push(atMs);
    orders.push(order);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#before(parent, atMs, order)) break;
      this.#place(i, times[parent], orders[parent], items[parent]);
      i = parent;
    }
    this.#place(i, atMs, order, item);
    if (atMs < this.#armedFor) this.#arm();
    if (times.length > this.#compactAbove) this.#compact();
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    this.takeAll();
  }

  /** Drops every deadline and the timer, and returns their items in the order they were due. */
  takeAll(): T[] {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const items: T[] = [];
    while (this.#times.length > 0) items.push(this.#pop());
    this.#added = 0;
    return items;
  }

  /** Drops the deadlines that are no longer live; an array sorted by (time, order) is a heap. */
  #compact(): void {
    const live: number[] = [];
    for (let i = 0; i < this.#times.length; i++) if (this.#isLive(this.#items[i])) live.push(i);
    live.sort((a, b) => this.#times[a] - this.#times[b] || this.#orders[a] - this.#orders[b]);
    this.#times = live.map((i) => this.#times[i]);
    this.#orders = live.map((i) => this.#orders[i]);
    this.#items = live.map((i) => this.#items[i]);
    // When most are live, compacting again soon would be wasted work.
    this.#compactAbove = Math.max(this.#compactAbove, 2 * live.length);
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

  #pop(): T {
    const times = this.#times;
    const orders = this.#orders;
    const items = this.#items;
    const item = items[0];
    const lastTime = times.pop() as number;
    const lastOrder = orders.pop() as number;
    const lastItem = items.pop() as T;
    const size = times.length;
    if (size > 0) {
      let i = 0;
      while (true) {
        let child = 2 * i + 1;
        if (child >= size) break;
        const right = child + 1;
        if (right < size && this.#before(right, times[child], orders[child])) child = right;
        if (!this.#before(child, lastTime, lastOrder)) break;
        this.#place(i, times[child], orders[child], items[child]);
        i = child;
      }
      this.#place(i, lastTime, lastOrder, lastItem);
    }
    return item;
  }

  /** Whether the deadline in slot `i` comes before (`time`, `order`): orders are unique. */
  #before(i: number, time: number, order: number): boolean {
    const at = this.#times[i];
    return at < time || (at === time && this.#orders[i] < order);
  }

  #place(i: number, time: number, order: number, item: T): void {
    this.#times[i] = time;
    this.#orders[i] = order;
    this.#items[i] = item;
  }
}
