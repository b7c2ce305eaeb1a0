/**
 * Every number true at the edges: a run cut short, a dead target, an echo server, corrupted
 * replies, a server that refuses, a kernel that drops. Each figure is checked against an oracle
 * that knows the truth: the proxy's log, the server's own counters, the kernel's.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { bench } from "../lib/probe/bench.ts";
import { ping } from "../lib/probe/ping.ts";
import { NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { encodeFrame, MessageType, NO_TIMESTAMP, STATS_PAYLOAD_SIZE } from "../lib/wire/mod.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { defaultBackend, UdpSocket } from "../lib/net/socket.ts";
import {
  freePort,
  Inbox,
  loopbackTarget,
  missing,
  runUdp,
  startServe,
  UdpProcess,
} from "./helpers.ts";

const native = defaultBackend() === "native";

/** Down-direction datagrams the proxy corrupted and delivered (at least one copy left). */
function corruptedDelivered(log: ProxyLogRecord[], dir: "up" | "down"): number {
  return log.filter((record) =>
    record.dir === dir && record.corrupted !== null &&
    record.copies.some((copy) => copy.dropped === null)
  ).length;
}

Deno.test("udp ping -w to a silent target: 100% loss, the unanswered said, text and JSON", async () => {
  // Bound and never read: no reply, and no ICMP error either (the port is open).
  using silent = UdpSocket.bind("127.0.0.1", 0);
  const port = silent.address.port;
  const text = await runUdp(["ping", `127.0.0.1:${port}`, "-w", "0.5", "-i", "0.1", "-W", "5"]);
  strictEqual(text.code, 1, text.stderr);
  const match =
    /(\d+) packets transmitted, 0 received, 100% packet loss \((\d+) unanswered when the run ended\), time \d+ms/
      .exec(text.stdout);
  assert(match, text.stdout);
  assert(Number(match[1]) >= 2 && match[2] === match[1], text.stdout);
  const json = await runUdp([
    "ping",
    `127.0.0.1:${port}`,
    "-w",
    "0.5",
    "-i",
    "0.1",
    "-W",
    "5",
    "--json",
  ]);
  strictEqual(json.code, 1, json.stderr);
  const summary = JSON.parse(json.stdout.trim().split("\n").at(-1)!);
  assert(summary.transmitted >= 2, json.stdout);
  assertEquals(
    [summary.received, summary.lost, summary.in_flight, summary.loss_percent],
    [0, 0, summary.transmitted, 100],
  );
});

Deno.test("udp ping interrupted (SIGINT) on a dead target says 100%, never 0%", async () => {
  const silent = new Inbox();
  const pinger = new UdpProcess([
    "ping",
    `127.0.0.1:${silent.socket.address.port}`,
    "-i",
    "0.05",
    "-W",
    "10",
    "--json",
  ]);
  try {
    for (let i = 0; i < 3; i++) await silent.next(); // three probes went unanswered
    const stopped = await pinger.stop("SIGINT");
    const summary = JSON.parse(stopped.stdout.trim().split("\n").at(-1)!);
    strictEqual(summary.type, "summary", stopped.stdout);
    assert(summary.transmitted >= 3);
    assertEquals([summary.received, summary.loss_percent], [0, 100]);
    strictEqual(summary.in_flight + summary.lost, summary.transmitted);
  } finally {
    await silent.close();
  }
});

/** A running echo server; `close()` stops it. */
interface EchoServer {
  port: number;
  close(): Promise<void>;
}

/** Waits until something at `port` echoes a datagram (the peer gives no sign it is ready). */
async function echoes(port: number): Promise<void> {
  const probe = new Inbox();
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      await probe.send(new TextEncoder().encode("ready?"), { hostname: "127.0.0.1", port });
      if (await probe.nextWithin(100)) return;
    }
    throw new Error(`nothing echoes on ${port}`);
  } finally {
    await probe.close();
  }
}

async function socatEcho(): Promise<EchoServer> {
  const port = freePort();
  const child = new Deno.Command("socat", {
    args: ["-T", "10", `UDP4-RECVFROM:${port},bind=127.0.0.1,fork`, "PIPE"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await echoes(port);
  return {
    port,
    async close() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

async function pythonEcho(): Promise<EchoServer> {
  // The five-line echo loop of every UDP tutorial.
  const script = [
    "import socket, sys",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
    "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)",
    "while True:",
    "    data, peer = s.recvfrom(65535); s.sendto(data, peer)",
  ].join("\n");
  const child = new Deno.Command("python3", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the python echo server did not start");
    line += new TextDecoder().decode(value);
  }
  await reader.cancel();
  return {
    port: Number(line.trim()),
    async close() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

for (
  const [name, start, ignore] of [
    ["socat", socatEcho, missing("socat")],
    ["a python3 echo loop", pythonEcho, missing("python3")],
  ] as const
) {
  Deno.test({
    name: `udp ping against ${name}: every probe counted, the echo server named once`,
    ignore,
    async fn() {
      const echo = await start();
      try {
        const result = await runUdp([
          "ping",
          `127.0.0.1:${echo.port}`,
          "-c",
          "5",
          "-i",
          "0.02",
          "--json",
        ]);
        strictEqual(result.code, 0, result.stderr);
        const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
        const summary = events.at(-1);
        assertEquals(
          [summary.received, summary.lost, summary.foreign, summary.echo_server],
          [5, 0, 0, true],
        );
        strictEqual(events.filter((event) => event.type === "echo_server").length, 1);
        // An echo gives no reflector timestamps: nothing is left out of its RTT.
        assertEquals(summary.server_ms.min, null);
        const text = await runUdp(["ping", `127.0.0.1:${echo.port}`, "-c", "2", "-i", "0.02"]);
        assert(/is an echo server/.test(text.stdout), text.stdout);
        assert(/2 packets transmitted, 2 received, 0% packet loss/.test(text.stdout), text.stdout);
      } finally {
        await echo.close();
      }
    },
  });
}

Deno.test("udp ping against udp listen --reply echo counts every probe", async () => {
  const listen = new UdpProcess(["listen", "--port", "0", "--reply", "echo"]);
  const [, port] = await listen.waitFor(/^Listening on 127\.0\.0\.1:(\d+)/);
  try {
    const result = await runUdp(["ping", `127.0.0.1:${port}`, "-c", "3", "-i", "0", "--json"]);
    const summary = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    assertEquals([summary.received, summary.echo_server], [3, true]);
  } finally {
    await listen.stop();
  }
});

Deno.test("ping with a key does not take an echoed PING for a reply (anyone can echo)", async () => {
  const echo = new Inbox();
  const loop = (async () => {
    for (;;) {
      const received = await echo.nextWithin(500);
      if (received === null) return;
      await echo.send(received.data, received.from);
    }
  })();
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(32).fill(9),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const result = await ping({
    target: loopbackTarget(echo.socket.address.port),
    count: 2,
    intervalMs: 0,
    timeoutMs: 100,
    key,
  });
  await echo.close();
  await loop;
  assertEquals(
    [result.summary.received, result.summary.foreign, result.summary.echo_server],
    [0, 2, false],
  );
});

Deno.test("corrupted replies through udp proxy: ping's and bench's counts equal the proxy log's", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    up: NO_IMPAIRMENTS,
    down: { ...NO_IMPAIRMENTS, corrupt: 0.3 },
    seed: 11,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    const pinged = await ping({
      target: loopbackTarget(proxy.address.port),
      count: 200,
      intervalMs: 5,
      timeoutMs: 1000,
    });
    const pingCorrupted = corruptedDelivered(log, "down");
    assert(pingCorrupted > 30, `${pingCorrupted}`);
    const s = pinged.summary;
    strictEqual(s.corrupted, pingCorrupted);
    // A probe whose only reply was damaged got no reply: lost, never received.
    assertEquals([s.received, s.lost, s.foreign], [200 - pingCorrupted, pingCorrupted, 0]);

    log.length = 0;
    const benched = await bench({
      target: loopbackTarget(proxy.address.port),
      rate: 2000,
      durationMs: 300,
      payloadSize: 40,
      graceMs: 200,
    });
    const benchCorrupted = corruptedDelivered(log, "down");
    assert(benchCorrupted > 30, `${benchCorrupted}`);
    strictEqual(benched.corrupted, benchCorrupted);
  } finally {
    await proxy.close();
    await reflector.close();
  }
});

Deno.test("corrupted requests through udp proxy: serve counts exactly those and answers none", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    up: { ...NO_IMPAIRMENTS, corrupt: 0.25 },
    down: NO_IMPAIRMENTS,
    seed: 5,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    const result = await ping({
      target: loopbackTarget(proxy.address.port),
      count: 200,
      intervalMs: 5,
      timeoutMs: 1000,
    });
    const corrupted = corruptedDelivered(log, "up");
    assert(corrupted > 20, `${corrupted}`);
    const stats = reflector.stats;
    strictEqual(stats.kinds.corrupted, corrupted);
    strictEqual(stats.replied, 200 - corrupted);
    assertEquals([result.summary.received, result.summary.lost], [200 - corrupted, corrupted]);
  } finally {
    await proxy.close();
    await reflector.close();
  }
});

Deno.test("udp bench against udp serve --rate-limit: what the server refused is not network loss", async () => {
  const { serve, port } = await startServe(["--rate-limit", "100", "--json"]);
  try {
    const result = await runUdp([
      "bench",
      `127.0.0.1:${port}`,
      "--rate",
      "500",
      "--duration",
      "1",
      "--json",
      "-i",
      "0",
    ]);
    strictEqual(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout.trim());
    const stopped = await serve.stop("SIGTERM");
    const stats = JSON.parse(stopped.stdout.trim().split("\n").at(-1)!);
    const refused = summary.server_refused.rate_limit;
    assert(refused > 200, JSON.stringify(summary));
    // Every datagram the server refused is said as refused, and none as lost: on loopback
    // nothing else is lost.
    strictEqual(refused, stats.refused.rate_limit);
    assertEquals([summary.loss_up, summary.loss_down], [0, 0]);
    strictEqual(summary.sent, summary.server_received + refused);
    const text = await runUdp(["bench", "127.0.0.1:1", "--help"]);
    assert(/--key-file/.test(text.stdout));
  } finally {
    await serve.stop("SIGTERM").catch(() => {});
  }
});

Deno.test("bench: refusals are counted from the start (its first STATS request makes the session known), and only its probes", async () => {
  // One token, four a second: the STATS request before the run takes the burst, so most PINGs
  // are refused before any gets through, and the STATS requests after it meet a bucket that has
  // barely refilled.
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    rateLimit: { rate: 4, burst: 1 },
  });
  try {
    const summary = await bench({
      target: loopbackTarget(reflector.address.port),
      rate: 200,
      durationMs: 500,
      payloadSize: 40,
      graceMs: 300,
    });
    const refused = summary.server_refused!.rate_limit;
    assert(refused > 80, JSON.stringify(summary));
    // Every probe is the server's or the network's: nothing refused is called lost, and the
    // STATS requests a limit refused are not counted as the session's probes.
    strictEqual(summary.sent, summary.server_received! + refused, JSON.stringify(summary));
    assertEquals([summary.loss_up, summary.loss_down], [0, 0]);
  } finally {
    await reflector.close();
  }
});

Deno.test("udp bench text says refused by the server apart from loss on the way", async () => {
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    rateLimit: { rate: 100, burst: 100 },
  });
  try {
    const text = await runUdp([
      "bench",
      `127.0.0.1:${reflector.address.port}`,
      "--rate",
      "500",
      "--duration",
      "0.6",
      "-i",
      "0",
    ]);
    const refused = reflector.stats.refused["rate-limit"];
    assert(
      new RegExp(
        `loss \\d+(\\.\\d+)?%: ${refused} refused by the server \\(rate-limit ${refused}\\), 0 lost on the way there, 0 on the way back`,
      ).test(text.stdout),
      `${refused}\n${text.stdout}`,
    );
  } finally {
    await reflector.close();
  }
});

Deno.test({
  name: "a flood at udp serve: datagrams sent = serve's received + its kernel's drops, exactly",
  ignore: !native,
  async fn() {
    // A small receive buffer, and the reflector's thread held busy while the flood arrives,
    // so that the kernel must drop some.
    const reflector = Reflector.listen({
      hostname: "127.0.0.1",
      port: 0,
      raw: "ignore",
      receiveBuffer: 4096,
    });
    const granted = reflector.receiveBuffer;
    assert(granted !== null && granted >= 4096, `${granted}`);
    const client = new Inbox();
    const target = reflector.address;
    const flood = 2000;
    try {
      const datagrams = Array.from({ length: flood }, () => new Uint8Array(200));
      const until = performance.now() + 50;
      let sent = 0;
      while (sent < flood) sent += await client.socket.sendBatch(datagrams.slice(sent), target);
      while (performance.now() < until) { /* busy: the reflector reads nothing meanwhile */ }
      // A STATS request after the flood: once it is answered, everything before it was read,
      // and its own arrival carries the kernel's count. UDP may drop it too: ask again.
      const request = encodeFrame({
        version: 1,
        type: MessageType.STATS_REQUEST,
        flags: 0,
        attempt: 0,
        session: 1,
        sequence: 0,
        sentAt: NO_TIMESTAMP,
        receivedAt: NO_TIMESTAMP,
        repliedAt: NO_TIMESTAMP,
        payload: new Uint8Array(STATS_PAYLOAD_SIZE),
      });
      let requests = 0;
      let answered = false;
      while (!answered && requests < 50) {
        await client.send(request, target);
        requests++;
        answered = (await client.nextWithin(200)) !== null;
      }
      assert(answered, "the STATS request was never answered");
      const stats = reflector.stats;
      const drops = stats.kernelDrops!;
      assert(drops > 0, `the kernel dropped nothing: ${JSON.stringify(stats)}`);
      strictEqual(stats.received + drops, flood + requests, JSON.stringify(stats));
      strictEqual(stats.kinds.raw + stats.kinds.stats, stats.received);
    } finally {
      await client.close();
      await reflector.close();
    }
  },
});

Deno.test({
  name: "--rcvbuf on serve, listen, ping and bench says what the kernel granted",
  ignore: !native,
  async fn() {
    const { serve, port } = await startServe(["--rcvbuf", "1M"]);
    try {
      const granted = await serve.waitFor(
        /^receive buffer: asked for 1048576 bytes, the kernel granted (\d+)/,
      );
      assert(Number(granted[1]) >= 1_048_576);
      const pinged = await runUdp([
        "ping",
        `127.0.0.1:${port}`,
        "-c",
        "1",
        "--rcvbuf",
        "256k",
      ]);
      assert(/receive buffer: asked for 262144 bytes, the kernel granted \d+/.test(pinged.stdout));
      const benched = await runUdp([
        "bench",
        `127.0.0.1:${port}`,
        "--duration",
        "0.1",
        "--rcvbuf",
        "300000",
        "-i",
        "0",
      ]);
      assert(/receive buffer: asked for 300000 bytes/.test(benched.stdout), benched.stdout);
      const bad = await runUdp(["ping", `127.0.0.1:${port}`, "--rcvbuf", "lots"]);
      strictEqual(bad.code, 2);
      assert(/invalid rcvbuf 'lots'/.test(bad.stderr), bad.stderr);
    } finally {
      await serve.stop();
    }
    const listen = new UdpProcess(["listen", "--port", "0", "--rcvbuf", "2M"]);
    try {
      await listen.waitFor(/^receive buffer: asked for 2097152 bytes, the kernel granted \d+/);
    } finally {
      await listen.stop();
    }
  },
});
