/**
 * What the kernel says of the system clock (`adjtimex()` with no change asked): whether it is
 * synchronized (an NTP or PTP daemon keeps it so) and its error bound, for the error
 * estimates STAMP packets carry (RFC 4656 §4.1.2: the S bit only when synchronized).
 *
 * @module
 */

import { native } from "./_ffi.ts";

/** `sizeof(struct timex)` on Linux x86-64, and the offsets read from it. */
const TIMEX_SIZE = 208;
const TIMEX_MAXERROR = 24; // long, microseconds
const TIMEX_STATUS = 40; // int
/** adjtimex()'s result when the clock is not synchronized. */
const TIME_ERROR = 5;
/** The status bit that says the clock is not synchronized. */
const STA_UNSYNC = 0x0040;

/**
 * Reads the kernel's clock state: synchronized or not, and its error in seconds: the maximum
 * error, a bound (the estimated error is left at 0 by some daemons, systemd-timesyncd among
 * them, and would understate it); null when the call fails.
 */
export function kernelClockState(): { synchronized: boolean; errorSeconds: number } | null {
  const timex = new Uint8Array(TIMEX_SIZE); // modes 0: read only
  const state = native().symbols.adjtimex(timex);
  if (state < 0) return null;
  const view = new DataView(timex.buffer);
  const synchronized = state !== TIME_ERROR &&
    (view.getInt32(TIMEX_STATUS, true) & STA_UNSYNC) === 0;
  const micros = Number(view.getBigInt64(TIMEX_MAXERROR, true));
  return { synchronized, errorSeconds: micros / 1e6 };
}
