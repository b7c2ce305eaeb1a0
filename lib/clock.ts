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
  return performance.timeOrigin + performance.now();
}
