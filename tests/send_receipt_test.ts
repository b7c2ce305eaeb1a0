// Replies counted by receipt (DatagramSocket.sendCountedReply), the reflector's way of counting
// what it sent without a promise per datagram, and the native backend's monotonic clock.
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { loadNativeUdp } from "../lib/net/native/mod.ts";
import { monotonicMs, type SendReceipt, UdpSocket } from "../lib/net/mod.ts";

const native = loadNativeUdp();
const backends = native ? ["native", "deno"] as const : ["deno"] as const;

/** A receipt that writes down what it is told, by token. */
function notebook(): { receipt: SendReceipt<number>; told: string[] } {
  const told: string[] = [];
  return {
    told,
    receipt: {
      sent: (token, bytes) => told.push(`${token}: ${bytes}`),
      failed: (token, error) => told.push(`${token}: ${(error as Error).name}`),
    },
  };
}

Deno.test("counted replies: a concurrent batch's receipts are told once each, in order, after they left", async () => {
  for (const backend of backends) {
    using server = UdpSocket.bind("127.0.0.1", 0, backend);
    using client = UdpSocket.bind("127.0.0.1", 0, backend);
    const { receipt, told } = notebook();
    let toldInHandler = 0;
    const serving = server.receiveEach(
      (data, from) => {
        const n = data[0];
        // 63 is too long for any datagram: it fails alone, and the rest still leave in order.
        const reply = n === 63 ? new Uint8Array(70_000) : data;
        const before = told.length;
        const pending = server.sendCountedReply(reply, from, -1, null, receipt, n);
        toldInHandler += told.length - before;
        return pending;
      },
      undefined,
      { concurrent: true },
    );
    const got: number[] = [];
    const all = Promise.withResolvers<void>();
    const receiving = client.receiveEach((data) => {
      got.push(data[0]);
      if (got.length === 63) all.resolve();
    });
    // 64 at once: one batch on the native backend, whose replies leave with one sendmmsg().
    const burst = Array.from(
      { length: 64 },
      (_, n) => new Uint8Array([n, 1, 2, 3, 4].slice(0, 1 + n % 5)),
    );
    strictEqual(await client.sendBatch(burst, server.address), 64);
    await all.promise;
    assertEquals(got, Array.from({ length: 63 }, (_, n) => n), backend);
    const sent = burst.slice(0, 63).map((datagram, n) => `${n}: ${datagram.length}`);
    // The too-long one fails before it is queued, so the native backend tells it first.
    const expected = backend === "native" ? ["63: failed", ...sent] : [...sent, "63: failed"];
    assertEquals(told.map((line) => line.replace(/^63: .*/, "63: failed")), expected, backend);
    assert(/^63: (Error|NetError)$/.test(told.find((line) => line.startsWith("63"))!), backend);
    // The native backend's queued replies are told when the batch's one sendmmsg() has run
    // (the too-long one at once: it fails before it is queued); Deno's when each send settles.
    strictEqual(toldInHandler, backend === "native" ? 1 : 0, backend);
    server.close();
    client.close();
    await Promise.all([serving, receiving]);
  }
});

Deno.test("counted replies: told at once outside a batch; a bad TOS or a closed socket fails them", async () => {
  for (const backend of backends) {
    const server = UdpSocket.bind("127.0.0.1", 0, backend);
    using client = UdpSocket.bind("127.0.0.1", 0, backend);
    const { receipt, told } = notebook();
    const arrived = Promise.withResolvers<Uint8Array>();
    const receiving = client.receiveEach((data) => arrived.resolve(data.slice()));
    await server.sendCountedReply(new Uint8Array([7, 7]), client.address, -1, null, receipt, 1);
    if (backend === "native") strictEqual(told.length, 1, "told before it returned");
    assertEquals(await arrived.promise, new Uint8Array([7, 7]));
    await server.sendCountedReply(new Uint8Array(3), client.address, 256, null, receipt, 2);
    server.close();
    await server.sendCountedReply(new Uint8Array(4), client.address, -1, null, receipt, 3);
    assertEquals(told, ["1: 2", "2: RangeError", "3: BadResource"], backend);
    client.close();
    await receiving;
  }
});

Deno.test("counted replies: each is told it is sending, alone or among a batch's, and may be rewritten then", async () => {
  for (const backend of backends) {
    using server = UdpSocket.bind("127.0.0.1", 0, backend);
    using client = UdpSocket.bind("127.0.0.1", 0, backend);
    const told: string[] = [];
    const receipt: SendReceipt<number> = {
      sending: (token, data) => {
        told.push(`${token}: sending`);
        data[1] = token + 100; // the last moment to write into it: what leaves is this
      },
      sent: (token) => told.push(`${token}: sent`),
      failed: (token) => told.push(`${token}: failed`),
    };
    const arrived: Uint8Array[] = [];
    let all = Promise.withResolvers<void>();
    const receiving = client.receiveEach((data) => {
      arrived.push(data.slice());
      if (arrived.length === 1 || arrived.length === 9) all.resolve();
    });
    await server.sendCountedReply(new Uint8Array([1, 0, 0]), client.address, -1, null, receipt, 1);
    await all.promise;
    assertEquals(arrived[0], new Uint8Array([1, 101, 0]), backend);
    assertEquals(told, ["1: sending", "1: sent"], backend);
    // A concurrent batch's replies leave together on the native backend (runs of equal length
    // as one GSO super-datagram): each is told it is sending, in its place in the batch, just
    // before the batch leaves, then all that they left. Deno's backend sends each on its own.
    // All 8 wait in the socket before its loop starts, so the first read takes them at once.
    told.length = 0;
    all = Promise.withResolvers<void>();
    const burst = Array.from({ length: 8 }, (_, n) => new Uint8Array([10 + n, 0, n % 2]));
    burst[5] = new Uint8Array([15, 0]); // another length: a slot of its own in the batch
    strictEqual(await client.sendBatch(burst, server.address), 8);
    const serving = server.receiveEach(
      (data, from) => server.sendCountedReply(data, from, -1, null, receipt, data[0]),
      undefined,
      { concurrent: true },
    );
    await all.promise;
    const expected = burst.map((datagram) => {
      const rewritten = datagram.slice();
      rewritten[1] = datagram[0] + 100;
      return rewritten;
    });
    assertEquals(arrived.slice(1), expected, backend);
    const tokens = burst.map((datagram) => datagram[0]);
    assertEquals(
      told,
      backend === "native"
        ? [...tokens.map((n) => `${n}: sending`), ...tokens.map((n) => `${n}: sent`)]
        : tokens.flatMap((n) => [`${n}: sending`, `${n}: sent`]),
      backend,
    );
    server.close();
    client.close();
    await Promise.all([serving, receiving]);
  }
});

Deno.test("monotonic clock: the native backend's reading agrees with performance.now()", {
  ignore: !native,
}, () => {
  // Both count CLOCK_MONOTONIC; the native one was set never to be ahead, and behind by a
  // fraction of a microsecond: a reading taken between two of performance.now() is never after
  // the second, nor more than that before the first.
  let previous = monotonicMs();
  let outside = 0;
  for (let i = 0; i < 10_000; i++) {
    const before = performance.now();
    const reading = monotonicMs();
    const after = performance.now();
    if (reading < before - 0.002 || reading > after + 1e-6) outside++; // + float rounding
    assert(reading >= previous, `went back: ${previous} then ${reading}`);
    previous = reading;
  }
  strictEqual(outside, 0);
});
