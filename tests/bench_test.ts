import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { bench } from "../lib/probe/bench.ts";
import { NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { loopbackTarget, runUdp } from "./helpers.ts";

const SUMMARY_KEYS = [
  "type",
  "stream",
  "streams",
  "mode",
  "target",
  "datagram_bytes",
  "duration_s",
  "sent",
  "received",
  "requested_pps",
  "offered_pps",
  "offered_bps",
  "achieved_pps",
  "achieved_bps",
  "server_received",
  "server_replied",
  "server_refused",
  "server_kernel_drops",
  "loss_up",
  "loss_down",
  "loss_percent",
  "duplicates",
  "reordered",
  "corrupted",
  "echo_server",
  "errors",
  "icmp",
  "rtt_ms",
  "round_trip_ms",
  "jitter_ms",
  "one_way_answered",
  "back",
];

Deno.test("bench() paces to the requested rate and gets the server's counts", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      rate: 2000,
      durationMs: 500,
      payloadSize: 100,
      graceMs: 200,
    });
    assertEquals(Object.keys(summary), SUMMARY_KEYS);
    // The count due at each moment is rate × elapsed, so the total is within one timer tick.
    assert(Math.abs(summary.sent - 1000) <= 10, `sent ${summary.sent}`);
    assertEquals(
      [
        summary.received,
        summary.server_received,
        summary.server_replied,
        summary.loss_up,
        summary.loss_down,
      ],
      [summary.sent, summary.sent, summary.sent, 0, 0],
    );
    strictEqual(summary.datagram_bytes, 148);
    assert(summary.rtt_ms.min !== null && summary.rtt_ms.p99! >= summary.rtt_ms.p50!);
    // udp serve says how long it held each frame: left out of the RTT, kept in the round trip.
    assert(summary.rtt_ms.avg! <= summary.round_trip_ms.avg!, JSON.stringify(summary));
    // One STATS exchange before the run (the server's own counters), one after.
    strictEqual(reflector.stats.kinds.stats, 2);
  } finally {
    await reflector.close();
  }
});

Deno.test("bench() at max rate: each frame of a batch is its own (sequences, none repeated)", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      rate: "max",
      durationMs: 300,
      payloadSize: 20,
      graceMs: 200,
    });
    // Batches of 64 are encoded into the same buffers each time: a frame overwritten before it
    // left would come back as a duplicate (or a reordering) of another.
    assert(summary.sent >= 64 && summary.received! > 0, JSON.stringify(summary));
    assertEquals([summary.duplicates, summary.reordered], [0, 0]);
    const { loss_up: up, loss_down: down } = summary;
    assert(up !== null && down !== null, "the server's counts came back");
    strictEqual(summary.server_received, summary.sent - up);
    strictEqual(summary.received! + up + down, summary.sent);
  } finally {
    await reflector.close();
  }
});

Deno.test("bench() tells upstream from downstream loss, exactly as the proxy's log says", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    up: { ...NO_IMPAIRMENTS, loss: 0.1 },
    down: { ...NO_IMPAIRMENTS, loss: 0.05 },
    seed: 2026,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    const summary = await bench({
      target: loopbackTarget(proxy.address.port),
      rate: 1000,
      durationMs: 500,
      payloadSize: 20,
      graceMs: 200,
    });
    const droppedUp = log.filter((r) =>
      r.dir === "up" && r.frame?.type === "PING" && r.action === "dropped"
    ).length;
    const droppedDown = log.filter((r) =>
      r.dir === "down" && r.frame?.type === "PONG" && r.action === "dropped"
    ).length;
    assert(droppedUp > 10 && droppedDown > 5);
    assertEquals([summary.loss_up, summary.loss_down], [droppedUp, droppedDown]);
    strictEqual(summary.received, summary.sent - droppedUp - droppedDown);
  } finally {
    await proxy.close();
    await reflector.close();
  }
});

Deno.test("udp bench CLI: interval lines, --json summary, and --search", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const target = `127.0.0.1:${reflector.address.port}`;
  try {
    const text = await runUdp([
      "bench",
      target,
      "--rate",
      "1k",
      "--duration",
      "1",
      "--interval",
      "0.5",
    ]);
    strictEqual(text.code, 0, text.stderr);
    assert(
      /^UDP BENCH 127\.0\.0\.1:\d+: 104-byte datagrams at 1000 pps for 1 s\n/.test(text.stdout),
      text.stdout,
    );
    assert(/\[ {2}0\.0- {2}0\.5 s\] sent \d+ \(\d+ pps/.test(text.stdout), text.stdout);
    assert(
      /loss 0%: 0 lost on the way there, 0 on the way back \(server received \d+, replied \d+\)/
        .test(
          text.stdout,
        ),
      text.stdout,
    );
    const json = await runUdp([
      "bench",
      target,
      "--rate",
      "832kbit",
      "--duration",
      "0.5",
      "--json",
      "-i",
      "0",
    ]);
    const summary = JSON.parse(json.stdout.trim());
    assertEquals(Object.keys(summary), SUMMARY_KEYS);
    strictEqual(summary.requested_pps, 1000); // 832 kbit/s of 104-byte datagrams
    const search = await runUdp([
      "bench",
      target,
      "--search",
      "--rate",
      "2000",
      "--duration",
      "0.2",
      "--json",
    ]);
    strictEqual(search.code, 0, search.stderr);
    const lines = search.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const result = lines.at(-1);
    strictEqual(result.type, "search");
    assert(result.best_pps >= 2000, `best ${result.best_pps}`);
    assert(lines.some((line) => line.type === "trial" && line.passed));
  } finally {
    await reflector.close();
  }
});
