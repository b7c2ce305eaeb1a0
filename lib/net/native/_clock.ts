/**
 * From the kernel's arrival stamps to the monotonic clock. The kernel stamps arrivals
 * (`SO_TIMESTAMPNS`) on the real-time clock; RTTs are measured on the monotonic one
 * (`performance.now()`). Both clocks are read together as a batch is read, and each arrival is
 * converted through its age (how long before that reading it came), so the clocks' offset,
 * which drifts while NTP slews the real-time one, never enters.
 *
 * @module
 */

import { monotonicMs, useMonotonicClock } from "../clock.ts";
import { native } from "./_ffi.ts";
import {
  CLOCK_MONOTONIC,
  CLOCK_REALTIME,
  TIMESPEC_NSEC,
  TIMESPEC_SEC,
  TIMESPEC_SIZE,
} from "./_layout.ts";

const realNow = new DataView(new ArrayBuffer(TIMESPEC_SIZE)); // struct timespec
const realNowBytes = new Uint8Array(realNow.buffer);

/** When the batch read last was read, on the monotonic clock (see {@linkcode readClocks}). */
export let batchReadAt = 0;

const retryBytes = new Uint8Array(TIMESPEC_SIZE);

/** A bracket this tight (ms) is kept at once, whatever the machine (see clocksBracketMs). */
export const CLOCKS_BRACKET_MIN_MS = 0.002;
/**
 * A real-time reading bracketed this tightly by two monotonic ones (ms) is kept at once: 4 ×
 * the tightest bracket {@linkcode useNativeClock} measured, at least
 * {@linkcode CLOCKS_BRACKET_MIN_MS}, so that where a clock read is a real system call (a VM's
 * clock source without the vDSO) every batch does not try four times.
 */
export let clocksBracketMs = CLOCKS_BRACKET_MIN_MS;
/** How many brackets {@linkcode readClocks} tries for one that tight; then it keeps the tightest. */
export const CLOCKS_TRIES = 4;

/**
 * Reads both clocks, as a batch has just been read: the real-time one between two readings of
 * the monotonic (`now`), again while the two are further apart than
 * {@linkcode clocksBracketMs} (a cold call, or this thread preempted between them), up to
 * {@linkcode CLOCKS_TRIES} times. The moment is the tightest bracket's end: an arrival is never
 * put early (an RTT never below its truth), and late by at most the bracket. A midpoint, on a
 * bracket preempted for 1.2 ms, puts them 0.6 ms early.
 */
export function readClocks(now: () => number = monotonicMs): void {
  const { clock_gettime } = native().symbols;
  let before = now();
  clock_gettime(CLOCK_REALTIME, realNowBytes);
  batchReadAt = now();
  let bracket = batchReadAt - before;
  for (let tried = 1; tried < CLOCKS_TRIES && bracket > clocksBracketMs; tried++) {
    before = now();
    clock_gettime(CLOCK_REALTIME, retryBytes);
    const after = now();
    if (after - before < bracket) {
      bracket = after - before;
      realNowBytes.set(retryBytes);
      batchReadAt = after;
    }
  }
}

/** Where the high 32 bits of a little-endian 64-bit field are. */
const INT64_HIGH_HALF = 4;

/** A 64-bit field of a struct timespec, without a BigInt (both fit in 53 bits). */
function int64At(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getInt32(offset + INT64_HIGH_HALF, true) * 2 ** 32;
}

/**
 * The moment on the monotonic clock of the real-time struct timespec at `offset` in `view` (an
 * arrival stamp of the batch read last): its age at {@linkcode readClocks}, before
 * {@linkcode batchReadAt}.
 */
export function monotonicOfRealtime(view: DataView, offset: number): number {
  // Seconds and nanoseconds apart: as one number of milliseconds each would lose a µs.
  const ageMs = (int64At(realNow, TIMESPEC_SEC) - int64At(view, offset + TIMESPEC_SEC)) * 1000 +
    (int64At(realNow, TIMESPEC_NSEC) - int64At(view, offset + TIMESPEC_NSEC)) / 1e6;
  // A real-time clock stepped back since the arrival would make the age negative.
  return batchReadAt - Math.max(0, ageMs);
}

const monotonicNow = new DataView(new ArrayBuffer(TIMESPEC_SIZE));
const monotonicNowBytes = new Uint8Array(monotonicNow.buffer);
/** CLOCK_MONOTONIC's reading minus performance.now()'s, in milliseconds (set once). */
let monotonicOffset = NaN;

/** CLOCK_MONOTONIC in milliseconds, as the kernel counts it. */
function kernelMonotonicMs(): number {
  native().symbols.clock_gettime(CLOCK_MONOTONIC, monotonicNowBytes);
  return int64At(monotonicNow, TIMESPEC_SEC) * 1000 + int64At(monotonicNow, TIMESPEC_NSEC) / 1e6;
}

/** The monotonic clock on performance.now()'s scale, read by `clock_gettime()`. */
function nativeMonotonicMs(): number {
  return kernelMonotonicMs() - monotonicOffset;
}

/** How many readings the offset, and the tightest bracket of the clocks, are chosen from. */
const CALIBRATION_ROUNDS = 64;

/**
 * Has {@linkcode monotonicMs} read CLOCK_MONOTONIC by `clock_gettime()` (through FFI, a third
 * of what `performance.now()` costs here: once per reply of a reflector), on performance.now()'s
 * scale. Deno counts performance.now() on that clock too, so the two differ by a constant, taken
 * from the reading that two of performance.now()'s bracket most narrowly, against the earlier:
 * the native clock is never ahead of performance.now() and behind by at most that window (a
 * fraction of a microsecond), so a timer due by one is due by the other. Then it sets
 * {@linkcode clocksBracketMs} from what reading both clocks takes here. Once per process.
 */
export function useNativeClock(): void {
  if (!Number.isNaN(monotonicOffset)) return;
  let window = Infinity;
  let offset = 0;
  for (let round = 0; round < CALIBRATION_ROUNDS; round++) {
    const before = performance.now();
    const kernel = kernelMonotonicMs();
    const after = performance.now();
    if (after - before < window) {
      window = after - before;
      offset = kernel - before;
    }
  }
  monotonicOffset = offset;
  useMonotonicClock(nativeMonotonicMs);
  let tightest = Infinity;
  for (let round = 0; round < CALIBRATION_ROUNDS; round++) {
    const before = nativeMonotonicMs();
    native().symbols.clock_gettime(CLOCK_REALTIME, retryBytes);
    tightest = Math.min(tightest, nativeMonotonicMs() - before);
  }
  clocksBracketMs = Math.max(CLOCKS_BRACKET_MIN_MS, 4 * tightest);
}
