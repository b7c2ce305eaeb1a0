/**
 * The STAMP codec (lib/wire/stamp*.ts) against docs/stamp.md: the test vectors it holds (each
 * checked independently when it was written, see the document), and the rules it states for
 * timestamps, error estimates, malformed datagrams and TLVs.
 */
import fc from "fast-check";
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual as assertStrictEquals,
} from "node:assert/strict";
import {
  type AnswerContext,
  decodeErrorEstimate,
  emptySessionCounts,
  encodeErrorEstimate,
  importKey,
  newReplyReading,
  newRequestReading,
  NTP_UNIX_OFFSET,
  readStampTimestamp,
  type ReplyReading,
  type RequestReading,
  STAMP_AUTHENTICATED,
  STAMP_UNAUTHENTICATED,
  stampFormat,
  type StampOptions,
  TAI_UTC_OFFSET,
  type Timestamp,
  type TimestampFormat,
  TlvFlag,
  writeStampTimestamp,
} from "../lib/wire/mod.ts";
import { docBlocks } from "./helpers.ts";

interface VectorContext {
  receivedAt: Timestamp;
  repliedAt: Timestamp;
  ttl: number;
  tos: number;
  from: { hostname: string; port: number };
  local: { hostname: string; port: number };
  replyTosSettable: boolean;
  received: number;
  replied: number;
}

interface Vector {
  name: string;
  format?: StampOptions;
  key?: string;
  request?: { session: number; sequence: number; sentAt: Timestamp; padding: number };
  answers?: string;
  context?: VectorContext;
  madeBy?: string;
  hex: string;
  replyTos?: number;
  requestReading?: unknown;
  reading?: unknown;
}

interface Classification {
  name: string;
  authenticated: boolean;
  ptp: boolean;
  hex: string;
  kind: string;
  reason?: string;
  sequence?: number;
}

const spec = await Deno.readTextFile(new URL("../docs/stamp.md", import.meta.url));
const fencedBlocks = (tag: string) => docBlocks(spec, tag);

const vectors = fencedBlocks("json stamp-vector").map((block) => JSON.parse(block) as Vector);
const classifications = fencedBlocks("json stamp-classify").flatMap((block) =>
  JSON.parse(block) as Classification[]
);
const byName = new Map(vectors.map((vector) => [vector.name, vector]));

function vector(name: string): Vector {
  const found = byName.get(name);
  if (found === undefined) throw new Error(`no vector '${name}' in docs/stamp.md`);
  return found;
}

function bytesOf(hex: string): Uint8Array {
  return Uint8Array.fromHex(hex.replace(/\s+/g, ""));
}

function hexOf(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** The options of the vector's maker, or of the test packet it answers. */
function formatOf(v: Vector): StampOptions {
  return v.format ?? formatOf(vector(v.answers!));
}

/** The sender that reads a reply vector: the one whose test packet it answers. */
function readerOf(v: Vector): StampOptions {
  return formatOf(vector(v.answers!));
}

const KEY = await importKey(Uint8Array.from({ length: 32 }, (_, i) => i));
const T2 = { seconds: 1_700_000_000, nanos: 124_250_000 };
const T3 = { seconds: 1_700_000_000, nanos: 124_750_000 };
const REFLECTOR: StampOptions = { clock: { synchronized: true, errorSeconds: 0.000016 } };

function contextOf(c: Partial<VectorContext> = {}): AnswerContext {
  const session = emptySessionCounts();
  session.received = c.received ?? 1;
  session.replied = c.replied ?? 0;
  return {
    receivedAt: c.receivedAt ?? T2,
    repliedAt: c.repliedAt ?? T3,
    counts: null,
    session,
    ttl: c.ttl ?? 250,
    tos: c.tos ?? 0,
    from: c.from ?? { hostname: "192.0.2.1", port: 50_000 },
    local: c.local ?? { hostname: "198.51.100.7", port: 862 },
    replyTosSettable: c.replyTosSettable ?? false,
    replyTos: -1,
  };
}

function readRequest(options: StampOptions, bytes: Uint8Array): RequestReading {
  const reading = newRequestReading();
  stampFormat(options).readRequest(bytes, reading);
  return reading;
}

function requestJson(reading: RequestReading): unknown {
  if (reading.kind !== "ping") return { kind: reading.kind, reason: reading.reason };
  return {
    kind: reading.kind,
    session: reading.header!.session,
    sequence: reading.header!.sequence,
    authenticated: reading.authenticated,
    sentAt: reading.sentAt,
  };
}

function readReply(options: StampOptions, bytes: Uint8Array): ReplyReading {
  const reading = newReplyReading();
  stampFormat(options).readReply(bytes, reading);
  return reading;
}

function replyJson(reading: ReplyReading): unknown {
  if (reading.kind === "foreign") return { kind: reading.kind, reason: reading.reason };
  return {
    kind: reading.kind,
    session: reading.session,
    sequence: reading.sequence,
    receivedAt: reading.receivedAt,
    repliedAt: reading.repliedAt,
    ...(reading.kind === "reply" ? { stamp: structuredClone(reading.stamp) } : {}),
  };
}

/** The reflector's answer to `bytes` (a copy), or null, and the context it left. */
function reflect(
  bytes: Uint8Array,
  options: StampOptions = REFLECTOR,
  context: AnswerContext = contextOf(),
): { reply: Uint8Array | null; context: AnswerContext } {
  const format = stampFormat(options);
  const request = bytes.slice();
  const reading = newRequestReading();
  format.readRequest(request, reading);
  return { reply: format.answer(request, reading, context), context };
}

function tlv(flags: number, type: number, value: Uint8Array | number[]): Uint8Array {
  const bytes = new Uint8Array(4 + value.length);
  bytes[0] = flags;
  bytes[1] = type;
  new DataView(bytes.buffer).setUint16(2, value.length);
  bytes.set(value, 4);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** The first vector's 44-byte base packet followed by `tlvs`. */
function withTlvs(...tlvs: Uint8Array[]): Uint8Array {
  return concat(bytesOf(vector("request").hex), ...tlvs);
}

// ---------------------------------------------------------------------------------------------
// The vectors

Deno.test("docs/stamp.md holds the test vectors", () => {
  assertEquals(vectors.map((v) => v.name), [
    "request",
    "reply-stateless",
    "reply-stateful",
    "request-ptp",
    "reply-ptp",
    "request-authenticated",
    "reply-authenticated",
    "request-tlvs",
    "reply-tlvs",
    "request-authenticated-tlvs",
    "reply-authenticated-tlvs",
    "request-unknown-tlvs",
    "reply-unknown-tlvs",
    "request-not-tlvs-type0",
    "reply-not-tlvs-type0",
    "request-not-tlvs-overrun",
    "reply-not-tlvs-overrun",
    "twamp-light-request",
    "reply-twamp-light",
    "twampy-reply",
    "rfc8762-reply",
    "too-short",
    "twamp-light-request-14",
  ]);
  assert(classifications.length >= 7);
  for (const v of vectors) {
    assert(v.request !== undefined || v.context !== undefined || v.madeBy !== undefined, v.name);
  }
});

for (const v of vectors) {
  if (v.request !== undefined) {
    Deno.test(`encodeRequest() produces spec vector '${v.name}'`, async () => {
      const format = stampFormat(formatOf(v));
      const { session, sequence, sentAt, padding } = v.request!;
      const bytes = format.encodeRequest({
        type: "ping",
        session,
        sequence,
        attempt: 0,
        sentAt,
        padding: new Uint8Array(padding),
        authenticated: formatOf(v).authenticated ?? false,
      });
      if (v.key !== undefined) await format.sign(bytes, KEY);
      assertEquals(hexOf(bytes), hexOf(bytesOf(v.hex)));
    });

    Deno.test(`spec vector '${v.name}' sent back unchanged reads as an echo`, () => {
      const reading = readReply(formatOf(v), bytesOf(v.hex));
      assertEquals(reading.kind, "echo");
      assertEquals(reading.sequence, v.request!.sequence);
      assertEquals(reading.session, v.request!.session);
    });
  }

  if (v.requestReading !== undefined) {
    Deno.test(`readRequest() reads spec vector '${v.name}'`, () => {
      const options = { authenticated: formatOf(v).authenticated ?? false };
      const reading = readRequest(options, bytesOf(v.hex));
      assertEquals(requestJson(reading), v.requestReading);
      if (reading.kind !== "ping") {
        assertStrictEquals(reflect(bytesOf(v.hex), options).reply, null);
      }
    });
  }

  if (v.context !== undefined) {
    Deno.test(`answer() to '${v.answers}' produces spec vector '${v.name}'`, async () => {
      const options = formatOf(v);
      const request = bytesOf(vector(v.answers!).hex);
      const format = stampFormat(options);
      if (v.key !== undefined) assert(await format.verify(request, KEY));
      const reading = newRequestReading();
      format.readRequest(request, reading);
      const context = contextOf(v.context);
      const length = request.length;
      const reply = format.answer(request, reading, context);
      assert(reply !== null);
      // In place, and exactly as long as the request.
      assertStrictEquals(reply.buffer, request.buffer);
      assertStrictEquals(reply.length, length);
      if (v.key !== undefined) await format.sign(reply, KEY);
      assertEquals(hexOf(reply), hexOf(bytesOf(v.hex)));
      assertStrictEquals(context.replyTos, v.replyTos);
    });
  }

  if (v.reading !== undefined) {
    Deno.test(`readReply() reads spec vector '${v.name}'`, () => {
      assertEquals(replyJson(readReply(readerOf(v), bytesOf(v.hex))), v.reading);
    });
  }

  if (v.key !== undefined) {
    Deno.test(`spec vector '${v.name}' carries the right HMACs, and only it`, async () => {
      const format = stampFormat(formatOf(v));
      const bytes = bytesOf(v.hex);
      assert(await format.verify(bytes, KEY));
      // Signing it again from a zeroed HMAC gives the same bytes.
      const copy = bytes.slice();
      copy.fill(0, 96, 112);
      await format.sign(copy, KEY);
      assertEquals(hexOf(copy), hexOf(bytes));
      // Any byte changed, in the base or in the TLVs, and it no longer verifies.
      for (const at of [0, 3, 16, 23, 26, 50, 95, 96, 111, bytes.length - 1]) {
        const tampered = bytes.slice();
        tampered[at] ^= 0x01;
        assert(!(await format.verify(tampered, KEY)), `byte ${at} changed`);
      }
      const other = await importKey(new Uint8Array(32).fill(7));
      assert(!(await format.verify(bytes, other)));
    });
  }
}

for (const c of classifications) {
  Deno.test(`readReply() reads '${c.name}' as ${c.reason ?? c.kind}`, () => {
    const options: StampOptions = {
      authenticated: c.authenticated,
      timestamps: c.ptp ? "ptp" : "ntp",
    };
    const reading = readReply(options, bytesOf(c.hex));
    assertEquals(reading.kind, c.kind);
    if (c.reason !== undefined) assertEquals(reading.reason, c.reason);
    if (c.sequence !== undefined) assertEquals(reading.sequence, c.sequence);
  });
}

Deno.test("restamp() writes T3 and nothing else: the reply a later send time would have built", () => {
  for (const options of [REFLECTOR, { ...REFLECTOR, timestamps: "ptp" as const }]) {
    const later = { seconds: T3.seconds + 1, nanos: 250_000_000 };
    const { reply } = reflect(withTlvs(), options);
    const { reply: expected } = reflect(withTlvs(), options, contextOf({ repliedAt: later }));
    assert(reply !== null && expected !== null);
    stampFormat(options).restamp(reply, () => later);
    assertEquals(hexOf(reply), hexOf(expected));
    assertEquals(readReply(options, reply).repliedAt, later);
  }
});

Deno.test("the layouts are docs/stamp.md's offset tables", () => {
  assertEquals({ ...STAMP_UNAUTHENTICATED }, {
    base: 44,
    sequence: 0,
    timestamp: 4,
    errorEstimate: 12,
    ssid: 14,
    receiveTimestamp: 16,
    senderSequence: 24,
    senderTimestamp: 28,
    senderErrorEstimate: 36,
    senderTtl: 40,
    hmac: -1,
  });
  assertEquals({ ...STAMP_AUTHENTICATED }, {
    base: 112,
    sequence: 0,
    timestamp: 16,
    errorEstimate: 24,
    ssid: 26,
    receiveTimestamp: 32,
    senderSequence: 48,
    senderTimestamp: 64,
    senderErrorEstimate: 72,
    senderTtl: 80,
    hmac: 96,
  });
});

Deno.test("encodeRequest() writes into a given buffer, from offset 0", () => {
  const v = vector("request-tlvs");
  const buffer = new Uint8Array(500).fill(0xee);
  const { session, sequence, sentAt, padding } = v.request!;
  const bytes = stampFormat(formatOf(v)).encodeRequest({
    type: "ping",
    session,
    sequence,
    attempt: 0,
    sentAt,
    padding: new Uint8Array(padding),
    authenticated: false,
  }, buffer);
  assertStrictEquals(bytes.buffer, buffer.buffer);
  assertStrictEquals(bytes.byteOffset, 0);
  assertEquals(hexOf(bytes), hexOf(bytesOf(v.hex)));
});

// ---------------------------------------------------------------------------------------------
// Timestamps

function written(timestamp: Timestamp, format: TimestampFormat): [number, number] {
  const view = new DataView(new ArrayBuffer(8));
  writeStampTimestamp(view, 0, timestamp, format);
  return [view.getUint32(0), view.getUint32(4)];
}

function read(high: number, low: number, format: TimestampFormat): Timestamp | null {
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, high);
  view.setUint32(4, low);
  return readStampTimestamp(view, 0, format);
}

Deno.test("NTP timestamps: the epoch, the fraction's edges and the era wrap", () => {
  assertEquals(NTP_UNIX_OFFSET, 2_208_988_800);
  // Expected words computed independently: round(nanos * 2^32 / 1e9), exactly.
  const cases: [Timestamp, number, number][] = [
    [{ seconds: 0, nanos: 0 }, 2_208_988_800, 0],
    [{ seconds: 0, nanos: 1 }, 2_208_988_800, 4],
    [{ seconds: 0, nanos: 500_000_000 }, 2_208_988_800, 0x8000_0000],
    [{ seconds: 1_700_000_000, nanos: 123_500_000 }, 0xe8fe_6f80, 0x1f9d_b22d],
    [{ seconds: 1_700_000_000, nanos: 999_999_999 }, 0xe8fe_6f80, 0xffff_fffc],
    // The last second of era 0, and the first of era 1 (2036-02-07T06:28:16Z): seconds wrap.
    [{ seconds: 2_085_978_495, nanos: 999_999_999 }, 0xffff_ffff, 0xffff_fffc],
    [{ seconds: 2_085_978_496, nanos: 0 }, 0, 0],
    [{ seconds: 0xffff_ffff, nanos: 0 }, 2_208_988_799, 0],
  ];
  for (const [timestamp, high, low] of cases) {
    assertEquals(written(timestamp, "ntp"), [high, low], JSON.stringify(timestamp));
    assertEquals(read(high, low, "ntp"), timestamp, JSON.stringify(timestamp));
  }
  // A fraction that rounds up to a whole second carries into the seconds.
  assertEquals(read(2_208_988_800, 0xffff_ffff, "ntp"), { seconds: 1, nanos: 0 });
  assertEquals(read(0xffff_ffff, 0xffff_ffff, "ntp"), { seconds: 2_085_978_496, nanos: 0 });
  // twampy's fraction (0.12425 * 0xFFFFFFFF, truncated) reads as the same nanosecond.
  assertEquals(read(0xe8fe_6f80, 0x1fce_d916, "ntp"), T2);
});

Deno.test("PTP timestamps are TAI: UTC + 37 s, nanoseconds as they are", () => {
  assertEquals(TAI_UTC_OFFSET, 37);
  const cases: [Timestamp, number, number][] = [
    [{ seconds: 0, nanos: 0 }, 37, 0],
    [{ seconds: 1_700_000_000, nanos: 123_500_000 }, 1_700_000_037, 123_500_000],
    [{ seconds: 1_700_000_000, nanos: 999_999_999 }, 1_700_000_037, 999_999_999],
    [{ seconds: 0xffff_ffff - 37, nanos: 1 }, 0xffff_ffff, 1],
    // The low 32 bits of the seconds wrap.
    [{ seconds: 0xffff_ffff, nanos: 0 }, 36, 0],
  ];
  for (const [timestamp, high, low] of cases) {
    assertEquals(written(timestamp, "ptp"), [high, low], JSON.stringify(timestamp));
    assertEquals(read(high, low, "ptp"), timestamp, JSON.stringify(timestamp));
  }
  assertStrictEquals(read(37, 1_000_000_000, "ptp"), null);
  assertStrictEquals(read(37, 0xffff_ffff, "ptp"), null);
});

Deno.test("every timestamp survives a round trip in both formats (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff_ffff }),
      fc.integer({ min: 0, max: 999_999_999 }),
      fc.constantFrom<TimestampFormat>("ntp", "ptp"),
      (seconds, nanos, format) => {
        const [high, low] = written({ seconds, nanos }, format);
        assertEquals(read(high, low, format), { seconds, nanos });
      },
    ),
    { numRuns: 5_000 },
  );
});

// ---------------------------------------------------------------------------------------------
// Error estimates

Deno.test("error estimates: unknown is the largest, S and Z as asked", () => {
  const unknown = { synchronized: false, ptp: false, errorSeconds: null };
  assertStrictEquals(encodeErrorEstimate(unknown), 0x3fff);
  assertStrictEquals(encodeErrorEstimate({ ...unknown, ptp: true }), 0x7fff);
  assertStrictEquals(encodeErrorEstimate({ ...unknown, synchronized: true }), 0xbfff);
  for (const errorSeconds of [NaN, Infinity, -1, 1e30, 255 * 2 ** 31 * 2]) {
    assertStrictEquals(
      encodeErrorEstimate({ ...unknown, errorSeconds }),
      0x3fff,
      `${errorSeconds}`,
    );
  }
  const known = (errorSeconds: number) => encodeErrorEstimate({ ...unknown, errorSeconds });
  // Expected words computed independently (docs/stamp.md): the smallest Scale, rounded up.
  assertStrictEquals(known(0), 0x0001);
  assertStrictEquals(known(2 ** -32), 0x0001);
  assertStrictEquals(known(1e-6), 0x0587);
  assertStrictEquals(known(0.000016), 0x0987);
  assertStrictEquals(known(255 * 2 ** 31), 0x3fff);
  assertStrictEquals(
    encodeErrorEstimate({ synchronized: true, ptp: true, errorSeconds: 0.000016 }),
    0xc987,
  );
  assertEquals(decodeErrorEstimate(0x3fff), {
    synchronized: false,
    ptp: false,
    errorSeconds: 255 * 2 ** 31,
  });
  assertEquals(decodeErrorEstimate(0xc987), {
    synchronized: true,
    ptp: true,
    errorSeconds: 135 * 2 ** -23,
  });
  // Multiplier 0, which RFC 4656 forbids, reads as an error of 0.
  assertStrictEquals(decodeErrorEstimate(0x0a00).errorSeconds, 0);
});

Deno.test("an error estimate never understates the error, and is tight (property)", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 255 * 2 ** 31, noNaN: true }),
      fc.boolean(),
      fc.boolean(),
      (errorSeconds, synchronized, ptp) => {
        const word = encodeErrorEstimate({ synchronized, ptp, errorSeconds });
        const back = decodeErrorEstimate(word);
        assertStrictEquals(back.synchronized, synchronized);
        assertStrictEquals(back.ptp, ptp);
        assert(word & 0xff, "Multiplier 0");
        assert(back.errorSeconds >= errorSeconds, `${errorSeconds} -> ${back.errorSeconds}`);
        // At most one Multiplier step over, and a step is under 1/127 of the error (or 2^-32 s).
        const step = 2 ** (((word >> 8) & 0x3f) - 32);
        assert(back.errorSeconds - errorSeconds <= step);
        assert(step === 2 ** -32 || step < errorSeconds / 127, `${errorSeconds}: step ${step}`);
      },
    ),
    { numRuns: 5_000 },
  );
});

// ---------------------------------------------------------------------------------------------
// Malformed datagrams, and what is a reply

Deno.test("every length under 41 (authenticated: 112) is too-short, and gets no answer", () => {
  const unauthenticated = bytesOf(vector("reply-tlvs").hex);
  const authenticated = bytesOf(vector("reply-authenticated-tlvs").hex);
  for (
    const [options, bytes, base] of [[{}, unauthenticated, 41], [
      { authenticated: true },
      authenticated,
      112,
    ]] as const
  ) {
    for (let length = 0; length < base; length++) {
      const prefix = bytes.slice(0, length);
      const reading = readRequest(options, prefix);
      assertEquals([reading.kind, reading.reason], ["malformed", "too-short"], `${length}`);
      assert(reading.detail.includes(String(length)));
      assertStrictEquals(reflect(prefix, { ...REFLECTOR, ...options }).reply, null, `${length}`);
    }
    assertStrictEquals(readRequest(options, bytes.slice(0, base)).kind, "ping");
  }
});

Deno.test("a 41- to 43-byte TWAMP-light request gets the reply of its length, up to the TTL", () => {
  const request = bytesOf(vector("twamp-light-request").hex);
  const whole = reflect(request.slice(), REFLECTOR).reply!;
  for (const length of [41, 42, 43]) {
    const reply = reflect(request.slice(0, length), REFLECTOR).reply!;
    assertStrictEquals(reply.length, length);
    // Every field up to the Sender TTL is the 44-byte reply's, the MBZ bytes after it cut.
    assertEquals([...reply], [...whole.subarray(0, length)]);
  }
});

Deno.test("a reply shorter than 38 bytes (authenticated: 112) is foreign", () => {
  const twampy = bytesOf(vector("twampy-reply").hex);
  for (let length = 0; length < 38; length++) {
    const reading = readReply({}, twampy.slice(0, length));
    assertEquals([reading.kind, reading.reason], ["foreign", "malformed"], `${length}`);
  }
  for (let length = 38; length <= twampy.length; length++) {
    const reading = readReply({}, twampy.slice(0, length));
    assertEquals(reading.kind, "reply", `${length}`);
    // Shorter than the base: no Sender TTL, read as not known. twampy's is 0 anyway.
    assertStrictEquals(reading.stamp?.ttl, null);
  }
  const authenticated = bytesOf(vector("reply-authenticated").hex);
  for (let length = 0; length < 112; length++) {
    const reading = readReply({ authenticated: true }, authenticated.slice(0, length));
    assertEquals([reading.kind, reading.reason], ["foreign", "malformed"], `${length}`);
  }
});

Deno.test("a reply with PTP nanoseconds of 10^9 or more, in any timestamp, is foreign", () => {
  const reply = bytesOf(vector("reply-ptp").hex);
  assertStrictEquals(readReply({ timestamps: "ptp" }, reply).kind, "reply");
  for (const at of [4, 16, 28]) {
    for (const nanos of [1_000_000_000, 0xffff_ffff]) {
      const bad = reply.slice();
      new DataView(bad.buffer).setUint32(at + 4, nanos);
      const reading = readReply({ timestamps: "ptp" }, bad);
      assertEquals([reading.kind, reading.reason], ["foreign", "malformed"], `${at}: ${nanos}`);
    }
  }
  // The same nanoseconds in an NTP timestamp are a fraction like any other.
  const ntp = bytesOf(vector("reply-stateless").hex);
  new DataView(ntp.buffer).setUint32(20, 0xffff_ffff);
  assertStrictEquals(readReply({}, ntp).kind, "reply");
});

Deno.test("replyFits(): 38 bytes up to the request's length; authenticated 112 up to it", () => {
  const plain = stampFormat();
  assert(plain.replyFits(44, 44) && plain.replyFits(44, 38) && plain.replyFits(1000, 44));
  assert(!plain.replyFits(44, 37) && !plain.replyFits(44, 45) && !plain.replyFits(44, 0));
  const authenticated = stampFormat({ authenticated: true });
  assert(authenticated.replyFits(112, 112) && authenticated.replyFits(200, 112));
  assert(!authenticated.replyFits(112, 111) && !authenticated.replyFits(112, 113));
});

Deno.test("a reply with SSID 0 names no session; the stateful sequence counts from 0", () => {
  const { reply } = reflect(
    bytesOf(vector("twamp-light-request").hex),
    { ...REFLECTOR, stateful: true },
    contextOf({ received: 1, ttl: -1 }),
  );
  assert(reply !== null);
  const view = new DataView(reply.buffer);
  assertStrictEquals(view.getUint32(0), 0);
  assertStrictEquals(view.getUint16(14), 0);
  // A TTL that is not known is written as 0, and read as not known.
  assertStrictEquals(reply[40], 0);
  const reading = readReply({}, reply);
  assertStrictEquals(reading.kind, "reply");
  assertStrictEquals(reading.session, null);
  assertStrictEquals(reading.stamp?.ttl, null);
});

// ---------------------------------------------------------------------------------------------
// TLVs

Deno.test("bytes after the base that are no TLV sequence come back unchanged", () => {
  const dm = tlv(0x80, 5, new Uint8Array(12));
  const tails = [
    Uint8Array.of(0x80),
    Uint8Array.of(0x80, 1, 0),
    tlv(0x80, 1, [1, 2, 3]).subarray(0, 6), // Length 3, 2 bytes of value
    tlv(0, 0, [1, 2, 3, 4]), // type 0
    concat(dm, tlv(0x80, 0, [])), // a good TLV, then a type 0
    concat(dm, Uint8Array.of(0x80, 4)), // a good TLV, then half a header
    concat(dm, tlv(0x80, 1, [9, 9]).subarray(0, 5)), // a good TLV, then one overrunning
    new Uint8Array(100), // zero padding (TWAMP-light)
  ];
  for (const tail of tails) {
    const request = withTlvs(tail);
    const { reply } = reflect(request);
    assert(reply !== null);
    assertEquals(hexOf(reply.subarray(44)), hexOf(tail));
    const reading = readReply({}, reply);
    assertEquals(reading.stamp?.tlvFlags, { unrecognized: 0, malformed: 0, integrity: 0 });
    assertStrictEquals(reading.stamp?.tlvsUntouched, false);
    assertStrictEquals(reading.stamp?.direct, null);
  }
});

Deno.test("a TLV of a type the reflector does not fill comes back with U, unchanged", () => {
  const value = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
  for (let type = 7; type <= 255; type++) {
    if (type === 8) continue;
    for (const flags of [0x80, 0x00, 0x60]) {
      const sent = tlv(flags, type, value);
      const { reply } = reflect(withTlvs(sent));
      assert(reply !== null);
      const back = reply.subarray(44);
      assertStrictEquals(back[0], TlvFlag.U, `type ${type}`);
      assertEquals(hexOf(back.subarray(1)), hexOf(sent.subarray(1)));
    }
  }
  // Unauthenticated, an HMAC TLV cannot be checked: U, unchanged.
  const hmacTlv = tlv(0x80, 8, value);
  const { reply } = reflect(withTlvs(hmacTlv));
  assertEquals(hexOf(reply!.subarray(44)), hexOf(hmacTlv));
});

Deno.test("a known TLV of the wrong length gets M and is left as it came", () => {
  const cases: [number, number[], boolean][] = [
    [2, [0, 0], false], // Location: shorter than its two ports
    [3, [0, 0], false],
    [3, [0, 0, 0, 0, 0], false],
    [4, [0xb8, 0, 0], false],
    [4, [0xb8, 0, 0, 0, 0, 0, 0, 0], false],
    [5, new Array(8).fill(0), false],
    [5, new Array(16).fill(0), false],
    [6, [0x10, 1], false],
    [8, new Array(12).fill(0), true], // HMAC, authenticated
  ];
  for (const [type, value, authenticated] of cases) {
    const sent = tlv(0x80, type, value);
    const options = { ...REFLECTOR, authenticated };
    const base = authenticated
      ? bytesOf(vector("request-authenticated").hex)
      : bytesOf(vector("request").hex);
    const { reply } = reflect(concat(base, sent), options, contextOf({ tos: 0x2a }));
    assert(reply !== null);
    const back = reply.subarray(base.length);
    assertStrictEquals(back[0], TlvFlag.M, `type ${type}, length ${value.length}`);
    assertEquals(hexOf(back.subarray(1)), hexOf(sent.subarray(1)));
    const reading = readReply({ authenticated }, reply);
    assertStrictEquals(reading.stamp?.tlvFlags.malformed, 1);
  }
});

Deno.test("the flag rules hold for any well-formed TLV sequence (property)", () => {
  const tlvArbitrary = fc.record({
    flags: fc.integer({ min: 0, max: 255 }),
    type: fc.integer({ min: 1, max: 255 }),
    value: fc.uint8Array({ maxLength: 40 }),
  });
  const known: Record<number, number> = { 3: 4, 4: 4, 5: 12, 6: 4 };
  fc.assert(
    fc.property(fc.array(tlvArbitrary, { maxLength: 8 }), (list) => {
      const request = withTlvs(...list.map((t) => tlv(t.flags, t.type, t.value)));
      const { reply } = reflect(request, REFLECTOR, contextOf({ tos: 0x2a }));
      assert(reply !== null);
      assertStrictEquals(reply.length, request.length);
      let at = 44;
      for (const { type, value } of list) {
        const flags: number = reply[at];
        assertStrictEquals(reply[at + 1], type);
        const back = reply.subarray(at + 4, at + 4 + value.length);
        if (type === 1) {
          assertStrictEquals(flags, 0);
          assertEquals(back, value);
        } else if (type === 2) {
          assertStrictEquals(flags, value.length < 4 ? TlvFlag.M : flags & TlvFlag.M);
        } else if (type in known) {
          assertStrictEquals(flags, value.length === known[type] ? 0 : TlvFlag.M, `type ${type}`);
          if (type === 6 || flags !== 0) assertEquals(back, value);
        } else {
          assertStrictEquals(flags, TlvFlag.U, `type ${type}`);
          assertEquals(back, value);
        }
        at += 4 + value.length;
      }
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("Class of Service: RP 1 when the reply's TOS cannot be set, U when arrival's unknown", () => {
  const request = bytesOf(vector("request-tlvs").hex);
  const cos = 44 + 48 + 8; // after Location (4 + 44) and Timestamp Information (4 + 4)
  assertStrictEquals(request[cos + 1], 4);
  const fixed = reflect(request, REFLECTOR, contextOf({ tos: 0x2a, replyTosSettable: false }));
  assertEquals(hexOf(fixed.reply!.subarray(cos, cos + 8)), "00040004b8a90000");
  assertStrictEquals(fixed.context.replyTos, -1);
  const unknown = reflect(request, REFLECTOR, contextOf({ tos: -1 }));
  assertEquals(hexOf(unknown.reply!.subarray(cos, cos + 8)), "80040004b8000000");
  assertStrictEquals(unknown.context.replyTos, -1);
  const reading = readReply(formatOf(vector("request-tlvs")), unknown.reply!);
  assertStrictEquals(reading.stamp?.classOfService, null);
  assertStrictEquals(reading.stamp?.tlvFlags.unrecognized, 1);
  // Timestamp Information still shows the reflector read the TLVs.
  assertEquals(reading.stamp?.timestampInfo, { syncSource: 1, methodIn: 2, methodOut: 2 });
});

Deno.test("Location answers IPv6 addresses with the IPv6 sub-TLVs", () => {
  const request = bytesOf(vector("request-tlvs").hex);
  const context = contextOf({
    from: { hostname: "2001:db8::1", port: 40_000 },
    local: { hostname: "2001:db8:0:0:1::2", port: 862 },
  });
  const { reply } = reflect(request, REFLECTOR, context);
  assert(reply !== null);
  assertEquals(
    hexOf(reply.subarray(44, 44 + 48)),
    "0002002c035e9c40" + "0009001020010db8000000000000000000000001" +
      "0006001020010db8000000000001000000000002",
  );
  const reading = readReply(formatOf(vector("request-tlvs")), reply);
  assertEquals(reading.stamp?.location, { address: "2001:db8::1", port: 40_000 });
});

Deno.test("the HMAC TLV covers the sequence number and every TLV before it", async () => {
  const v = vector("request-authenticated-tlvs");
  const format = stampFormat(formatOf(v));
  const bytes = bytesOf(v.hex);
  assert(await format.verify(bytes, KEY));
  // A change in a TLV (Direct Measurement's S_TxC, Extra Padding's value) or in the HMAC TLV's
  // value: the base HMAC still holds, the HMAC TLV does not.
  for (const at of [112 + 4 + 3, 112 + 16 + 4, 112 + 24 + 4, bytes.length - 1]) {
    const tampered = bytes.slice();
    tampered[at] ^= 0x80;
    assert(!(await format.verify(tampered, KEY)), `byte ${at}`);
  }
  // The sequence number is covered by both.
  const sequence = bytes.slice();
  sequence[3] ^= 1;
  assert(!(await format.verify(sequence, KEY)));
});

Deno.test({
  name: "an authenticated packet whose HMAC TLV is gone or misplaced does not verify",
  fn: async () => {
    const v = vector("request-authenticated-tlvs");
    const format = stampFormat(formatOf(v));
    const bytes = bytesOf(v.hex);
    const dm = 112 + 4; // Direct Measurement's S_TxC, changed on the way
    const hmacTlv = 112 + 16 + 8;
    const strips: [string, (b: Uint8Array) => void][] = [
      ["type 8 -> 9", (b) => b[hmacTlv + 1] = 9],
      ["Length 16 -> 17 (no TLV sequence)", (b) => b[hmacTlv + 3] = 17],
      ["swallowed by Extra Padding (Length 4 -> 24)", (b) => b[112 + 16 + 3] = 24],
    ];
    for (const [how, strip] of strips) {
      const tampered = bytes.slice();
      tampered[dm + 3] ^= 1;
      strip(tampered);
      assert(!(await format.verify(tampered, KEY)), how);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Never longer

Deno.test("answer() is never longer than the request: null or the same length (property)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 2000 }),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom<TimestampFormat>("ntp", "ptp"),
      (bytes, authenticated, stateful, timestamps) => {
        const format = stampFormat({ ...REFLECTOR, authenticated, stateful, timestamps });
        const reading = newRequestReading();
        const request = bytes.slice();
        format.readRequest(request, reading);
        const reply = format.answer(request, reading, contextOf({ tos: 0x2a }));
        assertStrictEquals(reply === null, bytes.length < (authenticated ? 112 : 44));
        if (reply !== null) {
          assertStrictEquals(reply.length, bytes.length);
          assertStrictEquals(reply.buffer, request.buffer);
        }
      },
    ),
    { numRuns: 1_000 },
  );
});
