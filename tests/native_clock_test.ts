/**
 * How the native sockets read the two clocks they put the kernel's arrival stamps on the
 * monotonic one by (_clock.ts), with a scripted monotonic clock: a preemption between two
 * readings is the test's, not this machine's.
 */

import { ok as assert, strictEqual } from "node:assert/strict";
import { loadNativeUdp } from "../lib/net/native/mod.ts";
import {
  batchReadAt,
  CLOCKS_BRACKET_MIN_MS,
  CLOCKS_TRIES,
  clocksBracketMs,
  readClocks,
} from "../lib/net/native/_clock.ts";

const nativeOnly = { ignore: !loadNativeUdp() };

/** A monotonic clock that gives `readings` in turn, and how many it gave. */
function scripted(readings: number[]): { now: () => number; reads: () => number } {
  let read = 0;
  return { now: () => readings[read++], reads: () => read };
}

Deno.test(
  "readClocks: a tight bracket is kept at once, its end the batch's moment",
  nativeOnly,
  () => {
    const clock = scripted([100, 100 + clocksBracketMs / 4]);
    readClocks(clock.now);
    strictEqual(clock.reads(), 2);
    strictEqual(batchReadAt, 100 + clocksBracketMs / 4);
  },
);

Deno.test(
  "clocksBracketMs: 2 µs at least, measured once the native clock is in use",
  nativeOnly,
  () => {
    assert(clocksBracketMs >= CLOCKS_BRACKET_MIN_MS, String(clocksBracketMs));
    assert(Number.isFinite(clocksBracketMs), String(clocksBracketMs));
  },
);

Deno.test("readClocks: a bracket preempted for 1.2 ms is read again", nativeOnly, () => {
  // Its midpoint would have put every arrival of the batch 0.6 ms early.
  const clock = scripted([100, 101.2, 101.3, 101.3005]);
  readClocks(clock.now);
  strictEqual(clock.reads(), 4);
  strictEqual(batchReadAt, 101.3005);
});

Deno.test(
  "readClocks: at most CLOCKS_TRIES brackets, then the tightest one's end",
  nativeOnly,
  () => {
    const widths = [100, 50, 30, 80].map((times) => times * clocksBracketMs); // all too wide
    strictEqual(widths.length, CLOCKS_TRIES);
    const readings = widths.flatMap((width, i) => [10 * i, 10 * i + width]);
    const clock = scripted([...readings, 1000, 1000]); // never read: the tries are over
    readClocks(clock.now);
    strictEqual(clock.reads(), 2 * CLOCKS_TRIES);
    strictEqual(batchReadAt, 20 + widths[2]);
  },
);
