/**
 * STAMP end to end, udp against itself and against the oracles that know the truth: the
 * proxy's log for loss per direction, the kernel for TTL and DSCP on loopback, the reflector's
 * own counters for what it refused. The third-party peers are tests/stamp_interop_test.ts.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { bench } from "../lib/probe/bench.ts";
import { ping } from "../lib/probe/ping.ts";
import { NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { defaultBackend, UdpSocket } from "../lib/net/socket.ts";
import { localClockQuality } from "../lib/net/mod.ts";
import { importKey, stampFormat, timestampFromMs } from "../lib/wire/mod.ts";
import { Inbox, loopbackTarget, runUdp, udpArgv, UdpProcess } from "./helpers.ts";

const native = defaultBackend() === "native";

/** Datagrams of a direction the proxy dropped, among the first `upTo` to arrive at it. */
function dropped(log: ProxyLogRecord[], dir: "up" | "down", upTo = Infinity): number {
  return log.filter((record) =>
    record.dir === dir && record.index < upTo && record.action === "dropped"
  ).length;
}

Deno.test("ping --stamp against a stateless reflector: every probe, hops, IPDV, no one-way claim", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
  try {
    const result = await ping({
      target: loopbackTarget(reflector.address.port),
      format: stampFormat(),
      payloadSize: 0,
      count: 5,
      intervalMs: 0,
    });
    const s = result.summary;
    assertEquals([s.transmitted, s.received, s.lost, s.foreign], [5, 5, 0, 0]);
    // No loss at all: both directions are known to be 0 even from a stateless reflector.
    assertEquals([s.lost_there, s.lost_back], [0, 0]);
    strictEqual(s.ipdv_there_ms.samples, 4);
    strictEqual(s.ipdv_back_ms.samples, 4);
    strictEqual(s.server_ms.min !== null, true);
    // The kernel keeps our TTL of 255 on loopback: one hop, if this backend could set it.
    strictEqual(s.hops_there, native ? 1 : null);
    if (!localClockQuality().synchronized) {
      strictEqual(s.one_way_there_ms, null);
      assert(result.path?.oneWayOmitted?.includes("not known to be synchronized"));
    }
    strictEqual(reflector.stats.kinds.ping, 5);
    strictEqual(reflector.stats.replied, 5);
  } finally {
    await reflector.close();
  }
});

for (const how of ["stateful", "direct-measurement"] as const) {
  Deno.test(`loss per direction (${how}) equals the proxy's drops each way, exactly`, async () => {
    const reflector = Reflector.listen({
      hostname: "127.0.0.1",
      port: 0,
      format: stampFormat({ stateful: how === "stateful" }),
    });
    const log: ProxyLogRecord[] = [];
    const proxy = Proxy.listen({
      listen: { hostname: "127.0.0.1", port: 0 },
      target: loopbackTarget(reflector.address.port),
      up: { ...NO_IMPAIRMENTS, loss: 0.2 },
      down: { ...NO_IMPAIRMENTS, loss: 0.15 },
      seed: 7,
      onLog: (record) => log.push(structuredClone(record)),
    });
    try {
      const replies: number[] = [];
      const result = await ping({
        target: loopbackTarget(proxy.address.port),
        format: stampFormat({ tlvs: how === "stateful" ? [] : ["direct-measurement"] }),
        payloadSize: 0,
        count: 200,
        intervalMs: 2,
        timeoutMs: 1000,
        onEvent: (event) => {
          if (event.type === "reply") replies.push(event.seq);
        },
      });
      const s = result.summary;
      const last = Math.max(...replies);
      // Up to the last probe answered: the probes the proxy dropped on the way there, and of
      // the replies the reflector sent for the rest, those it dropped on the way back.
      const there = dropped(log, "up", last + 1);
      const back = dropped(log, "down", last + 1 - there);
      assert(there > 20 && back > 10, `${there} ${back}`);
      assertEquals([s.lost_there, s.lost_back], [there, back]);
      strictEqual(s.received, 200 - dropped(log, "up") - dropped(log, "down"));
      strictEqual(
        result.path?.lossSource,
        how === "stateful" ? "reflector-sequence" : "direct-measurement",
      );
    } finally {
      await proxy.close();
      await reflector.close();
    }
  });
}

Deno.test("bench --stamp against a stateful reflector: loss there from its sequence numbers, exactly", async () => {
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    format: stampFormat({ stateful: true }),
  });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    up: { ...NO_IMPAIRMENTS, loss: 0.1 },
    down: NO_IMPAIRMENTS,
    seed: 3,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    const summary = await bench({
      target: loopbackTarget(proxy.address.port),
      format: stampFormat(),
      rate: 2000,
      durationMs: 300,
      payloadSize: 0,
      graceMs: 200,
    });
    // Nothing is lost on the way back: the last probe answered is the last one forwarded.
    const up = log.filter((record) => record.dir === "up");
    const last = Math.max(
      ...up.filter((record) => record.action !== "dropped").map((r) => r.index),
    );
    const there = dropped(log, "up", last + 1);
    assert(there > 20, `${there}`);
    assertEquals([summary.loss_up, summary.loss_down], [there, 0]);
    strictEqual(summary.datagram_bytes, 44);
    strictEqual(reflector.stats.kinds.ping, summary.sent - dropped(log, "up"));
  } finally {
    await proxy.close();
    await reflector.close();
  }
});

for (const how of ["stateful", "direct-measurement"] as const) {
  Deno.test(`with duplication and reordering too (${how}): the split adds up to what was lost`, async () => {
    const reflector = Reflector.listen({
      hostname: "127.0.0.1",
      port: 0,
      format: stampFormat({ stateful: how === "stateful" }),
    });
    const impairments = { ...NO_IMPAIRMENTS, loss: 0.1, duplicate: 0.1, reorder: 0.1 };
    const proxy = Proxy.listen({
      listen: { hostname: "127.0.0.1", port: 0 },
      target: loopbackTarget(reflector.address.port),
      up: impairments,
      down: impairments,
      seed: 17,
    });
    try {
      const answered: number[] = [];
      const result = await ping({
        target: loopbackTarget(proxy.address.port),
        format: stampFormat({ tlvs: how === "stateful" ? [] : ["direct-measurement"] }),
        payloadSize: 0,
        count: 200,
        intervalMs: 2,
        timeoutMs: 1000,
        onEvent: (event) => {
          if (event.type === "reply" || event.type === "late") answered.push(event.seq);
        },
      });
      const s = result.summary;
      assert(s.duplicates > 0 && s.reordered > 0, `${s.duplicates} ${s.reordered}`);
      const lost = Math.max(...answered) + 1 - answered.length;
      // The reflector's counts place the loss (duplicates on the way there told by their
      // second reply's count), and the two parts are what was lost.
      assert(s.lost_there !== null && s.lost_back !== null, JSON.stringify(s));
      strictEqual(s.lost_there + s.lost_back, lost);
    } finally {
      await proxy.close();
      await reflector.close();
    }
  });
}

Deno.test("authenticated STAMP: 112-byte packets, a wrong key refused and counted, no reply", async () => {
  const key = await importKey(new Uint8Array(32).fill(7));
  const wrong = await importKey(new Uint8Array(32).fill(8));
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    format: stampFormat({ authenticated: true }),
    key,
  });
  try {
    const target = loopbackTarget(reflector.address.port);
    const good = await ping({
      target,
      format: stampFormat({ authenticated: true, tlvs: ["direct-measurement"] }),
      key,
      payloadSize: 0,
      count: 3,
      intervalMs: 0,
    });
    assertEquals([good.summary.received, good.summary.foreign], [3, 0]);
    assertEquals([good.summary.lost_there, good.summary.lost_back], [0, 0]);
    const bad = await ping({
      target,
      format: stampFormat({ authenticated: true }),
      key: wrong,
      payloadSize: 0,
      count: 2,
      intervalMs: 0,
      timeoutMs: 200,
    });
    strictEqual(bad.summary.received, 0);
    // An unauthenticated packet is too short for an authenticated reflector.
    const plain = await ping({
      target,
      format: stampFormat(),
      payloadSize: 0,
      count: 1,
      timeoutMs: 200,
    });
    strictEqual(plain.summary.received, 0);
    const stats = reflector.stats;
    strictEqual(stats.refused["auth-failed"], 2);
    strictEqual(stats.malformed["too-short"], 1);
    strictEqual(stats.replied, 3);
  } finally {
    await reflector.close();
  }
});

Deno.test("the STAMP reflector never answers with more bytes than it got; short ones are counted", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
  const inbox = new Inbox();
  try {
    const sizes = [0, 1, 13, 14, 43, 44, 45, 60, 200, 1400];
    for (const size of sizes) {
      const datagram = crypto.getRandomValues(new Uint8Array(size));
      await inbox.send(datagram, reflector.address);
    }
    // Probe the end of the sequence with a valid packet: its reply comes after all others.
    const last = stampFormat().encodeRequest({
      type: "ping",
      session: 9,
      sequence: 99,
      attempt: 0,
      sentAt: { seconds: 1, nanos: 0 },
      padding: new Uint8Array(0),
      authenticated: false,
    });
    await inbox.send(last, reflector.address);
    const replies: number[] = [];
    for (;;) {
      const reply = await inbox.next();
      replies.push(reply.data.length);
      if (reply.data.length === 44 && new DataView(reply.data.buffer).getUint32(24) === 99) break;
    }
    const answered = sizes.filter((size) => size >= 41); // 41: TWAMP-light's shortest
    assertEquals(replies, [...answered, 44]);
    strictEqual(reflector.stats.malformed["too-short"], sizes.length - answered.length);
  } finally {
    await inbox.close();
    await reflector.close();
  }
});

Deno.test("a TWAMP-light request (14 bytes + padding) gets a reply of its length in TWAMP's layout", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
  const inbox = new Inbox();
  try {
    const request = new Uint8Array(14 + 30);
    const view = new DataView(request.buffer);
    view.setUint32(0, 5);
    view.setUint32(4, 3_900_000_000); // NTP seconds
    view.setUint32(8, 0x8000_0000);
    view.setUint16(12, 0x3fff); // twampy's error estimate
    await inbox.send(request, reflector.address);
    const reply = (await inbox.next()).data;
    strictEqual(reply.length, request.length);
    const r = new DataView(reply.buffer, reply.byteOffset, reply.length);
    strictEqual(r.getUint32(24), 5); // the sender's sequence number
    strictEqual(r.getUint32(28), 3_900_000_000); // its timestamp
    strictEqual(r.getUint32(32), 0x8000_0000);
    strictEqual(r.getUint16(36), 0x3fff);
    assert(r.getUint32(16) > 3_900_000_000, "the receive timestamp is NTP, now");
    if (native) strictEqual(reply[40], 64); // the TTL it arrived with: Linux's default
  } finally {
    await inbox.close();
    await reflector.close();
  }
});

Deno.test({
  name: "Class of Service: the DSCP and ECN the probes arrived with, and the reply's DSCP",
  ignore: !native,
  async fn() {
    const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
    try {
      const result = await ping({
        target: loopbackTarget(reflector.address.port),
        format: stampFormat({ tlvs: ["class-of-service", "timestamp-info"], dscpRequested: 34 }),
        payloadSize: 0,
        count: 3,
        intervalMs: 0,
        tos: (46 << 2) | 2, // EF, ECT(0)
      });
      const s = result.summary;
      assertEquals([s.dscp_sent, s.dscp_received, s.ecn_sent, s.ecn_received], [46, 46, 2, 2]);
      // The reply was sent with the DSCP asked for (AF41), and loopback kept it.
      strictEqual(result.path?.dscpBack, 34);
      strictEqual(result.path?.tlvsUntouched, false);
      assertEquals(result.path?.tlvFlags, { unrecognized: 0, malformed: 0, integrity: 0 });
    } finally {
      await reflector.close();
    }
  },
});

Deno.test("udp serve --stamp and udp ping --stamp as processes: text and JSON", async () => {
  const serve = new UdpProcess(["serve", "--stamp", "--stateful", "--port", "0", "--json"]);
  try {
    const listening = JSON.parse((await serve.waitFor(/^\{.*"listening".*\}$/m))[0]);
    assertEquals([listening.type, listening.protocol, listening.stateful], [
      "listening",
      "stamp",
      true,
    ]);
    const port = Number(listening.address.split(":").at(-1));
    const text = await runUdp([
      "ping",
      "--stamp",
      `127.0.0.1:${port}`,
      "-c",
      "3",
      "-i",
      "0",
      "--tlv",
      "all",
      "-s",
      "20",
    ]);
    strictEqual(text.code, 0, text.stderr);
    assert(text.stdout.startsWith(`STAMP PING 127.0.0.1:${port}: 20 data bytes, `), text.stdout);
    assert(text.stdout.includes("3 packets transmitted, 3 received, 0% packet loss"));
    assert(text.stdout.includes("loss up to the last probe answered: 0 on the way there, 0"));
    assert(text.stdout.includes("the reflector saw this host as 127.0.0.1:"), text.stdout);
    if (native) assert(text.stdout.includes("hops there: 1"), text.stdout);
    const json = await runUdp([
      "ping",
      "--stamp",
      `127.0.0.1:${port}`,
      "-c",
      "2",
      "-i",
      "0",
      "--json",
    ]);
    strictEqual(json.code, 0, json.stderr);
    const lines = json.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assertEquals([lines[0].protocol, lines[0].datagram_bytes], ["stamp", 44]);
    const summary = lines.at(-1);
    assertEquals([summary.received, summary.lost_there, summary.lost_back], [2, 0, 0]);
    const usage = await runUdp(["ping", "--stamp", `127.0.0.1:${port}`, "--retries", "1"]);
    strictEqual(usage.code, 2);
    strictEqual(
      usage.stderr.trim(),
      "udp ping: --retries goes without --stamp: STAMP packets carry no retransmission number",
    );
  } finally {
    await serve.stop();
  }
});

/** Whether this process runs as root (by id(1): Deno.uid() needs another permission). */
const root = new TextDecoder().decode(
  (await new Deno.Command("id", { args: ["-u"], stdout: "piped" }).output()).stdout,
).trim() === "0";
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name: "udp serve --stamp defaults to port 862; without the privilege, one line says what to do" +
    (root && setpriv === undefined ? " (skipped: root, and no setpriv to drop it)" : ""),
  ignore: root && setpriv === undefined,
  async fn() {
    const [program, args] = udpArgv(["serve", "--stamp"]);
    // As root, run it as nobody (who may not bind below 1024), with a cache of its own.
    const denoDir = await Deno.makeTempDir({ prefix: "udp-nobody-" });
    await Deno.chmod(denoDir, 0o777);
    try {
      const command = root
        ? new Deno.Command(setpriv!, {
          args: ["--reuid=65534", "--regid=65534", "--clear-groups", program, ...args],
          env: { DENO_DIR: denoDir },
          stdout: "piped",
          stderr: "piped",
        })
        : new Deno.Command(program, { args, stdout: "piped", stderr: "piped" });
      const { code, stderr } = await command.output();
      strictEqual(code, 2);
      strictEqual(
        new TextDecoder().decode(stderr).trim(),
        "udp serve: cannot listen on 127.0.0.1:862: permission denied; ports below 1024 need " +
          "privileges: use --port above 1023, or grant the program CAP_NET_BIND_SERVICE " +
          "(setcap cap_net_bind_service=+ep)",
      );
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
  },
});

Deno.test("STAMP's and the IP header's options: each misuse is one line and exit code 2", async () => {
  const cases: [string[], string][] = [
    [["ping", "127.0.0.1", "--ptp"], "udp ping: --ptp goes with --stamp"],
    [["ping", "127.0.0.1", "--tlv", "direct-measurement"], "udp ping: --tlv goes with --stamp"],
    [
      ["ping", "--stamp", "127.0.0.1", "--tlv", "cos"],
      "udp ping: invalid --tlv 'cos': use a comma-separated list of location, timestamp-info, " +
      "class-of-service, direct-measurement, access-report, or all",
    ],
    [
      ["ping", "127.0.0.1", "--tos", "8", "--dscp", "ef"],
      "udp ping: --tos sets the whole byte: give it alone, or --dscp and --ecn",
    ],
    [
      ["ping", "127.0.0.1", "--dscp", "99"],
      "udp ping: invalid --dscp '99': use a number from 0 to 63 or a name (EF, AF41, CS0 to CS7, LE, ...)",
    ],
    [["serve", "--stateful"], "udp serve: --stateful goes with --stamp"],
    [
      ["serve", "--stamp", "--raw", "echo"],
      "udp serve: --raw goes without --stamp: every STAMP datagram is a test packet",
    ],
    [["bench", "127.0.0.1", "--ptp"], "udp bench: --ptp goes with --stamp"],
  ];
  for (const [args, message] of cases) {
    const result = await runUdp(args);
    strictEqual(result.code, 2, args.join(" "));
    strictEqual(result.stderr.trim(), message);
  }
});

Deno.test("rate limits and replay protection apply to STAMP: refused, counted, never answered", async () => {
  const key = await importKey(new Uint8Array(32).fill(3));
  const format = stampFormat({ authenticated: true });
  const reflector = Reflector.listen({
    hostname: "127.0.0.1",
    port: 0,
    format,
    key,
    rateLimit: { rate: 1, burst: 3 },
  });
  const inbox = new Inbox();
  try {
    const packet = (sequence: number) =>
      format.encodeRequest({
        type: "ping",
        session: 77,
        sequence,
        attempt: 0,
        sentAt: timestampFromMs(Date.now()),
        padding: new Uint8Array(0),
        authenticated: true,
      });
    const first = packet(0);
    await format.sign(first, key);
    const second = packet(1);
    await format.sign(second, key);
    // The same packet twice (a replay), a new one, then more than the burst allows.
    for (const datagram of [first, first, second, second, second]) {
      await inbox.send(datagram, reflector.address);
    }
    // A packet from another source, sent last, is answered last: by then every one before it
    // has been handled, and its replies (if any) sent before this one.
    const marker = packet(9);
    new DataView(marker.buffer).setUint16(26, 78);
    await format.sign(marker, key);
    const other = new Inbox("127.0.0.2"); // another source address: its own rate limit
    await other.send(marker, reflector.address);
    await other.next();
    await other.close();
    const replies = [(await inbox.next()).data, (await inbox.next()).data];
    assertEquals(replies.map((reply) => new DataView(reply.buffer).getUint32(48)), [0, 1]);
    strictEqual(await inbox.nextWithin(0), null);
    const stats = reflector.stats;
    assertEquals([stats.refused.replayed, stats.refused["rate-limit"], stats.replied], [1, 2, 3]);
  } finally {
    await inbox.close();
    await reflector.close();
  }
});

/** Whether this host has IPv6 loopback. */
const ipv6 = (() => {
  try {
    UdpSocket.bind("::1", 0).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "STAMP over IPv6: the hop limit the reflector saw tells the hops, as the TTL does" +
    (ipv6 ? "" : " (skipped: no IPv6 loopback here)"),
  ignore: !ipv6,
  async fn() {
    const reflector = Reflector.listen({ hostname: "::1", port: 0, format: stampFormat() });
    try {
      const result = await ping({
        target: { hostname: "::1", port: reflector.address.port, family: "ipv6" },
        format: stampFormat({ tlvs: ["location"] }),
        payloadSize: 0,
        count: 3,
        intervalMs: 0,
      });
      const s = result.summary;
      assertEquals([s.received, s.hops_there], [3, native ? 1 : null]);
      assert(s.seen_as?.startsWith("[::1]:"), String(s.seen_as));
    } finally {
      await reflector.close();
    }
  },
});
