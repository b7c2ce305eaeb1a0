/**
 * Timestamps as the `udp` wire carries them (docs/protocol.md, "timestamp"): whole seconds
 * since the Unix epoch and nanoseconds, two big-endian u32. Pure; no I/O.
 *
 * @module
 */

import { readUint32, writeUint32 } from "./_bytes.ts";

/** A point in time as the wire carries it: whole seconds since the Unix epoch and
 * nanoseconds (0..999,999,999). All zero means "not set". */
export interface Timestamp {
  /** Whole seconds since 1970-01-01T00:00:00Z (0..4,294,967,295). */
  seconds: number;
  /** Nanoseconds within the second (0..999,999,999). */
  nanos: number;
}

/** The "not set" timestamp. */
export const NO_TIMESTAMP: Timestamp = Object.freeze({ seconds: 0, nanos: 0 });

const NANOS_PER_MS = 1_000_000;
const MAX_NANOS = 999_999_999;
const MAX_U32 = 0xffff_ffff;

/**
 * The timestamp of a time in milliseconds since the Unix epoch (as `Date.now()` or
 * `performance.timeOrigin + performance.now()` give it), rounded to the nanosecond.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { timestampFromMs } from "./timestamp.ts";
 * assertEquals(timestampFromMs(1_700_000_000_123.5), { seconds: 1700000000, nanos: 123500000 });
 * ```
 */
export function timestampFromMs(ms: number): Timestamp {
  if (!(ms > 0)) return NO_TIMESTAMP;
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * NANOS_PER_MS);
  if (nanos > MAX_NANOS) {
    seconds += 1;
    nanos -= 1_000_000_000;
  }
  return { seconds: Math.min(seconds, MAX_U32), nanos };
}

/**
 * The difference `later − earlier` in milliseconds, computed without losing the nanoseconds.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { timestampDiffMs } from "./timestamp.ts";
 * const a = { seconds: 10, nanos: 999_000_000 };
 * const b = { seconds: 11, nanos: 1_000 };
 * strictEqual(timestampDiffMs(b, a), 1.001);
 * ```
 */
export function timestampDiffMs(later: Timestamp, earlier: Timestamp): number {
  // Integer nanoseconds stay exact for differences up to about 104 days.
  const nanos = (later.seconds - earlier.seconds) * 1_000_000_000 + (later.nanos - earlier.nanos);
  return nanos / NANOS_PER_MS;
}

/**
 * Whether a timestamp is set (not all zero).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { isTimestampSet, NO_TIMESTAMP } from "./timestamp.ts";
 * strictEqual(isTimestampSet(NO_TIMESTAMP), false);
 * strictEqual(isTimestampSet({ seconds: 0, nanos: 1 }), true);
 * ```
 */
export function isTimestampSet(timestamp: Timestamp): boolean {
  return timestamp.seconds !== 0 || timestamp.nanos !== 0;
}

/**
 * Writes a timestamp at `offset` of `bytes`: two big-endian u32, whole seconds since the Unix
 * epoch, then nanoseconds. Byte by byte: a DataView costs more to make (per datagram) than
 * eight stores.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { readTimestamp, writeTimestamp } from "./timestamp.ts";
 * const bytes = new Uint8Array(8);
 * writeTimestamp(bytes, 0, { seconds: 1, nanos: 2 });
 * assertEquals(readTimestamp(bytes, 0), { seconds: 1, nanos: 2 });
 * ```
 */
export function writeTimestamp(bytes: Uint8Array, offset: number, timestamp: Timestamp): void {
  writeUint32(bytes, offset, timestamp.seconds);
  writeUint32(bytes, offset + 4, timestamp.nanos);
}

/**
 * Reads the timestamp at `offset` of `bytes`; null when its nanoseconds are out of range.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readTimestamp } from "./timestamp.ts";
 * strictEqual(readTimestamp(new Uint8Array(8).fill(0xff), 0), null);
 * ```
 */
export function readTimestamp(bytes: Uint8Array, offset: number): Timestamp | null {
  if (!timestampValidAt(bytes, offset)) return null;
  return { seconds: readUint32(bytes, offset), nanos: readUint32(bytes, offset + 4) };
}

/**
 * Whether the timestamp at `offset` of `bytes` can be read (its nanoseconds are in range),
 * found without reading it into an object.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { timestampValidAt } from "./timestamp.ts";
 * strictEqual(timestampValidAt(new Uint8Array(8), 0), true);
 * strictEqual(timestampValidAt(new Uint8Array(8).fill(0xff), 0), false);
 * ```
 */
export function timestampValidAt(bytes: Uint8Array, offset: number): boolean {
  return readUint32(bytes, offset + 4) <= MAX_NANOS;
}
