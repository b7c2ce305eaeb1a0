/**
 * Whether this host's clock is synchronized, as the kernel says: what STAMP's error estimates
 * claim (RFC 4656 §4.1.2: the S bit only when it is). Apart from clock.ts, which the native
 * backend itself uses.
 *
 * @module
 */

import { kernelClockState, loadNativeUdp } from "./native/mod.ts";

/** What this host's clock is worth, as the kernel says (see {@linkcode localClockQuality}). */
export interface ClockState {
  /** Synchronized to UTC by an external source (an NTP or PTP daemon). */
  synchronized: boolean;
  /** Its error bound in seconds; null when unknown. */
  errorSeconds: number | null;
}

/**
 * Whether the kernel says the system clock is synchronized, and its error bound (Linux:
 * `adjtimex()`, through the native backend); not synchronized with an unknown error where it
 * cannot be asked.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { localClockQuality } from "./clock_sync.ts";
 * strictEqual(typeof localClockQuality().synchronized, "boolean");
 * ```
 */
export function localClockQuality(): ClockState {
  const state = loadNativeUdp() ? kernelClockState() : null;
  return state ?? { synchronized: false, errorSeconds: null };
}
