/**
 * Many deadlines on one timer: for per-probe timeouts (setting and clearing a timer per probe
 * costs about 1.7 µs in Deno, a tenth of a loopback round trip) and for the proxy's delayed and
 * rate-limited copies.
 *
 * @module
 */

import { eventLoopWakeAt, monotonicMs } from "./clock.ts";

/**
 * Deadlines in a binary min-heap, with no timer of its own: the structure under every timer of
 * the process (the {@linkcode DeadlineQueue}'s, and the native socket loop's own timers). Ties
 * come out in the order they were added. There is no cancelling: an owner marks what it no
 * longer needs and skips it when it comes out, which costs less than removing it; `isLive`
 * lets the heap drop such entries once too many wait, so memory stays bounded by the live ones.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { DeadlineHeap } from "./deadlines.ts";
 * const heap = new DeadlineHeap<string>();
 * heap.add(30, "c");
 * heap.add(10, "a");
 * heap.add(10, "a2");
 * heap.add(20, "b");
 * assertEquals(heap.nextAt, 10);
 * assertEquals(heap.takeDue(20), ["a", "a2", "b"]);
 * assertEquals(heap.size, 1);
 * ```
 */
export class DeadlineHeap<T> {
  readonly #isLive: (item: T) => boolean;
  // The heap, as parallel arrays: time, then order of addition, break ties.
  #times: number[] = [];
  #orders: number[] = [];
  #items: T[] = [];
  #added = 0;
  #compactAbove: number;

  /**
   * When more than `compactAbove` deadlines wait, those for which `isLive(item)` is false are
   * dropped.
   */
  constructor(isLive: (item: T) => boolean = () => true, compactAbove = 65_536) {
    this.#isLive = isLive;
    this.#compactAbove = compactAbove;
  }

  /** How many deadlines are waiting. */
  get size(): number {
    return this.#times.length;
  }

  /** When the earliest deadline is due (Infinity: none waits). */
  get nextAt(): number {
    return this.#times.length > 0 ? this.#times[0] : Infinity;
  }

  /** The earliest deadline's item, left in place; the heap must not be empty. */
  peek(): T {
    return this.#items[0];
  }

  /** Adds a deadline at `at` for `item`. */
  add(at: number, item: T): void {
    const order = this.#added++;
    const times = this.#times;
    let i = times.length;
    times.push(at);
    this.#orders.push(order);
    this.#items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#before(parent, at, order)) break;
      this.#place(i, times[parent], this.#orders[parent], this.#items[parent]);
      i = parent;
    }
    this.#place(i, at, order, item);
    if (times.length > this.#compactAbove) this.#compact();
  }

  /** Removes and returns the earliest deadline's item; the heap must not be empty. */
  pop(): T {
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

  /** Removes and returns the items due at or before `now`, in time order. */
  takeDue(now: number): T[] {
    const due: T[] = [];
    while (this.#times.length > 0 && this.#times[0] <= now) due.push(this.pop());
    return due;
  }

  /** Removes every deadline and returns their items in the order they were due. */
  takeAll(): T[] {
    const items: T[] = [];
    while (this.#times.length > 0) items.push(this.pop());
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

/**
 * A {@linkcode DeadlineHeap} with a single `setTimeout` armed for the earliest deadline: many
 * deadlines on one event-loop timer.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
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
 * assertEquals(due, ["a", "b", "c"]);
 * ```
 */
export class DeadlineQueue<T> {
  readonly #onDue: (item: T) => void;
  readonly #heap: DeadlineHeap<T>;
  readonly #timerAt: TimerAt;
  #cancel: (() => void) | undefined;
  #armedFor = Infinity;

  /**
   * `onDue(item)` is called once for each deadline, in time order, once it has passed. When
   * more than `compactAbove` deadlines wait, those for which `isLive(item)` is false are
   * dropped, so that memory stays bounded by the live ones however long the deadlines are.
   * Its one timer is set with `timerAt`: the event loop's by default, a socket's
   * (`UdpSocket.wakeAt`) where what a deadline sets off is sent on that socket.
   */
  constructor(
    onDue: (item: T) => void,
    isLive: (item: T) => boolean = () => true,
    compactAbove = 65_536,
    timerAt: TimerAt = eventLoopWakeAt,
  ) {
    this.#onDue = onDue;
    this.#heap = new DeadlineHeap(isLive, compactAbove);
    this.#timerAt = timerAt;
  }

  /** How many deadlines are waiting. */
  get size(): number {
    return this.#heap.size;
  }

  /** Adds a deadline at `atMs` (on the {@linkcode monotonicMs} clock) for `item`. */
  add(atMs: number, item: T): void {
    this.#heap.add(atMs, item);
    if (atMs < this.#armedFor) this.#arm();
  }

  /** Drops every deadline and the timer. */
  clear(): void {
    this.takeAll();
  }

  /** Drops every deadline and the timer, and returns their items in the order they were due. */
  takeAll(): T[] {
    this.#cancel?.();
    this.#cancel = undefined;
    this.#armedFor = Infinity;
    return this.#heap.takeAll();
  }

  #arm(): void {
    this.#cancel?.();
    const first = this.#heap.nextAt;
    this.#armedFor = first;
    this.#cancel = this.#timerAt(first, () => this.#fire());
  }

  #fire(): void {
    this.#cancel = undefined;
    this.#armedFor = Infinity;
    // Each call may add deadlines (a retransmission): the heap is read afresh every time.
    const heap = this.#heap;
    while (heap.size > 0 && heap.nextAt <= monotonicMs()) this.#onDue(heap.pop());
    if (heap.size > 0 && this.#cancel === undefined) this.#arm();
  }
}

/** Sets a timer that runs `fire` once the monotonic clock reaches `atMs`; returns its cancel. */
export type TimerAt = (atMs: number, fire: () => void) => () => void;
