/**
 * The reactor: the one loop, on the main thread, that serves every native socket of the
 * process. It checks all of them with a `ppoll()` that does not wait, reads the ready ones in
 * batches (`recvmmsg()`), hands each batch to its socket, runs the timers of its own that are
 * due, and repeats; it ends when the last socket closes. When nothing is ready it sleeps, in a
 * `ppoll()` on another thread (Deno's non-blocking FFI call), until a datagram comes, its next
 * timer is due or its doorbell rings (_doorbell.ts): the main thread is free meanwhile, so an
 * idle daemon costs nothing, and timers, signals and other I/O (an HTTP scrape) run at once.
 * When it spins for an awaited reply first, and how often the event loop gets a whole turn
 * while datagrams keep coming, is {@linkcode SchedulingPolicy}'s to say (_policy.ts).
 *
 * @module
 */

import { eventLoopTimerAt, monotonicMs } from "../clock.ts";
import { DeadlineHeap } from "../deadlines.ts";
import { BATCH_SIZE } from "./_arena.ts";
import { Doorbell } from "./_doorbell.ts";
import { native } from "./_ffi.ts";
import {
  POLLERR,
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
import { peekArrival } from "./_control.ts";
import { messageTurns } from "./_turns.ts";

/** What the reactor needs of a socket it serves. */
export interface ReactorSocket {
  /** The socket's file descriptor. */
  readonly fd: number;
  /** Whether it was closed. */
  readonly closed: boolean;
  /** Reads the datagrams waiting, without waiting; how many it read. */
  readBatch(): number;
  /** Hands the `count` datagrams read last to its handler. */
  handleBatch(count: number): Promise<void>;
  /** Reads its error queue (ppoll said POLLERR), without waiting; how many entries it held. */
  readErrors(): number;
  /**
   * Whether its datagrams must be handled the moment they come (true), or may wait, up to
   * {@linkcode LAZY_READ_MS}, for the reactor to wake for something else (false: a monitor,
   * whose RTTs are the kernel's arrival stamps, reads a tick's replies with one call then).
   */
  readonly prompt: boolean;
  /** How many datagrams its last read found (a busy socket that is not prompt is watched). */
  readonly lastBatch: number;
}

/** What {@linkcode reactorSleeps} tells of the reactor's sleeps. */
export interface ReactorSleeps {
  /** How many sleeps it began. */
  begun: number;
  /** Whether a sleep is under way with the doorbell quiet. */
  asleep: boolean;
  /** When that sleep ends by itself, by the monotonic clock (Infinity: never; -Infinity: none). */
  until: number;
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

/** The longest sleep where the kernel refused the doorbell: nothing could end a longer one. */
const SLEEP_WITHOUT_DOORBELL_MS = 20;

/**
 * How long the datagrams of a socket that is not prompt may wait to be read: a sleep that ends
 * (for a timer) within this does not watch it. Its receive buffer holds them meanwhile; one
 * whose last read found {@linkcode LAZY_BATCH_MAX} or more is watched anyway.
 */
export const LAZY_READ_MS = 20;

/** A read of a socket that is not prompt that found this many: it is watched while busy. */
export const LAZY_BATCH_MAX = BATCH_SIZE / 2;

/** The process's scheduling policy: the sockets tell it what they do, the reactor asks it. */
export const policy: SchedulingPolicy = new SchedulingPolicy();

/** An array of struct pollfd, each of `fds` watched for POLLIN. */
function pollfdsOf(fds: number[]): Uint8Array<ArrayBuffer> {
  const pollfds = new Uint8Array(POLLFD_SIZE * fds.length);
  const view = new DataView(pollfds.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(POLLFD_SIZE * i + POLLFD_FD, fd, true);
    view.setInt16(POLLFD_SIZE * i + POLLFD_EVENTS, POLLIN, true);
  });
  return pollfds;
}

/** A ppoll() timeout of `waitMs` (finite, ≥ 0), into `timeout`, to the nanosecond. */
function writeTimeout(timeout: Int32Array, waitMs: number): void {
  const seconds = Math.floor(waitMs / 1000);
  timeout[TIMEOUT_SECONDS] = seconds;
  timeout[TIMEOUT_NANOSECONDS] = Math.round((waitMs - seconds * 1000) * 1e6);
}

/**
 * The loop that serves every native socket of the process: check them all, drain the ready
 * ones, run the timers that are due, sleep off the main thread when nothing is ready, repeat;
 * it ends when the last socket closes.
 */
export class Reactor {
  readonly #sockets = new Set<ReactorSocket>();
  // Due timers fire in deadline order (ties in the order added), from the one heap every
  // timer of the process uses; a cancelled one stays in it, marked, until it comes out.
  readonly #timers = new DeadlineHeap<ReactorTimer>((timer) => !timer.done);
  // A sleep's pollfds: the doorbell's, then one per socket (#order), where one that is not
  // prompt may be left unwatched; a check's: one per socket, each watched.
  #pollfds = new Uint8Array(0);
  #checkFds = new Uint8Array(0);
  #order: ReactorSocket[] = [];
  #lazy: number[] = []; // indices in #order of the sockets that are not prompt
  #checkCount = 0n; // nfds_t of a check (the sockets): computed here, not per ppoll()
  #sleepCount = 0n; // and of a sleep (the doorbell too)
  #doorbell: Doorbell | null = null;
  readonly #checkTimeout = new Int32Array(TIMESPEC_SIZE / Int32Array.BYTES_PER_ELEMENT);
  readonly #checkTimeoutBytes = new Uint8Array(this.#checkTimeout.buffer);
  readonly #waitTimeout = new Int32Array(TIMESPEC_SIZE / Int32Array.BYTES_PER_ELEMENT);
  readonly #waitTimeoutBytes = new Uint8Array(this.#waitTimeout.buffer);
  // A sleep's timeout is another buffer: the other thread may read it after the call began.
  readonly #sleepTimeout = new Int32Array(TIMESPEC_SIZE / Int32Array.BYTES_PER_ELEMENT);
  readonly #sleepTimeoutBytes = new Uint8Array(this.#sleepTimeout.buffer);
  // The sleep under way: when it ends by itself, the pollfds it was given (kept referenced
  // until it returns: the other thread writes into them; set while a sleep is under way),
  // and who waits for its end.
  #sleepUntil = -Infinity;
  #sleepingOn: Uint8Array | null = null;
  #sleepers: PromiseWithResolvers<void> | null = null;
  // The loop under way, settled once it has ended (ports closed, no sleep left).
  #running: PromiseWithResolvers<void> | null = null;
  #sleepsBegun = 0;

  /** Serves `socket` from now on; starts the loop if it is not running. */
  add(socket: ReactorSocket): void {
    this.#doorbell ??= new Doorbell();
    this.#sockets.add(socket);
    this.#rebuild();
    this.#doorbell.ring(); // a sleep under way does not watch it yet
    if (this.#running === null) {
      this.#running = Promise.withResolvers<void>();
      this.#run();
    }
  }

  /**
   * Stops serving `socket`; the loop ends with the last one. The promise settles once the
   * reactor has let go of it: once no sleep of the reactor's is under way on it (at once if
   * none is), or, for the last socket, once the loop has ended, so that nothing it started
   * (a sleep, a turn of the event loop) is still running. Not to be awaited by a handler of
   * the reactor's: the loop waits for the handler first.
   */
  remove(socket: ReactorSocket): Promise<void> {
    if (!this.#sockets.delete(socket)) return Promise.resolve();
    this.#rebuild();
    if (this.#sleepingOn !== null) this.#doorbell?.ring();
    if (this.#sockets.size === 0) {
      // The loop ends: nothing is awaited any more, and what it would have run, the event
      // loop's timers run instead.
      policy.reset();
      for (const timer of this.#timers.takeAll()) if (!timer.done) this.#handOver(timer);
      return this.#running?.promise ?? Promise.resolve();
    }
    if (this.#sleepingOn === null) return Promise.resolve();
    this.#sleepers ??= Promise.withResolvers<void>();
    return this.#sleepers.promise;
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
   * Runs `fire` once `performance.now()` reaches `at`: from the loop while any socket is open
   * (a sleep ends for it, to within tens of microseconds), so that a send it makes is followed
   * at once by the check for the reply; from the event loop's timers otherwise. Returns a
   * function that cancels it.
   */
  schedule(at: number, fire: () => void): () => void {
    const timer: ReactorTimer = { at, fire, done: false };
    if (this.#sockets.size === 0) this.#handOver(timer);
    else {
      this.#timers.add(at, timer);
      if (at < this.#sleepUntil) this.#doorbell?.ring(); // the sleep under way ends too late
    }
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
    // A new buffer, never the old one changed: a sleep under way may still be reading it.
    this.#order = [...this.#sockets];
    const count = this.#order.length;
    this.#lazy = this.#order.flatMap((socket, i) => socket.prompt ? [] : [i]);
    this.#checkCount = BigInt(count);
    this.#sleepCount = BigInt(count + 1);
    const sockets = this.#order.map((socket) => socket.fd);
    this.#pollfds = pollfdsOf([this.#doorbell?.fd ?? -1, ...sockets]);
    this.#checkFds = pollfdsOf(sockets);
  }

  /** ppoll() on every socket, without waiting: how many have datagrams to read. */
  #check(): number {
    return native().symbols.ppoll(this.#checkFds, this.#checkCount, this.#checkTimeoutBytes, null);
  }

  /**
   * ppoll() on every socket on this thread for up to `waitMs` (to the nanosecond): nothing else
   * runs meanwhile, so it is kept short (see the policy's linger). How many are ready.
   */
  #wait(waitMs: number): number {
    writeTimeout(this.#waitTimeout, Math.max(0, waitMs));
    return native().symbols.ppoll(this.#checkFds, this.#checkCount, this.#waitTimeoutBytes, null);
  }

  /**
   * How many sleeps it began, whether one is under way with the doorbell quiet, and when that
   * one ends by itself (Infinity: it does not; a zero-wait sleep, the event loop's turn, ends at
   * once and watches every socket).
   */
  get sleeps(): ReactorSleeps {
    const asleep = this.#sleepingOn !== null && !this.#doorbell?.rung;
    return { begun: this.#sleepsBegun, asleep, until: asleep ? this.#sleepUntil : -Infinity };
  }

  /**
   * Sleeps, off the main thread, until a datagram comes to any socket, `waitMs` passes
   * (Infinity: no end of its own) or the doorbell rings; what ppoll() returned (0: the time
   * passed; the ready descriptors are checked afresh after it, since the sockets may have
   * changed meanwhile).
   */
  async #sleep(waitMs: number): Promise<number> {
    const doorbell = this.#doorbell as Doorbell;
    this.#sleepsBegun++;
    if (doorbell.fd < 0) waitMs = Math.min(waitMs, SLEEP_WITHOUT_DOORBELL_MS);
    let timeout: Uint8Array | null = null;
    if (waitMs !== Infinity) {
      writeTimeout(this.#sleepTimeout, Math.max(0, waitMs));
      timeout = this.#sleepTimeoutBytes;
    }
    this.#sleepUntil = monotonicMs() + waitMs;
    this.#sleepingOn = this.#pollfds;
    if (this.#lazy.length > 0) this.#watchLazy(waitMs);
    try {
      return await native().symbols.ppollInBackground(
        this.#sleepingOn,
        this.#sleepCount,
        timeout,
        null,
      );
    } finally {
      this.#sleepUntil = -Infinity;
      this.#sleepingOn = null;
      doorbell.clear();
    }
  }

  /**
   * Whether a sleep of `waitMs` watches each socket that is not prompt: not if it ends within
   * {@linkcode LAZY_READ_MS} (its datagrams are read then), unless its last read was busy.
   * Written between sleeps only: none is under way.
   */
  #watchLazy(waitMs: number): void {
    const view = new DataView(this.#pollfds.buffer);
    for (const i of this.#lazy) {
      const watched = waitMs > LAZY_READ_MS || this.#order[i].lastBatch >= LAZY_BATCH_MAX;
      view.setInt16(POLLFD_SIZE * (i + 1) + POLLFD_EVENTS, watched ? POLLIN : 0, true);
    }
  }

  /**
   * Reads and hands on what waits on every socket, before due timers fire: a datagram that came
   * before a timer (a reply before its probe's timeout, on a socket that is not prompt or while
   * this thread was busy) is handled before it. The time after.
   */
  async #readBeforeTimers(): Promise<number> {
    if (this.#check() > 0) await this.#handleReady(this.#order.keys());
    return monotonicMs();
  }

  /**
   * Reads one batch from each socket of `indices` (into the sockets as they are now) that the
   * last check found ready, and hands it on, in turn.
   */
  async #handleReady(indices: Iterable<number>): Promise<void> {
    // As they are now: a handler that closes a socket rebuilds both, for the next check.
    const order = this.#order;
    const pollfds = this.#checkFds;
    for (const i of indices) {
      const revents = POLLFD_SIZE * i + POLLFD_REVENTS;
      if (pollfds[revents] === 0 && pollfds[revents + 1] === 0) continue;
      if (pollfds[revents] & POLLERR) order[i].readErrors(); // ICMP errors, before the data
      const count = order[i].readBatch();
      if (count > 0) await order[i].handleBatch(count);
    }
  }

  /** Lets those waiting for the last sleep's end (a socket's close) go on. */
  #releaseSleepers(): void {
    const sleepers = this.#sleepers;
    this.#sleepers = null;
    sleepers?.resolve();
  }

  async #run(): Promise<void> {
    messageTurns.open();
    try {
      let lastTurn = monotonicMs();
      while (this.#sockets.size > 0) {
        this.#releaseSleepers();
        // Let what the last datagrams set off run: a few rounds of promise jobs (a reply's
        // handler sending the next probe, say) cost next to nothing.
        for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
        if (this.#sockets.size === 0) break;
        let now = monotonicMs();
        if (policy.needsTurn(now, lastTurn)) {
          // Datagrams kept coming: a sleep that does not wait gives the event loop a whole
          // turn (its timers, signals and I/O), which a message (below) does not.
          await this.#sleep(0);
          lastTurn = now = monotonicMs();
          continue;
        } else if (policy.codeIsReady()) {
          // A sender loop that yielded goes on at once, and so does the reactor.
          await messageTurns.next();
          now = monotonicMs();
        }
        if (this.#sockets.size === 0) break;
        if (this.#nextTimer() <= now) now = await this.#readBeforeTimers(); // a live one is due
        if (this.#timers.size > 0 && this.#fireDue(now)) {
          // After the event loop's turn, not before it: what the timers send (a probe) is
          // followed at once by the check for its reply, with nothing else in between.
          for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
          now = monotonicMs();
          if (this.#sockets.size === 0) break;
        }
        if (this.#check() > 0) {
          // One batch per ready socket, then the loop again: one busy socket cannot starve
          // the others, nor the timers.
          await this.#handleReady(this.#order.keys());
          continue;
        }
        if (policy.codeIsReady()) continue; // never sleep while code waits to run
        if (this.#sockets.size === 0) break; // closed by a handler of the last batch
        const untilTimer = this.#timers.size > 0 ? this.#nextTimer() - now : Infinity;
        if (this.#order.length === 1 && policy.awaitsOneReply()) {
          if (await this.#awaitReply(this.#order[0], now, untilTimer)) lastTurn = monotonicMs();
          continue;
        }
        const linger = policy.lingerFor(now);
        if (linger > 0) {
          // Soon after traffic: on this thread, which reads the next datagram the moment it
          // comes; the event loop still gets its turn each BUSY_TURN_MS (above).
          this.#wait(Math.min(linger, untilTimer));
          continue;
        }
        if (await this.#sleep(untilTimer) === 0) policy.nothingCame();
        lastTurn = monotonicMs();
      }
    } finally {
      messageTurns.close();
      const running = this.#running;
      this.#running = null;
      this.#releaseSleepers();
      running?.resolve();
    }
  }

  /**
   * Waits for the one reply due on the only socket (a ping) and hands it on: looks for it
   * without sleeping first, if replies come soon (see the spin), then sleeps for it; if it
   * does not come before the next timer, it is late or lost. Whether it slept (off the main
   * thread: the event loop had its turn).
   */
  async #awaitReply(socket: ReactorSocket, now: number, untilTimer: number): Promise<boolean> {
    let count = this.#spinFor(socket, now, untilTimer);
    let slept = false;
    if (count === 0) {
      const ready = await this.#sleep(untilTimer);
      slept = true;
      if (ready === 0) {
        policy.replyLost();
        return slept;
      }
      count = socket.readBatch(); // 0: the doorbell rang, or the socket closed
      if (count === 0) return slept;
    }
    // When it reached the socket, not when this thread got round to it: a wake-up's cost is
    // what spinning saves, so counting it would stop the spins for good.
    policy.replyCame(Math.max(0, peekArrival(native().receiveBatch, 0) - now), slept);
    await socket.handleBatch(count);
    return slept;
  }

  /**
   * Looks for the awaited reply without sleeping, as long as the policy says (see its spin);
   * returns how many datagrams it read. The last look is after the spin's end: this thread,
   * preempted between a look and the clock, would otherwise give up on a reply that came.
   */
  #spinFor(socket: ReactorSocket, now: number, untilTimer: number): number {
    if (!policy.spinsNow()) return 0;
    const until = policy.spinUntil(now, untilTimer);
    let over = false;
    do {
      over = monotonicMs() >= until;
      const count = socket.readBatch();
      if (count > 0) {
        policy.spinFound();
        return count;
      }
    } while (!over && !socket.closed);
    policy.spinMissed();
    return 0;
  }
}
/** The process's reactor. */
export const reactor: Reactor = new Reactor();

/**
 * How many times the reactor went to sleep, whether it sleeps now (its doorbell quiet), and
 * until when: the tests check that an idle reactor stays asleep while the event loop does other
 * work, and which sockets a sleep watches.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { reactorSleeps } from "./mod.ts";
 * strictEqual(reactorSleeps().begun >= 0, true);
 * ```
 */
export function reactorSleeps(): ReactorSleeps {
  return reactor.sleeps;
}

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
  return messageTurns.next().then(() => policy.noteReadyCode(-1));
}
