import {
  deepStrictEqual as assertEquals,
  match,
  ok as assert,
  strictEqual,
} from "node:assert/strict";
import {
  cpuHasCrc32Instruction,
  Inbox,
  runUdp,
  startServe,
  SUMMARY_KEYS,
  UdpProcess,
} from "./helpers.ts";
import {
  decodeFrame,
  encodeError,
  ErrorCode,
  maxPayloadSize,
  TAG_SIZE,
  timestampFromMs,
} from "../lib/wire/mod.ts";
import config from "../deno.json" with { type: "json" };

const NOW = timestampFromMs(Date.now());

/** One line on stderr, no stack trace, exit 2. */
function assertUsageError(
  result: { code: number; stdout: string; stderr: string },
  pattern: RegExp,
) {
  strictEqual(result.code, 2, `exit code; stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, `stderr should be one line:\n${result.stderr}`);
  match(lines[0], pattern);
  assert(!/\bat .*:\d+:\d+/.test(result.stderr), `stack trace in:\n${result.stderr}`);
}

Deno.test("udp --help, --version and COMMAND --help exit 0", async () => {
  const help = await runUdp(["--help"]);
  strictEqual(help.code, 0);
  for (const command of ["serve", "ping", "send", "listen"]) {
    match(help.stdout, new RegExp(`\\n  ${command} `));
  }
  const version = await runUdp(["--version"]);
  strictEqual(version.code, 0);
  // The offloads are the kernel's to grant (tests/offload_test.ts checks the words).
  const offload = /; offload: (GSO and GRO|GSO|GRO|none) \([^)]+\)$/m.exec(version.stdout)?.[0] ??
    "";
  const sockets = Deno.build.os === "linux" && Deno.build.arch === "x86_64"
    ? `native (the C library's socket calls through FFI; FFI permission given up)${offload}`
    : "Deno.listenDatagram";
  // The binary hands every check to the processor's crc32 instruction where it has one.
  const checks = cpuHasCrc32Instruction()
    ? "by the CPU's crc32 instruction (SSE4.2)"
    : "in JavaScript";
  strictEqual(
    version.stdout,
    `udp ${config.version} (protocol version 1)\nsockets: ${sockets}\nchecks: CRC-32C ${checks}\n`,
  );
  for (const command of ["serve", "ping", "send", "listen"]) {
    const result = await runUdp([command, "--help"]);
    strictEqual(result.code, 0);
    match(result.stdout, new RegExp(`^Usage: udp ${command}`));
  }
});

Deno.test("udp serve + udp ping: ping(8)-style output and exit 0", async () => {
  const { serve, port } = await startServe();
  try {
    const result = await runUdp(["ping", `127.0.0.1:${port}`, "-c", "3", "-i", "0.01"]);
    strictEqual(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    strictEqual(lines[0], `UDP PING 127.0.0.1:${port}: 56 data bytes, 104-byte datagrams`);
    for (let seq = 0; seq < 3; seq++) {
      match(
        lines[1 + seq],
        new RegExp(`^104 bytes from 127\\.0\\.0\\.1:${port}: seq=${seq} time=\\d+(\\.\\d+)? ms$`),
      );
    }
    strictEqual(lines[5], `--- 127.0.0.1:${port} udp ping statistics ---`);
    match(lines[6], /^3 packets transmitted, 3 received, 0% packet loss, time \d+ms$/);
    match(lines[7], /^rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms$/);
    match(lines[8], /^rtt p50\/p90\/p99 = [\d.]+\/[\d.]+\/[\d.]+ ms, jitter [\d.]+ ms$/);
    match(
      lines[9],
      /^server processing min\/avg\/max = [\d.]+\/[\d.]+\/[\d.]+ ms, left out of the rtt \(as irtt does\)$/,
    );
    match(lines[10], /^round trip with it p50\/p90\/p99 = [\d.]+\/[\d.]+\/[\d.]+ ms$/);
    strictEqual(result.stderr, "");
  } finally {
    const stopped = await serve.stop("SIGINT");
    strictEqual(stopped.code, 0);
    match(
      stopped.stdout,
      /--- udp serve statistics ---\n3 datagrams received \(312 bytes\), 3 replies sent \(312 bytes\)\nping 3, corrupted 0, raw 0/,
    );
  }
});

Deno.test("udp ping --json: NDJSON events and a summary with exactly the documented keys", async () => {
  const { serve, port } = await startServe();
  try {
    const result = await runUdp(["ping", `127.0.0.1:${port}`, "-c", "4", "-i", "0", "--json"]);
    strictEqual(result.code, 0, result.stderr);
    const objects = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assertEquals(objects.map((o) => o.type), [
      "start",
      "reply",
      "reply",
      "reply",
      "reply",
      "summary",
    ]);
    const summary = objects.at(-1);
    assertEquals(Object.keys(summary), SUMMARY_KEYS);
    assertEquals(Object.keys(summary.rtt_ms), ["min", "avg", "max", "mdev", "p50", "p90", "p99"]);
    assertEquals([summary.transmitted, summary.received, summary.lost], [4, 4, 0]);
    strictEqual(summary.target, `127.0.0.1:${port}`);
    assertEquals(objects.slice(1, 5).map((o) => o.seq), [0, 1, 2, 3]);
  } finally {
    await serve.stop("SIGTERM");
  }
});

Deno.test("udp ping -q prints only the header and the summary", async () => {
  const { serve, port } = await startServe();
  try {
    const result = await runUdp(["ping", `127.0.0.1:${port}`, "-c", "2", "-i", "0", "-q"]);
    strictEqual(result.code, 0);
    assert(!result.stdout.includes("bytes from"), result.stdout);
    match(result.stdout, /2 packets transmitted, 2 received, 0% packet loss/);
  } finally {
    await serve.stop();
  }
});

Deno.test("udp ping to a port where nothing listens: 100% loss, exit 1", async () => {
  const silent = new Inbox();
  const port = silent.socket.address.port;
  try {
    const result = await runUdp(["ping", `127.0.0.1:${port}`, "-c", "2", "-i", "0", "-W", "0.1"]);
    strictEqual(result.code, 1);
    match(result.stdout, /no reply to seq=0\nno reply to seq=1\n/);
    match(result.stdout, /2 packets transmitted, 0 received, 100% packet loss/);
    assert(!result.stdout.includes("rtt min"));
  } finally {
    await silent.close();
  }
});

Deno.test("udp ping -c N -w SEC exits 1 when fewer than N replies came by the deadline", async () => {
  const silent = new Inbox();
  try {
    const result = await runUdp([
      "ping",
      `127.0.0.1:${silent.socket.address.port}`,
      "-c",
      "2",
      "-w",
      "0.3",
      "-W",
      "0.1",
      "-i",
      "0.05",
      "--json",
    ]);
    strictEqual(result.code, 1);
    const summary = JSON.parse(result.stdout.trimEnd().split("\n").at(-1) as string);
    strictEqual(summary.received, 0);
    assert(summary.transmitted >= 2, `transmitted ${summary.transmitted}`);
  } finally {
    await silent.close();
  }
});

Deno.test("udp ping: Ctrl-C prints the summary and exits 0", async () => {
  const { serve, port } = await startServe();
  try {
    const pinger = new UdpProcess(["ping", `127.0.0.1:${port}`, "-i", "0.05"]);
    await pinger.waitFor(/seq=1 /);
    const result = await pinger.stop("SIGINT");
    strictEqual(result.code, 0, result.stderr);
    match(
      result.stdout,
      /--- 127\.0\.0\.1:\d+ udp ping statistics ---\n\d+ packets transmitted, \d+ received/,
    );
    match(result.stdout, /rtt min\/avg\/max\/mdev/);
  } finally {
    await serve.stop();
  }
});

Deno.test("a closed stdout ends udp ping at once, quietly, with exit 141 (as SIGPIPE ends ping(8))", async () => {
  const { serve, port } = await startServe();
  try {
    // udp ping HOST -i 0.1 | head -2: without a count only the closed pipe can end it.
    const endless = new UdpProcess(["ping", `127.0.0.1:${port}`, "-i", "0.1"]);
    await endless.waitFor(/^UDP PING /);
    await endless.waitFor(/ seq=0 /);
    await endless.closeStdout();
    assertEquals(await endless.exited(), { code: 141, stderr: "" });
    // udp ping HOST -c 50 -i 0.05 | head -3: ends long before its 50 probes.
    const counted = new UdpProcess([
      "ping",
      `127.0.0.1:${port}`,
      "-c",
      "50",
      "-i",
      "0.05",
      "--json",
    ]);
    await counted.waitFor(/"seq":1,/);
    await counted.closeStdout();
    assertEquals(await counted.exited(), { code: 141, stderr: "" });
  } finally {
    const stopped = await serve.stop();
    const pings = Number(/\nping (\d+),/.exec(stopped.stdout)?.[1]);
    assert(pings < 20, `the two pingers sent ${pings} probes in all:\n${stopped.stdout}`);
  }
});

Deno.test("a closed stdout ends udp listen at its next line, with exit 141 and nothing on stderr", async () => {
  const listen = new UdpProcess(["listen", "--port", "0"]);
  const [, port] = await listen.waitFor(/^Listening on 127\.0\.0\.1:(\d+)$/);
  await listen.closeStdout();
  // The line about this datagram is the first write to the closed pipe.
  const sent = await runUdp(["send", `127.0.0.1:${port}`, "hello"]);
  strictEqual(sent.code, 0, sent.stderr);
  assertEquals(await listen.exited(), { code: 141, stderr: "" });
});

Deno.test("a closed stdout ends udp serve -v at its next line, with exit 141", async () => {
  const { serve, port } = await startServe(["-v"]);
  await serve.closeStdout();
  const sent = await runUdp(["send", `127.0.0.1:${port}`, "hello"]);
  strictEqual(sent.code, 0, sent.stderr);
  assertEquals(await serve.exited(), { code: 141, stderr: "" });
});

Deno.test("udp ping to an unresolvable name: one line, exit 2", async () => {
  const result = await runUdp(["ping", "no-such-host.invalid", "-c", "1"]);
  assertUsageError(result, /^udp ping: cannot resolve host 'no-such-host\.invalid': no such host$/);
});

Deno.test("udp ping over IPv6 to udp serve --host ::1", async () => {
  const { serve, port } = await startServe(["--host", "::1"]);
  try {
    const result = await runUdp(["ping", `[::1]:${port}`, "-c", "2", "-i", "0"]);
    strictEqual(result.code, 0, result.stderr);
    match(result.stdout, new RegExp(`^UDP PING \\[::1\\]:${port}:`));
    match(result.stdout, new RegExp(`104 bytes from \\[::1\\]:${port}: seq=1`));
  } finally {
    await serve.stop();
  }
});

Deno.test("udp ping to a reflector that does not speak version 1: clear message, exit 2", async () => {
  const futureServer = new Inbox();
  const target = `127.0.0.1:${futureServer.socket.address.port}`;
  const answering = (async () => {
    const request = await futureServer.next();
    const decoded = decodeFrame(request.data);
    if (decoded.kind !== "frame") throw new Error("expected a PING");
    const reply = encodeError(
      decoded.frame,
      { code: ErrorCode.UNSUPPORTED_VERSION, values: [2] },
      request.data.length,
      NOW,
      NOW,
    );
    await futureServer.send(reply as Uint8Array, request.from);
  })();
  try {
    const result = await runUdp(["ping", target, "-c", "3"]);
    await answering;
    strictEqual(result.code, 2);
    strictEqual(
      result.stderr,
      `udp ping: ${target} does not speak protocol version 1 (it speaks: 2)\n`,
    );
    match(result.stdout, /1 packets transmitted, 0 received/);
  } finally {
    await futureServer.close();
  }
});

Deno.test("udp serve --host :: answers IPv4 and IPv6 pings", async () => {
  const { serve, port } = await startServe(["--host", "::"]);
  try {
    for (const host of ["127.0.0.1", "[::1]"]) {
      const result = await runUdp(["ping", `${host}:${port}`, "-c", "1", "--json"]);
      strictEqual(result.code, 0, `${host}: ${result.stdout}${result.stderr}`);
      const summary = JSON.parse(result.stdout.trimEnd().split("\n").at(-1) as string);
      strictEqual(summary.received, 1);
    }
  } finally {
    const stopped = await serve.stop();
    match(stopped.stdout, /ping 2,/);
  }
});

Deno.test("udp serve on a wildcard address answers from the address each probe was sent to (127.0.0.2, 127.0.0.3, ::1; udp and STAMP)", async () => {
  // Without IP_PKTINFO the kernel picks the reply's source by its routes (127.0.0.1 for all of
  // 127.0.0.0/8): every reply then looks foreign to the pinger, 100% loss.
  for (const [host, stamp] of [["0.0.0.0", false], ["::", false], ["0.0.0.0", true]] as const) {
    const { serve, port } = await startServe(["--host", host, ...(stamp ? ["--stamp"] : [])]);
    try {
      const targets = host === "::"
        ? ["127.0.0.2", "127.0.0.3", "[::1]"]
        : ["127.0.0.2", "127.0.0.3"];
      for (const target of targets) {
        const args = ["ping", `${target}:${port}`, "-c", "3", "-i", "0", "--json"];
        const result = await runUdp([...args, ...(stamp ? ["--stamp"] : [])]);
        const summary = JSON.parse(result.stdout.trimEnd().split("\n").at(-1) as string);
        const said = `${host} ${target} stamp=${stamp}: ${result.stdout}${result.stderr}`;
        assertEquals([result.code, summary.received, summary.foreign], [0, 3, 0], said);
      }
    } finally {
      await serve.stop();
    }
  }
});

Deno.test("udp serve -v logs one line per datagram; -v --json logs NDJSON", async () => {
  const { serve, port } = await startServe(["-v"]);
  try {
    await runUdp(["send", `127.0.0.1:${port}`, "hello", "--wait"]);
    await runUdp(["send", `127.0.0.1:${port}`, "--hex", "00ff", "--wait"]);
    await runUdp(["ping", `127.0.0.1:${port}`, "-c", "1"]);
    await serve.waitFor(/^127\.0\.0\.1:\d+ 5 bytes raw "hello" -> ACK 9 bytes$/);
    await serve.waitFor(/^127\.0\.0\.1:\d+ 2 bytes raw hex:00ff -> ACK 6 bytes$/);
    await serve.waitFor(
      /^127\.0\.0\.1:\d+ 104 bytes PING seq=0 attempt=0 session=[0-9a-f]{8} -> PONG 104 bytes$/,
    );
  } finally {
    await serve.stop();
  }
  const json = await startServe(["-v", "--json", "--raw", "echo"]);
  try {
    await runUdp(["send", `127.0.0.1:${json.port}`, "hi", "--wait"]);
    const line = await json.serve.waitFor(/^\{"type":"datagram".*\}$/);
    const event = JSON.parse(line[0]);
    assertEquals(
      [event.kind, event.bytes, event.text, event.reply, event.reply_bytes],
      ["raw", 2, "hi", "echo", 2],
    );
  } finally {
    const stopped = await json.serve.stop("SIGTERM");
    const stats = JSON.parse(stopped.stdout.trimEnd().split("\n").at(-1) as string);
    assertEquals([stats.type, stats.received, stats.replied, stats.kinds.raw], ["stats", 1, 1, 1]);
  }
});

Deno.test("udp serve on a port in use: one line, exit 2", async () => {
  const busy = new Inbox();
  try {
    const result = await runUdp(["serve", "--port", String(busy.socket.address.port)]);
    assertUsageError(
      result,
      /^udp serve: cannot listen on 127\.0\.0\.1:\d+: the port is already in use/,
    );
  } finally {
    await busy.close();
  }
});

Deno.test("udp proxy on a port in use: one line advising --listen, not serve's --port", async () => {
  const busy = new Inbox();
  try {
    const port = busy.socket.address.port;
    const result = await runUdp(["proxy", "--listen", `127.0.0.1:${port}`, "--to", "127.0.0.1:9"]);
    assertUsageError(
      result,
      new RegExp(
        `^udp proxy: cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use; ` +
          "choose another with --listen HOST:PORT, or port 0 for any free one " +
          "\\(e\\.g\\. --listen 127\\.0\\.0\\.1:0\\)$",
      ),
    );
    assert(!result.stderr.includes("--port"), result.stderr);
  } finally {
    await busy.close();
  }
});

/** Every key of a JSON value, at any depth, with the numbers under it and their time unit. */
function* jsonFields(
  value: unknown,
  unit: "ms" | "s" | null = null,
): Generator<{ key: string; value: unknown; unit: "ms" | "s" | null }> {
  if (Array.isArray(value)) {
    for (const item of value) yield* jsonFields(item, unit);
  } else if (typeof value === "object" && value !== null) {
    for (const [key, field] of Object.entries(value)) {
      const own = /_ms$/.test(key) ? "ms" : /_s$/.test(key) ? "s" : unit;
      yield { key, value: field, unit: own };
      yield* jsonFields(field, own);
    }
  }
}

function assertJsonStyle(objects: unknown[], what: string): void {
  for (const { key, value, unit } of objects.flatMap((object) => [...jsonFields(object)])) {
    match(key, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, `${what}: key '${key}' is not snake_case`);
    if (typeof value !== "number" || unit === null) continue;
    const decimals = /\.(\d+)$/.exec(String(value))?.[1].length ?? 0;
    assert(!/e/.test(String(value)), `${what}: ${key} = ${value}`);
    assert(decimals <= (unit === "ms" ? 6 : 9), `${what}: ${key} = ${value} is finer than 1 ns`);
  }
}

const parseLines = (text: string) => text.trimEnd().split("\n").map((line) => JSON.parse(line));

Deno.test("one JSON style for every command: snake_case keys, times rounded to the nanosecond", async () => {
  const { serve, port } = await startServe(["-v", "--json"]);
  const dir = await Deno.makeTempDir();
  const proxy = new UdpProcess([
    "proxy",
    "--listen",
    "127.0.0.1:0",
    "--to",
    `127.0.0.1:${port}`,
    "--json",
    "--delay",
    "0.5",
    "--jitter",
    "0.3",
    "--burst-loss",
    "0%,50%",
    "--log",
    `${dir}/p.ndjson`,
  ]);
  // What JSON.parse gives (any), without writing `any`.
  const outputs: Record<string, ReturnType<typeof JSON.parse>[]> = { "udp proxy --json": [] };
  let log: { copies: { delay_ms: number }[] }[];
  try {
    const [listening] = await proxy.waitFor(/^\{"type":"listening".*\}$/);
    outputs["udp proxy --json"].push(JSON.parse(listening));
    const through = `127.0.0.1:${JSON.parse(listening).address.split(":").at(-1)}`;
    const ping = await runUdp(["ping", through, "-c", "3", "-i", "0", "--json"]);
    strictEqual(ping.code, 0, ping.stderr);
    outputs["udp ping --json"] = parseLines(ping.stdout);
    const bench = await runUdp(
      ["bench", `127.0.0.1:${port}`, "--duration", "0.3", "--rate", "100", "-i", "0.1", "--json"],
    );
    strictEqual(bench.code, 0, bench.stderr);
    outputs["udp bench --json"] = parseLines(bench.stdout);
    await runUdp(["send", `127.0.0.1:${port}`, "raw"]);
    await serve.waitFor(/"kind":"raw"/);
  } finally {
    outputs["udp proxy --json"].push(...parseLines((await proxy.stop("SIGTERM")).stdout));
    outputs["udp serve -v --json"] = parseLines((await serve.stop("SIGTERM")).stdout);
    log = parseLines(await Deno.readTextFile(`${dir}/p.ndjson`));
    await Deno.remove(dir, { recursive: true });
  }
  const listen = new UdpProcess(["listen", "--port", "0", "-c", "1", "--json"]);
  const [line] = await listen.waitFor(/^\{"type":"listening".*\}$/);
  await runUdp(["send", `127.0.0.1:${JSON.parse(line).address.split(":").at(-1)}`, "hi"]);
  outputs["udp listen --json"] = [JSON.parse(line), ...parseLines((await listen.finish()).stdout)];
  outputs["udp proxy --log"] = log;
  for (const [what, objects] of Object.entries(outputs)) assertJsonStyle(objects, what);
  // The keys the issue named, and the other multi-word ones.
  const [proxyStart, proxyStats] = outputs["udp proxy --json"];
  assertEquals(
    [proxyStart.up.reorder_gap, proxyStart.up.delay_ms, proxyStart.down.burst.bad_loss],
    [
      1,
      0.5,
      1,
    ],
  );
  assertEquals([proxyStats.up.send_errors, proxyStats.down.dropped.too_many_clients], [0, 0]);
  strictEqual(
    outputs["udp serve -v --json"].at(-1).kinds.unsupported_version,
    0,
  );
  // --jitter draws delays such as 0.45678901234: rounded to the nanosecond, still fractional.
  assert(log.some((record) => !Number.isInteger(record.copies[0]?.delay_ms)), "no jitter?");
});

Deno.test("udp send --wait prints the reply; text, hex, base64, file and stdin", async () => {
  const { serve, port } = await startServe(["--raw", "echo"]);
  const target = `127.0.0.1:${port}`;
  const dir = await Deno.makeTempDir();
  try {
    const text = await runUdp(["send", target, "hello", "--wait"]);
    strictEqual(text.code, 0);
    strictEqual(
      text.stdout,
      `Sent 5 bytes to ${target}\nReceived "hello" from ${target} (5 bytes)\n`,
    );
    const hex = await runUdp(["send", target, "--hex", "de ad be ef 00", "--wait", "-q"]);
    strictEqual(
      hex.stdout,
      `Received 5 bytes from ${target}:\n00000000  de ad be ef 00                                    |.....|\n`,
    );
    const base64 = await runUdp(["send", target, "--base64", "aGk=", "--wait", "-q"]);
    strictEqual(base64.stdout, `Received "hi" from ${target} (2 bytes)\n`);
    // A relative path starts in the directory the command runs in.
    await Deno.writeFile(`${dir}/data.bin`, Uint8Array.of(1, 2, 3));
    const fromFile = await runUdp(
      ["send", target, "--file", "data.bin", "--wait", "-q"],
      undefined,
      {
        cwd: dir,
      },
    );
    match(fromFile.stdout, /^Received 3 bytes from .*\n00000000 {2}01 02 03 /);
    const fromStdin = await runUdp(["send", target, "--wait", "-q"], "piped in");
    strictEqual(fromStdin.stdout, `Received "piped in" from ${target} (8 bytes)\n`);
    const empty = await runUdp(["send", target, "", "--wait"]);
    strictEqual(empty.stdout, `Sent 0 bytes to ${target}\nReceived "" from ${target} (0 bytes)\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await serve.stop();
  }
});

Deno.test("udp send --wait with no reply: 'No reply received in time', exit 1", async () => {
  const silent = new Inbox();
  try {
    const target = `127.0.0.1:${silent.socket.address.port}`;
    const result = await runUdp(["send", target, "x", "--wait", "-W", "0.05", "--retries", "2"]);
    strictEqual(result.code, 1);
    strictEqual(
      result.stdout,
      `Sent 1 bytes to ${target}\nSent 1 bytes to ${target} (attempt 2)\n` +
        `Sent 1 bytes to ${target} (attempt 3)\nNo reply received in time (3 attempts)\n`,
    );
    const received = [await silent.next(), await silent.next(), await silent.next()];
    assertEquals(received.map((r) => new TextDecoder().decode(r.data)), ["x", "x", "x"]);
  } finally {
    await silent.close();
  }
});

Deno.test("udp send without --wait sends one datagram and exits 0", async () => {
  const sink = new Inbox();
  try {
    const result = await runUdp(["send", `127.0.0.1:${sink.socket.address.port}`, "one"]);
    strictEqual(result.code, 0);
    strictEqual(new TextDecoder().decode((await sink.next()).data), "one");
  } finally {
    await sink.close();
  }
});

Deno.test("udp listen prints text and hex dumps, replies, and exits after -c N", async () => {
  const listen = new UdpProcess(["listen", "--port", "0", "--reply", "ack", "-c", "2"]);
  const [, port] = await listen.waitFor(/^Listening on 127\.0\.0\.1:(\d+)$/);
  const text = await runUdp(["send", `127.0.0.1:${port}`, "hi there", "--wait", "-q"]);
  strictEqual(text.stdout, `Received "ack:hi there" from 127.0.0.1:${port} (12 bytes)\n`);
  await runUdp(["send", `127.0.0.1:${port}`, "--hex", "0001ff", "--wait", "-q"]);
  const result = await listen.finish();
  strictEqual(result.code, 0);
  match(
    result.stdout,
    /^From 127\.0\.0\.1:\d+ \(8 bytes\): "hi there"\nFrom 127\.0\.0\.1:\d+ \(3 bytes\):\n00000000 {2}00 01 ff {2}/,
  );
});

Deno.test("udp listen --json prints one object per datagram", async () => {
  const listen = new UdpProcess(["listen", "--port", "0", "-c", "1", "--json"]);
  const [line] = await listen.waitFor(/^\{"type":"listening".*\}$/);
  const port = JSON.parse(line).address.split(":").at(-1);
  await runUdp(["send", `127.0.0.1:${port}`, "--hex", "ff00"]);
  const result = await listen.finish();
  const event = JSON.parse(result.stdout.trim());
  assertEquals([event.type, event.bytes, event.hex], ["datagram", 2, "ff00"]);
});

/** The one text of the -s limit, from the codec's own numbers (the header may grow). */
const SIZE_LIMIT = (authenticated: boolean) => {
  const most = (family: "ipv4" | "ipv6") =>
    (maxPayloadSize(family) - (authenticated ? TAG_SIZE : 0)).toLocaleString("en");
  return `use 0 to ${most("ipv4")} \\(IPv4\\) or ${most("ipv6")} \\(IPv6\\)` +
    (authenticated ? " with a key" : "");
};
const TOO_BIG_FOR_IPV4 = String(maxPayloadSize("ipv4") + 1);
const TOO_BIG = String(maxPayloadSize("ipv6") + 1);

const BAD_INVOCATIONS: [string[], RegExp][] = [
  [
    ["bogus"],
    /^udp: unknown command 'bogus': use one of serve, ping, monitor, mtu, nat, send, listen, bench, proxy, keygen \(see 'udp --help'\)$/,
  ],
  [["--bogus"], /^udp: unknown option '--bogus'/],
  [["pnig"], /^udp: unknown command 'pnig': did you mean 'ping'\? \(see 'udp --help'\)$/],
  [["lisetn"], /^udp: unknown command 'lisetn': did you mean 'listen'\? \(see 'udp --help'\)$/],
  [
    ["--verison"],
    /^udp: unknown option '--verison': did you mean '--version'\? \(see 'udp --help'\)$/,
  ],
  [
    ["ping", "--cuont", "3", "127.0.0.1"],
    /^udp ping: unknown option '--cuont': did you mean '--count'\? \(see 'udp ping --help'\)$/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--up-los", "5%"],
    /^udp proxy: unknown option '--up-los': did you mean '--up-loss'\? \(see 'udp proxy --help'\)$/,
  ],
  [
    ["serve", "--rate-limt", "5"],
    /^udp serve: unknown option '--rate-limt': did you mean '--rate-limit'\? \(see 'udp serve --help'\)$/,
  ],
  [["serve", "--zzz"], /^udp serve: unknown option '--zzz' \(see 'udp serve --help'\)$/],
  [["ping"], /^udp ping: missing HOST\[:PORT\]/],
  [["ping", "127.0.0.1", "--nope"], /^udp ping: unknown option '--nope'/],
  [["ping", "127.0.0.1", "-c", "0"], /^udp ping: invalid count '0'/],
  [["ping", "127.0.0.1", "-c", "-1"], /^udp ping: option '-c' needs a value/],
  [["ping", "127.0.0.1", "-c", "abc"], /^udp ping: invalid count 'abc'/],
  [["ping", "127.0.0.1", "-i", "-1"], /^udp ping: option '-i' needs a value/],
  [["ping", "127.0.0.1", "-i", "fast"], /^udp ping: invalid interval 'fast'/],
  [["ping", "127.0.0.1", "-W", "0"], /^udp ping: invalid timeout '0'/],
  [["ping", "127.0.0.1", "-w", "nan"], /^udp ping: invalid deadline 'nan'/],
  [["ping", "127.0.0.1", "--retries", "11"], /^udp ping: invalid retries '11'/],
  [
    ["ping", "127.0.0.1", "-s", "70000"],
    new RegExp(`^udp ping: invalid size '70000': ${SIZE_LIMIT(false)}$`),
  ],
  [
    ["ping", "127.0.0.1", "-s", TOO_BIG],
    new RegExp(`^udp ping: invalid size '${TOO_BIG}': ${SIZE_LIMIT(false)}$`),
  ],
  [
    ["ping", "127.0.0.1", "-s", TOO_BIG_FOR_IPV4],
    new RegExp(
      `^udp ping: invalid size '${TOO_BIG_FOR_IPV4}': ${SIZE_LIMIT(false)}; the target is IPv4$`,
    ),
  ],
  [
    ["ping", "127.0.0.1", "-s", "x"],
    new RegExp(`^udp ping: invalid size 'x': ${SIZE_LIMIT(false)}$`),
  ],
  [
    ["bench", "127.0.0.1", "-s", TOO_BIG],
    new RegExp(`^udp bench: invalid size '${TOO_BIG}': ${SIZE_LIMIT(false)}$`),
  ],
  [
    ["bench", "127.0.0.1", "-s", TOO_BIG_FOR_IPV4],
    new RegExp(
      `^udp bench: invalid size '${TOO_BIG_FOR_IPV4}': ${SIZE_LIMIT(false)}; the target is IPv4$`,
    ),
  ],
  [["ping", "127.0.0.1:99999"], /^udp ping: invalid port '99999'/],
  [["ping", "300.1.1.1"], /^udp ping: invalid IPv4 address '300\.1\.1\.1'/],
  [["ping", "127.0.0.1", "extra"], /^udp ping: unexpected argument 'extra'/],
  [["ping", "127.0.0.1", "-4", "-6"], /^udp ping: -4 and -6 exclude each other/],
  [["ping", "--quiet=yes", "127.0.0.1"], /^udp ping: option '--quiet' takes no value/],
  [["serve", "--port", "http"], /^udp serve: invalid port 'http'/],
  [
    ["serve", "--raw", "loud"],
    /^udp serve: invalid --raw mode 'loud': use one of ack, echo, ignore/,
  ],
  [
    ["serve", "--host", "192.0.2.1", "--port", "0"],
    /^udp serve: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address/,
  ],
  [["serve", "--port"], /^udp serve: option '--port' needs a value/],
  [["send", "127.0.0.1", "x", "--hex"], /^udp send: the message is not valid hex/],
  [["send", "127.0.0.1", "%%", "--base64"], /^udp send: the message is not valid base64/],
  [
    ["send", "127.0.0.1", "x", "--hex", "--base64"],
    /^udp send: --hex and --base64 exclude each other/,
  ],
  [
    ["send", "127.0.0.1", "x", "--file", "/x"],
    /^udp send: give either MESSAGE or --file, not both/,
  ],
  [
    ["send", "127.0.0.1", "--file", "no/such/file"],
    /^udp send: cannot read --file 'no\/such\/file': no such file/,
  ],
  [
    ["send", "127.0.0.1", "--file", "lib"],
    /^udp send: cannot read --file 'lib': it is a directory/,
  ],
  [["send", "127.0.0.1", "x", "-W", "1"], /^udp send: -W and --retries need --wait/],
  [
    ["send", "127.0.0.1", "x".repeat(65508)],
    /^udp send: the message is 65508 bytes; a UDP datagram over IPv4 carries at most 65507/,
  ],
  [["listen", "--reply", "loud"], /^udp listen: invalid --reply mode 'loud'/],
  [["listen", "-c", "0"], /^udp listen: invalid count '0'/],
  [["serve", "--rate-limit", "0"], /^udp serve: invalid --rate-limit '0'/],
  [["serve", "--rate-burst", "5"], /^udp serve: --rate-burst goes with --rate-limit/],
  [["serve", "--global-limit", "lots"], /^udp serve: invalid --global-limit 'lots'/],
  [
    ["serve", "--replay-window", "5"],
    /^udp serve: --replay-window goes with --key-file or --key-env/,
  ],
  [
    ["serve", "--key-file", "no-such.key"],
    /^udp serve: cannot read --key-file 'no-such.key': no such file/,
  ],
  [
    ["ping", "127.0.0.1", "--key-file", "README.md"],
    /^udp ping: --key-file 'README.md' (can be read by other users|is neither hex nor base64)/,
  ],
  [["keygen", "a", "b"], /^udp keygen: unexpected argument 'b'/],
  [["bench"], /^udp bench: missing HOST\[:PORT\]/],
  [["bench", "127.0.0.1", "--rate", "0"], /^udp bench: invalid --rate '0'/],
  [["bench", "127.0.0.1", "--rate", "fast"], /^udp bench: invalid --rate 'fast'/],
  [["bench", "127.0.0.1", "--max-loss", "5%"], /^udp bench: --max-loss goes with --search/],
  [["bench", "127.0.0.1", "--duration", "0"], /^udp bench: invalid duration '0'/],
  [["proxy"], /^udp proxy: missing --listen HOST:PORT/],
  [["proxy", "--listen", "127.0.0.1:0"], /^udp proxy: missing --to HOST:PORT/],
  [["proxy", "--listen", "localhost", "--to", "127.0.0.1:9"], /^udp proxy: --listen needs a port/],
  [["proxy", "--listen", "::1", "--to", "127.0.0.1:9"], /^udp proxy: --listen needs a port/],
  [["proxy", "--listen", "127.0.0.1:0", "--to", "::1"], /^udp proxy: --to needs a port/],
  [["proxy", "--listen", "127.0.0.1:0", "--to", "[::1]"], /^udp proxy: --to needs a port/],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "150%"],
    /^udp proxy: invalid --loss '150%'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--up-dup", "often"],
    /^udp proxy: invalid --up-dup 'often'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay", "soon"],
    /^udp proxy: invalid --delay 'soon'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--down-rate", "0"],
    /^udp proxy: invalid --down-rate '0'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--burst-loss", "1%"],
    /^udp proxy: invalid --burst-loss '1%'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--queue", "0"],
    /^udp proxy: invalid --queue '0'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--seed", "-1"],
    /^udp proxy: option '--seed' needs a value/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--seed", "x"],
    /^udp proxy: invalid seed 'x'/,
  ],
  [
    ["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--log", "no/such/dir/log"],
    /^udp proxy: cannot write --log 'no\/such\/dir\/log': its directory does not exist/,
  ],
  [
    ["keygen", "no/such/dir/udp.key"],
    /^udp keygen: cannot write 'no\/such\/dir\/udp\.key': its directory does not exist$/,
  ],
  [
    ["keygen", "README.md"],
    /^udp keygen: cannot write 'README\.md': it exists already \(udp keygen never overwrites a key\)/,
  ],
];

Deno.test(`${BAD_INVOCATIONS.length} bad invocations: one line on stderr, exit 2, no stack trace`, async () => {
  for (const [args, pattern] of BAD_INVOCATIONS) {
    const result = await runUdp(args);
    try {
      assertUsageError(result, pattern);
    } catch (error) {
      throw new Error(`udp ${args.join(" ").slice(0, 80)}: ${(error as Error).message}`);
    }
    strictEqual(result.stdout, "", `udp ${args.join(" ")} printed to stdout`);
  }
});
