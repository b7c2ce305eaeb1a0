import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import type { ResolvedAddress } from "../lib/net/address.ts";
import { ping, type PingEvent, PROBE_WINDOW } from "../lib/probe/ping.ts";
import {
  decodeFrame,
  encodeError,
  encodeFrame,
  ErrorCode,
  type Frame,
  makePong,
  timestampFromMs,
} from "../lib/wire/mod.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { wallClockAt, wallClockMs } from "../lib/net/clock.ts";
import type { LatencySummary } from "../lib/stats/latency.ts";
import { Inbox, loopbackTarget, SUMMARY_KEYS } from "./helpers.ts";

const NOW = timestampFromMs(Date.now());

function pongFor(request: Uint8Array): Uint8Array {
  return makePong(request, new Uint8Array(request.length), NOW, NOW);
}

/** The figures of a summary that must all be there. */
function filled(stats: LatencySummary): { [K in keyof LatencySummary]: number } {
  for (const value of Object.values(stats)) assert(value !== null, JSON.stringify(stats));
  return stats as { [K in keyof LatencySummary]: number };
}

function frameOf(data: Uint8Array): Frame {
  const decoded = decodeFrame(data);
  if (decoded.kind !== "frame") throw new Error(`not a frame: ${decoded.kind}`);
  return decoded.frame;
}

/**
 * A scripted reflector: `script` gets each PING (decoded, with its bytes) and decides what to
 * send back, when. It runs until the ping run ends.
 */
async function withFakeReflector<T>(
  script: (
    frame: Frame,
    bytes: Uint8Array,
    reflector: Inbox,
    from: Deno.NetAddr,
    arrivedAt: number,
  ) => Promise<void>,
  run: (target: ResolvedAddress) => Promise<T>,
): Promise<T> {
  const reflector = new Inbox();
  const done = Promise.withResolvers<null>();
  let stopped = false;
  const serving = (async () => {
    while (!stopped) {
      const received = await Promise.race([reflector.next(), done.promise]);
      if (received === null) return;
      await script(
        frameOf(received.data),
        received.data,
        reflector,
        received.from,
        received.arrivedAt,
      );
    }
  })();
  try {
    return await run(loopbackTarget(reflector.socket.address.port));
  } finally {
    stopped = true;
    done.resolve(null);
    await serving;
    await reflector.close();
  }
}

Deno.test("ping() against a real reflector: all received, exact summary keys", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const events: PingEvent[] = [];
  const result = await ping({
    target: loopbackTarget(reflector.address.port),
    count: 5,
    intervalMs: 0,
    onEvent: (event) => events.push(event),
  });
  await reflector.close();
  const s = result.summary;
  assertEquals(Object.keys(s), SUMMARY_KEYS);
  for (const stats of [s.rtt_ms, s.round_trip_ms, s.server_ms]) {
    assertEquals(Object.keys(stats), ["min", "avg", "max", "mdev", "p50", "p90", "p99"]);
  }
  assertEquals([s.transmitted, s.received, s.lost, s.loss_percent], [5, 5, 0, 0]);
  assertEquals([s.duplicates, s.reordered, s.late, s.foreign, s.retransmitted], [0, 0, 0, 0, 0]);
  assertEquals(events.map((e) => e.type === "reply" && e.seq), [0, 1, 2, 3, 4]);
  const rtt = filled(s.rtt_ms);
  assert(rtt.min >= 0 && rtt.min <= rtt.p50 && rtt.p50 <= rtt.p90 && rtt.p90 <= rtt.max);
  assert(rtt.min <= rtt.avg && rtt.avg <= rtt.max);
  assert(s.jitter_ms !== null && s.jitter_ms >= 0);
  // udp serve says how long it held each probe: the RTT is the round trip without that.
  const server = filled(s.server_ms);
  const total = filled(s.round_trip_ms);
  assert(server.min >= 0 && total.min > 0, JSON.stringify(s));
  for (const event of events) {
    assert(event.type === "reply" && event.server_ms !== null && event.server_ms >= 0);
  }
  assert(Math.abs(total.avg - (rtt.avg + server.avg)) < 1e-9, JSON.stringify(s));
  strictEqual(result.stopReason, "count");
  strictEqual(reflector.stats.kinds.ping, 5);
});

Deno.test("ping() reports null RTTs and 100% loss when nothing answers", async () => {
  const silent = new Inbox();
  const result = await ping({
    target: loopbackTarget(silent.socket.address.port),
    count: 2,
    intervalMs: 0,
    timeoutMs: 20,
  });
  await silent.close();
  const s = result.summary;
  assertEquals([s.transmitted, s.received, s.lost, s.loss_percent], [2, 0, 2, 100]);
  for (const stats of [s.rtt_ms, s.round_trip_ms, s.server_ms]) {
    assertEquals(Object.values(stats), [null, null, null, null, null, null, null]);
  }
  strictEqual(s.jitter_ms, null);
});

Deno.test("ping() leaves the time a reflector says it held a probe out of the RTT", async () => {
  const HOLD_MS = 30;
  const events: PingEvent[] = [];
  const result = await withFakeReflector(
    async (_frame, bytes, reflector, from, arrivedAt) => {
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS)); // a slow reflector
      const receivedAt = timestampFromMs(wallClockAt(arrivedAt));
      await reflector.send(
        makePong(bytes, bytes, receivedAt, timestampFromMs(wallClockMs())),
        from,
      );
    },
    (target) => ping({ target, count: 3, intervalMs: 0, onEvent: (e) => events.push(e) }),
  );
  const s = result.summary;
  strictEqual(s.received, 3);
  for (const event of events) {
    assert(event.type === "reply" && event.server_ms !== null, JSON.stringify(event));
    assert(event.server_ms >= HOLD_MS && event.rtt_ms < HOLD_MS / 2, JSON.stringify(event));
  }
  assert((s.server_ms.min as number) >= HOLD_MS, JSON.stringify(s));
  assert((s.round_trip_ms.min as number) >= HOLD_MS, JSON.stringify(s));
  assert((s.rtt_ms.max as number) < HOLD_MS / 2, JSON.stringify(s));
});

Deno.test("ping() subtracts nothing a reflector cannot have held: longer than the round trip, or unordered", async () => {
  const events: PingEvent[] = [];
  const now = Date.now();
  const claims = [
    [now - 10_000, now], // held 10 s, in a round trip of well under that
    [now, now - 1], // replied before it received
  ];
  let next = 0;
  const result = await withFakeReflector(
    async (_frame, bytes, reflector, from) => {
      const [received, replied] = claims[next++];
      const pong = makePong(bytes, bytes, timestampFromMs(received), timestampFromMs(replied));
      await reflector.send(pong, from);
    },
    (target) => ping({ target, count: 2, intervalMs: 0, onEvent: (e) => events.push(e) }),
  );
  const s = result.summary;
  strictEqual(s.received, 2);
  for (const event of events) {
    assert(event.type === "reply" && event.server_ms === null, JSON.stringify(event));
    assert(event.rtt_ms > 0 && event.rtt_ms < 1000, JSON.stringify(event));
  }
  assertEquals(s.rtt_ms, s.round_trip_ms);
  assertEquals(Object.values(s.server_ms), [null, null, null, null, null, null, null]);
});

Deno.test("two pingers at once against one reflector never see each other's replies", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const target = loopbackTarget(reflector.address.port);
  const [a, b] = await Promise.all([
    ping({ target, count: 200, intervalMs: 0 }),
    ping({ target, count: 200, intervalMs: 0 }),
  ]);
  await reflector.close();
  for (const { summary } of [a, b]) {
    assertEquals([summary.received, summary.foreign, summary.duplicates], [200, 0, 0]);
  }
  strictEqual(reflector.stats.kinds.ping, 400);
});

Deno.test("ping() ignores and counts foreign datagrams: raw, other session, other source", async () => {
  const stranger = new Inbox();
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    await reflector.send(new TextEncoder().encode("noise"), from);
    await reflector.send(pongFor(encodeFrame({ ...frame, session: frame.session ^ 1 })), from);
    await stranger.send(pongFor(bytes), from); // the right PONG, from the wrong address
    await reflector.send(pongFor(encodeFrame({ ...frame, sequence: 1000 })), from);
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 3, intervalMs: 0 }));
  await stranger.close();
  assertEquals([result.summary.received, result.summary.foreign], [3, 12]);
});

Deno.test("ping() counts a duplicated reply once as received and once as duplicate", async () => {
  const events: PingEvent[] = [];
  const result = await withFakeReflector(async (_frame, bytes, reflector, from) => {
    await reflector.send(pongFor(bytes), from);
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 3, intervalMs: 0, onEvent: (e) => events.push(e) }));
  // The last duplicate may arrive after the run ended; the first two cannot.
  assert(result.summary.duplicates >= 2 && result.summary.duplicates <= 3);
  strictEqual(result.summary.received, 3);
  assert(
    events.filter((e) => e.type === "duplicate").every((e) =>
      e.type === "duplicate" && e.attempt === 0
    ),
  );
});

Deno.test("ping() detects a reordered reply (RFC 4737)", async () => {
  let held: { bytes: Uint8Array; from: Deno.NetAddr } | null = null;
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.sequence === 0) {
      held = { bytes: bytes.slice(), from };
      return;
    }
    await reflector.send(pongFor(bytes), from);
    if (held) await reflector.send(pongFor(held.bytes), held.from);
    held = null;
  }, (target) => ping({ target, count: 3, intervalMs: 1, timeoutMs: 5000 }));
  const s = result.summary;
  assertEquals([s.received, s.reordered, s.lost], [3, 1, 0]);
});

Deno.test("ping() counts a reply after the timeout as late and keeps the probe lost", async () => {
  const timedOut = Promise.withResolvers<void>();
  let first: Uint8Array | null = null;
  const events: PingEvent[] = [];
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.sequence === 0) {
      first = bytes.slice();
      return;
    }
    await timedOut.promise;
    await reflector.send(pongFor(first as Uint8Array), from);
    await reflector.send(pongFor(bytes), from);
  }, (target) =>
    ping({
      target,
      count: 2,
      intervalMs: 0,
      timeoutMs: 50,
      onEvent: (event) => {
        events.push(event);
        if (event.type === "timeout") timedOut.resolve();
      },
    }));
  const s = result.summary;
  assertEquals([s.transmitted, s.received, s.lost, s.late, s.loss_percent], [2, 1, 1, 1, 50]);
  assertEquals(events.map((e) => e.type), ["timeout", "late", "reply"]);
  strictEqual(s.rtt_ms.max, (events[2] as { rtt_ms: number }).rtt_ms);
});

Deno.test("ping() retransmits, measures RTT from the answered attempt, and counts retries", async () => {
  const events: PingEvent[] = [];
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.attempt === 1) await reflector.send(pongFor(bytes), from);
  }, (target) =>
    ping({
      target,
      count: 2,
      intervalMs: 0,
      timeoutMs: 60,
      retries: 2,
      onEvent: (event) => events.push(event),
    }));
  const s = result.summary;
  assertEquals([s.received, s.lost, s.retransmitted, s.duplicates], [2, 0, 2, 0]);
  const replies = events.filter((e) => e.type === "reply");
  assertEquals(replies.map((e) => e.type === "reply" && e.attempt), [1, 1]);
  // Timed from attempt 1, not from attempt 0 sent 60 ms earlier.
  assert((s.rtt_ms.max as number) < 60, `rtt ${s.rtt_ms.max}`);
});

Deno.test("ping() gives up after the last retry and reports the attempts", async () => {
  const events: PingEvent[] = [];
  const result = await withFakeReflector(
    async () => {},
    (target) =>
      ping({
        target,
        count: 1,
        timeoutMs: 5,
        retries: 2,
        random: () => 0,
        onEvent: (event) => events.push(event),
      }),
  );
  assertEquals([result.summary.lost, result.summary.retransmitted], [1, 2]);
  assertEquals(events, [
    { type: "retransmit", seq: 0, attempt: 1 },
    { type: "retransmit", seq: 0, attempt: 2 },
    { type: "timeout", seq: 0, attempts: 3 },
  ]);
});

Deno.test("ping() reports a reply to an already answered probe's retry as redundant", async () => {
  let firstAttempt: Uint8Array | null = null;
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.attempt === 0) {
      firstAttempt = bytes.slice();
      return;
    }
    await reflector.send(pongFor(firstAttempt as Uint8Array), from);
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 2, intervalMs: 0, timeoutMs: 30, retries: 1 }));
  const s = result.summary;
  // The last probe's redundant reply may come after the run ended.
  assert(result.redundant >= 1 && result.redundant <= 2);
  assertEquals([s.received, s.duplicates, s.retransmitted, s.reordered], [2, 0, 2, 0]);
});

Deno.test("ping() counts loss exactly when every other probe goes unanswered", async () => {
  // A timeout long enough that a loaded machine (the whole suite, on Deno's sockets) cannot
  // make an answered probe count as lost: 20 ms once did.
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.sequence % 2 === 0) await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 10, intervalMs: 0, timeoutMs: 100 }));
  const s = result.summary;
  assertEquals([s.transmitted, s.received, s.lost, s.loss_percent], [10, 5, 5, 50]);
});

Deno.test("ping() stops on an ERROR and says which versions the reflector speaks", async () => {
  const events: PingEvent[] = [];
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    const error = encodeError(
      frame,
      { code: ErrorCode.UNSUPPORTED_VERSION, values: [2, 3] },
      bytes.length,
      NOW,
      NOW,
    );
    await reflector.send(error as Uint8Array, from);
  }, (target) => ping({ target, count: 5, intervalMs: 0, onEvent: (e) => events.push(e) }));
  strictEqual(result.stopReason, "protocol-error");
  assert(/does not speak protocol version 1 \(it speaks: 2, 3\)/.test(result.protocolError ?? ""));
  assertEquals(events.map((e) => e.type), ["error"]);
});

Deno.test("ping() cut short by its deadline: unanswered probes are in flight, never 0% loss", async () => {
  const silent = new Inbox();
  const result = await ping({
    target: loopbackTarget(silent.socket.address.port),
    count: 3,
    intervalMs: 0,
    timeoutMs: 60_000,
    deadlineMs: 50,
  });
  await silent.close();
  const s = result.summary;
  strictEqual(result.stopReason, "deadline");
  // As ping(8): (transmitted - received) / transmitted; the unanswered one is not yet lost.
  assertEquals([s.transmitted, s.received, s.lost, s.in_flight, s.loss_percent], [
    1,
    0,
    0,
    1,
    100,
  ]);
});

Deno.test("ping() interrupted while probes to a dead target wait: 100% loss, all in flight", async () => {
  const silent = new Inbox();
  const controller = new AbortController();
  const running = ping({
    target: loopbackTarget(silent.socket.address.port),
    intervalMs: 1,
    timeoutMs: 60_000,
    signal: controller.signal,
  });
  for (let i = 0; i < 3; i++) await silent.next(); // three probes reached the dead end
  controller.abort(); // Ctrl-C
  const result = await running;
  await silent.close();
  const s = result.summary;
  strictEqual(result.stopReason, "interrupted");
  assert(s.transmitted >= 3, `${s.transmitted}`);
  strictEqual(s.received, 0);
  strictEqual(s.in_flight, s.transmitted);
  strictEqual(s.loss_percent, 100);
});

Deno.test("ping() with nothing transmitted reports no loss figure at all (null), not 0%", async () => {
  const controller = new AbortController();
  controller.abort();
  const silent = new Inbox();
  const result = await ping({
    target: loopbackTarget(silent.socket.address.port),
    count: 5,
    signal: controller.signal,
  });
  await silent.close();
  assertEquals([result.summary.transmitted, result.summary.loss_percent], [0, null]);
});

Deno.test("ping() with count and deadline keeps sending until count replies arrive", async () => {
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.sequence >= 2) await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 3, intervalMs: 0, timeoutMs: 20, deadlineMs: 10_000 }));
  const s = result.summary;
  assertEquals([s.transmitted, s.received, s.lost], [5, 3, 2]);
  strictEqual(result.stopReason, "count");
});

Deno.test("ping() stops when its signal aborts and still summarises", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const result = await ping({
    target: loopbackTarget(reflector.address.port),
    intervalMs: 0,
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === "reply" && event.seq === 9) controller.abort();
    },
  });
  await reflector.close();
  strictEqual(result.stopReason, "interrupted");
  assertEquals([result.summary.received, result.summary.transmitted], [10, 10]);
});

Deno.test("ping() keeps exact accounts past the probe window (bounded memory)", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const count = PROBE_WINDOW + 2000;
  const result = await ping({
    target: loopbackTarget(reflector.address.port),
    count,
    intervalMs: 0,
  });
  await reflector.close();
  const s = result.summary;
  assertEquals([s.transmitted, s.received, s.lost, s.foreign, s.duplicates], [
    count,
    count,
    0,
    0,
    0,
  ]);
  assert(!result.exactQuantiles);
});

Deno.test("ping() works over IPv6", async () => {
  const reflector = Reflector.listen({ hostname: "::1", port: 0 });
  const result = await ping({
    target: { hostname: "::1", port: reflector.address.port, family: "ipv6" },
    count: 2,
    intervalMs: 0,
  });
  await reflector.close();
  strictEqual(result.summary.received, 2);
  strictEqual(result.summary.target, `[::1]:${reflector.address.port}`);
});

Deno.test("ping() sends the requested padding and checks the reply length", async () => {
  const sizes: number[] = [];
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    sizes.push(bytes.length);
    const short = pongFor(encodeFrame({ ...frame, payload: frame.payload.subarray(1) }));
    await reflector.send(short, from);
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 2, intervalMs: 0, payloadSize: 1000 }));
  assertEquals(sizes, [1048, 1048]); // 1000 bytes of padding, 48 of header and check
  assertEquals([result.summary.received, result.summary.foreign], [2, 2]);
});

Deno.test("ping() with lingerMs counts a duplicate of the last reply", async () => {
  const result = await withFakeReflector(async (_frame, bytes, reflector, from) => {
    await reflector.send(pongFor(bytes), from);
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 3, intervalMs: 0, lingerMs: 200 }));
  assertEquals([result.summary.received, result.summary.duplicates], [3, 3]);
});

Deno.test("ping() treats an ERROR that names version 1 as a corrupted request, not a verdict", async () => {
  const result = await withFakeReflector(async (frame, bytes, reflector, from) => {
    if (frame.sequence === 0) {
      const error = encodeError(
        frame,
        { code: ErrorCode.UNSUPPORTED_VERSION, values: [1] },
        bytes.length,
        NOW,
        NOW,
      );
      await reflector.send(error as Uint8Array, from);
      return;
    }
    await reflector.send(pongFor(bytes), from);
  }, (target) => ping({ target, count: 3, intervalMs: 0, timeoutMs: 30 }));
  strictEqual(result.stopReason, "count");
  const s = result.summary;
  assertEquals([s.received, s.lost, s.foreign], [2, 1, 1]);
});
