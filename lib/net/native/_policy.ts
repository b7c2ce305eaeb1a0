/**
 * The reactor's scheduling policy: when it sleeps, for how long, and how it waits for a reply,
 * apart from the system calls that carry it out (_reactor.ts). It is told what the sockets do
 * (datagrams sent and received, code ready to run) and answers the reactor's questions, once a
 * turn of its loop:
 *
 * - **Slices.** The reactor sleeps at most a slice at a time ({@linkcode ACTIVE_SLICE_MS}, or
 *   {@linkcode IDLE_SLICE_MS} after {@linkcode IDLE_AFTER_MS} without traffic), then lets the
 *   event loop turn (timers, signals): a timer fires at most one slice late, while a datagram
 *   is read the moment it arrives. It does not sleep at all while code that yielded to the
 *   event loop is ready to run (a sender loop sharing the thread), and the event loop gets its
 *   turn at once then.
 * - **Microtask rounds.** Before it sleeps it lets {@linkcode MICROTASK_ROUNDS} rounds of promise
 *   jobs run, so that what a handler set off (the next probe) goes out first.
 * - **An awaited reply.** When exactly one reply is due (a ping: datagrams sent since as many
 *   were received), it waits for it in `recvmmsg()` itself, one system call, unless a timer is
 *   due before the kernel's rounded-up receive timeout ({@linkcode RECEIVE_TIMEOUT_OVERSHOOT_MS})
 *   would end; a wait in which nothing came means the replies are late or lost, and the next
 *   request is awaited afresh.
 * - **Spin.** Before it sleeps for that reply, it looks for it without sleeping, for twice as
 *   long as replies have taken lately (a moving average), from {@linkcode SPIN_MIN_MS} up to
 *   {@linkcode SPIN_MAX_MS}: a thread woken from sleep starts some microseconds after the
 *   datagram came (8 µs of a 27 µs round trip on the development machine, more from an idle
 *   processor), time that would count in every RTT. Not when replies take longer than that (a
 *   real network), nor past a timer.
 * - **Back-off.** When a spin ends empty-handed (a reply lost or late) it skips the next 1, 2,
 *   4 … up to {@linkcode SPIN_BACKOFF_MAX} waits, so a slow or quiet peer costs a spin now and
 *   then.
 *
 * @module
 */

/** How long the reactor sleeps in `ppoll()` at a time while there is traffic. */
export const ACTIVE_SLICE_MS = 1;
/** How long it sleeps at a time after {@linkcode IDLE_AFTER_MS} without any. */
export const IDLE_SLICE_MS = 20;
/** How long without traffic makes the reactor idle. */
export const IDLE_AFTER_MS = 1000;
/** The longest the reactor looks for an awaited reply before it sleeps (see the spin). */
export const SPIN_MAX_MS = 0.5;
/** The shortest spin, while replies come at once. */
export const SPIN_MIN_MS = 0.05;
/** The most waits it skips spinning for after spins that found nothing. */
export const SPIN_BACKOFF_MAX = 64;
/** Rounds of promise jobs run before the reactor sleeps. */
export const MICROTASK_ROUNDS = 16;
/**
 * The kernel rounds `SO_RCVTIMEO` up to clock ticks: a 1 ms receive timeout was seen to last
 * 6 to 8.4 ms. The reactor waits in `recvmmsg()` only when no timer of its own is due sooner.
 */
export const RECEIVE_TIMEOUT_OVERSHOOT_MS = 10;

// How the spins for replies went, for the tests.
const spins = { found: 0, missed: 0 };

/**
 * How many times the reactor, looking for an awaited reply before sleeping, found it, and how
 * many times it gave up and slept: the tests check that it spins when replies come soon and
 * stops spinning when they do not.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { spinCounts } from "./mod.ts";
 * const { found, missed } = spinCounts();
 * strictEqual(found >= 0 && missed >= 0, true);
 * ```
 */
export function spinCounts(): { found: number; missed: number } {
  return { ...spins };
}

/** The policy's state and decisions; the reactor holds one for the process. */
export class SchedulingPolicy {
  #lastTraffic = 0;
  #trafficSeen = false;
  #expected = 0; // datagrams sent since as many were received: replies may be on their way
  #readyCode = 0; // code that yielded to the event loop and is ready to go on: never block it
  #spinBackoff = 0; // waits to skip after the next spin that finds nothing
  #spinSkips = 0; // waits left to skip before the reactor spins again
  #replyDelay = 0; // how long awaited replies took lately, ms (moving average)

  /** Notes code ready to run as soon as the event loop turns (+1), or run (-1). */
  noteReadyCode(delta: number): void {
    this.#readyCode += delta;
  }

  /** Notes a datagram received: traffic (so short slices), and one expected reply less. */
  noteTraffic(): void {
    this.#trafficSeen = true; // timed by the loop, which reads the clock anyway
    if (this.#expected > 0) this.#expected--;
  }

  /** Notes datagrams sent: traffic (so short slices), and as many replies perhaps expected. */
  noteSend(count: number): void {
    this.#trafficSeen = true;
    this.#expected += count;
  }

  /** Forgets what was awaited and how replies went: the reactor has stopped. */
  reset(): void {
    this.#expected = 0;
    this.#replyDelay = 0;
    this.#spinBackoff = this.#spinSkips = 0;
  }

  /** Whether the event loop gets its turn now: code is ready, or a slice has passed since. */
  yieldsNow(now: number, lastYield: number): boolean {
    return this.#readyCode > 0 || now - lastYield >= ACTIVE_SLICE_MS;
  }

  /** The longest the reactor sleeps at a time from `now`: short while there is traffic. */
  slice(now: number): number {
    if (this.#trafficSeen) {
      this.#lastTraffic = now;
      this.#trafficSeen = false;
    }
    return now - this.#lastTraffic > IDLE_AFTER_MS ? IDLE_SLICE_MS : ACTIVE_SLICE_MS;
  }

  /** Whether exactly one reply is awaited, and no code is ready: a ping's wait. */
  awaitsOneReply(): boolean {
    return this.#readyCode === 0 && this.#expected === 1;
  }

  /** How long a `ppoll()` on every socket waits: not at all while code is ready. */
  pollWait(slice: number, untilTimer: number): number {
    return this.#readyCode > 0 ? 0 : this.sleepFor(slice, untilTimer);
  }

  /** How long a sleep lasts: a slice, or less if a timer is due sooner. */
  sleepFor(slice: number, untilTimer: number): number {
    return Math.max(0, Math.min(slice, untilTimer));
  }

  /**
   * A `ppoll()` found nothing at all: the replies once sent for are late or lost, so the next
   * single request is awaited as such (spin, `recvmmsg()`) and not as one of many.
   */
  nothingCame(): void {
    if (this.#readyCode === 0) this.#expected = 0;
  }

  /** Whether the awaited reply is slept for in `recvmmsg()`: no timer is due before it ends. */
  sleepsInReceive(untilTimer: number): boolean {
    return untilTimer > RECEIVE_TIMEOUT_OVERSHOOT_MS;
  }

  /** The awaited reply came `waitedMs` after the wait began. */
  replyCame(waitedMs: number): void {
    this.#replyDelay += (waitedMs - this.#replyDelay) / 4;
  }

  /** The awaited reply did not come in a slice: late or lost, so nothing in particular is. */
  replyLost(): void {
    this.#expected = 0;
  }

  /** Whether to look for the awaited reply before sleeping; counts down a back-off if not. */
  spinsNow(): boolean {
    if (this.#replyDelay > SPIN_MAX_MS / 2) return false;
    if (this.#spinSkips > 0) {
      this.#spinSkips--;
      return false;
    }
    return true;
  }

  /** Until when a spin begun at `now` goes on. */
  spinUntil(now: number, untilTimer: number): number {
    return now + Math.min(SPIN_MAX_MS, untilTimer, Math.max(SPIN_MIN_MS, 2 * this.#replyDelay));
  }

  /** A spin found the reply. */
  spinFound(): void {
    this.#spinBackoff = 0;
    spins.found++;
  }

  /** A spin found nothing: skip the next 1, 2, 4 … waits. */
  spinMissed(): void {
    spins.missed++;
    this.#spinBackoff = Math.min(SPIN_BACKOFF_MAX, Math.max(1, 2 * this.#spinBackoff));
    this.#spinSkips = this.#spinBackoff;
  }
}
