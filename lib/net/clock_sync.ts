/**
 * Whether this host's clock is synchronized, as the kernel says: what STAMP's error estimates
 * claim (RFC 4656 §4.1.2: the S bit only when it is). Apart from clock.ts, which the native
 * backend itself uses.
 *
 * @module
 */

import { monotonicMs } from "./clock.ts";
import { kernelClockState, loadNativeUdp } from "./native/mod.ts";

/** What this host's clock is worth, as the kernel says (see {@linkcode localClockQuality}). */
export interface ClockState {
  /** Synchronized to UTC by an external source (an NTP or PTP daemon). */
  synchronized: boolean;
  /** Its error bound in seconds; null when unknown. */
  errorSeconds: number | null;
}

/** How long a reading of the kernel's clock state is used before it is read again. */
const REREAD_MS = 1000;

let last: { state: ClockState; readAt: number } | null = null;

/**
 * Whether the kernel says the system clock is synchronized, and its error bound (Linux:
 * `adjtimex()`, through the native backend): read at most once a second, so a daemon that
 * syncs (or loses sync) after start is seen within a second, at no cost per packet. Not
 * synchronized, with an unknown error, where it cannot be asked. The same object is returned
 * until the state changes.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { localClockQuality } from "./clock_sync.ts";
 * strictEqual(typeof localClockQuality().synchronized, "boolean");
 * strictEqual(localClockQuality(), localClockQuality()); // read once a second at most
 * ```
 */
export function localClockQuality(): ClockState {
  const now = monotonicMs();
  if (last !== null && now - last.readAt < REREAD_MS) return last.state;
  const read = (loadNativeUdp() ? kernelClockState() : null) ??
    { synchronized: false, errorSeconds: null };
  const same = last !== null && last.state.synchronized === read.synchronized &&
    last.state.errorSeconds === read.errorSeconds;
  last = { state: same ? last!.state : read, readAt: now };
  return last.state;
}
