/**
 * Streams from the reflector (`udp bench -R`, `--bidir`; docs/protocol.md, "Streams") on
 * loopback: what arrives is what the reflector says it sent, exactly; and the rules that keep
 * it from being an amplifier (docs/security.md): no stream without a cookie, a cookie good for
 * one address, port and session only, never more than asked for or longer, none without
 * renewals, within the rate limits and caps, and replies never longer than their requests.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { UdpSocket } from "../lib/net/mod.ts";
import { bench, type BenchInterval } from "../lib/probe/bench.ts";
import { MAX_STREAMS_PER_SOURCE, STREAM_RENEWAL_MS } from "../lib/reflector/_streams.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import {
  COOKIE_SIZE,
  decodeFrame,
  encodeFrame,
  encodeStreamRequest,
  HEADER_SIZE,
  importKey,
  MessageType,
  NO_TIMESTAMP,
  readStreamFields,
  STREAM_FIELDS_EXAMPLE,
  type StreamFields,
  StreamStatus,
} from "../lib/wire/mod.ts";
import { assertUsageError, loopbackTarget, runUdp } from "./helpers.ts";

const AT = { seconds: 1_700_000_000, nanos: 0 };

/** A hand-made stream client: its requests, and every datagram that came back to it. */
class StreamClient {
  readonly socket = UdpSocket.bind("127.0.0.1", 0);
  readonly data: number[] = []; // the STREAM_DATA sequence numbers, in arrival order
  readonly other: Uint8Array[] = []; // anything else that is no grant
  #grant = Promise.withResolvers<StreamFields & { bytes: number }>();
  readonly #receiving: Promise<void>;
  #sequence = 0;

  constructor(readonly session: number, readonly port: number) {
    this.#receiving = this.socket.receiveEach((bytes) => {
      const decoded = decodeFrame(bytes);
      if (decoded.kind !== "frame") return void this.other.push(bytes.slice());
      if (decoded.frame.type === MessageType.STREAM_DATA) {
        return void this.data.push(decoded.frame.sequence);
      }
      if (decoded.frame.type !== MessageType.STREAM_GRANT) return void this.other.push(bytes);
      const fields = readStreamFields(bytes.subarray(HEADER_SIZE));
      this.#grant.resolve({ ...fields, cookie: fields.cookie.slice(), bytes: bytes.length });
    });
  }

  /** Sends a request and waits for its grant (at most 2 s). */
  async ask(fields: Partial<StreamFields>): Promise<StreamFields & { bytes: number }> {
    this.#grant = Promise.withResolvers();
    const request = encodeStreamRequest(this.session, this.#sequence++, AT, {
      ...STREAM_FIELDS_EXAMPLE,
      ...fields,
    });
    await this.socket.send(request, loopbackTarget(this.port));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error("no grant within 2 s")), 2000)
    );
    try {
      const grant = await Promise.race([this.#grant.promise, timeout]);
      strictEqual(grant.bytes, request.length); // never longer than the request
      return grant;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks until the stream has ended; its final grant. */
  async untilEnded(fields: Partial<StreamFields>): Promise<StreamFields> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const grant = await this.ask(fields);
      if (grant.status !== StreamStatus.STREAMING) return grant;
      await new Promise((resolve) => setTimeout(resolve, 100)); // a renewal's pace, not a sync
    }
    throw new Error("the stream did not end");
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.#receiving;
  }
}

Deno.test("bench -R: what arrived is what the reflector says it sent, exactly, at the rate asked", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const intervals: BenchInterval[] = [];
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "reverse",
      rate: 2000,
      durationMs: 500,
      payloadSize: 1352,
      intervalMs: 250,
      graceMs: 200,
      onInterval: (report) => intervals.push(report),
    });
    const back = summary.back!;
    strictEqual(summary.mode, "reverse");
    assertEquals([back.requested_pps, back.granted_pps, back.refused], [2000, 2000, null]);
    assert(back.sent !== null && Math.abs(back.sent - 1000) <= 20, `sent ${back.sent}`);
    assertEquals([back.received, back.lost, back.late, back.duplicates], [back.sent, 0, 0, 0]);
    strictEqual(reflector.stats.streams.datagrams, back.sent);
    assertEquals(reflector.stats.streams, {
      started: 1,
      refused: 0,
      active: 0,
      datagrams: back.sent,
    });
    assert(back.jitter_ms !== null);
    strictEqual(summary.datagram_bytes, 1400);
    assert(intervals.length >= 2);
    for (const r of intervals) assertEquals([r.direction, r.sent, r.lost], ["back", null, 0]);
    // The stream ends a little after this host's clock does (it started a round trip later):
    // what arrives after the last interval is in the summary only.
    const inIntervals = intervals.reduce((sum, r) => sum + r.received!, 0);
    assert(inIntervals <= back.received && inIntervals >= back.received - 40, `${inIntervals}`);
  } finally {
    await reflector.close();
  }
});

Deno.test("bench --bidir: one way there and the stream back, each counted by its receiver", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "bidir",
      rate: 1000,
      durationMs: 400,
      payloadSize: 56,
      graceMs: 200,
    });
    strictEqual(summary.mode, "bidir");
    const drops = summary.server_kernel_drops ?? 0;
    assertEquals([summary.server_replied, summary.loss_up], [0, summary.sent - summary.received!]);
    assert(summary.loss_up! <= drops);
    const back = summary.back!;
    assert(back.sent! > 300, `back sent ${back.sent}`);
    strictEqual(back.received + back.lost!, back.sent);
    strictEqual(reflector.stats.streams.datagrams, back.sent);
  } finally {
    await reflector.close();
  }
});

Deno.test("streams: no stream without a cookie, and a cookie is one address's, port's and session's", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const port = reflector.address.port;
  const first = new StreamClient(7, port);
  const elsewhere = new StreamClient(7, port); // another port of this host
  const otherSession = new StreamClient(8, port);
  try {
    const grant = await first.ask({});
    strictEqual(grant.status, StreamStatus.COOKIE);
    assert(grant.cookie.some((byte) => byte !== 0));
    strictEqual(grant.cookie.length, COOKIE_SIZE);
    // The cookie from another port, or for another session: a cookie again, no stream.
    strictEqual((await elsewhere.ask({ cookie: grant.cookie })).status, StreamStatus.COOKIE);
    strictEqual((await otherSession.ask({ cookie: grant.cookie })).status, StreamStatus.COOKIE);
    // A made-up cookie: the same.
    const forged = grant.cookie.map((byte) => byte ^ 1);
    strictEqual((await first.ask({ cookie: forged })).status, StreamStatus.COOKIE);
    assertEquals(reflector.stats.streams.started, 0);
    // Only its own cookie, from its own address, starts it: at most what it asked for.
    const ended = await first.untilEnded({ cookie: grant.cookie, rate: 1000, durationMs: 200 });
    strictEqual(ended.status, StreamStatus.ENDED);
    assert(ended.sent <= 200 && ended.sent >= 150, `sent ${ended.sent}`);
    strictEqual(first.data.length, ended.sent); // everything before the last grant, on loopback
    assertEquals(first.data, Array.from({ length: ended.sent }, (_, i) => i));
    assertEquals([elsewhere.data.length, otherSession.data.length], [0, 0]);
    assertEquals([ended.grantedRate, ended.grantedMs], [1000, 200]);
  } finally {
    await Promise.all([first.close(), elsewhere.close(), otherSession.close()]);
    await reflector.close();
  }
});

Deno.test("streams: a stream not renewed stops after 2 s, however long it asked for", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const client = new StreamClient(9, reflector.address.port);
  try {
    const { cookie } = await client.ask({});
    const started = await client.ask({ cookie, rate: 500, durationMs: 60_000 });
    strictEqual(started.status, StreamStatus.STREAMING);
    const began = performance.now();
    // No renewal: wait for the reflector to give up (it says so on the next request).
    while (reflector.stats.streams.active > 0 && performance.now() - began < 4000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const elapsed = performance.now() - began;
    assert(elapsed >= STREAM_RENEWAL_MS - 100 && elapsed < 3000, `${elapsed} ms`);
    const ended = await client.ask({ cookie });
    strictEqual(ended.status, StreamStatus.ENDED);
    assert(ended.sent <= 500 * 2.6, `sent ${ended.sent}`);
    strictEqual(client.data.length, ended.sent);
  } finally {
    await client.close();
    await reflector.close();
  }
});

Deno.test("streams: within the rate limits and caps, sizes checked, nothing else answered", async () => {
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    rateLimit: { rate: 300, burst: 300 },
  });
  const port = reflector.address.port;
  const clients = Array.from(
    { length: MAX_STREAMS_PER_SOURCE + 1 },
    (_, i) => new StreamClient(100 + i, port),
  );
  try {
    const granted: StreamFields[] = [];
    for (const client of clients.slice(0, MAX_STREAMS_PER_SOURCE)) {
      const { cookie } = await client.ask({});
      granted.push(await client.ask({ cookie, rate: 1000, durationMs: 1000 }));
    }
    // The per-source limit (300/s) is shared: the first gets it all, the rest none is left.
    strictEqual(granted[0].grantedRate, 300);
    assertEquals(granted.slice(1).map((g) => g.status), [
      StreamStatus.REFUSED_RATE,
      StreamStatus.REFUSED_RATE,
      StreamStatus.REFUSED_RATE,
    ]);
    const last = clients.at(-1)!;
    const { cookie } = await last.ask({});
    strictEqual((await last.ask({ cookie, size: 40 })).status, StreamStatus.REFUSED_SIZE);
    strictEqual((await last.ask({ cookie, size: 65_535 })).status, StreamStatus.REFUSED_SIZE);
    // Grants and data are never answered; a request too short for its fields is malformed.
    const probe = clients[1];
    const frame = (type: MessageType, payloadBytes: number) =>
      encodeFrame({
        version: 1,
        type,
        flags: 0,
        attempt: 0,
        session: 1,
        sequence: 0,
        sentAt: AT,
        receivedAt: NO_TIMESTAMP,
        repliedAt: NO_TIMESTAMP,
        payload: new Uint8Array(payloadBytes),
      });
    for (const type of [MessageType.STREAM_GRANT, MessageType.STREAM_DATA]) {
      await probe.socket.send(frame(type, 40), loopbackTarget(port));
    }
    await probe.socket.send(frame(MessageType.STREAM_REQUEST, 39), loopbackTarget(port));
    // A last request: its grant comes after any answer to those three would have.
    await probe.ask({});
    assertEquals(probe.other, []);
    assertEquals([
      reflector.stats.kinds.unexpected,
      reflector.stats.malformed["bad-stream-payload"],
    ], [
      2,
      1,
    ]);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await reflector.close();
  }
});

Deno.test("streams: at most 4 at once from one address; the 5th is refused as busy", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const clients = Array.from(
    { length: MAX_STREAMS_PER_SOURCE + 1 },
    (_, i) => new StreamClient(200 + i, reflector.address.port),
  );
  try {
    const statuses: number[] = [];
    for (const client of clients) {
      const { cookie } = await client.ask({});
      statuses.push((await client.ask({ cookie, rate: 10, durationMs: 5000 })).status);
    }
    assertEquals(statuses, [
      ...Array(MAX_STREAMS_PER_SOURCE).fill(StreamStatus.STREAMING),
      StreamStatus.REFUSED_BUSY,
    ]);
    assertEquals([reflector.stats.streams.active, reflector.stats.streams.refused], [4, 1]);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await reflector.close(); // stops the streams still running
  }
  strictEqual(reflector.stats.streams.active, 0);
});

Deno.test("streams under a key: requests tagged or refused, the stream tagged and verified", async () => {
  const key = await importKey(new Uint8Array(32).fill(7));
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, key });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "reverse",
      rate: 500,
      durationMs: 300,
      payloadSize: 20,
      graceMs: 200,
      key,
    });
    const back = summary.back!;
    assert(back.sent! > 100);
    assertEquals([back.received, back.refused], [back.sent, null]);
    // Without the key: refused silently, no grant, no stream.
    const stranger = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "reverse",
      rate: 500,
      durationMs: 100,
      payloadSize: 20,
      graceMs: 50,
    });
    assertEquals([stranger.back!.received, stranger.back!.sent], [0, null]);
    assert(/did not answer the stream request/.test(stranger.back!.refused!));
    strictEqual(reflector.stats.streams.started, 1);
  } finally {
    await reflector.close();
  }
});

Deno.test("udp bench -R and --bidir: text, JSON, and their usage errors", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const target = `127.0.0.1:${reflector.address.port}`;
  try {
    const text = await runUdp(["bench", target, "-R", "-r", "500", "-t", "0.5"]);
    strictEqual(text.code, 0, text.stderr);
    assert(/, reverse \(the reflector sends, this host counts\)\n/.test(text.stdout));
    assert(/\] back: received \d+ .*lost 0, late 0, dup 0/.test(text.stdout), text.stdout);
    assert(/back loss 0%: 0 of the reflector's \d+ lost on the way back/.test(text.stdout));
    const json = await runUdp(["bench", target, "--bidir", "-r", "500", "-t", "0.3", "--json"]);
    strictEqual(json.code, 0, json.stderr);
    const summary = JSON.parse(json.stdout.trim().split("\n").at(-1)!);
    assertEquals([summary.mode, summary.back.received > 0], ["bidir", true]);
    const refused: [string[], RegExp][] = [
      [["-R", "--one-way"], /--one-way and -R: give one of them/],
      [["--stamp", "-R"], /-R needs udp serve: a STAMP reflector answers every packet/],
      [["--stamp", "--bidir"], /--bidir needs udp serve/],
      [["-R", "--search"], /--search goes with the reflected or --one-way modes, not -R/],
    ];
    for (const [flags, message] of refused) {
      const bad = await runUdp(["bench", target, ...flags, "-t", "0.1"]);
      assertUsageError(bad, message, flags.join(" "));
    }
  } finally {
    await reflector.close();
  }
});

Deno.test("streams: one after another, each sent (the pump starts again once it has stopped)", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const clients = [new StreamClient(300, reflector.address.port)];
  clients.push(new StreamClient(301, reflector.address.port));
  try {
    for (const client of clients) {
      const { cookie } = await client.ask({});
      const ended = await client.untilEnded({ cookie, rate: 1000, durationMs: 50 });
      assert(ended.sent > 0 && ended.sent <= 50, `sent ${ended.sent}`);
      strictEqual(client.data.length, ended.sent);
      strictEqual(reflector.stats.streams.active, 0);
    }
    assertEquals(reflector.stats.streams.started, 2);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await reflector.close();
  }
});
