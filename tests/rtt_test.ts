import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { NO_TIMESTAMP, type Timestamp } from "../lib/wire/mod.ts";
import { measureRoundTrip } from "../lib/stats/rtt.ts";

const at = (ms: number): Timestamp => ({ seconds: 1_700_000_000, nanos: ms * 1_000_000 });

Deno.test("measureRoundTrip: the reflector's hold is left out of the RTT", () => {
  assertEquals(measureRoundTrip(100, 103, 103.5, at(10), at(12.5)), {
    totalMs: 3,
    serverMs: 2.5,
    rttMs: 0.5,
  });
  // Held for the whole round trip: a network time of 0, not below.
  assertEquals(measureRoundTrip(100, 103, 104, at(10), at(13)), {
    totalMs: 3,
    serverMs: 3,
    rttMs: 0,
  });
});

Deno.test("measureRoundTrip: nothing is left out when the reflector says nothing", () => {
  const none = { totalMs: 2, serverMs: null, rttMs: 2 };
  assertEquals(measureRoundTrip(100, 102, 102, NO_TIMESTAMP, NO_TIMESTAMP), none);
  assertEquals(measureRoundTrip(100, 102, 102, at(10), NO_TIMESTAMP), none);
  assertEquals(measureRoundTrip(100, 102, 102, NO_TIMESTAMP, at(10)), none);
});

Deno.test("measureRoundTrip: nor when what it says cannot be (unordered, or longer than the trip)", () => {
  const none = { totalMs: 2, serverMs: null, rttMs: 2 };
  assertEquals(measureRoundTrip(100, 102, 102, at(10), at(9.999)), none);
  assertEquals(measureRoundTrip(100, 102, 102, at(10), at(12.001)), none);
});

Deno.test("measureRoundTrip: an arrival stamped before the send counts as arriving when handled", () => {
  assertEquals(measureRoundTrip(100, 99, 101.5, NO_TIMESTAMP, NO_TIMESTAMP), {
    totalMs: 1.5,
    serverMs: null,
    rttMs: 1.5,
  });
});
