/**
 * Clocks. RTTs are measured on the monotonic clock; the wall clock only stamps frames.
 *
 * @module
 */

/**
 * Monotonic time in milliseconds with sub-millisecond precision; immune to clock steps.
 *
 * @example
 * ```ts
 * import { monotonicMs } from "./clock.ts";
 * const start = monotonicMs();
 * console.log(monotonicMs() >= start); // true
 * ```
 */
export function monotonicMs(): number {
  return performance.now();
}

/**
 * Wall-clock time in milliseconds since the Unix epoch with sub-millisecond precision, for
 * the timestamps carried in frames.
 *
 * @example
 * ```ts
 * import { wallClockMs } from "./clock.ts";
 * console.log(Math.abs(wallClockMs() - Date.now()) < 1000); // true
 * ```
 */
export function wallClockMs(): number {
  return wallClockAt(performance.now());
}

/**
 * The wall-clock time ({@linkcode wallClockMs}) of a moment on the monotonic clock
 * ({@linkcode monotonicMs}); differences between such times are monotonic ones.
 *
 * @example
 * ```ts
 * import { monotonicMs, wallClockAt } from "./clock.ts";
 * console.log(Math.abs(wallClockAt(monotonicMs()) - Date.now()) < 1000); // true
 * ```
 */
export function wallClockAt(monotonic: number): number {
  return performance.timeOrigin + monotonic;
}
