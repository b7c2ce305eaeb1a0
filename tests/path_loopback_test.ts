/**
 * The path report end to end on loopback (docs/protocol.md, "The path report"): a reflector
 * writes the TTL and TOS each PATH PING arrived with and the source it saw, exactly; ping
 * turns them into hops, DSCP, ECN and the address seen. Real sockets; the TTL and TOS need
 * the native ones (Deno's cannot tell them: the report then says so).
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  Flags,
  MessageType,
  NO_TIMESTAMP,
  readPathReport,
} from "../lib/wire/mod.ts";
import { sealFrame } from "../lib/wire/protocol.ts";
import { type DatagramEvent, Reflector } from "../lib/reflector/reflector.ts";
import { defaultBackend } from "../lib/net/socket.ts";
import { ping } from "../lib/probe/ping.ts";
import { summaryText } from "../lib/cli/commands/ping.ts";
import { Inbox, loopbackTarget } from "./helpers.ts";

const native = defaultBackend() === "native";

function pathPing(payloadBytes: number, sequence = 1): Uint8Array {
  return encodeFrame({
    version: 1,
    type: MessageType.PING,
    flags: Flags.PATH,
    attempt: 0,
    session: 99,
    sequence,
    sentAt: { seconds: 1_700_000_000, nanos: 0 },
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: Uint8Array.from({ length: payloadBytes }, (_, i) => i < 24 ? 0 : i),
  });
}

async function withReflector(
  hostname: string,
  body: (reflector: Reflector, events: DatagramEvent[]) => Promise<void>,
): Promise<void> {
  const events: DatagramEvent[] = [];
  const reflector = Reflector.listen({ hostname, port: 0, onDatagram: (e) => events.push(e) });
  try {
    await body(reflector, events);
  } finally {
    await reflector.close();
  }
}

Deno.test("path report: the TTL and TOS sent are seen exactly, and the source's port and address", async () => {
  await withReflector("127.0.0.1", async (reflector) => {
    const client = new Inbox();
    try {
      const ttlSet = client.socket.setTtl(255);
      for (const tos of [0, 0xb8, 0xb9, 0x03, 0x28]) {
        const tosSet = client.socket.setTos(tos);
        strictEqual(ttlSet && tosSet, native);
        const request = pathPing(56, tos);
        await client.send(request, reflector.address);
        const reply = await client.next();
        strictEqual(reply.data.length, request.length);
        const decoded = decodeFrame(reply.data);
        assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
        strictEqual(decoded.frame.sequence, tos);
        assertEquals(readPathReport(decoded.frame.payload), {
          ttl: native ? 255 : null,
          tos: native ? tos : null,
          address: "127.0.0.1",
          port: client.socket.address.port,
        });
        // Past the report the payload comes back as it was sent.
        assertEquals(
          decoded.frame.payload.subarray(24),
          request.subarray(44 + 24, request.length - 4),
        );
      }
      client.socket.setTtl(7);
      await client.send(pathPing(24), reflector.address);
      const decoded = decodeFrame((await client.next()).data);
      assert(decoded.kind === "frame");
      strictEqual(readPathReport(decoded.frame.payload)?.ttl, native ? 7 : null);
    } finally {
      await client.close();
    }
  });
});

Deno.test("path report: a PATH PING with under 24 payload bytes gets its PONG unchanged, no report", async () => {
  await withReflector("127.0.0.1", async (reflector) => {
    const client = new Inbox();
    try {
      for (const size of [0, 1, 23]) {
        const request = pathPing(size);
        await client.send(request, reflector.address);
        const reply = (await client.next()).data;
        strictEqual(reply.length, request.length);
        const decoded = decodeFrame(reply);
        assert(decoded.kind === "frame" && decoded.frame.type === MessageType.PONG);
        assertEquals(decoded.frame.payload, request.subarray(44, request.length - 4));
      }
      strictEqual(reflector.stats.kinds.ping, 3);
    } finally {
      await client.close();
    }
  });
});

Deno.test("path report: over IPv6 the source is IPv6; to a dual-stack reflector an IPv4 one is IPv4", async () => {
  await withReflector("::", async (reflector) => {
    for (const hostname of ["::1", "127.0.0.1"]) {
      const client = new Inbox(hostname);
      try {
        client.socket.setTtl(255);
        await client.send(pathPing(32), { hostname, port: reflector.address.port });
        const decoded = decodeFrame((await client.next()).data);
        assert(decoded.kind === "frame");
        const report = readPathReport(decoded.frame.payload);
        assertEquals(report, {
          ttl: native ? 255 : null,
          tos: native ? 0 : null,
          address: hostname,
          port: client.socket.address.port,
        });
        // The family byte says which: IPv4 in the first 4 address bytes, the rest zero.
        strictEqual(decoded.frame.payload[3], hostname === "::1" ? 6 : 4);
        if (hostname !== "::1") {
          assertEquals(decoded.frame.payload.subarray(10, 24), new Uint8Array(14));
        }
      } finally {
        await client.close();
      }
    }
  });
});

Deno.test("udp ping against udp serve: hops there, DSCP and ECN kept, and the address seen", async () => {
  await withReflector("127.0.0.1", async (reflector, events) => {
    const result = await ping({
      target: loopbackTarget(reflector.address.port),
      count: 3,
      intervalMs: 0,
      tos: 0xb8 | 1, // EF, ECT(1)
    });
    const s = result.summary;
    strictEqual(s.received, 3);
    const port = events[0].from.port;
    assert(events.every((event) => event.from.port === port));
    strictEqual(s.seen_as, `127.0.0.1:${port}`);
    if (native) {
      assertEquals(
        [s.hops_there, s.dscp_sent, s.dscp_received, s.ecn_sent, s.ecn_received],
        [1, 46, 46, 1, 1],
      );
      const text = summaryText(result).split("\n");
      assertEquals(text.slice(-4), [
        "hops there: 1",
        "DSCP EF kept on the way there",
        "ECN ECT(1) kept on the way there",
        `the reflector saw this host as 127.0.0.1:${port}`,
      ]);
    } else {
      assertEquals([s.hops_there, s.dscp_sent, s.dscp_received], [null, null, null]);
    }
    // Not STAMP: its keys stay unknown.
    assertEquals([s.lost_there, s.lost_back, s.one_way_there_ms], [null, null, null]);
  });
});

Deno.test("udp ping: a report that differs from what was sent reads as the path's change", async () => {
  // A scripted reflector that answers as a path that remarked EF to CS0, set CE, and had
  // three routers (TTL 255 in, 252 seen) would: the report is the reflector's word.
  const server = new Inbox();
  const serving = (async () => {
    for (let i = 0; i < 2; i++) {
      const { data, from } = await server.next();
      const bytes = data.slice();
      bytes[5] = MessageType.PONG;
      bytes.set([0x07, 252, 0x03, 4, 0x9c, 0x40, 198, 51, 100, 23], 44);
      sealFrame(bytes);
      await server.send(bytes, from);
    }
  })();
  try {
    const result = await ping({
      target: loopbackTarget(server.socket.address.port),
      count: 2,
      intervalMs: 0,
      tos: 0xb8 | 2, // EF, ECT(0)
    });
    await serving;
    const s = result.summary;
    strictEqual(s.received, 2);
    strictEqual(s.seen_as, "198.51.100.23:40000");
    if (native) {
      assertEquals(
        [s.hops_there, s.dscp_sent, s.dscp_received, s.ecn_sent, s.ecn_received],
        [4, 46, 0, 2, 3],
      );
      assertEquals(summaryText(result).split("\n").slice(-4), [
        "hops there: 4",
        "DSCP EF -> CS0 on the way there",
        "ECN ECT(0) -> CE on the way there",
        "the reflector saw this host as 198.51.100.23:40000",
      ]);
    }
  } finally {
    await server.close();
  }
});
