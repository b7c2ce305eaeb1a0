/**
 * Hostile input: property-based tests of the codec (fast-check), and a bounded flood of
 * random and mutated datagrams at a running `udp serve`.
 */
import fc from "fast-check";
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import {
  decodeFrame,
  decodeStats,
  DELAYED_PAYLOAD_SIZE,
  encodeFrame,
  Flags,
  type Frame,
  frameOverhead,
  frameVerdict,
  HEADER_SIZE,
  MessageType,
  messageTypeName,
  newReplyReading,
  newRequestReading,
  NO_TIMESTAMP,
  readDelay,
  readPathReport,
  restampReply,
  TAG_SIZE,
  udpFormat,
} from "../lib/wire/mod.ts";
import { CHECK_SIZE, sealFrame } from "../lib/wire/protocol.ts";
import { Inbox, startServe } from "./helpers.ts";

const timestamp = fc.record({
  seconds: fc.nat({ max: 0xffff_ffff }),
  nanos: fc.nat({ max: 999_999_999 }),
}, { noNullPrototype: true });

const validFrame: fc.Arbitrary<Frame> = fc.record({
  version: fc.constant(1),
  type: fc.constantFrom(MessageType.PING, MessageType.PONG),
  flags: fc.nat({ max: 0xffff }),
  attempt: fc.nat({ max: 0xffff }),
  session: fc.nat({ max: 0xffff_ffff }),
  sequence: fc.nat({ max: 0xffff_ffff }),
  sentAt: timestamp,
  receivedAt: timestamp,
  repliedAt: timestamp,
  payload: fc.uint8Array({ maxLength: 2000 }),
}, { noNullPrototype: true }).map((frame) =>
  // A DELAYED PING needs room for its delay (else it is malformed: bad-delay-payload).
  frame.type === MessageType.PING && frame.payload.length < DELAYED_PAYLOAD_SIZE
    ? { ...frame, flags: frame.flags & ~Flags.DELAYED }
    : frame
).chain((frame) =>
  // An AUTHENTICATED frame carries a tag; any 16 bytes round-trip (checking it is not the
  // codec's job).
  (frame.flags & Flags.AUTHENTICATED) === 0
    ? fc.constant(frame)
    : fc.uint8Array({ minLength: TAG_SIZE, maxLength: TAG_SIZE }).map((tag) => ({ ...frame, tag }))
);

const KINDS = new Set(["frame", "raw", "corrupted", "malformed", "unsupported-version"]);

Deno.test("property: decodeFrame() never throws and classifies any bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const decoded = decodeFrame(bytes);
      assert(KINDS.has(decoded.kind));
      if (bytes.length < 4 || bytes[0] !== 0xda) strictEqual(decoded.kind, "raw");
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("property: a valid frame always round-trips, byte for byte", () => {
  fc.assert(
    fc.property(validFrame, (frame) => {
      const bytes = encodeFrame(frame);
      strictEqual(bytes.length, frameOverhead(frame.tag !== undefined) + frame.payload.length);
      const decoded = decodeFrame(bytes);
      assert(decoded.kind === "frame");
      assertEquals(decoded.frame, frame);
      assertEquals(encodeFrame(decoded.frame), bytes);
    }),
    { numRuns: 5_000 },
  );
});

Deno.test("property: every truncation of a valid frame is classified, never as a frame", () => {
  fc.assert(
    fc.property(validFrame, fc.nat(), (frame, cut) => {
      const bytes = encodeFrame(frame);
      const truncated = bytes.subarray(0, cut % bytes.length);
      const decoded = decodeFrame(truncated);
      assert(decoded.kind !== "frame");
      if (truncated.length < 4) strictEqual(decoded.kind, "raw");
      else if (truncated.length < 8) assert(decoded.kind === "malformed");
      else strictEqual(decoded.kind, "corrupted"); // its check no longer holds
    }),
    { numRuns: 5_000 },
  );
});

Deno.test("property: any one- to three-bit flip of a valid frame is corrupted, never taken", () => {
  fc.assert(
    fc.property(
      validFrame,
      fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 3 }),
      (frame, positions) => {
        const bytes = encodeFrame(frame).slice();
        const bits = new Set(positions.map((position) => position % (bytes.length * 8)));
        for (const bit of bits) bytes[bit >> 3] ^= 1 << (bit & 7);
        // CRC-32C catches every error of up to 3 bits at these lengths; a flipped magic bit
        // is told from data of another protocol by the same check.
        const decoded = decodeFrame(bytes);
        // Two or more bits off the magic: it may be data of another protocol (raw).
        const inMagic = [...bits].filter((bit) => bit < 32).length;
        if (inMagic <= 1) strictEqual(decoded.kind, "corrupted", [...bits].join(","));
        else assert(decoded.kind === "corrupted" || decoded.kind === "raw");
      },
    ),
    { numRuns: 5_000 },
  );
});

Deno.test("property: a frame stamped again is the frame encoded with that send time", () => {
  // restampReply patches the check over the 8 bytes that change: at every length (short ones
  // sealed in full, long ones patched) it must give what encoding with the new time gives.
  fc.assert(
    fc.property(validFrame, timestamp, (frame, repliedAt) => {
      const bytes = encodeFrame(frame).slice();
      restampReply(bytes, () => repliedAt);
      assertEquals(bytes, encodeFrame({ ...frame, repliedAt }));
    }),
    { numRuns: 5_000 },
  );
});

/** Frames of every type a byte can name, valid or not for it, and one byte or bit off them. */
const anyTypeDatagram: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(validFrame, fc.nat({ max: 12 }), fc.nat(), fc.nat({ max: 255 }), fc.boolean()).map(
    ([frame, type, at, byte, reseal]) => {
      const bytes = encodeFrame({ ...frame, type: type as MessageType }).slice();
      if (at % 3 === 0) bytes[at % bytes.length] = byte; // any field, or the check, changed
      if (reseal) sealFrame(bytes); // a valid check over whatever the bytes now say
      return bytes;
    },
  ),
);

Deno.test("property: the format reads requests and replies as decodeFrame() decodes them", () => {
  // readRequest and readReply read the bytes themselves once frameVerdict() has found them
  // valid: what they read must be what the whole decoder makes of the same datagram.
  const request = newRequestReading();
  const reply = newReplyReading();
  fc.assert(
    fc.property(anyTypeDatagram, (bytes) => {
      const decoded = decodeFrame(bytes);
      strictEqual(frameVerdict(bytes) === null, decoded.kind === "frame");
      udpFormat.readRequest(bytes, request);
      udpFormat.readReply(bytes, reply);
      if (decoded.kind !== "frame") {
        assert(request.kind !== "ping" && request.kind !== "stats" && request.kind !== "stream");
        assert(request.kind !== "unexpected");
        strictEqual(reply.kind, decoded.kind === "corrupted" ? "corrupted" : "foreign");
        return;
      }
      const frame = decoded.frame;
      const type = frame.type as number;
      const ping = type === MessageType.PING;
      const requests: Record<number, string> = {
        [MessageType.PING]: "ping",
        [MessageType.STATS_REQUEST]: "stats",
        [MessageType.STREAM_REQUEST]: "stream",
      };
      strictEqual(request.kind, requests[type] ?? "unexpected"); // replies are never answered
      assertEquals(request.header, {
        type: messageTypeName(type),
        session: frame.session,
        sequence: frame.sequence,
        attempt: frame.attempt,
        version: 1,
      });
      strictEqual(request.authenticated, (frame.flags & Flags.AUTHENTICATED) !== 0);
      assertEquals(request.sentAt, frame.sentAt);
      const delayed = ping && (frame.flags & Flags.DELAYED) !== 0;
      strictEqual(request.delayMs, delayed ? readDelay(frame.payload) : -1);
      strictEqual(request.oneWay, ping && (frame.flags & Flags.ONE_WAY) !== 0);
      strictEqual(reply.session, frame.session);
      strictEqual(reply.sequence, frame.sequence);
      strictEqual(reply.attempt, frame.attempt);
      assertEquals(reply.receivedAt, frame.receivedAt);
      assertEquals(reply.repliedAt, frame.repliedAt);
      const pathReported = type === MessageType.PONG && (frame.flags & Flags.PATH) !== 0;
      assertEquals(reply.path, pathReported ? readPathReport(frame.payload) : null);
      if (type === MessageType.STATS) assertEquals(reply.counts, decodeStats(frame.payload));
      if (type === MessageType.ERROR) strictEqual(reply.error?.code, frame.payload[0]);
    }),
    { numRuns: 20_000 },
  );
});

/** A datagram of a known class, so the server's counters can be checked against the truth. */
type FloodKind =
  | "raw"
  | "too-short"
  | "length-mismatch"
  | "unsupported-version"
  | "unknown-type"
  | "bad-timestamp"
  | "corrupted"
  | "ping";

function floodDatagram(kind: FloodKind, random: () => number): Uint8Array {
  const byte = () => Math.floor(random() * 256);
  const frame = (fields: Partial<Frame> = {}) =>
    encodeFrame({
      version: 1,
      type: MessageType.PING,
      flags: 0,
      attempt: 0,
      session: 7,
      sequence: 1,
      sentAt: NO_TIMESTAMP,
      receivedAt: NO_TIMESTAMP,
      repliedAt: NO_TIMESTAMP,
      payload: Uint8Array.from({ length: Math.floor(random() * 64) }, byte),
      ...fields,
    });
  switch (kind) {
    case "raw": {
      const bytes = Uint8Array.from({ length: Math.floor(random() * 200) }, byte);
      if (bytes.length > 0 && bytes[0] === 0xda) bytes[0] = 0;
      return bytes;
    }
    case "too-short": {
      // Intact (a good check), but shorter than the header and its check.
      const bytes = frame().slice(0, 8 + Math.floor(random() * (HEADER_SIZE + CHECK_SIZE - 8)));
      sealFrame(bytes);
      return bytes;
    }
    case "length-mismatch": {
      const bytes = frame();
      const longer = new Uint8Array(bytes.length + 1 + Math.floor(random() * 10));
      longer.set(bytes);
      sealFrame(longer);
      return longer;
    }
    case "corrupted": {
      const bytes = frame();
      bytes[Math.floor(random() * bytes.length)] ^= 1 << Math.floor(random() * 8);
      return bytes;
    }
    case "unsupported-version":
      return frame({ version: 2 + Math.floor(random() * 254), payload: new Uint8Array(0) });
    case "unknown-type":
      return frame({
        type: (9 + Math.floor(random() * 247)) as MessageType,
        payload: new Uint8Array(0),
      });
    case "bad-timestamp": {
      const bytes = frame();
      new DataView(bytes.buffer).setUint32(24, 1_000_000_000 + Math.floor(random() * 1e9));
      sealFrame(bytes);
      return bytes;
    }
    case "ping":
      return frame({ session: 0xbad, sequence: Math.floor(random() * 1000) });
  }
}

Deno.test("a flood of 100,000 random and mutated datagrams: udp serve stays up and counts them all", async () => {
  const { serve, port } = await startServe(["--raw", "ignore", "--json"]);
  const client = new Inbox();
  const target = { hostname: "127.0.0.1", port };
  let seed = 0x1234567;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const kinds: FloodKind[] = [
    "raw",
    "too-short",
    "length-mismatch",
    "unsupported-version",
    "unknown-type",
    "bad-timestamp",
    "corrupted",
    "ping",
  ];
  const sent: Record<FloodKind, number> = Object.fromEntries(kinds.map((k) => [k, 0])) as Record<
    FloodKind,
    number
  >;
  const total = 100_000;
  const batch = 100;
  let probes = 0;
  try {
    for (let i = 0; i < total;) {
      for (let j = 0; j < batch && i < total; j++, i++) {
        const kind = kinds[Math.floor(random() * kinds.length)];
        sent[kind]++;
        await client.send(floodDatagram(kind, random), target);
      }
      // A valid ping from a session of its own after every batch must be answered: the server
      // answers in order, so its PONG also says the batch before it was handled (and a socket
      // buffer never holds more than one batch).
      const sequence = probes;
      const marker = encodeFrame({
        version: 1,
        type: MessageType.PING,
        flags: 0,
        attempt: 0,
        session: 0xc0ffee,
        sequence,
        sentAt: NO_TIMESTAMP,
        receivedAt: NO_TIMESTAMP,
        repliedAt: NO_TIMESTAMP,
        payload: new Uint8Array(8),
      });
      // UDP may still lose the marker or its PONG: re-send it after a second without an
      // answer, as any client of this protocol must (each copy is counted).
      let answered = false;
      while (!answered) {
        await client.send(marker, target);
        probes++;
        const deadline = Date.now() + 1000;
        while (Date.now() < deadline) {
          const received = await client.nextWithin(deadline - Date.now());
          if (received === null) break;
          const decoded = decodeFrame(received.data);
          if (decoded.kind !== "frame" || decoded.frame.type !== MessageType.PONG) continue;
          if (decoded.frame.session === 0xc0ffee && decoded.frame.sequence === sequence) {
            answered = true;
            break;
          }
        }
      }
    }
  } finally {
    await client.close();
  }
  const stopped = await serve.stop("SIGTERM");
  strictEqual(stopped.code, 0);
  const stats = JSON.parse(stopped.stdout.trimEnd().split("\n").at(-1) as string);
  strictEqual(stats.received, total + probes);
  assertEquals(stats.kinds, {
    ping: sent.ping + probes,
    corrupted: sent.corrupted,
    raw: sent.raw,
    malformed: sent["too-short"] + sent["length-mismatch"] + sent["unknown-type"] +
      sent["bad-timestamp"],
    unsupported_version: sent["unsupported-version"],
    unexpected: 0,
    refused: 0,
    stats: 0,
    stream: 0,
  });
  // --json keys are snake_case (lib/output.ts): "too-short" in the text is too_short here.
  assertEquals(stats.malformed, {
    too_short: sent["too-short"],
    length_mismatch: sent["length-mismatch"],
    unknown_type: sent["unknown-type"],
    bad_timestamp: sent["bad-timestamp"],
    bad_error_payload: 0,
    bad_stats_payload: 0,
    bad_delay_payload: 0,
    bad_stream_payload: 0,
  });
  // Replies: every PING, and an ERROR to each unsupported version or unknown type (48-byte
  // requests are too short for a 51-byte ERROR, so those get none).
  strictEqual(stats.replied, sent.ping + probes);
  assertEquals(stats.errors, {});
});
