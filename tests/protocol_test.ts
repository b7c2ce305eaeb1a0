import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual as assertStrictEquals,
  throws as assertThrows,
} from "node:assert/strict";
import {
  checkFrame,
  decodeErrorDetail,
  decodeFrame,
  decodeStats,
  DELAYED_PAYLOAD_SIZE,
  emptySessionCounts,
  encodeError,
  encodeFrame,
  ErrorCode,
  Flags,
  type Frame,
  frameOverhead,
  isTimestampSet,
  makePong,
  makeStats,
  maxPayloadSize,
  MessageType,
  messageTypeName,
  NO_TIMESTAMP,
  peekSentAt,
  STATS_PAYLOAD_SIZE,
  timestampDiffMs,
  timestampFromMs,
} from "../lib/wire/mod.ts";
import { sealFrame } from "../lib/wire/protocol.ts";
import { computeTag, importKey, signFrame, verifyFrame } from "../lib/wire/auth.ts";
import { crc32c } from "../lib/wire/crc32c.ts";
import { docBlocks } from "./helpers.ts";

const SENT = { seconds: 1_700_000_000, nanos: 123_500_000 };

interface Vector {
  name: string;
  key?: string;
  frame: Omit<Frame, "payload" | "type" | "tag"> & { type: number; payload: string; tag?: string };
  hex: string;
}

interface Classification {
  hex: string;
  kind: string;
  reason?: string;
  version?: number;
}

const spec = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));
const fencedBlocks = (tag: string) => docBlocks(spec, tag);

function bytesOf(hex: string): Uint8Array {
  return Uint8Array.fromHex(hex.replace(/\s+/g, ""));
}

function frameOf(vector: Vector): Frame {
  const { tag, ...fields } = vector.frame;
  const frame: Frame = {
    ...fields,
    type: fields.type as Frame["type"],
    payload: bytesOf(fields.payload),
  };
  if (tag !== undefined) frame.tag = bytesOf(tag);
  return frame;
}

function ping(fields: Partial<Frame> = {}): Frame {
  return {
    version: 1,
    type: MessageType.PING,
    flags: 0,
    attempt: 0,
    session: 0x01020304,
    sequence: 5,
    sentAt: SENT,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: new Uint8Array(8),
    ...fields,
  };
}

const vectors = fencedBlocks("json vector").map((block) => JSON.parse(block) as Vector);
const classifications = fencedBlocks("json classify").flatMap((block) =>
  JSON.parse(block) as Classification[]
);

Deno.test("docs/protocol.md holds the test vectors", () => {
  assertEquals(vectors.map((v) => v.name), [
    "ping",
    "pong",
    "extremes",
    "error-unsupported-version",
    "ping-authenticated",
    "pong-authenticated",
    "stats-request",
    "stats",
    "ping-path",
    "pong-path-ipv4",
    "pong-path-ipv6",
    "ping-delayed",
    "pong-delayed",
    "ping-one-way",
    "stats-request-arrivals",
    "stats-arrivals",
    "stream-request",
    "stream-grant-cookie",
    "stream-request-cookie",
    "stream-grant",
    "stream-data",
  ]);
  assert(classifications.length >= 10);
});

for (const vector of vectors) {
  Deno.test(`encodeFrame() produces spec vector '${vector.name}'`, () => {
    assertEquals(encodeFrame(frameOf(vector)).toHex(), vector.hex.replace(/\s+/g, ""));
  });

  Deno.test(`decodeFrame() reads spec vector '${vector.name}'`, () => {
    const decoded = decodeFrame(bytesOf(vector.hex));
    assert(decoded.kind === "frame", `classified as ${decoded.kind}`);
    const { tag, ...rest } = decoded.frame;
    const readable = { ...rest, payload: rest.payload.toHex() };
    assertEquals(tag === undefined ? readable : { ...readable, tag: tag.toHex() }, vector.frame);
  });

  if (vector.key !== undefined) {
    Deno.test(`spec vector '${vector.name}' carries the right HMAC-SHA-256 tag`, async () => {
      const key = await importKey(bytesOf(vector.key!));
      const bytes = bytesOf(vector.hex);
      assertEquals((await computeTag(bytes, key)).toHex(), vector.frame.tag);
      assert(await verifyFrame(bytes, key));
      bytes[5] ^= 1;
      assert(!(await verifyFrame(bytes, key)));
    });
  }
}

for (const expected of classifications) {
  Deno.test(`decodeFrame() classifies ${expected.hex || "(empty)"} as ${expected.reason ?? expected.kind}`, () => {
    const decoded = decodeFrame(bytesOf(expected.hex));
    assertEquals(decoded.kind, expected.kind);
    if (decoded.kind === "malformed") {
      assertEquals(decoded.reason, expected.reason);
      assert(decoded.detail.length > 0);
    }
    if (decoded.kind === "unsupported-version") assertEquals(decoded.version, expected.version);
  });
}

Deno.test("makePong() of the spec's PING gives the spec's PONG", () => {
  const [pingVector, pongVector] = vectors;
  const request = bytesOf(pingVector.hex);
  const reply = makePong(
    request,
    new Uint8Array(request.length),
    { seconds: 1700000000, nanos: 124_250_000 },
    { seconds: 1700000000, nanos: 124_750_000 },
  );
  assertEquals(reply.toHex(), pongVector.hex.replace(/\s+/g, ""));
});

Deno.test("makePong() works in place and keeps the request's length and padding", () => {
  const payload = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
  const request = encodeFrame(ping({ payload }));
  const copy = request.slice();
  const reply = makePong(request, request, { seconds: 10, nanos: 1 }, { seconds: 20, nanos: 2 });
  assertStrictEquals(reply.buffer, request.buffer);
  assertEquals(reply.length, copy.length);
  const decoded = decodeFrame(reply);
  assert(decoded.kind === "frame");
  assertEquals(decoded.frame.type, MessageType.PONG);
  assertEquals(decoded.frame.receivedAt, { seconds: 10, nanos: 1 });
  assertEquals(decoded.frame.repliedAt, { seconds: 20, nanos: 2 });
  assertEquals(decoded.frame.payload, payload);
  assertEquals(decoded.frame.sentAt, SENT);
});

Deno.test("encodeError() builds the spec's ERROR and refuses to amplify", () => {
  const errorVector = vectors.find((v) => v.name === "error-unsupported-version")!;
  const request = { attempt: 0, session: 0x01020304, sequence: 5, sentAt: SENT };
  const detail = { code: ErrorCode.UNSUPPORTED_VERSION, values: [1] };
  const reply = encodeError(
    request,
    detail,
    52,
    { seconds: 1700000000, nanos: 124_250_000 },
    { seconds: 1700000000, nanos: 124_750_000 },
  );
  assertEquals(reply?.toHex(), errorVector.hex.replace(/\s+/g, ""));
  assertEquals(encodeError(request, detail, 51, SENT, SENT)?.length, 51);
  assertStrictEquals(encodeError(request, detail, 50, SENT, SENT), null);
});

Deno.test("decodeErrorDetail() reads code and values and rejects short payloads", () => {
  assertEquals(decodeErrorDetail(Uint8Array.of(2, 2, 1, 7)), { code: 2, values: [1, 7] });
  assertEquals(decodeErrorDetail(Uint8Array.of(1, 0)), { code: 1, values: [] });
  assertStrictEquals(decodeErrorDetail(Uint8Array.of(1)), null);
  assertStrictEquals(decodeErrorDetail(Uint8Array.of(1, 3, 1, 2)), null);
});

Deno.test("encodeFrame() / decodeFrame() round-trip every type, size class and extreme", () => {
  const sizes = [0, 1, 56, 1400, 65507 - frameOverhead(true)];
  const types = [MessageType.PING, MessageType.PONG];
  for (const size of sizes) {
    for (const type of types) {
      for (const extremes of [false, true]) {
        const frame = ping({
          type,
          payload: Uint8Array.from({ length: size }, (_, i) => (i * 7) & 255),
          attempt: extremes ? 0xffff : 0,
          session: extremes ? 0xffff_ffff : 0,
          sequence: extremes ? 0xffff_ffff : 0,
          // Every flag, but DELAYED where the payload has no room for its delay (malformed).
          flags: !extremes
            ? 0
            : type === MessageType.PING && size < DELAYED_PAYLOAD_SIZE
            ? 0xffff & ~Flags.DELAYED
            : 0xffff,
          ...(extremes ? { tag: new Uint8Array(16).fill(0xee) } : {}),
          sentAt: extremes ? { seconds: 0xffff_ffff, nanos: 999_999_999 } : NO_TIMESTAMP,
          receivedAt: extremes ? { seconds: 0, nanos: 1 } : NO_TIMESTAMP,
          repliedAt: extremes ? { seconds: 0xffff_ffff, nanos: 0 } : NO_TIMESTAMP,
        });
        const bytes = encodeFrame(frame);
        assertEquals(bytes.length, frameOverhead(extremes) + size);
        const decoded = decodeFrame(bytes);
        assert(decoded.kind === "frame");
        assertEquals(decoded.frame, frame);
      }
    }
  }
});

Deno.test("timestampFromMs() rounds to the nanosecond and carries into seconds", () => {
  assertEquals(timestampFromMs(1999.9999999), { seconds: 2, nanos: 0 });
  assertEquals(timestampFromMs(1_700_000_000_123.5), SENT);
  assertEquals(timestampFromMs(0), NO_TIMESTAMP);
  assertEquals(timestampFromMs(-5), NO_TIMESTAMP);
  const micro = timestampFromMs(1_700_000_000_000.001);
  assertEquals(micro.seconds, 1_700_000_000);
  assert(Math.abs(micro.nanos - 1000) < 500, `${micro.nanos}`);
});

Deno.test("timestampDiffMs() keeps nanoseconds across a second boundary", () => {
  assertEquals(
    timestampDiffMs({ seconds: 5, nanos: 1 }, { seconds: 4, nanos: 999_999_999 }),
    0.000002,
  );
  assertEquals(timestampDiffMs(SENT, SENT), 0);
  assert(!isTimestampSet(NO_TIMESTAMP) && isTimestampSet({ seconds: 0, nanos: 1 }));
});

Deno.test("encodeFrame() writes into a given buffer and rejects oversize frames", () => {
  const buffer = new Uint8Array(200);
  const bytes = encodeFrame(ping(), { into: buffer });
  assertStrictEquals(bytes.buffer, buffer.buffer);
  assertEquals(bytes.length, frameOverhead(false) + 8);
  assertThrows(
    () => encodeFrame(ping({ payload: new Uint8Array(65536 - frameOverhead(false)) })),
    RangeError,
  );
  assertThrows(() => encodeFrame(ping(), { into: new Uint8Array(10) }), RangeError);
});

Deno.test("decodeFrame() returns the invariants of a frame of another version", () => {
  const bytes = encodeFrame(ping({ version: 7, attempt: 3, sequence: 9 }));
  const decoded = decodeFrame(bytes);
  assertEquals(decoded, {
    kind: "unsupported-version",
    version: 7,
    invariants: { type: 1, attempt: 3, session: 0x01020304, sequence: 9 },
  });
  const truncated = bytes.slice(0, bytes.length - 1);
  sealFrame(truncated); // intact, but its length field no longer says its length
  const decodedTruncated = decodeFrame(truncated);
  assertEquals(
    decodedTruncated.kind === "unsupported-version" && decodedTruncated.invariants,
    null,
  );
});

Deno.test("decodeFrame() reports the length mismatch precisely", () => {
  const bytes = encodeFrame(ping()).slice(0, 53);
  sealFrame(bytes);
  const decoded = decodeFrame(bytes);
  assert(decoded.kind === "malformed");
  assertEquals(decoded.reason, "length-mismatch");
  assertEquals(decoded.detail, "length field says 56 bytes but the datagram has 53");
  // Cut short on the way, it fails its check first: damaged, not a sender's bug.
  assertEquals(decodeFrame(encodeFrame(ping()).subarray(0, 53)).kind, "corrupted");
});

Deno.test("decodeFrame() never throws on random bytes, truncations or bit flips", () => {
  // A fixed-seed generator keeps failures reproducible.
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const valid = encodeFrame(ping());
  const kinds = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = Uint8Array.from({ length: Math.floor(next() * 80) }, () => Math.floor(next() * 256));
      if (next() < 0.5) bytes.set(valid.subarray(0, Math.min(4, bytes.length)));
    } else if (i % 3 === 1) {
      bytes = valid.subarray(0, Math.floor(next() * (valid.length + 1)));
    } else {
      bytes = valid.slice();
      bytes[Math.floor(next() * bytes.length)] ^= 1 << Math.floor(next() * 8);
    }
    const decoded = decodeFrame(bytes);
    kinds.add(decoded.kind === "malformed" ? decoded.reason : decoded.kind);
  }
  for (const kind of ["raw", "frame", "too-short", "corrupted"]) {
    assert(kinds.has(kind), `no input was classified as ${kind}`);
  }
});

Deno.test("crc32c() gives RFC 3720's test vectors and the standard check value", () => {
  const hex = (bytes: Uint8Array) => crc32c(bytes).toString(16).padStart(8, "0");
  assertEquals(hex(new TextEncoder().encode("123456789")), "e3069283");
  assertEquals(hex(new Uint8Array(32)), "8a9136aa");
  assertEquals(hex(new Uint8Array(32).fill(0xff)), "62a8ab43");
  assertEquals(hex(Uint8Array.from({ length: 32 }, (_, i) => i)), "46dd794e");
  assertEquals(hex(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), "113fdb5c");
  assertEquals(hex(new Uint8Array(0)), "00000000");
  // Every length around the 16-byte rounds agrees with a byte-at-a-time reference.
  const reference = (bytes: Uint8Array) => {
    let crc = 0xffffffff;
    for (const byte of bytes) {
      crc ^= byte;
      for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
    return (crc ^ 0xffffffff) >>> 0;
  };
  for (let length = 0; length < 70; length++) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 151 + 7) & 255);
    assertStrictEquals(crc32c(bytes), reference(bytes), `length ${length}`);
    // Up to an end, as the frame check reads all but its last 4 bytes.
    assertStrictEquals(crc32c(bytes, length >> 1), reference(bytes.subarray(0, length >> 1)));
  }
  // Both sides of the length from which words are read through a DataView, also from an odd
  // offset into a larger buffer, as a received datagram's view is.
  for (const length of [255, 256, 257, 271, 1444, 1445, 9000]) {
    const inside = Uint8Array.from({ length: length + 3 }, (_, i) => (i * 151 + 7) & 255);
    const bytes = inside.subarray(3);
    assertStrictEquals(crc32c(bytes), reference(bytes.slice()), `length ${length} at 3`);
  }
});

Deno.test("decodeFrame(): every single-bit flip of every spec vector is corrupted, never a frame", () => {
  for (const vector of vectors) {
    const original = bytesOf(vector.hex);
    for (let bit = 0; bit < original.length * 8; bit++) {
      const bytes = original.slice();
      bytes[bit >> 3] ^= 1 << (bit & 7);
      const decoded = decodeFrame(bytes);
      assertEquals(decoded.kind, "corrupted", `${vector.name}, bit ${bit}: ${decoded.kind}`);
    }
  }
});

Deno.test("makePong(), makeStats() and signFrame() leave a frame whose check holds", async () => {
  const pingBytes = encodeFrame(ping());
  assert(checkFrame(makePong(pingBytes, new Uint8Array(100), SENT, SENT)));
  const request = encodeFrame(ping({
    type: MessageType.STATS_REQUEST,
    payload: new Uint8Array(STATS_PAYLOAD_SIZE),
  }));
  assert(checkFrame(makeStats(request, emptySessionCounts(), SENT, SENT)!));
  const signed = encodeFrame(ping({ flags: 1 }));
  await signFrame(signed, await importKey(new Uint8Array(32).fill(3)));
  assert(checkFrame(signed));
  const decoded = decodeFrame(signed);
  assert(decoded.kind === "frame" && decoded.frame.tag?.some((byte) => byte !== 0));
});

Deno.test("peekSentAt() reads the invariant send time of any version", () => {
  assertEquals(peekSentAt(encodeFrame(ping({ version: 9 }))), SENT);
  assertEquals(peekSentAt(new Uint8Array(27)), NO_TIMESTAMP);
});

Deno.test("messageTypeName() and maxPayloadSize()", () => {
  assertEquals(messageTypeName(1), "PING");
  assertEquals(messageTypeName(3), "ERROR");
  assertEquals(messageTypeName(42), "type 42");
  assertEquals(maxPayloadSize("ipv4"), 65459);
  assertEquals(maxPayloadSize("ipv6"), 65479);
  assertEquals(maxPayloadSize("ipv4", true), 65443);
});

Deno.test("makeStats() of the spec's STATS_REQUEST gives the spec's STATS, never longer", () => {
  const request = bytesOf(vectors.find((v) => v.name === "stats-request")!.hex);
  const counts = {
    ...emptySessionCounts(),
    received: 998,
    replied: 997,
    refusedRateLimit: 3,
    kernelDrops: 12,
    corrupted: 1,
  };
  const reply = makeStats(
    request.slice(),
    counts,
    { seconds: 1700000000, nanos: 124_250_000 },
    { seconds: 1700000000, nanos: 124_750_000 },
  );
  const stats = vectors.find((v) => v.name === "stats")!;
  assertEquals(reply?.toHex(), stats.hex.replace(/\s+/g, ""));
  assertEquals(decodeStats(bytesOf(stats.frame.payload)), counts);
  // One byte short of the counts' room: no reply at all, never a longer one.
  const short = encodeFrame(ping({
    type: MessageType.STATS_REQUEST,
    payload: new Uint8Array(STATS_PAYLOAD_SIZE - 1),
  }));
  assertStrictEquals(makeStats(short, counts, SENT, SENT), null);
  assertStrictEquals(decodeStats(new Uint8Array(STATS_PAYLOAD_SIZE - 1)), null);
});
