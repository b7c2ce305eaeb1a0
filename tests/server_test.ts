import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual,
  throws,
} from "node:assert/strict";
import {
  decodeErrorDetail,
  decodeFrame,
  decodeStats,
  emptySessionCounts,
  encodeFrame,
  ErrorCode,
  Flags,
  type Frame,
  HEADER_SIZE,
  isTimestampSet,
  MAX_DATAGRAM_IPV4,
  maxPayloadSize,
  MessageType,
  NO_TIMESTAMP,
  type ProbeFormat,
  STATS_PAYLOAD_SIZE,
  timestampDiffMs,
  timestampFromMs,
  udpFormat,
  UNKNOWN_COUNT,
} from "../lib/wire/mod.ts";
import { importKey, signFrame, verifyFrame } from "../lib/wire/auth.ts";
import { CHECK_SIZE, sealFrame } from "../lib/wire/protocol.ts";
import { type DatagramEvent, Reflector } from "../lib/reflector/reflector.ts";
import { NetError } from "../lib/net/mod.ts";
import { Inbox } from "./helpers.ts";
import { wallClockMs } from "../lib/net/clock.ts";
import { defaultBackend } from "../lib/net/socket.ts";

const text = (s: string) => new TextEncoder().encode(s);
const SENT = { seconds: 1_700_000_000, nanos: 500_000 };

function pingFrame(fields: Partial<Frame> = {}): Uint8Array {
  return encodeFrame({
    version: 1,
    type: MessageType.PING,
    flags: 0,
    attempt: 0,
    session: 42,
    sequence: 1,
    sentAt: SENT,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: new Uint8Array(16).fill(0x5a),
    ...fields,
  });
}

/** Runs `body` against a fresh reflector and a fresh client socket, closing both. */
async function withReflector(
  options: { raw?: "ack" | "echo" | "ignore"; hostname?: string },
  body: (reflector: Reflector, client: Inbox, events: DatagramEvent[]) => Promise<void>,
): Promise<void> {
  const events: DatagramEvent[] = [];
  const hostname = options.hostname ?? "127.0.0.1";
  const reflector = Reflector.listen({
    hostname,
    port: 0,
    raw: options.raw,
    onDatagram: (event) => events.push({ ...event, payload: event.payload?.slice() }),
  });
  const client = new Inbox(hostname);
  try {
    await body(reflector, client, events);
  } finally {
    await client.close();
    await reflector.close();
  }
}

Deno.test("Reflector answers PING with a PONG of exactly the same length and fields", async () => {
  await withReflector({}, async (reflector, client) => {
    const request = pingFrame({ payload: Uint8Array.from({ length: 300 }, (_, i) => i & 255) });
    await client.send(request, reflector.address);
    const reply = await client.next();
    strictEqual(reply.data.length, request.length);
    strictEqual(reply.from.port, reflector.address.port);
    const decoded = decodeFrame(reply.data);
    assert(decoded.kind === "frame");
    const { frame } = decoded;
    assertEquals(
      [frame.type, frame.session, frame.sequence, frame.attempt, frame.sentAt],
      [MessageType.PONG, 42, 1, 0, SENT],
    );
    assert(isTimestampSet(frame.receivedAt));
    assert(timestampDiffMs(frame.repliedAt, frame.receivedAt) >= 0);
    assertEquals(frame.payload, request.subarray(HEADER_SIZE, request.length - CHECK_SIZE));
    const stats = reflector.stats;
    assertEquals([stats.received, stats.replied, stats.kinds.ping], [1, 1, 1]);
    assertEquals([stats.bytesReceived, stats.bytesReplied], [request.length, request.length]);
  });
});

Deno.test("Reflector's receive timestamp is the probe's arrival: its queue counts as held", async () => {
  await withReflector({}, async (reflector, client) => {
    const sending = wallClockMs();
    await client.send(pingFrame(), reflector.address);
    // Keep this thread, which the reflector shares, busy for 30 ms: the probe waits unread.
    const until = performance.now() + 30;
    while (performance.now() < until) { /* busy */ }
    const decoded = decodeFrame((await client.next()).data);
    assert(decoded.kind === "frame");
    const { receivedAt, repliedAt } = decoded.frame;
    const held = timestampDiffMs(repliedAt, receivedAt);
    const figures = JSON.stringify({ sending, receivedAt, repliedAt, held });
    assert(held >= 0, figures);
    // The native backend knows when the probe arrived; Deno's API only when it was read.
    if (defaultBackend() === "native") assert(held >= 29, figures);
  });
});

/** udp's format, whose answer keeps the thread busy for `ms` after it has built its reply. */
function slowFormat(ms: number): ProbeFormat {
  return {
    ...udpFormat,
    answer: (datagram, reading, context) => {
      const reply = udpFormat.answer(datagram, reading, context);
      for (const until = performance.now() + ms; performance.now() < until;);
      return reply;
    },
  };
}

Deno.test("Reflector stamps a reply sent on its own as it leaves, unless it is signed", async () => {
  // A format whose answer takes 20 ms after building the reply: that is the reflector's time
  // (between its arrival and its send), so the PONG's hold includes it, unless a tag covers
  // the time it was built with (then it is held far less: the second of two PINGs, warm).
  const SLOW_MS = 20;
  const slow = slowFormat(SLOW_MS);
  const key = await importKey(Uint8Array.from({ length: 32 }, (_, i) => i));
  for (const signed of [false, true]) {
    const reflector = Reflector.listen({
      hostname: "127.0.0.1",
      port: 0,
      format: slow,
      key: signed ? key : undefined,
    });
    const client = new Inbox();
    let pong: Uint8Array = new Uint8Array(0);
    for (const sequence of [1, 2]) { // the second, warm, is the one measured
      const ping = pingFrame({
        sequence,
        flags: signed ? Flags.AUTHENTICATED : 0,
        sentAt: timestampFromMs(wallClockMs()), // within the replay window
      });
      if (signed) await signFrame(ping, key);
      await client.send(ping, reflector.address);
      pong = (await client.next()).data;
    }
    const decoded = decodeFrame(pong);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
    if (signed) assert(await verifyFrame(pong, key), "the tag holds: the reply was not changed");
    const heldMs = timestampDiffMs(decoded.frame.repliedAt, decoded.frame.receivedAt);
    if (signed) assert(heldMs < SLOW_MS, `signed, held ${heldMs} ms`);
    else assert(heldMs >= SLOW_MS, `held ${heldMs} ms`);
    await client.close();
    await reflector.close();
  }
});

Deno.test("Reflector stamps a batch's replies as the batch leaves, not as each was built", {
  ignore: defaultBackend() !== "native", // Deno's backend answers one by one
}, async () => {
  // Two PINGs read in one batch, each answer taking 20 ms after its reply is built: both
  // replies leave together after 40 ms, so each PONG's hold is at least that (the first's was
  // its build time, 20 ms too early, before the batch's replies were stamped as they left).
  const SLOW_MS = 20;
  const slow = slowFormat(SLOW_MS);
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: slow });
  const client = new Inbox();
  try {
    await client.send(pingFrame({ sequence: 1 }), reflector.address); // warm
    await client.next();
    // Both wait in the reflector's socket before its loop (on this thread) reads again.
    const pings = [2, 3].map((sequence) => pingFrame({ sequence }));
    strictEqual(await client.socket.sendBatch(pings, reflector.address), 2);
    for (const sequence of [2, 3]) {
      const decoded = decodeFrame((await client.next()).data);
      assert(decoded.kind === "frame" && decoded.frame.sequence === sequence);
      const heldMs = timestampDiffMs(decoded.frame.repliedAt, decoded.frame.receivedAt);
      assert(heldMs >= 2 * SLOW_MS, `PONG ${sequence} held ${heldMs} ms`);
    }
  } finally {
    await client.close();
    await reflector.close();
  }
});

Deno.test("Reflector acks raw datagrams by default, like the classic tutorial server", async () => {
  await withReflector({}, async (reflector, client, events) => {
    await client.send(text("hello"), reflector.address);
    const reply = await client.next();
    strictEqual(new TextDecoder().decode(reply.data), "ack:hello");
    strictEqual(reflector.stats.kinds.raw, 1);
    assertEquals(events[0].payload, text("hello"));
    strictEqual(events[0].reply, "ack");
  });
});

Deno.test("Reflector acks a burst of raw datagrams each with its own data (one batch's replies)", async () => {
  await withReflector({}, async (reflector, client) => {
    // Sent at once, they wait together and are answered as one batch, whose acks are made in
    // one buffer in turn: each must have left (or been copied) before the next was made.
    const burst = Array.from({ length: 60 }, (_, n) => text(`datagram ${n} `.padEnd(20 + n, "x")));
    for (const datagram of burst) await client.send(datagram, reflector.address);
    const replies: string[] = [];
    for (let n = 0; n < burst.length; n++) {
      replies.push(new TextDecoder().decode((await client.next()).data));
    }
    assertEquals(replies, burst.map((datagram) => `ack:${new TextDecoder().decode(datagram)}`));
    strictEqual(reflector.stats.replied, burst.length);
  });
});

Deno.test("Reflector echoes raw datagrams with --raw echo, zero-length ones included", async () => {
  await withReflector({ raw: "echo" }, async (reflector, client) => {
    await client.send(text("echo me"), reflector.address);
    strictEqual(new TextDecoder().decode((await client.next()).data), "echo me");
    await client.send(new Uint8Array(0), reflector.address);
    strictEqual((await client.next()).data.length, 0);
  });
});

Deno.test("Reflector ignores raw datagrams with --raw ignore, but counts them", async () => {
  await withReflector({ raw: "ignore" }, async (reflector, client) => {
    await client.send(text("ignored"), reflector.address);
    await client.send(pingFrame(), reflector.address);
    // One receive loop answers in order: the first reply is the PONG, so "ignored" got none.
    const decoded = decodeFrame((await client.next()).data);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
    assertEquals([reflector.stats.kinds.raw, reflector.stats.replied], [1, 1]);
  });
});

Deno.test("Reflector counts malformed frames by reason and never answers them", async () => {
  await withReflector({}, async (reflector, client, events) => {
    const valid = pingFrame();
    // Each with a good check, so that it is the field named that fails.
    const resealed = (bytes: Uint8Array) => {
      sealFrame(bytes);
      return bytes;
    };
    const tooShort = resealed(valid.slice(0, 34));
    const lengthMismatch = resealed(valid.slice(0, valid.length - 1));
    const badTimestamp = valid.slice();
    new DataView(badTimestamp.buffer).setUint32(24, 1_000_000_000);
    resealed(badTimestamp);
    for (const datagram of [tooShort, lengthMismatch, badTimestamp, valid]) {
      await client.send(datagram, reflector.address);
    }
    const reply = await client.next();
    strictEqual(reply.data.length, valid.length);
    const stats = reflector.stats;
    assertEquals(stats.malformed["too-short"], 1);
    assertEquals(stats.malformed["length-mismatch"], 1);
    assertEquals(stats.malformed["bad-timestamp"], 1);
    assertEquals([stats.kinds.malformed, stats.kinds.ping, stats.replied], [3, 1, 1]);
    assertEquals(events.map((e) => e.malformed?.reason), [
      "too-short",
      "length-mismatch",
      "bad-timestamp",
      undefined,
    ]);
  });
});

Deno.test("Reflector counts corrupted frames and never answers them, whatever they say", async () => {
  await withReflector({}, async (reflector, client, events) => {
    const valid = pingFrame({ sequence: 5 });
    // A bit flipped in the padding, in the type, in the version, in the magic, in the check;
    // and a frame cut short on the way. None may be answered: not with a PONG, an ERROR or ack.
    const flips: [number, number][] = [[60, 0x04], [5, 0x02], [4, 0x02], [0, 0x01], [-1, 0x80]];
    const damaged = flips.map(([at, mask]) => {
      const bytes = valid.slice();
      bytes[at < 0 ? bytes.length + at : at] ^= mask;
      return bytes;
    });
    damaged.push(valid.slice(0, valid.length - 7));
    for (const datagram of [...damaged, valid]) await client.send(datagram, reflector.address);
    const reply = await client.next(); // the one good PING's PONG, and nothing before it
    const decoded = decodeFrame(reply.data);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
    const stats = reflector.stats;
    assertEquals([stats.kinds.corrupted, stats.kinds.ping, stats.replied], [6, 1, 1]);
    assertEquals(events.map((e) => e.kind), [...damaged.map(() => "corrupted"), "ping"]);
    assertEquals(events.map((e) => e.reply), [...damaged.map(() => "none"), "pong"]);
  });
});

Deno.test("Reflector answers an unsupported version with an ERROR naming version 1", async () => {
  await withReflector({}, async (reflector, client) => {
    const request = pingFrame({ version: 2, sequence: 77, attempt: 3 });
    await client.send(request, reflector.address);
    const reply = await client.next();
    assert(reply.data.length <= request.length);
    const decoded = decodeFrame(reply.data);
    assert(decoded.kind === "frame");
    assertEquals(
      [decoded.frame.type, decoded.frame.sequence, decoded.frame.attempt, decoded.frame.session],
      [MessageType.ERROR, 77, 3, 42],
    );
    assertEquals(decodeErrorDetail(decoded.frame.payload), {
      code: ErrorCode.UNSUPPORTED_VERSION,
      values: [1],
    });
    strictEqual(reflector.stats.kinds["unsupported-version"], 1);
  });
});

Deno.test("Reflector sends no ERROR that would be longer than the request", async () => {
  await withReflector({}, async (reflector, client) => {
    const short = pingFrame({ version: 2, payload: new Uint8Array(0) }); // 44 < 47 bytes
    await client.send(short, reflector.address);
    await client.send(pingFrame(), reflector.address);
    const decoded = decodeFrame((await client.next()).data);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
    assertEquals(reflector.stats.kinds["unsupported-version"], 1);
    assertEquals(reflector.stats.replied, 1);
  });
});

Deno.test("Reflector answers an unknown type with ERROR UNSUPPORTED_TYPE", async () => {
  await withReflector({}, async (reflector, client) => {
    await client.send(pingFrame({ type: 9 as MessageType }), reflector.address);
    const decoded = decodeFrame((await client.next()).data);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.ERROR);
    assertEquals(decodeErrorDetail(decoded.frame.payload), {
      code: ErrorCode.UNSUPPORTED_TYPE,
      values: [1, 4, 6],
    });
    strictEqual(reflector.stats.malformed["unknown-type"], 1);
  });
});

Deno.test("Reflector never answers PONG or ERROR frames (no reflection loops)", async () => {
  await withReflector({}, async (reflector, client) => {
    await client.send(pingFrame({ type: MessageType.PONG }), reflector.address);
    await client.send(
      pingFrame({ type: MessageType.ERROR, payload: Uint8Array.of(1, 0) }),
      reflector.address,
    );
    await client.send(pingFrame({ version: 5, type: MessageType.PONG }), reflector.address);
    await client.send(pingFrame({ sequence: 9 }), reflector.address);
    const decoded = decodeFrame((await client.next()).data);
    assert(decoded.kind === "frame" && decoded.frame.sequence === 9);
    assertEquals(reflector.stats.kinds.unexpected, 2);
    assertEquals(reflector.stats.kinds["unsupported-version"], 1);
  });
});

Deno.test("Reflector handles the largest IPv4 datagrams and counts the ack that cannot fit", async () => {
  await withReflector({}, async (reflector, client) => {
    const big = pingFrame({ payload: new Uint8Array(maxPayloadSize("ipv4")) });
    await client.send(big, reflector.address);
    strictEqual((await client.next()).data.length, MAX_DATAGRAM_IPV4);
    // A maximal raw datagram: "ack:" + data exceeds the limit, so the send fails and is counted.
    await client.send(new Uint8Array(MAX_DATAGRAM_IPV4).fill(0x41), reflector.address);
    await client.send(pingFrame(), reflector.address);
    strictEqual((await client.next()).data.length, pingFrame().length);
    const stats = reflector.stats;
    assertEquals([stats.received, stats.replied], [3, 2]);
    assertEquals(Object.values(stats.errors).reduce((a, b) => a + b, 0), 1);
  });
});

Deno.test("Reflector serves IPv6 on ::1", async () => {
  await withReflector({ hostname: "::1" }, async (reflector, client) => {
    strictEqual(reflector.address.hostname, "::1");
    await client.send(pingFrame(), reflector.address);
    strictEqual((await client.next()).from.hostname, "::1");
  });
});

Deno.test("Reflector survives a flood of garbage and still answers, counting every datagram", async () => {
  await withReflector({ raw: "ignore" }, async (reflector, client) => {
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
    const valid = pingFrame();
    const batches = 30;
    const batchSize = 100;
    let sent = 0;
    for (let batch = 0; batch < batches; batch++) {
      for (let i = 0; i < batchSize; i++, sent++) {
        const garbage = i % 2 === 0
          ? Uint8Array.from(
            { length: Math.floor(random() * 100) },
            () => Math.floor(random() * 256),
          )
          : valid.slice(0, Math.floor(random() * valid.length));
        await client.send(garbage, reflector.address);
      }
      // A PING after each batch: a socket buffer holds a batch, and the one receive loop answers
      // in order, so its PONG means the whole batch was handled. Then the next batch goes.
      await client.send(pingFrame({ sequence: batch }), reflector.address);
      sent++;
      while (true) {
        const decoded = decodeFrame((await client.next()).data);
        if (decoded.kind === "frame" && decoded.frame.type === MessageType.PONG) {
          strictEqual(decoded.frame.sequence, batch);
          break;
        }
      }
    }
    const stats = reflector.stats;
    strictEqual(stats.received, sent);
    strictEqual(stats.kinds.ping, batches);
    const kinds = Object.values(stats.kinds).reduce((a, b) => a + b, 0);
    strictEqual(kinds, sent);
  });
});

Deno.test("Reflector.listen() fails in one line when the port is taken", () => {
  const first = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    throws(
      () => Reflector.listen({ hostname: "127.0.0.1", port: first.address.port }),
      (e: Error) => {
        assert(e instanceof NetError);
        assert(/already in use/.test(e.message) && !e.message.includes("\n"), e.message);
        return true;
      },
    );
  } finally {
    first.close();
  }
});

Deno.test("Reflector.listen() fails in one line for an address that is not local", () => {
  throws(
    () => Reflector.listen({ hostname: "192.0.2.1", port: 0 }),
    /not an address of this machine/,
  );
});

Deno.test("Reflector answers STATS_REQUEST with the session's counts, never longer", async () => {
  await withReflector({}, async (reflector, client) => {
    for (let sequence = 0; sequence < 3; sequence++) {
      await client.send(pingFrame({ sequence }), reflector.address);
      await client.next();
    }
    const request = pingFrame({
      type: MessageType.STATS_REQUEST,
      sequence: 3,
      payload: new Uint8Array(STATS_PAYLOAD_SIZE),
    });
    await client.send(request, reflector.address);
    const reply = await client.next();
    strictEqual(reply.data.length, request.length);
    const decoded = decodeFrame(reply.data);
    assert(decoded.kind === "frame" && decoded.frame.type === MessageType.STATS);
    assertEquals(decodeStats(decoded.frame.payload), {
      ...emptySessionCounts(),
      received: 3,
      replied: 3,
      kernelDrops: reflector.stats.kernelDrops ?? UNKNOWN_COUNT,
    });
    // Too short for the counts: no reply at all; the PING after it is answered first.
    await client.send(
      pingFrame({
        type: MessageType.STATS_REQUEST,
        payload: new Uint8Array(STATS_PAYLOAD_SIZE - 1),
      }),
      reflector.address,
    );
    await client.send(pingFrame({ session: 7, sequence: 9 }), reflector.address);
    const next = decodeFrame((await client.next()).data);
    assert(
      next.kind === "frame" && next.frame.type === MessageType.PONG && next.frame.sequence === 9,
    );
    strictEqual(reflector.stats.kinds.stats, 2);
  });
});
