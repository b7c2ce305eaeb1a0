/**
 * `udp bench`'s modes against a real reflector on loopback: one-way (`--one-way`: counted by
 * the reflector, nothing sent back, what arrived from its STATS), parallel streams (`-P`), the
 * interval figures (lost, late, duplicates, jitter, RTT), and a reflector that predates
 * one-way mode. Loss and duplicates are the proxy's, its log the oracle.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { UdpSocket } from "../lib/net/mod.ts";
import { bench, type BenchInterval, benchStreams } from "../lib/probe/bench.ts";
import { NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import {
  decodeFrame,
  emptySessionCounts,
  makePong,
  makeStats,
  MessageType,
  NO_TIMESTAMP,
} from "../lib/wire/mod.ts";
import { assertUsageError, loopbackTarget, runUdp } from "./helpers.ts";

Deno.test("bench --one-way: the reflector counts and sends nothing back; its STATS say what arrived", async () => {
  const replies: number[] = [];
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    onDatagram: (event) => replies.push(event.replyBytes),
  });
  const intervals: BenchInterval[] = [];
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "one-way",
      rate: 2000,
      durationMs: 600,
      payloadSize: 56,
      intervalMs: 200,
      graceMs: 100,
      onInterval: (report) => intervals.push(report),
    });
    strictEqual(summary.mode, "one-way");
    assert(summary.sent > 1000, `sent ${summary.sent}`);
    // On loopback only the reflector's kernel can drop (on a busy machine), and it says how
    // many: the PINGs lost, and the interval STATS requests that got no answer.
    const drops = summary.server_kernel_drops!;
    const answered = replies.filter((bytes) => bytes > 0).length;
    const statsDropped = 2 + intervals.length - answered;
    assertEquals(
      [summary.received, summary.server_received, summary.server_replied, summary.loss_up],
      [summary.server_received, summary.sent - drops + statsDropped, 0, drops - statsDropped],
    );
    assertEquals([summary.duplicates, summary.reordered, summary.one_way_answered], [0, 0, 0]);
    assert(summary.jitter_ms !== null && summary.jitter_ms >= 0);
    assertEquals(summary.rtt_ms.p50, null); // nothing came back to time
    assert(intervals.length >= 3, `${intervals.length} intervals`);
    for (const report of intervals) {
      assertEquals([report.direction, report.stream, report.rtt_p50_ms], ["there", 1, null]);
    }
    // An interval whose STATS came after the next one ended says null, never a made-up figure.
    const known = intervals.filter((r) => r.received !== null);
    if (drops === 0) {
      // Only STATS were answered: the one before, one per interval, the one after.
      strictEqual(answered, 2 + intervals.length);
      for (const r of known) assertEquals([r.lost, r.late, r.duplicates], [0, 0, 0]);
    }
    if (known.length === intervals.length) {
      // The last interval's STATS was asked after the last PING: every one counted.
      strictEqual(known.reduce((sum, r) => sum + r.received!, 0), summary.received);
      strictEqual(known.reduce((sum, r) => sum + r.sent!, 0), summary.sent);
    }
  } finally {
    await reflector.close();
  }
});

Deno.test("bench --one-way through a lossy, duplicating link: loss and duplicates as the proxy's log says", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    // STATS requests are PINGs' neighbours: only PINGs are impaired here, by the seed.
    up: { ...NO_IMPAIRMENTS, loss: 0.1, duplicate: 0.05 },
    down: NO_IMPAIRMENTS,
    seed: 16,
    onLog: (record) => log.push(structuredClone(record)),
  });
  const intervals: BenchInterval[] = [];
  try {
    const summary = await bench({
      target: loopbackTarget(proxy.address.port),
      mode: "one-way",
      rate: 1000,
      durationMs: 500,
      payloadSize: 20,
      intervalMs: 100,
      graceMs: 200,
      onInterval: (report) => intervals.push(report),
    });
    const pings = log.filter((r) => r.dir === "up" && r.frame?.type === "PING");
    const dropped = pings.filter((r) => r.action === "dropped").length;
    const duplicated = pings.filter((r) => r.action === "duplicated").length;
    assert(dropped > 10 && duplicated > 3, `dropped ${dropped}, duplicated ${duplicated}`);
    assertEquals(
      [summary.loss_up, summary.duplicates, summary.received],
      [dropped, duplicated, summary.sent - dropped],
    );
    strictEqual(summary.server_received, summary.sent - dropped + duplicated);
    // An interval whose STATS was lost (or came after the next interval's end) says null,
    // never a made-up figure; the others add up to what the proxy did.
    const known = intervals.filter((r) => r.received !== null);
    for (const r of known) assert(r.lost! >= 0 && r.late! >= 0 && r.duplicates! >= 0);
    if (known.length === intervals.length) {
      strictEqual(known.reduce((sum, r) => sum + r.duplicates!, 0), duplicated);
      strictEqual(known.reduce((sum, r) => sum + r.received!, 0), summary.received);
    }
  } finally {
    await proxy.close();
    await reflector.close();
  }
});

Deno.test("bench --one-way against a reflector that predates it: the replies are told, nothing made up", async () => {
  // The version-1 reflector before ONE_WAY: a PONG for every PING, STATS without arrivals.
  const old = UdpSocket.bind("127.0.0.1", 0);
  const counts = emptySessionCounts();
  const serving = old.receiveEach((data, from) => {
    const decoded = decodeFrame(data);
    if (decoded.kind !== "frame") return;
    const copy = data.slice();
    if (decoded.frame.type === MessageType.PING) {
      counts.received++;
      counts.replied++;
      return void old.send(makePong(copy, copy, NO_TIMESTAMP, NO_TIMESTAMP), from);
    }
    const stats = makeStats(copy, counts, NO_TIMESTAMP, NO_TIMESTAMP);
    if (decoded.frame.type === MessageType.STATS_REQUEST && stats) void old.send(stats, from);
  });
  try {
    const summary = await bench({
      target: loopbackTarget(old.address.port),
      mode: "one-way",
      rate: 1000,
      durationMs: 200,
      payloadSize: 20,
      graceMs: 100,
    });
    assert(summary.sent > 100);
    strictEqual(summary.one_way_answered, summary.sent);
    assertEquals([summary.received, summary.loss_up, summary.loss_percent], [null, null, null]);
    strictEqual(summary.server_received, summary.sent);
  } finally {
    old.close();
    await serving;
  }
});

Deno.test("bench -P 3: three sessions at the rate each, summed; the interval sums add up", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const intervals: BenchInterval[] = [];
  const streams: number[] = [];
  try {
    const summary = await benchStreams(
      {
        target: loopbackTarget(reflector.address.port),
        rate: 1000,
        durationMs: 400,
        payloadSize: 20,
        intervalMs: 200,
        graceMs: 100,
        onInterval: (report) => intervals.push(report),
      },
      3,
      (stream) => {
        strictEqual(stream.type, "stream_summary");
        streams.push(stream.stream);
      },
    );
    assertEquals(streams.sort(), [1, 2, 3]);
    assertEquals([summary.type, summary.stream, summary.streams], ["summary", 0, 3]);
    strictEqual(summary.requested_pps, 3000);
    // On loopback only the reflector's kernel drops (a busy machine's), and it says how many:
    // these streams are its only sources (a STATS request it dropped is among them).
    strictEqual(summary.loss_up, summary.sent - summary.server_received!);
    assert(summary.loss_up <= summary.server_kernel_drops!);
    if (summary.server_kernel_drops === 0) strictEqual(summary.received, summary.sent);
    assert(summary.rtt_ms.p50 !== null);
    const sums = intervals.filter((r) => r.stream === 0);
    assert(sums.length >= 2);
    for (const sum of sums) {
      // Every stream reports the same spans: one clock ends the intervals of them all.
      const parts = intervals.filter((r) =>
        r.stream !== 0 && r.start_s === sum.start_s && r.end_s === sum.end_s
      );
      strictEqual(parts.length, 3);
      strictEqual(sum.sent, parts.reduce((total, r) => total + r.sent!, 0));
      strictEqual(sum.received, parts.reduce((total, r) => total + r.received!, 0));
    }
    // Every datagram it read: the PINGs that were not dropped, and each stream's two STATS.
    if (summary.server_kernel_drops === 0) {
      strictEqual(reflector.stats.received, summary.server_received! + 2 * 3);
    }
  } finally {
    await reflector.close();
  }
});

Deno.test("udp bench --one-way and -P: text, JSON, and the STAMP usage error", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const target = `127.0.0.1:${reflector.address.port}`;
  try {
    const text = await runUdp(["bench", target, "--one-way", "-r", "500", "-t", "0.5"]);
    strictEqual(text.code, 0, text.stderr);
    assert(/, one way \(the reflector counts, and sends nothing back\)\n/.test(text.stdout));
    assert(/\] there: sent \d+ .*received \d+ .*lost 0, late 0, dup 0/.test(text.stdout));
    assert(
      /loss 0%: 0 lost on the way there \(server received \d+, 0 of them again\)/
        .test(text.stdout),
      text.stdout,
    );
    const json = await runUdp(["bench", target, "-P", "2", "-r", "500", "-t", "0.3", "--json"]);
    strictEqual(json.code, 0, json.stderr);
    const lines = json.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assertEquals(lines.filter((l) => l.type === "stream_summary").map((l) => l.stream), [1, 2]);
    assertEquals([lines.at(-1).type, lines.at(-1).streams], ["summary", 2]);
    const refused: [string[], RegExp][] = [
      [["--stamp", "--one-way"], /--one-way needs udp serve: a STAMP reflector answers every/],
      [["-P", "0"], /invalid --parallel '0'/],
      [["-P", "129"], /invalid --parallel '129'/],
    ];
    for (const [flags, message] of refused) {
      const bad = await runUdp(["bench", target, ...flags, "-t", "0.1"]);
      assertUsageError(bad, message, flags.join(" "));
    }
  } finally {
    await reflector.close();
  }
});

Deno.test("bench --one-way of 1400-byte datagrams to a reflector with GRO: counts exact, drops unknown", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, gro: true });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      mode: "one-way",
      rate: 5000,
      durationMs: 300,
      payloadSize: 1400,
      graceMs: 100,
    });
    assert(summary.sent > 1000, `sent ${summary.sent}`);
    // With GRO the kernel counts a coalesced message dropped whole once: the reflector says
    // it cannot tell, rather than a number that would read as too few.
    strictEqual(summary.server_kernel_drops, null);
    strictEqual(reflector.stats.kernelDrops, null);
    // What arrived is counted by sequence number, coalesced or not.
    strictEqual(summary.loss_up, summary.sent - summary.received!);
    strictEqual(reflector.stats.kinds.ping, summary.server_received);
  } finally {
    await reflector.close();
  }
});
