/**
 * Clocks, and the event loop's timer on them. RTTs are measured on the monotonic clock; the wall
 * clock only stamps frames.
 *
 * @module
 */

/**
 * Monotonic time in milliseconds with sub-millisecond precision; immune to clock steps.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { monotonicMs } from "./clock.ts";
 * const start = monotonicMs();
 * strictEqual(monotonicMs() >= start, true);
 * ```
 */
export function monotonicMs(): number {
  return readMonotonic();
}

// performance.now() until the native backend offers the same clock for a third of its cost.
let readMonotonic: () => number = () => performance.now();

/**
 * Reads the monotonic clock with `read` from now on: the native backend's `clock_gettime()`,
 * which counts from the same clock as `performance.now()` and is set to agree with it to a
 * fraction of a microsecond (lib/net/native/_clock.ts). A reflector stamps every reply with it.
 */
export function useMonotonicClock(read: () => number): void {
  readMonotonic = read;
}

/**
 * Wall-clock time in milliseconds since the Unix epoch with sub-millisecond precision, for
 * the timestamps carried in frames.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { wallClockMs } from "./clock.ts";
 * strictEqual(Math.abs(wallClockMs() - Date.now()) < 1000, true);
 * ```
 */
export function wallClockMs(): number {
  return wallClockAt(readMonotonic());
}

/**
 * The wall-clock time ({@linkcode wallClockMs}) of a moment on the monotonic clock
 * ({@linkcode monotonicMs}); differences between such times are monotonic ones.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { monotonicMs, wallClockAt } from "./clock.ts";
 * strictEqual(Math.abs(wallClockAt(monotonicMs()) - Date.now()) < 1000, true);
 * ```
 */
export function wallClockAt(monotonic: number): number {
  return performance.timeOrigin + monotonic;
}

/**
 * An event loop timer that fires once `performance.now()` reaches `at`: the delay is rounded
 * up to whole milliseconds, as a timer given a fraction fires up to a millisecond early.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { eventLoopTimerAt } from "./clock.ts";
 * const at = performance.now() + 1.5;
 * await new Promise<void>((resolve) => eventLoopTimerAt(at, resolve));
 * strictEqual(performance.now() >= at, true);
 * ```
 */
export function eventLoopTimerAt(at: number, fire: () => void): ReturnType<typeof setTimeout> {
  return setTimeout(fire, Math.max(0, Math.ceil(at - readMonotonic())));
}

/**
 * {@linkcode eventLoopTimerAt} as a function that cancels it: the shape of
 * `UdpSocket.wakeAt`, whose timer it is on Deno's sockets.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { eventLoopWakeAt } from "./clock.ts";
 * let fired = false;
 * const cancel = eventLoopWakeAt(performance.now(), () => fired = true);
 * cancel();
 * await new Promise((resolve) => setTimeout(resolve, 2));
 * strictEqual(fired, false);
 * ```
 */
export function eventLoopWakeAt(at: number, fire: () => void): () => void {
  const timer = eventLoopTimerAt(at, fire);
  return () => clearTimeout(timer);
}
