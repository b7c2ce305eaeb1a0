/**
 * Safe on an open port: no amplification, authenticated mode with replay protection,
 * per-source and global rate limits, key handling, and least permissions.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { importKey, signFrame, verifyFrame } from "../lib/wire/auth.ts";
import { ping } from "../lib/probe/ping.ts";
import { UsageError } from "../lib/cli/errors.ts";
import { startDirectory } from "../lib/cli/files.ts";
import { parseKey, readKeyFile } from "../lib/cli/keys.ts";
import {
  decodeFrame,
  encodeFrame,
  Flags,
  type Frame,
  maxPayloadSize,
  MessageType,
  NO_TIMESTAMP,
  STATS_PAYLOAD_SIZE,
  timestampFromMs,
} from "../lib/wire/mod.ts";
import { SourceLimiter, TokenBucket } from "../lib/reflector/ratelimit.ts";
import { ReplayGuard } from "../lib/reflector/replay.ts";
import { type RawMode, Reflector } from "../lib/reflector/reflector.ts";
import { runtimeFlags } from "../scripts/flags.ts";
import {
  childEnv,
  cpuHasCrc32Instruction,
  Inbox,
  loopbackTarget,
  runUdp,
  startServe,
  UdpProcess,
  withTempDir,
} from "./helpers.ts";

const KEY_BYTES = Uint8Array.from({ length: 32 }, (_, i) => i);
const KEY_HEX = KEY_BYTES.toHex();

function frame(fields: Partial<Frame> = {}): Uint8Array {
  return encodeFrame({
    version: 1,
    type: MessageType.PING,
    flags: 0,
    attempt: 0,
    session: 99,
    sequence: 1,
    sentAt: timestampFromMs(Date.now()),
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    payload: new Uint8Array(8),
    ...fields,
  });
}

async function signed(fields: Partial<Frame>, key: CryptoKey): Promise<Uint8Array> {
  const bytes = frame({ ...fields, flags: Flags.AUTHENTICATED });
  await signFrame(bytes, key);
  return bytes;
}

/** Sends `request` and then a marker raw datagram; returns the reply to `request`, if any. One
 * receive loop answers in order, so a reply to the request arrives before the marker's. */
async function replyTo(
  client: Inbox,
  to: { hostname: string; port: number },
  request: Uint8Array,
  marker: Uint8Array | null,
): Promise<Uint8Array | null> {
  await client.send(request, to);
  if (marker === null) return (await client.next()).data;
  await client.send(marker, to);
  const first = await client.next();
  if (new TextDecoder().decode(first.data) === `ack:${new TextDecoder().decode(marker)}`) {
    return null;
  }
  await client.next(); // the marker's own reply
  return first.data;
}

Deno.test("no amplification: every reply is at most as long as its request, but raw ack (+4)", async () => {
  const key = await importKey(KEY_BYTES);
  const truncatedPing = frame().subarray(0, 30);
  const cases: [string, Uint8Array | ((key: CryptoKey) => Promise<Uint8Array>)][] = [
    ["PING, no padding", frame({ payload: new Uint8Array(0) })],
    ["PING, 56 bytes padding", frame({ payload: new Uint8Array(56) })],
    ["PING, 1400 bytes padding", frame({ payload: new Uint8Array(1400) })],
    ["PING, largest IPv4", frame({ payload: new Uint8Array(maxPayloadSize("ipv4")) })],
    [
      "STATS_REQUEST, 32 bytes padding",
      frame({
        type: MessageType.STATS_REQUEST,
        sequence: 500,
        payload: new Uint8Array(STATS_PAYLOAD_SIZE),
      }),
    ],
    [
      "STATS_REQUEST, 4 bytes padding",
      frame({ type: MessageType.STATS_REQUEST, sequence: 501, payload: new Uint8Array(4) }),
    ],
    ["STATS sent to the server", frame({ type: MessageType.STATS })],
    ["PONG sent to the server", frame({ type: MessageType.PONG })],
    ["ERROR sent to the server", frame({ type: MessageType.ERROR, payload: Uint8Array.of(1, 0) })],
    ["version 2, 48 bytes", frame({ version: 2, payload: new Uint8Array(0) })],
    ["version 2, 56 bytes", frame({ version: 2 })],
    ["unknown type, 48 bytes", frame({ type: 9 as MessageType, payload: new Uint8Array(0) })],
    ["unknown type, 56 bytes", frame({ type: 9 as MessageType })],
    ["corrupted PING (a bit flipped)", frame().map((byte, i) => i === 20 ? byte ^ 4 : byte)],
    ["too short", truncatedPing],
    ["length mismatch", frame().subarray(0, 51)],
    ["raw, 0 bytes", new Uint8Array(0)],
    ["raw, 5 bytes", new TextEncoder().encode("hello")],
    ["raw, 1400 bytes", new Uint8Array(1400).fill(0x41)],
    ["authenticated PING, right key", (k) => signed({}, k)],
    [
      "authenticated PING, largest",
      (k) =>
        signed(
          { sequence: 2, payload: new Uint8Array(maxPayloadSize("ipv4", true)) },
          k,
        ),
    ],
  ];
  const modes: { name: string; raw: RawMode; key: boolean }[] = [
    { name: "--raw ack", raw: "ack", key: false },
    { name: "--raw echo", raw: "echo", key: false },
    { name: "--raw ignore", raw: "ignore", key: false },
    { name: "--key-file", raw: "ignore", key: true },
  ];
  const rows: string[] = [];
  for (const mode of modes) {
    const reflector = Reflector.listen({
      hostname: "127.0.0.1",
      port: 0,
      raw: mode.raw,
      key: mode.key ? key : undefined,
    });
    const client = new Inbox();
    try {
      for (const [index, [name, make]] of cases.entries()) {
        const request = typeof make === "function" ? await make(key) : make;
        await client.send(request, reflector.address);
        // A PING of its own is answered in every mode, after the request (one receive loop
        // answers in order): its PONG marks the end of the request's handling.
        const sequence = 10_000 + index;
        const probe = mode.key ? await signed({ sequence }, key) : frame({ sequence });
        await client.send(probe, reflector.address);
        let reply: Uint8Array | null = null;
        while (true) {
          const received = (await client.next()).data;
          const decoded = decodeFrame(received);
          if (decoded.kind === "frame" && decoded.frame.sequence === sequence) break;
          reply = received;
        }
        const replyBytes = reply?.length ?? 0;
        const isAck = mode.raw === "ack" && name.startsWith("raw");
        if (isAck) strictEqual(replyBytes, request.length + 4, `${mode.name} / ${name}`);
        else {assert(
            replyBytes <= request.length,
            `${mode.name} / ${name}: ${replyBytes} > ${request.length}`,
          );}
        const ratio = request.length === 0
          ? (replyBytes === 0 ? "-" : "+4 bytes")
          : (replyBytes / request.length).toFixed(2);
        rows.push(
          `| ${mode.name.padEnd(12)} | ${name.padEnd(32)} | ${
            String(request.length).padStart(6)
          } | ${String(replyBytes).padStart(6)} | ${ratio.padStart(8)} |`,
        );
      }
    } finally {
      await client.close();
      await reflector.close();
    }
  }
  console.log(
    ["| mode         | request                          |  bytes |  reply |    ratio |", ...rows]
      .join("\n"),
  );
});

Deno.test("parseKey() reads hex and base64 and refuses bad lengths and encodings in one line", () => {
  assertEquals(parseKey(KEY_HEX, "test"), KEY_BYTES);
  assertEquals(parseKey(KEY_BYTES.toBase64() + "\n", "test"), KEY_BYTES);
  throws(() => parseKey("00".repeat(8), "k"), /k holds a 8-byte key: use 16 to 64 bytes/);
  throws(() => parseKey("00".repeat(65), "k"), /holds a 65-byte key/);
  throws(() => parseKey("not a key!", "k"), /k is neither hex nor base64/);
});

Deno.test("readKeyFile() refuses a key file other users may read", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/key`;
    await Deno.writeTextFile(path, KEY_HEX, { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    assertEquals(await readKeyFile(path), KEY_BYTES);
    await Deno.chmod(path, 0o644);
    await rejects(readKeyFile(path), (error: Error) => {
      assert(error instanceof UsageError);
      strictEqual(
        error.message,
        `--key-file '${path}' can be read by other users (mode 644): run chmod 600 '${path}'`,
      );
      return true;
    });
    await rejects(
      readKeyFile(`${dir}/missing`),
      /cannot read --key-file '.*missing': no such file/,
    );
  });
});

Deno.test("ReplayGuard refuses stale frames and replays, and remembers at least two windows", () => {
  const guard = new ReplayGuard({ windowMs: 1000, capacity: 3 });
  const at = (ms: number) => timestampFromMs(1_700_000_000_000 + ms);
  strictEqual(guard.check(1, 1, 0, at(0), at(0)), "ok");
  strictEqual(guard.check(1, 1, 1, at(0), at(0)), "ok");
  strictEqual(guard.check(1, 1, 0, at(0), at(500)), "replayed");
  strictEqual(guard.check(1, 2, 0, at(0), at(1001)), "stale");
  strictEqual(guard.check(1, 2, 0, at(5000), at(3000)), "stale");
  // Accepted at 999 with a timestamp of 0: a replay is possible until 1000 + 999; still caught.
  strictEqual(guard.check(2, 1, 0, at(900), at(999)), "ok");
  strictEqual(guard.check(2, 1, 0, at(900), at(1899)), "replayed");
  strictEqual(guard.check(3, 1, 0, at(2900), at(2900)), "ok");
  strictEqual(guard.check(3, 2, 0, at(2900), at(2900)), "ok");
  strictEqual(guard.check(3, 3, 0, at(2900), at(2900)), "ok");
  strictEqual(guard.check(3, 4, 0, at(2900), at(2900)), "full");
  assert(guard.size <= 9);
});

Deno.test("TokenBucket and SourceLimiter hold their rates with bounded state", () => {
  const bucket = new TokenBucket(100, 5, 0);
  assertEquals(Array.from({ length: 7 }, () => bucket.take(0)), [
    true,
    true,
    true,
    true,
    true,
    false,
    false,
  ]);
  assert(bucket.take(10) && !bucket.take(10));
  const limiter = new SourceLimiter({ rate: 10, burst: 2, maxSources: 2 });
  assert(limiter.allow("a", 0) && limiter.allow("a", 0) && !limiter.allow("a", 0));
  assert(limiter.allow("b", 0));
  // The table is full: a third source shares the overflow bucket; known sources keep theirs.
  assert(limiter.allow("c", 0) && limiter.allow("d", 0) && !limiter.allow("e", 0));
  strictEqual(limiter.size, 2);
  // A second later every bucket is full again: the table forgets them and admits new sources.
  assert(limiter.allow("f", 1000) && limiter.size <= 2);
});

Deno.test("authenticated reflector: answers tagged PINGs with tagged PONGs, silently refuses the rest", async () => {
  const key = await importKey(KEY_BYTES);
  const wrongKey = await importKey(new Uint8Array(32).fill(9));
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, key, raw: "ack" });
  const client = new Inbox();
  const marker = new TextEncoder().encode("marker");
  try {
    const request = await signed({ sequence: 1 }, key);
    const pong = await replyTo(client, reflector.address, request, marker);
    assert(pong !== null && pong.length === request.length);
    assert(await verifyFrame(pong, key));
    strictEqual(
      decodeFrame(pong).kind === "frame" && (decodeFrame(pong) as { frame: Frame }).frame.type,
      MessageType.PONG,
    );
    // Each of these gets no reply at all.
    strictEqual(await replyTo(client, reflector.address, frame({ sequence: 2 }), marker), null);
    strictEqual(
      await replyTo(client, reflector.address, await signed({ sequence: 3 }, wrongKey), marker),
      null,
    );
    strictEqual(await replyTo(client, reflector.address, request, marker), null); // replayed
    const old = await signed({ sequence: 4, sentAt: timestampFromMs(Date.now() - 3_600_000) }, key);
    strictEqual(await replyTo(client, reflector.address, old, marker), null);
    strictEqual(await replyTo(client, reflector.address, frame({ version: 2 }), marker), null);
    const stats = reflector.stats;
    assertEquals(
      [
        stats.refused["auth-missing"],
        stats.refused["auth-failed"],
        stats.refused.replayed,
        stats.refused.stale,
      ],
      [1, 1, 1, 1],
    );
    assertEquals([stats.kinds.ping, stats.kinds.refused, stats.kinds["unsupported-version"]], [
      1,
      4,
      1,
    ]);
  } finally {
    await client.close();
    await reflector.close();
  }
});

Deno.test("authenticated ping(): works with the right key; a wrong or missing key gets nothing", async () => {
  const key = await importKey(KEY_BYTES);
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, key });
  const target = loopbackTarget(reflector.address.port);
  try {
    const good = await ping({ target, count: 5, intervalMs: 0, key });
    assertEquals([good.summary.received, good.summary.foreign, good.authFailures], [5, 0, 0]);
    const wrong = await ping({
      target,
      count: 2,
      intervalMs: 0,
      timeoutMs: 50,
      key: await importKey(new Uint8Array(16)),
    });
    assertEquals([wrong.summary.received, wrong.summary.lost], [0, 2]);
    const none = await ping({ target, count: 2, intervalMs: 0, timeoutMs: 50 });
    assertEquals([none.summary.received, none.summary.lost], [0, 2]);
    assertEquals(
      [reflector.stats.refused["auth-failed"], reflector.stats.refused["auth-missing"]],
      [2, 2],
    );
  } finally {
    await reflector.close();
  }
  // A client with a key rejects the untagged PONGs of a reflector without one.
  const plain = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const result = await ping({
      target: loopbackTarget(plain.address.port),
      count: 3,
      intervalMs: 0,
      timeoutMs: 50,
      key,
    });
    assertEquals([result.summary.received, result.summary.foreign, result.authFailures], [0, 3, 3]);
  } finally {
    await plain.close();
  }
});

Deno.test("rate limits: a flooder is held to its rate while a second source keeps 0% loss", async () => {
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    rateLimit: { rate: 50, burst: 10 },
  });
  // The flooder sends from another loopback address, so it is another source.
  const flooder = new Inbox("127.0.0.2");
  const started = performance.now();
  let pingDone = false;
  let flooded = 0;
  const flood = (async () => {
    const datagram = new TextEncoder().encode("flood");
    while (!pingDone && flooded < 20_000) {
      await flooder.send(datagram, reflector.address);
      flooded++;
      // Offered load stays below what the reflector drains, so the kernel drops nothing and
      // the pinger's probes are never crowded out of the socket buffer by the flood itself.
      if (flooded % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  const result = await ping({
    target: loopbackTarget(reflector.address.port),
    count: 20,
    intervalMs: 25,
    timeoutMs: 1000,
  });
  pingDone = true;
  await flood;
  const elapsedS = (performance.now() - started) / 1000;
  await flooder.close();
  await reflector.close();
  const stats = reflector.stats;
  const answeredFlood = stats.kinds.raw;
  console.log(
    `rate limit 50/s burst 10: flooder sent ${flooded} in ${
      elapsedS.toFixed(2)
    } s, ${answeredFlood} answered, ` +
      `${
        stats.refused["rate-limit"]
      } refused; pinger ${result.summary.received}/${result.summary.transmitted} received`,
  );
  assertEquals([result.summary.received, result.summary.lost, result.summary.loss_percent], [
    20,
    0,
    0,
  ]);
  strictEqual(answeredFlood + stats.refused["rate-limit"] + stats.kinds.ping, stats.received);
  strictEqual(stats.kinds.ping, 20);
  assert(answeredFlood <= 10 + Math.ceil(50 * elapsedS) + 1, `answered ${answeredFlood}`);
  assert(stats.refused["rate-limit"] > flooded / 2);
});

Deno.test("global limit: all sources together are held to it", async () => {
  let handled = 0;
  const allHandled = Promise.withResolvers<void>();
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    globalLimit: { rate: 1, burst: 5 },
    onDatagram: () => {
      if (++handled === 21) allHandled.resolve();
    },
  });
  const a = new Inbox("127.0.0.1");
  const b = new Inbox("127.0.0.3");
  try {
    for (let i = 0; i < 10; i++) {
      await a.send(new TextEncoder().encode("a"), reflector.address);
      await b.send(new TextEncoder().encode("b"), reflector.address);
    }
    await a.send(frame(), reflector.address);
    await allHandled.promise;
  } finally {
    await a.close();
    await b.close();
    await reflector.close();
  }
  const stats = reflector.stats;
  strictEqual(stats.received, 21);
  assert(stats.replied <= 6, `replied ${stats.replied}`);
  strictEqual(stats.refused["global-limit"], 21 - stats.replied);
});

Deno.test("least privilege: the binary's flags are exactly these", () => {
  assertEquals(runtimeFlags(), [
    "--unstable-net",
    "--allow-net",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env=UDP_KEY,INIT_CWD",
  ]);
});

/** An entry point that runs the CLI as main.ts does and, the moment write permission changes
 * (read is given up just before it), reports on stderr what a read and a write can still do. */
const PERMISSION_PROBE = `
  import { main } from "${new URL("../lib/cli/main.ts", import.meta.url)}";
  const [probe, target, ...args] = Deno.args;
  const write = await Deno.permissions.query({ name: "write" });
  write.addEventListener("change", () => {
    const out = [Deno.permissions.querySync({ name: "read" }).state, write.state];
    for (const attempt of [
      () => Deno.readTextFileSync(probe),
      () => Deno.writeTextFileSync(target, "written"),
    ]) {
      try { attempt(); out.push("allowed"); } catch (e) { out.push(e.name); }
    }
    console.error("permissions after start: " + JSON.stringify(out));
  });
  Deno.exit(await main(args));
`;

Deno.test("least privilege: every command gives up read and write permission once its files are open", async () => {
  await withTempDir(async (dir) => {
    const entry = `${dir}/probe_main.ts`;
    await Deno.writeTextFile(entry, PERMISSION_PROBE);
    await Deno.writeTextFile(`${dir}/probe.txt`, "readable before");
    await Deno.writeTextFile(`${dir}/udp.key`, KEY_HEX, { mode: 0o600 });
    await Deno.chmod(`${dir}/udp.key`, 0o600);
    await Deno.writeTextFile(`${dir}/data.txt`, "from a file");
    const key = await importKey(KEY_BYTES);
    const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, key });
    const sink = new Inbox();
    const keyed = `127.0.0.1:${reflector.address.port}`;
    const probe = [`${dir}/probe.txt`, `${dir}/written.txt`];
    const expected = 'permissions after start: ["prompt","prompt","NotCapable","NotCapable"]\n';
    try {
      const finishing: [string, string[]][] = [
        ["keygen", ["keygen", `${dir}/new.key`]],
        ["keygen (stdout)", ["keygen"]],
        ["send --file", [
          "send",
          `127.0.0.1:${sink.socket.address.port}`,
          "--file",
          `${dir}/data.txt`,
        ]],
        ["ping --key-file", ["ping", keyed, "-c", "1", "--key-file", `${dir}/udp.key`]],
        ["nat --key-file", [
          "nat",
          keyed,
          "--max",
          "1",
          "-W",
          "0.3",
          "--key-file",
          `${dir}/udp.key`,
        ]],
        ["bench --key-file", [
          "bench",
          keyed,
          "--duration",
          "0.1",
          "--rate",
          "50",
          "-i",
          "0",
          "--key-file",
          `${dir}/udp.key`,
        ]],
      ];
      for (const [name, args] of finishing) {
        const result = await runUdp([...probe, ...args], undefined, { entry });
        strictEqual(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
        strictEqual(result.stderr, expected, name);
      }
      strictEqual(new TextDecoder().decode((await sink.next()).data), "from a file");
      assert((await Deno.readTextFile(`${dir}/new.key`)).length === 65);
      const running: [string, string[], RegExp][] = [
        [
          "serve --key-file",
          ["serve", "--port", "0", "--key-file", `${dir}/udp.key`],
          /^Listening/,
        ],
        ["listen", ["listen", "--port", "0"], /^Listening/],
        [
          "proxy --log",
          ["proxy", "--listen", "127.0.0.1:0", "--to", keyed, "--log", `${dir}/p.ndjson`],
          /^Proxying/,
        ],
      ];
      for (const [name, args, ready] of running) {
        const process = new UdpProcess([...probe, ...args], { entry });
        await process.waitFor(ready);
        const result = await process.stop("SIGTERM");
        strictEqual(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
        strictEqual(result.stderr, expected, name);
      }
      await rejects(Deno.stat(`${dir}/written.txt`), Deno.errors.NotFound);
    } finally {
      await sink.close();
      await reflector.close();
    }
  });
});

Deno.test("files wherever the user names them: a key outside the working directory, keygen and --log to absolute paths, send --file ../x", async () => {
  await withTempDir(async (elsewhere) => {
    await withTempDir(async (cwd) => {
      const keyPath = `${elsewhere}/keys/udp.key`;
      await Deno.mkdir(`${elsewhere}/keys`);
      const made = await runUdp(["keygen", keyPath], undefined, { cwd });
      strictEqual(made.code, 0, made.stderr);
      strictEqual(made.stdout, `Wrote a 256-bit key to ${keyPath} (mode 600)\n`);
      strictEqual((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
      const { serve, port } = await startServe(["--key-file", keyPath], { cwd });
      const logPath = `${elsewhere}/proxy.ndjson`;
      const proxy = new UdpProcess(
        ["proxy", "--listen", "127.0.0.1:0", "--to", `127.0.0.1:${port}`, "--log", logPath],
        { cwd },
      );
      try {
        const [, proxyPort] = await proxy.waitFor(/^Proxying 127\.0\.0\.1:(\d+) /);
        const pinged = await runUdp(
          ["ping", `127.0.0.1:${proxyPort}`, "-c", "2", "-i", "0", "--key-file", keyPath],
          undefined,
          { cwd },
        );
        strictEqual(pinged.code, 0, pinged.stdout + pinged.stderr);
        assert(/2 packets transmitted, 2 received/.test(pinged.stdout), pinged.stdout);
      } finally {
        strictEqual((await proxy.stop()).code, 0);
        await serve.stop();
      }
      const records = (await Deno.readTextFile(logPath)).trimEnd().split("\n").map((line) =>
        JSON.parse(line)
      );
      assertEquals(records.map((r) => r.dir), ["up", "down", "up", "down"]);
      // send --file ../x: relative to the directory the command runs in.
      await Deno.mkdir(`${cwd}/sub`);
      await Deno.writeTextFile(`${cwd}/x`, "one level up");
      const sink = new Inbox();
      try {
        const sent = await runUdp(
          ["send", `127.0.0.1:${sink.socket.address.port}`, "--file", "../x"],
          undefined,
          { cwd: `${cwd}/sub` },
        );
        strictEqual(sent.code, 0, sent.stderr);
        strictEqual(new TextDecoder().decode((await sink.next()).data), "one level up");
      } finally {
        await sink.close();
      }
    });
  });
});

Deno.test("udp send resolves a host name after giving up read permission (/etc/hosts is read by the resolver, not by udp)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/data.txt`, "by name");
    const sink = new Inbox();
    try {
      const sent = await runUdp(
        ["send", `localhost:${sink.socket.address.port}`, "--file", "data.txt", "-4"],
        undefined,
        { cwd: dir },
      );
      strictEqual(sent.code, 0, sent.stderr);
      strictEqual(new TextDecoder().decode((await sink.next()).data), "by name");
    } finally {
      await sink.close();
    }
  });
});

Deno.test("udp proxy --log refuses an existing file in one line, exit 2; --append adds to it", async () => {
  await withTempDir(async (dir) => {
    const log = `${dir}/p.ndjson`;
    await Deno.writeTextFile(log, '{"earlier":"run"}\n');
    const refused = await runUdp([
      "proxy",
      "--listen",
      "127.0.0.1:0",
      "--to",
      "127.0.0.1:9",
      "--log",
      log,
    ]);
    strictEqual(refused.code, 2);
    strictEqual(
      refused.stderr,
      `udp proxy: cannot write --log '${log}': it exists already: add --append to add to it, or name a new file\n`,
    );
    strictEqual(refused.stdout, "");
    strictEqual(await Deno.readTextFile(log), '{"earlier":"run"}\n');
    const alone = await runUdp([
      "proxy",
      "--listen",
      "127.0.0.1:0",
      "--to",
      "127.0.0.1:9",
      "--append",
    ]);
    strictEqual(alone.stderr, "udp proxy: --append goes with --log FILE\n");
    const sink = new Inbox();
    const proxy = new UdpProcess([
      "proxy",
      "--listen",
      "127.0.0.1:0",
      "--to",
      `127.0.0.1:${sink.socket.address.port}`,
      "--log",
      log,
      "--append",
    ]);
    try {
      const [, port] = await proxy.waitFor(/^Proxying 127\.0\.0\.1:(\d+) /);
      const sent = await runUdp(["send", `127.0.0.1:${port}`, "through"]);
      strictEqual(sent.code, 0, sent.stderr);
      strictEqual(new TextDecoder().decode((await sink.next()).data), "through");
    } finally {
      strictEqual((await proxy.stop()).code, 0);
      await sink.close();
    }
    const lines = (await Deno.readTextFile(log)).trimEnd().split("\n");
    strictEqual(lines[0], '{"earlier":"run"}');
    assertEquals(lines.slice(1).map((line) => JSON.parse(line).action), ["forwarded"]);
    // A proxy that cannot bind leaves no log behind, so the next run is not refused.
    const busy = new Inbox();
    try {
      const failed = await runUdp([
        "proxy",
        "--listen",
        `127.0.0.1:${busy.socket.address.port}`,
        "--to",
        "127.0.0.1:9",
        "--log",
        `${dir}/new.ndjson`,
      ]);
      strictEqual(failed.code, 2, failed.stderr);
      await rejects(Deno.stat(`${dir}/new.ndjson`), Deno.errors.NotFound);
    } finally {
      await busy.close();
    }
  });
});

Deno.test("deno task udp takes relative paths from the directory it was started in ($INIT_CWD)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/message.txt`, "via deno task");
    const sink = new Inbox();
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "--quiet",
          "--config",
          new URL("../deno.json", import.meta.url).pathname,
          "udp",
          "send",
          `127.0.0.1:${sink.socket.address.port}`,
          "--file",
          "message.txt",
        ],
        cwd: dir,
        // Without an $INIT_CWD of this test's own (deno task keeps one it inherits, as npm
        // does), so that deno task sets it to `dir`.
        clearEnv: true,
        env: childEnv(),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      strictEqual(output.code, 0, stderr);
      strictEqual(new TextDecoder().decode((await sink.next()).data), "via deno task");
    } finally {
      await sink.close();
    }
  });
});

Deno.test("startDirectory(): $INIT_CWD only under deno task (from source, in the project's directory)", () => {
  const task = { taskDirectory: "/src/udp", initCwd: "/home/me/work", standalone: false };
  strictEqual(startDirectory({ ...task, cwd: "/src/udp" }), "/home/me/work");
  strictEqual(startDirectory({ ...task, cwd: "/src/udp/" }), "/home/me/work");
  strictEqual(
    startDirectory({ ...task, taskDirectory: "/src/udp/", cwd: "/src/udp" }),
    "/home/me/work",
  );
  // A test or a script that starts main.ts elsewhere, with an $INIT_CWD it inherited.
  strictEqual(startDirectory({ ...task, cwd: "/tmp/run" }), "/tmp/run");
  // The compiled binary never looks at it: npm or an outer deno task may have set it.
  strictEqual(startDirectory({ ...task, cwd: "/src/udp", standalone: true }), "/src/udp");
  strictEqual(startDirectory({ ...task, cwd: "/src/udp", initCwd: undefined }), "/src/udp");
  strictEqual(startDirectory({ ...task, cwd: "/src/udp", initCwd: "" }), "/src/udp");
});

Deno.test({
  name: "least privilege: --allow-ffi is given up at start; native sockets keep working",
  ignore: !(Deno.build.os === "linux" && Deno.build.arch === "x86_64"),
  fn: async () => {
    // What main.ts does first, then what an attacker who got code running would try.
    const script = `
      import { giveUpFfiPermission, hardwareCrc32c } from "${new URL(
      "../lib/net/mod.ts",
      import.meta.url,
    )}";
      import { UdpSocket } from "${new URL("../lib/net/socket.ts", import.meta.url)}";
      giveUpFfiPermission();
      // The CPU's CRC-32C (its page of machine code set up before) still answers, and right.
      const crc = hardwareCrc32c();
      const check = crc === null ? "no crc32 instruction"
        : ((crc(-1, new TextEncoder().encode("123456789"), 0, 9) ^ -1) >>> 0).toString(16);
      const out = [Deno.permissions.querySync({ name: "ffi" }).state];
      for (const attempt of [
        () => Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }),
        () => Deno.UnsafePointer.of(new Uint8Array(8)),
        () => new Deno.UnsafePointerView(Deno.UnsafePointer.create(4096n)),
      ]) {
        try { attempt(); out.push("allowed"); } catch (e) { out.push(e.name); }
      }
      const a = UdpSocket.bind("127.0.0.1", 0);
      const b = UdpSocket.bind("127.0.0.1", 0);
      const got = Promise.withResolvers();
      const loop = b.receiveEach((data) => got.resolve(new TextDecoder().decode(data)));
      await a.send(new TextEncoder().encode("still works"), b.address);
      out.push(a.backend, await got.promise, check);
      a.close(); b.close(); await loop;
      console.log(JSON.stringify(out));
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...runtimeFlags(), "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script));
    await writer.close();
    const output = await child.output();
    const stderr = new TextDecoder().decode(output.stderr);
    strictEqual(output.code, 0, stderr);
    assertEquals(JSON.parse(new TextDecoder().decode(output.stdout)), [
      "prompt",
      "NotCapable",
      "NotCapable",
      "NotCapable",
      "native",
      "still works",
      // Where the processor has the instruction (x86-64 since 2008: SSE4.2), the check value.
      cpuHasCrc32Instruction() ? "e3069283" : "no crc32 instruction",
    ]);
  },
});

Deno.test("udp keygen + serve --key-file + ping --key-file / --key-env, end to end", async () => {
  await withTempDir(async (dir) => {
    const made = await runUdp(["keygen", "udp.key"], undefined, { cwd: dir });
    strictEqual(made.stdout, "Wrote a 256-bit key to udp.key (mode 600)\n");
    strictEqual((await Deno.stat(`${dir}/udp.key`)).mode! & 0o777, 0o600);
    const again = await runUdp(["keygen", "udp.key"], undefined, { cwd: dir });
    assert(/it exists already/.test(again.stderr) && again.code === 2);
    const key = (await Deno.readTextFile(`${dir}/udp.key`)).trim();
    const { serve, port } = await startServe(["--key-file", "udp.key"], { cwd: dir });
    try {
      const good = await runUdp(
        ["ping", `127.0.0.1:${port}`, "-c", "3", "-i", "0", "--key-file", "udp.key"],
        undefined,
        { cwd: dir },
      );
      strictEqual(good.code, 0, good.stdout + good.stderr);
      assert(
        /^UDP PING 127\.0\.0\.1:\d+: 56 data bytes, 120-byte datagrams \(authenticated\)/.test(
          good.stdout,
        ),
      );
      assert(/3 packets transmitted, 3 received/.test(good.stdout));
      const fromEnv = await runUdp(
        ["ping", `127.0.0.1:${port}`, "-c", "2", "-i", "0", "--key-env"],
        undefined,
        {
          env: { UDP_KEY: key },
        },
      );
      assert(
        /2 packets transmitted, 2 received/.test(fromEnv.stdout),
        fromEnv.stdout + fromEnv.stderr,
      );
      const without = await runUdp([
        "ping",
        `127.0.0.1:${port}`,
        "-c",
        "2",
        "-i",
        "0",
        "-W",
        "0.1",
      ]);
      strictEqual(without.code, 1);
    } finally {
      const stopped = await serve.stop();
      assert(/refused: auth-missing 2/.test(stopped.stdout), stopped.stdout);
    }
    await Deno.writeTextFile(`${dir}/open.key`, key);
    await Deno.chmod(`${dir}/open.key`, 0o644);
    const open = await runUdp(["serve", "--port", "0", "--key-file", "open.key"], undefined, {
      cwd: dir,
    });
    strictEqual(
      open.stderr,
      "udp serve: --key-file 'open.key' can be read by other users (mode 644): run chmod 600 'open.key'\n",
    );
    const both = await runUdp(
      ["ping", "127.0.0.1", "--key-file", "udp.key", "--key-env"],
      undefined,
      { cwd: dir },
    );
    strictEqual(both.stderr, "udp ping: give either --key-file or --key-env, not both\n");
    const unset = await runUdp(["ping", "127.0.0.1", "--key-env"]);
    strictEqual(unset.stderr, "udp ping: --key-env: $UDP_KEY is not set\n");
  });
});

Deno.test("udp serve on a non-loopback address without a key prints a one-line notice", async () => {
  const { serve } = await startServe(["--host", "0.0.0.0"]);
  const stopped = await serve.stop();
  strictEqual(stopped.code, 0);
  assert(
    /^udp serve: notice: 0\.0\.0\.0:\d+ is reachable from other hosts/.test(stopped.stderr),
    stopped.stderr,
  );
  strictEqual(stopped.stderr.trimEnd().split("\n").length, 1);
  const local = await startServe();
  strictEqual((await local.serve.stop()).stderr, "");
});

Deno.test("udp serve -v logs refused datagrams with the reason", async () => {
  const { serve, port } = await startServe(["-v", "--rate-limit", "1", "--rate-burst", "1"]);
  try {
    await runUdp(["ping", `127.0.0.1:${port}`, "-c", "2", "-i", "0", "-W", "0.1", "-q"]);
    await serve.waitFor(/^127\.0\.0\.1:\d+ 104 bytes PING seq=0 .* -> PONG 104 bytes$/);
    await serve.waitFor(/^127\.0\.0\.1:\d+ 104 bytes datagram refused \(rate-limit\) -> no reply$/);
  } finally {
    const stopped = await serve.stop();
    assert(/refused: rate-limit 1\n/.test(stopped.stdout), stopped.stdout);
  }
});
