/**
 * The reactor: the one loop, on the main thread, that serves every native socket of the
 * process. It `ppoll()`s on all of them, reads the ready ones in batches (`recvmmsg()`), hands
 * each batch to its socket, runs the timers of its own that are due, lets the event loop turn,
 * and repeats; it ends when the last socket closes. When it sleeps, for how long and how it
 * waits for an awaited reply is {@linkcode SchedulingPolicy}'s to say (_policy.ts).
 *
 * @module
 */

import { eventLoopTimerAt } from "../clock.ts";
import { DeadlineHeap } from "../deadlines.ts";
import { native } from "./_ffi.ts";
import {
  POLLFD_EVENTS,
  POLLFD_FD,
  POLLFD_REVENTS,
  POLLFD_SIZE,
  POLLIN,
  TIMESPEC_NSEC,
  TIMESPEC_SEC,
  TIMESPEC_SIZE,
} from "./_layout.ts";
import { MICROTASK_ROUNDS, SchedulingPolicy } from "./_policy.ts";

/** What the reactor needs of a socket it serves. */
export interface ReactorSocket {
  /** The socket's file descriptor. */
  readonly fd: number;
  /** Whether it was closed. */
  readonly closed: boolean;
  /** Reads the datagrams waiting (waiting up to `waitMs` for one); how many it read. */
  readBatch(waitMs: number): number;
  /** Hands the `count` datagrams read last to its handler. */
  handleBatch(count: number): Promise<void>;
}

/** A callback the reactor runs at a given time (see {@linkcode Reactor.schedule}). */
interface ReactorTimer {
  at: number;
  fire: () => void;
  /** Cancelled, or fired: skipped when it comes out of the heap. */
  done: boolean;
  /** Set once the reactor has stopped (no socket left): the event loop's timer took over. */
  handle?: ReturnType<typeof setTimeout>;
}

// The timeout of ppoll(), a struct timespec: two 64-bit words, written as their low 32-bit
// halves (a timeout is far below 2^31 s) so that no BigInt is made per wait.
const TIMEOUT_SECONDS = TIMESPEC_SEC / Int32Array.BYTES_PER_ELEMENT;
const TIMEOUT_NANOSECONDS = TIMESPEC_NSEC / Int32Array.BYTES_PER_ELEMENT;

/** The process's scheduling policy: the sockets tell it what they do, the reactor asks it. */
export const policy: SchedulingPolicy = new SchedulingPolicy();

/**
 * The loop that serves every native socket of the process: `ppoll()` on all of them, drain the
 * ready ones, run the timers that are due, let the event loop run, repeat; it ends when the
 * last socket closes.
 */
export class Reactor {
  readonly #sockets = new Set<ReactorSocket>();
  // Due timers fire in deadline order (ties in the order added), from the one heap every
  // timer of the process uses; a cancelled one stays in it, marked, until it comes out.
  readonly #timers = new DeadlineHeap<ReactorTimer>((timer) => !timer.done);
  #pollfds = new Uint8Array(0);
  #order: ReactorSocket[] = [];
  #pollCount = 0n;
  readonly #timeout = new Int32Array(TIMESPEC_SIZE / Int32Array.BYTES_PER_ELEMENT);
  readonly #timeoutBytes = new Uint8Array(this.#timeout.buffer);
  #running = false;

  /** Serves `socket` from now on; starts the loop if it is not running. */
  add(socket: ReactorSocket): void {
    this.#sockets.add(socket);
    this.#rebuild();
    if (!this.#running) {
      this.#running = true;
      this.#run().finally(() => this.#running = false);
    }
  }

  /** Stops serving `socket`; the loop ends with the last one. */
  remove(socket: ReactorSocket): void {
    if (!this.#sockets.delete(socket)) return;
    this.#rebuild();
    if (this.#sockets.size > 0) return;
    // The loop ends: nothing is awaited any more, and what it would have run, the event
    // loop's timers run instead.
    policy.reset();
    for (const timer of this.#timers.takeAll()) if (!timer.done) this.#handOver(timer);
  }

  /** Gives a timer to the event loop's timers: the loop is not running to fire it. */
  #handOver(timer: ReactorTimer): void {
    timer.handle = eventLoopTimerAt(timer.at, () => {
      if (timer.done) return;
      timer.done = true;
      timer.fire();
    });
  }

  /**
   * Runs `fire` once `performance.now()` reaches `at`: from the loop, to within its wait's
   * precision (tens of microseconds), while any socket is open, so that a send it makes is
   * followed at once by the wait for the reply; from the event loop's timers otherwise.
   * Returns a function that cancels it.
   */
  schedule(at: number, fire: () => void): () => void {
    const timer: ReactorTimer = { at, fire, done: false };
    if (this.#sockets.size === 0) this.#handOver(timer);
    else this.#timers.add(at, timer);
    return () => {
      timer.done = true;
      clearTimeout(timer.handle);
    };
  }

  /**
   * Runs the timers due by `now`, earliest first (ties in the order added); whether any was.
   * One that a timer sets for `now` or before runs in the same call, after those already due.
   */
  #fireDue(now: number): boolean {
    let fired = false;
    const timers = this.#timers;
    while (timers.nextAt <= now) {
      const timer = timers.pop();
      if (timer.done) continue;
      timer.done = true;
      fired = true;
      timer.fire();
    }
    return fired;
  }

  /** When the next of the loop's live timers is due (Infinity: none). */
  #nextTimer(): number {
    const timers = this.#timers;
    while (timers.size > 0 && timers.peek().done) timers.pop(); // cancelled ones
    return timers.nextAt;
  }

  #rebuild(): void {
    this.#order = [...this.#sockets];
    this.#pollCount = BigInt(this.#order.length); // nfds_t: computed here, not per ppoll()
    this.#pollfds = new Uint8Array(POLLFD_SIZE * this.#order.length);
    const view = new DataView(this.#pollfds.buffer);
    this.#order.forEach((socket, i) => {
      view.setInt32(POLLFD_SIZE * i + POLLFD_FD, socket.fd, true);
      view.setInt16(POLLFD_SIZE * i + POLLFD_EVENTS, POLLIN, true);
    });
  }

  /** ppoll() on every socket for up to `waitMs` (to the nanosecond, unlike poll()'s ms). */
  #poll(waitMs: number): number {
    const seconds = Math.floor(waitMs / 1000);
    this.#timeout[TIMEOUT_SECONDS] = seconds;
    this.#timeout[TIMEOUT_NANOSECONDS] = Math.round((waitMs - seconds * 1000) * 1e6);
    return native().symbols.ppoll(this.#pollfds, this.#pollCount, this.#timeoutBytes, null);
  }

  async #run(): Promise<void> {
    const channel = new MessageChannel();
    let wake: (() => void) | null = null;
    channel.port1.onmessage = () => wake?.();
    const yieldToEventLoop = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        channel.port2.postMessage(null);
      });
    try {
      let lastYield = performance.now();
      while (this.#sockets.size > 0) {
        // Let what the last datagrams set off run: a few rounds of promise jobs (a reply's
        // handler sending the next probe, say) cost next to nothing. The event loop itself
        // (timers, signals, other I/O) gets a turn once a slice, and at once when code is
        // ready to run (a sender loop that yielded, see yieldToEventLoop).
        for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
        let now = performance.now();
        if (policy.yieldsNow(now, lastYield)) {
          await yieldToEventLoop();
          lastYield = now = performance.now();
        }
        if (this.#sockets.size === 0) break;
        if (this.#timers.size > 0 && this.#fireDue(now)) {
          // After the event loop's turn, not before it: what the timers send (a probe) is
          // followed at once by the wait for its reply, with nothing else in between.
          for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
          now = performance.now();
          if (this.#sockets.size === 0) break;
        }
        const pollfds = this.#pollfds;
        const order = this.#order;
        const slice = policy.slice(now);
        const untilTimer = this.#timers.size > 0 ? this.#nextTimer() - now : Infinity;
        if (order.length === 1 && policy.awaitsOneReply()) {
          await this.#awaitReply(order[0], now, slice, untilTimer);
        } else if (this.#poll(policy.pollWait(slice, untilTimer)) > 0) {
          // ppoll()'s timeout is exact, so timers stay on time; it does not wait at all when
          // code is ready to run (a sender loop that yielded), which gets the thread back
          // after one batch per socket, so one busy socket cannot starve the others either.
          for (let i = 0; i < order.length; i++) {
            const revents = POLLFD_SIZE * i + POLLFD_REVENTS;
            if (pollfds[revents] === 0 && pollfds[revents + 1] === 0) continue;
            const count = order[i].readBatch(0);
            if (count > 0) await order[i].handleBatch(count);
          }
        } else {
          policy.nothingCame();
        }
      }
    } finally {
      channel.port1.close();
      channel.port2.close();
    }
  }

  /**
   * Waits up to a slice for the one reply due on the only socket (a ping) and hands it on:
   * looks for it without sleeping first, if replies come soon (see the spin), then sleeps for
   * it in recvmmsg() itself, one system call where ppoll() and a read are two, unless a timer
   * is due before the kernel's rounded-up receive timeout (~8 ms) would end; if the reply is
   * lost, that happens once.
   */
  async #awaitReply(
    socket: ReactorSocket,
    now: number,
    slice: number,
    untilTimer: number,
  ): Promise<void> {
    let count = this.#spinFor(socket, now, untilTimer);
    if (count === 0 && policy.sleepsInReceive(untilTimer)) {
      count = socket.readBatch(slice);
    } else if (count === 0 && this.#poll(policy.sleepFor(slice, untilTimer)) > 0) {
      count = socket.readBatch(0);
    }
    if (count === 0) {
      policy.replyLost();
      return;
    }
    policy.replyCame(performance.now() - now);
    await socket.handleBatch(count);
  }

  /**
   * Looks for the awaited reply without sleeping, as long as the policy says (see its spin);
   * returns how many datagrams it read.
   */
  #spinFor(socket: ReactorSocket, now: number, untilTimer: number): number {
    if (!policy.spinsNow()) return 0;
    const until = policy.spinUntil(now, untilTimer);
    do {
      const count = socket.readBatch(0);
      if (count > 0) {
        policy.spinFound();
        return count;
      }
    } while (performance.now() < until && !socket.closed);
    policy.spinMissed();
    return 0;
  }
}

/** The process's reactor. */
export const reactor: Reactor = new Reactor();

/**
 * Lets the event loop run from code that is ready to go on at once (a sender loop): unlike a
 * plain `MessageChannel` round trip, it also tells the reactor not to sleep in `ppoll()` first.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { yieldToEventLoop } from "./mod.ts";
 * let ran = false;
 * setTimeout(() => ran = true, 0);
 * while (!ran) await yieldToEventLoop();
 * strictEqual(ran, true);
 * ```
 */
export function yieldToEventLoop(): Promise<void> {
  policy.noteReadyCode(1);
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      policy.noteReadyCode(-1);
      resolve();
    };
    port2.postMessage(null);
    port2.close();
  });
}
