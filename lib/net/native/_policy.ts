/**
 * The reactor's scheduling policy: when the event loop gets a turn and how the reactor waits
 * for a reply, apart from the system calls that carry it out (_reactor.ts). It is told what the
 * sockets do (datagrams sent and received, code ready to run) and answers the reactor's
 * questions, once a turn of its loop:
 *
 * - **Turns.** When nothing is ready the reactor sleeps off the main thread, and the event loop
 *   runs freely; but for {@linkcode LINGER_MS} after a datagram came or left it waits in a
 *   `ppoll()` on the main thread itself, a slice at a time, since a busy peer's next datagram
 *   is then likely soon: a sleep on another thread costs a second wake-up (about 0.1 ms here)
 *   before the datagram is read. While datagrams keep coming it never sleeps, so every
 *   {@linkcode BUSY_TURN_MS} it gives the event loop a whole turn (timers, signals, and I/O such
 *   as an HTTP scrape, which the runtime polls only when its thread would otherwise wait). It
 *   does not sleep at all while code that yielded to the event loop is ready to run (a sender
 *   loop sharing the thread): that code runs at once.
 * - **Microtask rounds.** Before it sleeps it lets {@linkcode MICROTASK_ROUNDS} rounds of promise
 *   jobs run, so that what a handler set off (the next probe) goes out first.
 * - **An awaited reply.** When exactly one reply is due (a ping: datagrams sent since as many
 *   were received), the reactor spins for it before sleeping; a sleep in which nothing came
 *   means the replies are late or lost, and the next request is awaited afresh. A reflector's
 *   reply counts as such a datagram too, on purpose: under a ping-pong load (`udp ping -i 0`)
 *   it spins for the next request, which keeps its hold at a few µs where a wake-up costs 15
 *   here (without it, the round trip went from 0.011 to 0.028 ms: 1.17 × sockperf's).
 * - **Spin.** It looks for that reply without sleeping, for twice as long as replies have taken
 *   lately (a moving average), from {@linkcode SPIN_MIN_MS} up to {@linkcode SPIN_MAX_MS}: a
 *   thread woken from sleep starts some microseconds after the datagram came (more for the
 *   reactor, whose sleep is on another thread), time that would count in every round trip.
 *   Not when replies take longer than that (a real network), nor past a timer.
 * - **Back-off.** When a spin ends empty-handed (a reply lost or late) it skips the next 1, 2,
 *   4 … up to {@linkcode SPIN_BACKOFF_MAX} waits, so a slow or quiet peer costs a spin now and
 *   then.
 *
 * @module
 */

/** The longest the event loop waits for a whole turn while datagrams keep coming. */
export const BUSY_TURN_MS = 1;
/** How long after the last datagram the reactor waits on the main thread, not off it. */
export const LINGER_MS = 1;
/** The longest the reactor looks for an awaited reply before it sleeps (see the spin). */
export const SPIN_MAX_MS = 0.5;
/** The shortest spin, while replies come at once. */
export const SPIN_MIN_MS = 0.1;
/** The most waits it skips spinning for after spins that found nothing. */
export const SPIN_BACKOFF_MAX = 64;
/** Rounds of promise jobs run before the reactor sleeps. */
export const MICROTASK_ROUNDS = 16;

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
  #lastTraffic = -Infinity;
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

  /** Notes a datagram received: traffic, and one expected reply less. */
  noteTraffic(): void {
    this.#trafficSeen = true; // timed by the loop, which reads the clock anyway
    if (this.#expected > 0) this.#expected--;
  }

  /** Notes datagrams sent: traffic, and as many replies perhaps expected. */
  noteSend(count: number): void {
    this.#trafficSeen = true;
    this.#expected += count;
  }

  /**
   * How long from `now` the reactor waits on the main thread rather than off it (0: not at
   * all): what is left of {@linkcode LINGER_MS} since the last datagram, at most a turn.
   */
  lingerFor(now: number): number {
    if (this.#trafficSeen) {
      this.#lastTraffic = now;
      this.#trafficSeen = false;
    }
    return Math.max(0, Math.min(BUSY_TURN_MS, this.#lastTraffic + LINGER_MS - now));
  }

  /** Forgets what was awaited and how replies went: the reactor has stopped. */
  reset(): void {
    this.#expected = 0;
    this.#replyDelay = 0;
    this.#spinBackoff = this.#spinSkips = 0;
  }

  /** Whether the event loop is due a whole turn: {@linkcode BUSY_TURN_MS} without one. */
  needsTurn(now: number, lastTurn: number): boolean {
    return now - lastTurn >= BUSY_TURN_MS;
  }

  /** Whether code that yielded to the event loop is ready to go on (never sleep then). */
  codeIsReady(): boolean {
    return this.#readyCode > 0;
  }

  /** Whether exactly one reply is awaited, and no code is ready: a ping's wait. */
  awaitsOneReply(): boolean {
    return this.#readyCode === 0 && this.#expected === 1;
  }

  /**
   * A sleep ended with nothing at all: the replies once sent for are late or lost, so the next
   * single request is awaited as such (spin) and not as one of many.
   */
  nothingCame(): void {
    if (this.#readyCode === 0) this.#expected = 0;
  }

  /**
   * The awaited reply came `waitedMs` after the wait began (by its arrival stamp), after a
   * sleep or not. One that came within the longest spin, after a sleep, was a near miss of a
   * spin, not a slow peer: no back-off for it.
   */
  replyCame(waitedMs: number, slept = false): void {
    this.#replyDelay += (waitedMs - this.#replyDelay) / 4;
    if (slept && waitedMs <= SPIN_MAX_MS) this.#spinBackoff = this.#spinSkips = 0;
  }

  /** The awaited reply did not come before a timer: late or lost, so nothing in particular is. */
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
