/**
 * The PING flags PATH and DELAYED (docs/protocol.md, "The path report" and "Delayed replies"):
 * the report's and the delay's codec against the spec's vectors, the udp format's encoding,
 * reading and answering of them, and every malformed or short case.
 */

import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual,
  throws,
} from "node:assert/strict";
import fc from "fast-check";
import {
  DELAYED_PAYLOAD_SIZE,
  emptySessionCounts,
  Flags,
  HEADER_SIZE,
  makePong,
  MAX_DELAY_MS,
  newReplyReading,
  newRequestReading,
  PATH_REPORT_SIZE,
  type PathReport,
  type ProbeRequest,
  readDelay,
  readPathReport,
  timestampFromMs,
  udpFormat,
  writeDelay,
  writePathReport,
} from "../lib/wire/mod.ts";
import { sealFrame } from "../lib/wire/protocol.ts";
import { decodeFrame } from "../lib/wire/frame_decoding.ts";
import { importKey } from "../lib/wire/auth.ts";
import { docBlocks } from "./helpers.ts";

interface ReportVector {
  name: string;
  report?: PathReport;
  delayMs?: number;
  frame: { flags: number; payload: string };
  hex: string;
}

const spec = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));
const vectors = docBlocks(spec, "json vector").map((block) => JSON.parse(block) as ReportVector);
const bytesOf = (hex: string) => Uint8Array.fromHex(hex.replace(/\s+/g, ""));

Deno.test("docs/protocol.md has path-report and delayed vectors", () => {
  assertEquals(vectors.filter((v) => v.report !== undefined).map((v) => v.name), [
    "pong-path-ipv4",
    "pong-path-ipv6",
    "pong-delayed",
  ]);
  assertEquals(vectors.filter((v) => v.delayMs !== undefined).map((v) => v.name), [
    "ping-delayed",
    "pong-delayed",
  ]);
});

for (const vector of vectors) {
  if (vector.report !== undefined) {
    const report = vector.report;
    Deno.test(`readPathReport() reads spec vector '${vector.name}'`, () => {
      const decoded = decodeFrame(bytesOf(vector.hex));
      assert(decoded.kind === "frame");
      assertEquals(readPathReport(decoded.frame.payload), report);
    });
    Deno.test(`writePathReport() writes spec vector '${vector.name}'`, () => {
      const payload = bytesOf(vector.frame.payload);
      const written = payload.slice();
      writePathReport(written, report.ttl ?? -1, report.tos ?? -1, {
        hostname: report.address!,
        port: report.port!,
      });
      assertEquals(written.toHex(), payload.toHex());
    });
  }
  if (vector.delayMs !== undefined) {
    Deno.test(`readDelay() reads spec vector '${vector.name}'`, () => {
      strictEqual(readDelay(bytesOf(vector.frame.payload)), vector.delayMs);
      assert((vector.frame.flags & Flags.DELAYED) !== 0);
    });
  }
}

Deno.test("a path report of nothing known (zeros, or an older reflector's copy) is no report", () => {
  strictEqual(readPathReport(new Uint8Array(PATH_REPORT_SIZE)), null);
  strictEqual(readPathReport(new Uint8Array(PATH_REPORT_SIZE - 1).fill(7)), null);
  // Unknown bits alone say nothing either; a family other than 4 or 6 gives no address.
  const odd = new Uint8Array(PATH_REPORT_SIZE);
  odd[0] = 0x80;
  strictEqual(readPathReport(odd), null);
  odd[0] = 0x04;
  odd[3] = 5;
  assertEquals(readPathReport(odd), { ttl: null, tos: null, address: null, port: null });
});

Deno.test("writePathReport(): IPv4-mapped sources are IPv4, names and unknowns are left out", () => {
  const payload = new Uint8Array(PATH_REPORT_SIZE).fill(0xee);
  writePathReport(payload, 255, 0x03, { hostname: "::ffff:10.1.2.3", port: 1 });
  assertEquals(payload.toHex(), "07ff030400010a010203" + "00".repeat(14));
  writePathReport(payload, -1, -1, { hostname: "not-an-address", port: 9 });
  strictEqual(readPathReport(payload), null);
  assertEquals(payload.toHex(), "00".repeat(PATH_REPORT_SIZE));
  writePathReport(payload, -1, 0, { hostname: "::1", port: 65535 });
  assertEquals(readPathReport(payload), { ttl: null, tos: 0, address: "::1", port: 65535 });
});

Deno.test("path reports round-trip any TTL, TOS, address and port (property)", () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) =>
    parts.join(".")
  );
  const v6 = fc.ipV6();
  fc.assert(
    fc.property(
      fc.integer({ min: -1, max: 255 }),
      fc.integer({ min: -1, max: 255 }),
      fc.oneof(v4, v6),
      fc.nat(65535),
      (ttl, tos, address, port) => {
        const payload = new Uint8Array(PATH_REPORT_SIZE);
        writePathReport(payload, ttl, tos, { hostname: address, port });
        const report = readPathReport(payload);
        assert(report !== null);
        strictEqual(report.ttl, ttl < 0 ? null : ttl);
        strictEqual(report.tos, tos < 0 ? null : tos);
        strictEqual(report.port, port);
        // Read back, the address writes the same bytes again (canonical text of the same one).
        const again = new Uint8Array(PATH_REPORT_SIZE);
        writePathReport(again, ttl, tos, { hostname: report.address!, port });
        assertEquals(again, payload);
        strictEqual(payload[22] | payload[23], 0);
      },
    ),
  );
});

const SENT = { seconds: 1_700_000_000, nanos: 0 };

function request(fields: Partial<ProbeRequest> = {}): ProbeRequest {
  return {
    type: "ping",
    session: 7,
    sequence: 3,
    attempt: 0,
    sentAt: SENT,
    padding: new Uint8Array(56),
    authenticated: false,
    ...fields,
  };
}

function context(ttl: number, tos: number, hostname = "192.0.2.9", port = 40_001) {
  const now = timestampFromMs(Date.now());
  return {
    receivedAt: now,
    repliedAt: now,
    counts: null,
    session: emptySessionCounts(),
    ttl,
    tos,
    from: { hostname, port },
    local: { hostname: "192.0.2.1", port: 9999 },
    replyTos: -1,
    replyTosSettable: false,
  };
}

Deno.test("udp format: a PATH PING's PONG carries the report, same length, nothing else changed", () => {
  const padding = Uint8Array.from({ length: 56 }, (_, i) => i + 1);
  const ping = udpFormat.encodeRequest(request({ path: true, padding }));
  const decoded = decodeFrame(ping);
  assert(decoded.kind === "frame");
  strictEqual(decoded.frame.flags, Flags.PATH);
  // The report's room goes out as zeros whatever the padding was; the rest is the padding.
  assertEquals(decoded.frame.payload.subarray(0, PATH_REPORT_SIZE), new Uint8Array(24));
  assertEquals(decoded.frame.payload.subarray(PATH_REPORT_SIZE), padding.subarray(24));
  const reading = newRequestReading();
  udpFormat.readRequest(ping, reading);
  assertEquals([reading.kind, reading.delayMs], ["ping", -1]);
  const length = ping.length;
  const pong = udpFormat.answer(ping, reading, context(61, 0xb9))!;
  strictEqual(pong.length, length);
  const reply = newReplyReading();
  udpFormat.readReply(pong, reply);
  strictEqual(reply.kind, "reply");
  assertEquals(reply.path, { ttl: 61, tos: 0xb9, address: "192.0.2.9", port: 40_001 });
  assertEquals(pong.subarray(HEADER_SIZE + 24, length - 4), padding.subarray(24));
});

Deno.test("udp format: PATH needs 24 bytes of padding; with fewer, a plain PONG", () => {
  const short = udpFormat.encodeRequest(request({ path: true, padding: new Uint8Array(23) }));
  const decoded = decodeFrame(short);
  assert(decoded.kind === "frame");
  strictEqual(decoded.frame.flags, 0); // the sender does not ask what cannot fit
  // A PING that asks anyway (another sender) gets its PONG without a report, never longer.
  const asking = short.slice();
  asking[7] |= Flags.PATH;
  sealFrame(asking);
  const reading = newRequestReading();
  udpFormat.readRequest(asking, reading);
  strictEqual(reading.kind, "ping");
  const before = asking.slice(HEADER_SIZE, asking.length - 4);
  const pong = udpFormat.answer(asking, reading, context(64, 0))!;
  strictEqual(pong.length, short.length);
  assertEquals(pong.slice(HEADER_SIZE, pong.length - 4), before);
  const reply = newReplyReading();
  udpFormat.readReply(pong, reply);
  assertEquals([reply.kind, reply.path], ["reply", null]);
});

Deno.test("udp format: a PONG without a report (an older reflector's) reads as none", () => {
  const ping = udpFormat.encodeRequest(request({ path: true }));
  const pong = makePong(ping, ping.slice(), SENT, SENT); // copies the zeros back
  const reply = newReplyReading();
  udpFormat.readReply(pong, reply);
  assertEquals([reply.kind, reply.path], ["reply", null]);
  // An echo server returns the PING itself: no report either.
  udpFormat.readReply(ping, reply);
  assertEquals([reply.kind, reply.path], ["echo", null]);
});

Deno.test("udp format: DELAYED PINGs carry their delay; too little padding is refused", () => {
  const padding = new Uint8Array(DELAYED_PAYLOAD_SIZE);
  const ping = udpFormat.encodeRequest(request({ path: true, delayMs: 7000, padding }));
  strictEqual(ping.length, 76);
  const decoded = decodeFrame(ping);
  assert(decoded.kind === "frame");
  strictEqual(decoded.frame.flags, Flags.PATH | Flags.DELAYED);
  strictEqual(readDelay(decoded.frame.payload), 7000);
  const reading = newRequestReading();
  udpFormat.readRequest(ping, reading);
  assertEquals([reading.kind, reading.delayMs], ["ping", 7000]);
  // A reading is reused: the next PING, not delayed, says so.
  udpFormat.readRequest(udpFormat.encodeRequest(request()), reading);
  strictEqual(reading.delayMs, -1);
  throws(
    () => udpFormat.encodeRequest(request({ delayMs: 1, padding: new Uint8Array(27) })),
    /DELAYED PING needs 28 bytes of padding/,
  );
  // STATS requests are never delayed nor reported.
  const stats = decodeFrame(
    udpFormat.encodeRequest(request({ type: "stats", path: true, delayMs: 5 })),
  );
  assert(stats.kind === "frame");
  strictEqual(stats.frame.flags, 0);
});

Deno.test("udp format: a DELAYED PING without room for its delay is malformed", () => {
  for (const size of [0, 4, 24, 27]) {
    const bytes = udpFormat.encodeRequest(request({ padding: new Uint8Array(size) }));
    bytes[7] |= Flags.DELAYED;
    sealFrame(bytes);
    const reading = newRequestReading();
    udpFormat.readRequest(bytes, reading);
    assertEquals([reading.kind, reading.reason], ["malformed", "bad-delay-payload"], `${size}`);
    strictEqual(reading.delayMs, -1);
  }
  assert(udpFormat.malformedReasons.includes("bad-delay-payload"));
});

Deno.test("udp format: any delay is read as written, the reflector's bound is not the codec's", () => {
  const padding = new Uint8Array(DELAYED_PAYLOAD_SIZE);
  for (const delayMs of [0, MAX_DELAY_MS, MAX_DELAY_MS + 1, 0xffff_ffff]) {
    const reading = newRequestReading();
    udpFormat.readRequest(udpFormat.encodeRequest(request({ delayMs, padding })), reading);
    strictEqual(reading.delayMs, delayMs);
  }
  const payload = new Uint8Array(DELAYED_PAYLOAD_SIZE);
  writeDelay(payload, 0x01020304);
  assertEquals(payload.subarray(24).toHex(), "01020304");
});

Deno.test("udp format: an authenticated PATH PING's PONG carries the report under a good tag", async () => {
  const key = await importKey(new Uint8Array(32).fill(3));
  const ping = udpFormat.encodeRequest(request({ path: true, authenticated: true }));
  await udpFormat.sign(ping, key);
  assert(await udpFormat.verify(ping, key));
  const reading = newRequestReading();
  udpFormat.readRequest(ping, reading);
  const pong = udpFormat.answer(ping, reading, context(200, 4, "2001:db8::5", 7))!;
  await udpFormat.sign(pong, key);
  assert(await udpFormat.verify(pong, key));
  const reply = newReplyReading();
  udpFormat.readReply(pong, reply);
  assertEquals(reply.path, { ttl: 200, tos: 4, address: "2001:db8::5", port: 7 });
  strictEqual(pong.length, 56 + 64);
});
