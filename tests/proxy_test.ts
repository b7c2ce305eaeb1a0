/**
 * udp proxy, and proof that udp ping stays exact under loss, duplication, reordering, delay
 * and retries: the proxy's log says what happened to every datagram, an oracle replays it,
 * and `udp ping --json` must report exactly the same numbers.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ImpairmentModel, type Impairments, NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { seededRandom } from "../lib/proxy/random.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { parseBurst, parseMs, parsePercent, parseRate } from "../lib/cli/parse.ts";
import { Inbox, loopbackTarget, runUdp, UdpProcess } from "./helpers.ts";

function impairments(fields: Partial<Impairments>): Impairments {
  return { ...NO_IMPAIRMENTS, ...fields };
}

/** A reflector behind a proxy, both in this process; the proxy's log records collected. */
async function withProxy<T>(
  up: Impairments,
  down: Impairments,
  seed: number,
  body: (proxyPort: number, log: ProxyLogRecord[]) => Promise<T>,
): Promise<{ result: T; log: ProxyLogRecord[] }> {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: loopbackTarget(reflector.address.port),
    up,
    down,
    seed,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    const result = await body(proxy.address.port, log);
    return { result, log };
  } finally {
    await proxy.close();
    await reflector.close();
  }
}

async function pingJson(port: number, args: string[]) {
  const result = await runUdp(["ping", `127.0.0.1:${port}`, "--json", ...args]);
  const lines = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  return { code: result.code, events: lines.slice(1, -1), summary: lines.at(-1) };
}

interface Expected {
  transmitted: number;
  received: number;
  lost: number;
  duplicates: number;
  reordered: number;
  late: number;
  retransmitted: number;
  answeredAttempt: Map<number, number>;
}

/**
 * Replays the proxy's log as the pinger must have seen it. Every PING is a transmission (the
 * proxy numbers arrivals in the client's send order); every PONG copy the proxy sent reached
 * the client in the proxy's send order. `lateAll` says every reply came after its timeout.
 */
function oracle(log: ProxyLogRecord[], lateAll = false): Expected {
  const pings = log.filter((r) => r.dir === "up" && r.frame?.type === "PING");
  const txIndex = new Map(pings.map((r) => [`${r.frame!.seq}/${r.frame!.attempt}`, r.index]));
  const probes = new Set(pings.map((r) => r.frame!.seq));
  const arrivals = log
    .filter((r) => r.dir === "down" && r.frame?.type === "PONG")
    .flatMap((r) =>
      r.copies.filter((c) => c.order !== null).map((c) => ({ order: c.order!, ...r.frame! }))
    )
    .sort((a, b) => a.order - b.order);
  const answered = new Set<string>();
  const state = new Map<number, "received" | "late">();
  const answeredAttempt = new Map<number, number>();
  let duplicates = 0, reordered = 0, late = 0, nextExpected = 0;
  for (const arrival of arrivals) {
    const key = `${arrival.seq}/${arrival.attempt}`;
    if (answered.has(key)) {
      duplicates++;
      continue;
    }
    answered.add(key);
    if (state.has(arrival.seq)) continue; // a redundant reply to another attempt
    if (lateAll) {
      state.set(arrival.seq, "late");
      late++;
      continue;
    }
    state.set(arrival.seq, "received");
    answeredAttempt.set(arrival.seq, arrival.attempt);
    const index = txIndex.get(key)!;
    if (index < nextExpected) reordered++;
    else nextExpected = index + 1;
  }
  const received = [...state.values()].filter((s) => s === "received").length;
  return {
    transmitted: probes.size,
    received,
    lost: probes.size - received,
    duplicates,
    reordered,
    late,
    retransmitted: pings.filter((r) => r.frame!.attempt > 0).length,
    answeredAttempt,
  };
}

Deno.test("ImpairmentModel is reproducible from its seed and holds its rates", () => {
  const config = impairments({ loss: 0.1, duplicate: 0.05, reorder: 0.02, corrupt: 0.03 });
  const run = (seed: number) => {
    const model = new ImpairmentModel(config, seededRandom(seed));
    return Array.from({ length: 20_000 }, () => model.decide(100));
  };
  assertEquals(run(7), run(7));
  const decisions = run(7);
  const share = (predicate: (d: (typeof decisions)[number]) => boolean) =>
    decisions.filter(predicate).length / decisions.length;
  assert(Math.abs(share((d) => d.drop === "loss") - 0.1) < 0.01);
  const kept = decisions.filter((d) => !d.drop);
  assert(Math.abs(kept.filter((d) => d.delaysMs.length === 2).length / kept.length - 0.05) < 0.01);
  assert(Math.abs(kept.filter((d) => d.hold).length / kept.length - 0.02) < 0.005);
  assert(Math.abs(kept.filter((d) => d.corrupt).length / kept.length - 0.03) < 0.006);
  assert(kept.every((d) => d.corrupt === null || (d.corrupt.index < 100 && d.corrupt.mask > 0)));
  assert(run(8).some((d, i) => d.drop !== decisions[i].drop));
});

Deno.test("ImpairmentModel's Gilbert–Elliott bursts have the configured mean loss and length", () => {
  const burst = { enter: 0.02, exit: 0.25, badLoss: 1, goodLoss: 0 };
  const model = new ImpairmentModel(impairments({ burst }), seededRandom(3));
  const drops = Array.from({ length: 200_000 }, () => model.decide(10).drop === "burst-loss");
  const lossRate = drops.filter(Boolean).length / drops.length;
  const expectedRate = burst.enter / (burst.enter + burst.exit); // time spent in the bad state
  assert(Math.abs(lossRate - expectedRate) < 0.01, `loss ${lossRate} vs ${expectedRate}`);
  const runs: number[] = [];
  let current = 0;
  for (const dropped of drops) {
    if (dropped) current++;
    else if (current > 0) runs.push(current), current = 0;
  }
  const meanBurst = runs.reduce((a, b) => a + b, 0) / runs.length;
  assert(Math.abs(meanBurst - 1 / burst.exit) < 0.3, `mean burst ${meanBurst}`);
});

Deno.test("ImpairmentModel's delays stay within delay ± jitter and never go negative", () => {
  const model = new ImpairmentModel(impairments({ delayMs: 5, jitterMs: 8 }), seededRandom(1));
  const delays = Array.from({ length: 5000 }, () => model.decide(1).delaysMs[0]);
  assert(delays.every((d) => d >= 0 && d <= 13));
  assert(delays.some((d) => d === 0) && delays.some((d) => d > 12));
  const steady = new ImpairmentModel(impairments({ delayMs: 5 }), seededRandom(1));
  assert(Array.from({ length: 100 }, () => steady.decide(1).delaysMs[0]).every((d) => d === 5));
});

Deno.test("proxy option parsers accept the documented forms", () => {
  strictEqual(parsePercent("--loss", "10%"), 0.1);
  strictEqual(parsePercent("--loss", "2.5"), 0.025);
  strictEqual(parseMs("--delay", "20ms"), 20);
  assertEquals(parseRate("--rate", "5k"), { unit: "pps", value: 5000 });
  assertEquals(parseRate("--rate", "1000pps"), { unit: "pps", value: 1000 });
  assertEquals(parseRate("--rate", "512kbit"), { unit: "bps", value: 512000 });
  assertEquals(parseBurst("--burst-loss", "1%,30%,80%,1%"), {
    enter: 0.01,
    exit: 0.3,
    badLoss: 0.8,
    goodLoss: 0.01,
  });
});

Deno.test("udp ping through an unimpaired proxy: everything received, log complete", async () => {
  const { result, log } = await withProxy(
    NO_IMPAIRMENTS,
    NO_IMPAIRMENTS,
    1,
    (port) => pingJson(port, ["-c", "20", "-i", "0"]),
  );
  strictEqual(result.code, 0);
  assertEquals([result.summary.received, result.summary.lost], [20, 0]);
  assertEquals(log.filter((r) => r.dir === "up").length, 20);
  assertEquals(log.filter((r) => r.dir === "down").length, 20);
});

Deno.test("udp ping is exact under loss, duplication and reordering in both directions", async () => {
  const both = impairments({ loss: 0.15, duplicate: 0.1, reorder: 0.1 });
  const { result, log } = await withProxy(
    both,
    both,
    20261124,
    (port) => pingJson(port, ["-c", "300", "-i", "0.002", "-W", "2", "--linger", "0.5"]),
  );
  const expected = oracle(log);
  const s = result.summary;
  // The scenario must exercise every counter, or the comparison proves little.
  assert(
    expected.lost > 20 && expected.duplicates > 10 && expected.reordered > 5,
    JSON.stringify(expected),
  );
  assertEquals(
    [s.transmitted, s.received, s.lost, s.duplicates, s.reordered, s.late],
    [300, expected.received, expected.lost, expected.duplicates, expected.reordered, 0],
  );
  strictEqual(expected.transmitted, 300);
});

Deno.test("udp ping is exact under Gilbert–Elliott burst loss", async () => {
  const bursty = impairments({ burst: { enter: 0.05, exit: 0.3, badLoss: 1, goodLoss: 0 } });
  const { result, log } = await withProxy(
    bursty,
    NO_IMPAIRMENTS,
    99,
    (port) => pingJson(port, ["-c", "200", "-i", "0", "-W", "0.05"]),
  );
  const expected = oracle(log);
  assert(expected.lost > 10);
  assertEquals([result.summary.received, result.summary.lost], [expected.received, expected.lost]);
  strictEqual(log.filter((r) => r.drop === "burst-loss").length, expected.lost);
});

Deno.test("udp ping --retries: dropped first attempts are received, retries match the log", async () => {
  const { result, log } = await withProxy(
    impairments({ loss: 0.3 }),
    impairments({ loss: 0.1 }),
    4242,
    (port) => pingJson(port, ["-c", "100", "-i", "0.005", "-W", "0.1", "--retries", "3"]),
  );
  const expected = oracle(log);
  const s = result.summary;
  assert(expected.retransmitted > 20 && expected.answeredAttempt.size > 0);
  assertEquals(
    [s.received, s.lost, s.retransmitted, s.duplicates],
    [expected.received, expected.lost, expected.retransmitted, expected.duplicates],
  );
  // With 30% + 10% loss and no retries about 37% would be lost; retries recover most.
  assert(s.received > 90, `received ${s.received}`);
  // Every RTT is timed from the attempt that was answered: a reply to attempt k measured from
  // attempt 0 would be at least 100 ms × (2^k − 1) long.
  const replies = result.events.filter((e) => e.type === "reply");
  assert(replies.some((e) => e.attempt > 0));
  for (const reply of replies) {
    strictEqual(reply.attempt, expected.answeredAttempt.get(reply.seq), `seq ${reply.seq}`);
    assert(reply.rtt_ms < 50, `seq ${reply.seq} attempt ${reply.attempt}: rtt ${reply.rtt_ms}`);
  }
});

Deno.test("udp ping counts replies delayed past the timeout as late, and their duplicates", async () => {
  const { result, log } = await withProxy(
    impairments({ loss: 0.2 }),
    impairments({ delayMs: 150, duplicate: 0.3 }),
    77,
    (port) => pingJson(port, ["-c", "20", "-i", "0.01", "-W", "0.05", "--linger", "0.4"]),
  );
  const expected = oracle(log, true);
  const s = result.summary;
  assert(expected.late > 10 && expected.duplicates > 0);
  assertEquals(
    [s.received, s.lost, s.late, s.duplicates],
    [0, 20, expected.late, expected.duplicates],
  );
});

Deno.test("udp ping RTT holds the delays the proxy's log says it applied; jitter only with jitter", async () => {
  // The log is the oracle: each RTT is at least the delays the proxy applied to that probe's
  // PING and PONG (the reflector's hold, left out of the RTT, lies between them, and the proxy's
  // timers never fire early). How much later than that a busy machine's timers fire is a
  // matter for the benchmarks, not for this test.
  const jitters: number[] = [];
  for (const jitterMs of [0, 20]) {
    const { result, log } = await withProxy(
      impairments({ delayMs: 25, jitterMs }),
      impairments({ delayMs: 25, jitterMs }),
      5,
      (port) => pingJson(port, ["-c", "40", "-i", "0.03"]),
    );
    const applied = new Map<string, number>();
    for (const record of log) {
      if (record.frame) applied.set(`${record.dir}/${record.frame.seq}`, record.copies[0].delay_ms);
    }
    const replies = result.events.filter((event) => event.type === "reply");
    strictEqual(replies.length, 40, JSON.stringify(result.summary));
    for (const reply of replies) {
      const floor = applied.get(`up/${reply.seq}`)! + applied.get(`down/${reply.seq}`)!;
      // JSON rounds to the nanosecond: compare at that precision.
      assert(reply.rtt_ms >= floor - 1e-6, `seq ${reply.seq}: ${reply.rtt_ms} < ${floor}`);
    }
    const delays = [...applied.values()];
    if (jitterMs === 0) assert(delays.every((delay) => delay === 25), JSON.stringify(delays));
    else {
      assert(delays.every((delay) => delay >= 5 && delay <= 45), JSON.stringify(delays));
      assert(Math.max(...delays) - Math.min(...delays) > 20, JSON.stringify(delays));
    }
    jitters.push(result.summary.jitter_ms);
  }
  // ±20 ms a direction gives an RFC 3550 estimate around 18 ms, timer noise alone a fraction.
  assert(jitters[1] > 2 * jitters[0], `jitter without / with ±20 ms: ${jitters.join(" / ")}`);
});

Deno.test("udp send --wait --retries gets through heavy loss, attempts matching the log", async () => {
  const heavy = impairments({ loss: 0.6 });
  const { result, log } = await withProxy(
    heavy,
    heavy,
    31,
    (port) =>
      runUdp(["send", `127.0.0.1:${port}`, "survive", "--wait", "-W", "0.05", "--retries", "10"]),
  );
  strictEqual(result.code, 0, result.stdout);
  const sent = result.stdout.split("\n").filter((line) => line.startsWith("Sent "));
  const ups = log.filter((r) => r.dir === "up");
  strictEqual(sent.length, ups.length);
  assert(sent.length > 1, "the seed should make the first attempt fail");
  match(result.stdout, /Received "ack:survive" from/);
});

Deno.test("udp proxy CLI: --log writes one NDJSON line per datagram; Ctrl-C prints counters", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = await Deno.makeTempDir();
  const proxy = new UdpProcess([
    "proxy",
    "--listen",
    "127.0.0.1:0",
    "--to",
    `127.0.0.1:${reflector.address.port}`,
    "--up-loss",
    "50%",
    "--seed",
    "9",
    "--log",
    "proxy.ndjson",
  ], { cwd: dir });
  try {
    const [, port] = await proxy.waitFor(/^Proxying 127\.0\.0\.1:(\d+) -> /);
    await proxy.waitFor(/^up: {3}loss 50%$/);
    await proxy.waitFor(/^down: no impairment$/);
    const ping = await pingJson(Number(port), ["-c", "20", "-i", "0", "-W", "0.05"]);
    const stopped = await proxy.stop("SIGINT");
    strictEqual(stopped.code, 0);
    const lines = (await Deno.readTextFile(`${dir}/proxy.ndjson`)).trimEnd().split("\n");
    const records = lines.map((line) => JSON.parse(line) as ProxyLogRecord);
    const dropped = records.filter((r) => r.dir === "up" && r.action === "dropped").length;
    strictEqual(records.filter((r) => r.dir === "up").length, 20);
    strictEqual(ping.summary.lost, dropped);
    match(
      stopped.stdout,
      new RegExp(
        `up: {3}20 received, ${20 - dropped} forwarded, ${dropped} dropped \\(loss ${dropped}\\)`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await reflector.close();
  }
});

function match(text: string, pattern: RegExp): void {
  assert(pattern.test(text), `${pattern} does not match:\n${text}`);
}

/** A proxy in front of a plain socket (`sink`), and a client socket; all closed afterwards. */
async function withRawProxy(
  up: Impairments,
  body: (client: Inbox, sink: Inbox, proxyPort: number, log: ProxyLogRecord[]) => Promise<void>,
  family: "ipv4" | "ipv6" = "ipv4",
): Promise<void> {
  const host = family === "ipv6" ? "::1" : "127.0.0.1";
  const sink = new Inbox(host);
  const client = new Inbox(host);
  const log: ProxyLogRecord[] = [];
  const proxy = Proxy.listen({
    listen: { hostname: host, port: 0 },
    target: { hostname: host, port: sink.socket.address.port, family },
    up,
    down: NO_IMPAIRMENTS,
    seed: 11,
    onLog: (record) => log.push(structuredClone(record)),
  });
  try {
    await body(client, sink, proxy.address.port, log);
  } finally {
    await proxy.close();
    await client.close();
    await sink.close();
  }
}

const numbered = (i: number) => new TextEncoder().encode(`datagram ${i}`);
const numberOf = (data: Uint8Array) => Number(new TextDecoder().decode(data).split(" ")[1]);

Deno.test("udp proxy reorders exactly: a held datagram goes after the next --reorder-gap ones", async () => {
  await withRawProxy(
    impairments({ reorder: 1, reorderGap: 2 }),
    async (client, sink, port, log) => {
      const to = { hostname: "127.0.0.1", port };
      for (let i = 0; i < 9; i++) await client.send(numbered(i), to);
      const order: number[] = [];
      for (let i = 0; i < 9; i++) order.push(numberOf((await sink.next()).data));
      assertEquals(order, [1, 2, 0, 4, 5, 3, 7, 8, 6]);
      assertEquals(log.filter((r) => r.held).map((r) => r.index), [0, 3, 6]);
    },
  );
});

Deno.test("udp proxy duplicates every datagram at --dup 100%", async () => {
  await withRawProxy(impairments({ duplicate: 1 }), async (client, sink, port, log) => {
    for (let i = 0; i < 3; i++) await client.send(numbered(i), { hostname: "127.0.0.1", port });
    const order: number[] = [];
    for (let i = 0; i < 6; i++) order.push(numberOf((await sink.next()).data));
    assertEquals(order, [0, 0, 1, 1, 2, 2]);
    assert(log.every((r) => r.action === "duplicated" && r.copies.length === 2));
  });
});

Deno.test("udp proxy corrupts exactly the bit its log names, and nothing else", async () => {
  await withRawProxy(impairments({ corrupt: 0.5 }), async (client, sink, port, log) => {
    const sent = Array.from({ length: 40 }, (_, i) => numbered(i));
    for (const data of sent) await client.send(data, { hostname: "127.0.0.1", port });
    const received = [];
    for (let i = 0; i < sent.length; i++) received.push((await sink.next()).data);
    assert(log.filter((r) => r.corrupted).length > 5);
    for (const record of log) {
      const expected = sent[record.index].slice();
      if (record.corrupted) expected[record.corrupted.index] ^= record.corrupted.mask;
      assertEquals(received[record.index], expected);
    }
  });
});

Deno.test("udp proxy --rate paces datagrams and drops what overflows --queue", async () => {
  const rate = impairments({ rate: { unit: "pps", value: 200 }, queue: 5 });
  await withRawProxy(rate, async (client, sink, port, log) => {
    for (let i = 0; i < 50; i++) await client.send(numbered(i), { hostname: "127.0.0.1", port });
    while (log.length < 50) await sink.nextWithin(20); // records are final once sent or dropped
    const forwarded = log.filter((r) => r.copies[0].order !== null).length;
    const dropped = log.filter((r) => r.copies[0].dropped === "queue-full").length;
    strictEqual(forwarded + dropped, 50);
    assert(forwarded >= 6 && dropped > 0, `forwarded ${forwarded}`);
  });
  // Pacing: bits per second of payload; 1000-byte datagrams at 800 kbit/s leave 10 ms apart.
  const bps = impairments({ rate: { unit: "bps", value: 800_000 }, queue: 100 });
  await withRawProxy(bps, async (client, sink, port) => {
    for (let i = 0; i < 11; i++) {
      await client.send(new Uint8Array(1000), { hostname: "127.0.0.1", port });
    }
    const times: number[] = [];
    for (let i = 0; i < 11; i++) {
      await sink.next();
      times.push(performance.now());
    }
    const spacing = (times[10] - times[0]) / 10;
    assert(spacing >= 9 && spacing <= 13, `mean spacing ${spacing} ms, expected 10`);
  });
});

Deno.test("udp proxy forwards zero-length and 65,507-byte datagrams, and IPv6", async () => {
  await withRawProxy(NO_IMPAIRMENTS, async (client, sink, port) => {
    await client.send(new Uint8Array(0), { hostname: "127.0.0.1", port });
    strictEqual((await sink.next()).data.length, 0);
    const big = Uint8Array.from({ length: 65507 }, (_, i) => i & 255);
    await client.send(big, { hostname: "127.0.0.1", port });
    assertEquals((await sink.next()).data, big);
  });
  await withRawProxy(NO_IMPAIRMENTS, async (client, sink, port) => {
    await client.send(numbered(6), { hostname: "::1", port });
    const received = await sink.next();
    strictEqual(numberOf(received.data), 6);
    strictEqual(received.from.hostname, "::1");
  }, "ipv6");
});
