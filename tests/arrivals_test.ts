/**
 * How a one-way run learns what arrived: the arrival tracker (gaps, late, duplicates, its
 * window's edges), the arrival counts in a STATS (docs/protocol.md, "Arrival counts": the spec's
 * vectors, a reflector that predates them, a request without room), and the ONE_WAY flag as a
 * sender lays it out and a reflector reads it.
 */

import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { ArrivalTracker } from "../lib/stats/mod.ts";
import {
  decodeFrame,
  decodeStats,
  emptySessionCounts,
  Flags,
  makeStats,
  newRequestReading,
  readArrivalCounts,
  STATS_ARRIVALS_PAYLOAD_SIZE,
  STATS_PAYLOAD_SIZE,
  udpFormat,
} from "../lib/wire/mod.ts";
import { docBlocks } from "./helpers.ts";

const spec = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));
const vectors = new Map(
  docBlocks(spec, "json vector").map((block) => {
    const vector = JSON.parse(block) as { name: string; hex: string };
    return [vector.name, Uint8Array.fromHex(vector.hex.replace(/\s+/g, ""))];
  }),
);
const sentAt = { seconds: 1_700_000_000, nanos: 123_500_000 };

function counts(tracker: ArrivalTracker) {
  const { sequenceEnd, arrivals, gaps, late, duplicates } = tracker.snapshot();
  return { sequenceEnd, arrivals, gaps, late, duplicates };
}

Deno.test("ArrivalTracker: in order, a gap filled late, duplicates, nothing before the first", () => {
  const tracker = new ArrivalTracker();
  assertEquals(counts(tracker), { sequenceEnd: 0, arrivals: 0, gaps: 0, late: 0, duplicates: 0 });
  assertEquals(tracker.snapshot().firstMs, null);
  for (const sequence of [3, 4, 8, 5, 5, 8, 9, 6]) tracker.observe(sequence, 1, 10, sequence);
  // 0..2 skipped by the first arrival, 6 and 7 by 8; 5 and 6 came late; 5 and 8 twice.
  assertEquals(counts(tracker), { sequenceEnd: 10, arrivals: 8, gaps: 6, late: 2, duplicates: 2 });
  assertEquals([tracker.snapshot().firstMs, tracker.snapshot().lastMs], [3, 6]);
  strictEqual(tracker.snapshot().bytes, 80);
});

Deno.test("ArrivalTracker: at and beyond its window, and a jump that clears it", () => {
  const tracker = new ArrivalTracker(64);
  for (let sequence = 0; sequence < 200; sequence++) tracker.observe(sequence, 0, 1, 0);
  tracker.observe(200 - 64, 0, 1, 0); // the oldest the window holds: a duplicate
  tracker.observe(200 - 65, 0, 1, 0); // beyond it: cannot tell, counted late
  assertEquals(counts(tracker), {
    sequenceEnd: 200,
    arrivals: 202,
    gaps: 0,
    late: 1,
    duplicates: 1,
  });
  tracker.observe(1000, 0, 1, 0); // a jump of more than the window forgets it all
  tracker.observe(999, 0, 1, 0); // skipped, now filled: late, not a duplicate of 199 + k·64
  tracker.observe(1000 - 63, 0, 1, 0);
  assertEquals(counts(tracker), {
    sequenceEnd: 1001,
    arrivals: 205,
    gaps: 800,
    late: 3,
    duplicates: 1,
  });
});

Deno.test("ArrivalTracker: RFC 3550 jitter of the transit, whatever the clocks' offset", () => {
  const near = new ArrivalTracker();
  const far = new ArrivalTracker();
  [10, 26, 10, 26].forEach((transit, sequence) => {
    near.observe(sequence, transit, 1, 0);
    far.observe(sequence, transit + 3_600_000, 1, 0);
  });
  strictEqual(near.snapshot().jitterMs, far.snapshot().jitterMs);
  strictEqual(near.snapshot().jitterMs, 1 + (16 - 1) / 16 + (16 - (1 + 15 / 16)) / 16);
});

Deno.test("STATS arrival counts: the spec's request and reply, field by field", () => {
  const request = vectors.get("stats-request-arrivals")!;
  strictEqual(
    udpFormat.encodeRequest({
      type: "stats",
      session: 0x01020304,
      sequence: 1000,
      attempt: 0,
      sentAt,
      padding: new Uint8Array(udpFormat.statsPadding),
      authenticated: false,
    }).toHex(),
    request.toHex(),
  );
  const arrivals = {
    sequenceEnd: 1000,
    gaps: 3,
    late: 1,
    duplicates: 1,
    jitterNs: 12_500,
    bytes: 998 * 1400,
    firstArrival: { seconds: 1_700_000_000, nanos: 124_250_000 },
    lastArrival: { seconds: 1_700_000_010, nanos: 124_000_000 },
  };
  const reply = makeStats(
    request.slice(),
    { ...emptySessionCounts(), received: 998, arrivals },
    { seconds: 1_700_000_010, nanos: 224_250_000 },
    { seconds: 1_700_000_010, nanos: 224_750_000 },
  );
  strictEqual(reply?.toHex(), vectors.get("stats-arrivals")!.toHex());
  const decoded = decodeFrame(reply!);
  strictEqual(decoded.kind, "frame");
  if (decoded.kind !== "frame") return;
  assertEquals(decodeStats(decoded.frame.payload)?.arrivals, arrivals);
});

Deno.test("STATS arrival counts: an older reflector's STATS and a short request have none", () => {
  // What an older reflector sends back: the eight counts written, the ff bytes left as they were.
  const request = vectors.get("stats-request-arrivals")!.slice();
  const old = makeStats(request, emptySessionCounts(), sentAt, sentAt)!;
  const decoded = decodeFrame(old);
  strictEqual(decoded.kind === "frame" && decodeStats(decoded.frame.payload)?.arrivals, undefined);
  strictEqual(readArrivalCounts(new Uint8Array(STATS_ARRIVALS_PAYLOAD_SIZE - 1)), null);
  // A request with room for the eight counts only gets them only: never a longer reply.
  const short = udpFormat.encodeRequest({
    type: "stats",
    session: 1,
    sequence: 0,
    attempt: 0,
    sentAt,
    padding: new Uint8Array(STATS_PAYLOAD_SIZE),
    authenticated: false,
  });
  const arrivals = readArrivalCounts(new Uint8Array(STATS_ARRIVALS_PAYLOAD_SIZE)); // all zero
  const reply = makeStats(short.slice(), { ...emptySessionCounts(), arrivals }, sentAt, sentAt)!;
  strictEqual(reply.length, short.length);
  const read = decodeFrame(reply);
  strictEqual(read.kind === "frame" && decodeStats(read.frame.payload)?.arrivals, undefined);
});

Deno.test("ONE_WAY: the sender's flag, the spec's vector, and the reflector's reading of it", () => {
  const ping = udpFormat.encodeRequest({
    type: "ping",
    session: 0x01020304,
    sequence: 5,
    attempt: 0,
    sentAt,
    padding: Uint8Array.fromHex("aabbccdd"),
    authenticated: false,
    oneWay: true,
  });
  strictEqual(ping.toHex(), vectors.get("ping-one-way")!.toHex());
  const reading = newRequestReading();
  udpFormat.readRequest(ping, reading);
  assertEquals([reading.kind, reading.oneWay], ["ping", true]);
  const plain = vectors.get("ping")!;
  udpFormat.readRequest(plain, reading);
  assertEquals([reading.kind, reading.oneWay], ["ping", false]);
  strictEqual(Flags.ONE_WAY, 0x0008);
});
