/**
 * Delayed replies end to end on loopback (docs/protocol.md, "Delayed replies"): one PONG,
 * after at least the delay, once, of the request's length, only to its source; the bounds
 * (delay, size, per source, in all) and the rate limits refuse and count; stopping drops what
 * waits and leaks no timer (the sanitizers are on). No sleeps: the order of replies on one
 * socket says what was handled when.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import {
  DELAYED_PAYLOAD_SIZE,
  DELAYED_PER_SOURCE,
  DELAYED_TOTAL,
  importKey,
  MAX_DELAY_MS,
  MAX_DELAYED_BYTES,
  newReplyReading,
  type ReplyReading,
  timestampDiffMs,
  udpFormat,
} from "../lib/wire/mod.ts";
import { Reflector, type ReflectorOptions } from "../lib/reflector/mod.ts";
import { defaultBackend } from "../lib/net/socket.ts";
import { reflectorMetrics } from "../lib/reflector/mod.ts";
import { renderText } from "../lib/metrics/mod.ts";
import { statsText } from "../lib/cli/commands/serve.ts";
import { Inbox } from "./helpers.ts";

const native = defaultBackend() === "native";

function request(sequence: number, delayMs?: number, padding = DELAYED_PAYLOAD_SIZE): Uint8Array {
  return udpFormat.encodeRequest({
    type: "ping",
    session: 0xd1,
    sequence,
    attempt: 0,
    sentAt: { seconds: 1_700_000_000, nanos: 0 },
    padding: new Uint8Array(padding),
    authenticated: false,
    path: true,
    delayMs,
  });
}

function read(data: Uint8Array): ReplyReading {
  const reply = newReplyReading();
  udpFormat.readReply(data, reply);
  return reply;
}

/** Sends a plain PING and waits for its PONG: everything sent before it has been handled. */
async function handled(client: Inbox, reflector: Reflector, sequence: number): Promise<void> {
  await client.send(request(sequence), reflector.address);
  while (true) {
    const reply = read((await client.next()).data);
    if (reply.kind === "reply" && reply.sequence === sequence) return;
  }
}

async function withReflector(
  options: Partial<ReflectorOptions>,
  body: (reflector: Reflector) => Promise<void>,
): Promise<Reflector> {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, ...options });
  try {
    await body(reflector);
  } finally {
    await reflector.close();
  }
  return reflector;
}

Deno.test("a delayed PING gets nothing at once and one PONG after its delay, of its length", async () => {
  const delayMs = 300;
  const reflector = await withReflector({}, async (reflector) => {
    const client = new Inbox();
    try {
      client.socket.setTtl(255);
      const delayed = request(1, delayMs);
      const sentAt = performance.now();
      await client.send(delayed, reflector.address);
      // A plain PING right after it is answered first: the delayed one got nothing at once.
      await client.send(request(2), reflector.address);
      const first = await client.next();
      strictEqual(read(first.data).sequence, 2);
      const second = await client.next();
      const reply = read(second.data);
      assertEquals([reply.kind, reply.sequence], ["reply", 1]);
      strictEqual(second.data.length, delayed.length);
      const waited = second.arrivedAt - sentAt;
      assert(waited >= delayMs, `arrived ${waited} ms after it was sent`);
      // The reflector's hold is the delay: received at its arrival, replied when it left.
      const held = timestampDiffMs(reply.repliedAt, reply.receivedAt);
      assert(held >= delayMs && held < waited + 1, `held ${held} ms, waited ${waited}`);
      assertEquals(reply.path, {
        ttl: native ? 255 : null,
        tos: native ? 0 : null,
        address: "127.0.0.1",
        port: client.socket.address.port,
      });
      // Once: the next datagram is the answer to a later PING, and the counts say one.
      await handled(client, reflector, 3);
      assertEquals(reflector.stats.delayed, {
        held: 1,
        sent: 1,
        failed: 0,
        dropped: 0,
        pending: 0,
      });
    } finally {
      await client.close();
    }
  });
  const stats = reflector.stats;
  assertEquals([stats.received, stats.replied, stats.kinds.ping], [3, 3, 3]);
  strictEqual(stats.bytesReplied, stats.bytesReceived);
});

Deno.test("delayed replies: a delay of 0 and of 10 minutes are held, a longer one refused", async () => {
  const reflector = await withReflector({}, async (reflector) => {
    const client = new Inbox();
    try {
      await client.send(request(1, MAX_DELAY_MS + 1), reflector.address);
      await client.send(request(2, MAX_DELAY_MS), reflector.address);
      await client.send(request(3, 0), reflector.address);
      // The delay-0 reply comes from the reflector's timer, after the plain PING's at once.
      await client.send(request(4), reflector.address);
      const order = [read((await client.next()).data).sequence];
      order.push(read((await client.next()).data).sequence);
      assertEquals(order.sort(), [3, 4]);
      const stats = reflector.stats;
      strictEqual(stats.refused["delay-too-long"], 1);
      assertEquals(stats.delayed, { held: 2, sent: 1, failed: 0, dropped: 0, pending: 1 });
    } finally {
      await client.close();
    }
  });
  // Stopping dropped the 10-minute one, and its timer with it.
  assertEquals(reflector.stats.delayed, { held: 2, sent: 1, failed: 0, dropped: 1, pending: 0 });
  assertEquals([reflector.stats.kinds.refused, reflector.stats.refused["delay-too-long"]], [1, 1]);
  // udp serve's exit line and its metrics say the same.
  assert(
    statsText(reflector.stats).includes(
      "delayed replies: 2 held, 1 sent, 0 failed, 1 dropped at exit",
    ),
  );
  const metrics = renderText(reflectorMetrics(reflector.stats));
  for (const [outcome, value] of [["held", 2], ["sent", 1], ["failed", 0], ["dropped", 1]]) {
    assert(metrics.includes(`udp_serve_delayed_replies_total{outcome="${outcome}"} ${value}\n`));
  }
  assert(metrics.includes("udp_serve_delayed_replies_pending 0\n"));
});

Deno.test("delayed replies: a request over 1,024 bytes is refused, one of 1,024 held", async () => {
  const reflector = await withReflector({}, async (reflector) => {
    const client = new Inbox();
    try {
      const overhead = udpFormat.overhead(false);
      await client.send(request(1, 60_000, MAX_DELAYED_BYTES - overhead + 1), reflector.address);
      await client.send(request(2, 60_000, MAX_DELAYED_BYTES - overhead), reflector.address);
      await handled(client, reflector, 3);
      strictEqual(reflector.stats.refused["delayed-too-large"], 1);
      strictEqual(reflector.stats.delayed.pending, 1);
    } finally {
      await client.close();
    }
  });
  strictEqual(reflector.stats.delayed.dropped, 1);
});

Deno.test("delayed replies: 16 wait per source address (any port), more are refused", async () => {
  const reflector = await withReflector({}, async (reflector) => {
    // Two sockets of one address share its 16: a source cannot get more by changing ports.
    const [a, b] = [new Inbox(), new Inbox()];
    const other = new Inbox("127.0.0.2");
    try {
      for (let i = 0; i < DELAYED_PER_SOURCE; i++) {
        await (i % 2 === 0 ? a : b).send(request(i, 60_000), reflector.address);
      }
      await b.send(request(100, 60_000), reflector.address);
      await other.send(request(200, 60_000), reflector.address);
      await handled(a, reflector, 300);
      await handled(other, reflector, 301);
      const stats = reflector.stats;
      strictEqual(stats.refused["delayed-source-cap"], 1);
      strictEqual(stats.delayed.pending, DELAYED_PER_SOURCE + 1);
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });
  const stats = reflector.stats;
  assertEquals(stats.delayed, {
    held: DELAYED_PER_SOURCE + 1,
    sent: 0,
    failed: 0,
    dropped: DELAYED_PER_SOURCE + 1,
    pending: 0,
  });
});

Deno.test("delayed replies: 1,024 wait in all, from as many sources as it takes; more are refused", async () => {
  const sources = DELAYED_TOTAL / DELAYED_PER_SOURCE;
  const reflector = await withReflector({}, async (reflector) => {
    const clients = Array.from({ length: sources + 1 }, (_, i) => new Inbox(`127.0.1.${i + 1}`));
    try {
      for (const [i, client] of clients.slice(0, sources).entries()) {
        for (let j = 0; j < DELAYED_PER_SOURCE; j++) {
          await client.send(request(i * 100 + j, 60_000), reflector.address);
        }
        await handled(client, reflector, 99_999);
      }
      const last = clients[sources];
      await last.send(request(1, 60_000), reflector.address);
      await handled(last, reflector, 2);
      const stats = reflector.stats;
      strictEqual(stats.delayed.pending, DELAYED_TOTAL);
      strictEqual(stats.refused["delayed-global-cap"], 1);
      strictEqual(stats.refused["delayed-source-cap"], 0);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
  assertEquals(
    [reflector.stats.delayed.dropped, reflector.stats.delayed.pending],
    [DELAYED_TOTAL, 0],
  );
});

Deno.test("delayed replies count against the rate limits at their arrival", async () => {
  const reflector = await withReflector({ rateLimit: { rate: 1, burst: 2 } }, async (reflector) => {
    const client = new Inbox();
    try {
      await client.send(request(1, 0), reflector.address);
      await client.send(request(2, 60_000), reflector.address);
      await client.send(request(3, 0), reflector.address); // over the burst: refused
      strictEqual(read((await client.next()).data).sequence, 1);
      strictEqual(reflector.stats.refused["rate-limit"], 1);
      strictEqual(reflector.stats.delayed.held, 2);
    } finally {
      await client.close();
    }
  });
  assertEquals(reflector.stats.delayed, { held: 2, sent: 1, failed: 0, dropped: 1, pending: 0 });
});

Deno.test("delayed replies in authenticated mode are tagged when they leave, and check", async () => {
  const key = await importKey(new Uint8Array(32).fill(9));
  await withReflector({ key }, async (reflector) => {
    const client = new Inbox();
    try {
      const signed = udpFormat.encodeRequest({
        type: "ping",
        session: 5,
        sequence: 1,
        attempt: 0,
        sentAt: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
        padding: new Uint8Array(DELAYED_PAYLOAD_SIZE),
        authenticated: true,
        path: true,
        delayMs: 50,
      });
      await udpFormat.sign(signed, key);
      await client.send(signed, reflector.address);
      const { data } = await client.next();
      const reply = read(data);
      assertEquals([reply.kind, reply.sequence, reply.authenticated], ["reply", 1, true]);
      assert(await udpFormat.verify(data, key));
      strictEqual(data.length, signed.length);
      strictEqual(reply.path?.port, client.socket.address.port);
      strictEqual(reflector.stats.delayed.sent, 1);
    } finally {
      await client.close();
    }
  });
});

Deno.test("delayed replies from a wildcard-bound reflector leave from the address asked", async () => {
  const reflector = Reflector.listen({ hostname: "0.0.0.0", port: 0 });
  const client = new Inbox();
  try {
    const target = { hostname: "127.0.0.3", port: reflector.address.port };
    await client.send(request(1, 20), target);
    const { data, from } = await client.next();
    strictEqual(read(data).sequence, 1);
    // Deno's sockets cannot choose the source: there, the kernel's choice (127.0.0.1).
    strictEqual(from.hostname, native ? "127.0.0.3" : from.hostname);
  } finally {
    await client.close();
    await reflector.close();
  }
});
