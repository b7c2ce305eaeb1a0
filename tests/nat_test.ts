/**
 * `udp nat`: the search's plan against simulated mappings (expiry, loss, the reflector's cap),
 * the prober in-process against a real reflector and scripted ones (an older reflector, one
 * that ignores DELAYED, one that never sends a delayed reply, an ERROR), and the command end
 * to end: against udp serve on loopback (no NAT), through udp proxy (whose idle upstream
 * sockets are a NAT's mappings: a real timeout to find, without root), and its usage errors.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { BindingSearch, LADDER_S, MAX_ROUNDS } from "../lib/probe/_nat_search.ts";
import { nat, type NatEvent } from "../lib/probe/mod.ts";
import { Reflector } from "../lib/reflector/mod.ts";
import {
  DELAYED_PER_SOURCE,
  encodeError,
  ErrorCode,
  importKey,
  makePong,
  newRequestReading,
  peekSentAt,
  readDelay,
  udpFormat,
  writePathReport,
} from "../lib/wire/mod.ts";
import { decodeFrame } from "../lib/wire/frame_decoding.ts";
import { freePort, Inbox, loopbackTarget, runUdp, startServe, UdpProcess } from "./helpers.ts";

// --- the plan -------------------------------------------------------------------------------

/** Runs a search to its end against `replies(delay, trial)`, each round with `budget`. */
function simulate(
  maxS: number,
  replies: (delayS: number, trial: number) => boolean,
  budget = DELAYED_PER_SOURCE,
): { search: BindingSearch; rounds: number[][] } {
  const search = new BindingSearch(maxS, 1);
  const rounds: number[][] = [];
  let trial = 0;
  for (let round = search.nextRound(budget); round !== null; round = search.nextRound(budget)) {
    rounds.push(round);
    assert(round.length <= budget, `${round.length} trials with room for ${budget}`);
    // In delay order, as a round's trials end; those a failure makes moot are not recorded.
    for (const delay of round) {
      if (!search.worthWaiting(delay)) continue;
      search.record(delay, replies(delay, trial++));
    }
  }
  return { search, rounds };
}

Deno.test("search: a 7 s mapping up to 12 s is found in two rounds, 6 s replied, 7 s expired twice", () => {
  const { search, rounds } = simulate(12, (delay) => delay < 7);
  assertEquals(rounds, [[1, 1, 2, 2, 3, 3, 5, 5, 8, 8, 12, 12], [6, 6, 7, 7]]);
  assertEquals(search.result(), {
    outcome: "found",
    lo: 6,
    hi: 7,
    // 12 s was not waited for once 8 s had failed: it is not among the delays tried.
    tried: [1, 2, 3, 5, 6, 7, 8],
    lost: 0,
  });
});

Deno.test("search: every delay up to the maximum replied is at least the maximum", () => {
  const { search, rounds } = simulate(3, () => true);
  assertEquals(rounds, [[1, 1, 2, 2, 3, 3]]);
  assertEquals(search.result().outcome, "at-least-max");
  assertEquals(search.result().hi, null);
  // The ladder, cut at the maximum, which is tried itself.
  assertEquals(simulate(100, () => true).rounds[0], [1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 100]);
  assertEquals(LADDER_S.at(-1), 600);
});

Deno.test("search: nothing replied, twice at the shortest delay, is under the minimum", () => {
  const { search } = simulate(12, () => false);
  const result = search.result();
  assertEquals([result.outcome, result.lo, result.hi], ["under-min", null, 1]);
});

Deno.test("search: a lost reply below one that came is loss, not expiry", () => {
  // The first trial at 3 s is lost; the mapping lives 30 s.
  const { search } = simulate(60, (delay, trial) => delay < 30 && !(delay === 3 && trial === 2));
  const result = search.result();
  assertEquals([result.outcome, result.lo, result.hi, result.lost], ["found", 29, 30, 1]);
});

Deno.test("search: a lost reply at the boundary is tried again, and the search goes on above it", () => {
  // Round one at up to 120 s tries each delay once; the 45 s trial's reply is lost although
  // the mapping lives 100 s: its one failure is not an expiry until it fails again.
  let lostOnce = false;
  const { search, rounds } = simulate(120, (delay) => {
    if (delay === 45 && !lostOnce) return !(lostOnce = true);
    return delay < 100;
  });
  assertEquals(rounds[0], [1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120]);
  assert(rounds[1].includes(45), JSON.stringify(rounds));
  const result = search.result();
  // The 45 s failure, below replies that came, is the one loss.
  assertEquals([result.outcome, result.lo, result.hi, result.lost], ["found", 99, 100, 1]);
  assert(rounds.length <= MAX_ROUNDS);
});

Deno.test("search: a round never asks more trials than the reflector has room for", () => {
  const { search, rounds } = simulate(600, (delay) => delay < 250, 5);
  assert(rounds.every((round) => round.length <= 5));
  const result = search.result();
  // Five at a time, the rounds may run out first; whatever it found is true of the mapping.
  assert(result.lo === null || result.lo < 250, JSON.stringify(result));
  assert(result.hi === null || result.hi >= 250, JSON.stringify(result));
  strictEqual(new BindingSearch(10, 1).nextRound(0)?.length, 0); // no room: wait
});

Deno.test("search: loss everywhere ends inconclusive after the last round, never wrong", () => {
  let trial = 0;
  const { search, rounds } = simulate(60, (delay) => delay < 20 && trial++ % 2 === 0);
  strictEqual(rounds.length <= MAX_ROUNDS, true);
  const result = search.result();
  assert(result.lo === null || result.lo < 20);
  assert(result.hi === null || result.hi >= 1);
});

// --- the prober, in-process -----------------------------------------------------------------

Deno.test("nat() against a local reflector: no NAT, port preserved, at least the maximum", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const events: NatEvent[] = [];
  try {
    const { summary, stopReason } = await nat({
      target: loopbackTarget(reflector.address.port),
      maxS: 1,
      waitMs: 500,
      onEvent: (event) => events.push(event),
    });
    strictEqual(stopReason, "done");
    const mapping = events[0];
    assert(mapping.type === "mapping");
    strictEqual(mapping.mapped_address, summary.mapped_address);
    const trials = events.filter((event) => event.type === "trial");
    strictEqual(trials.length, 2);
    for (const trial of trials) {
      assert(trial.type === "trial" && trial.replied);
      strictEqual(trial.mapped_address, `127.0.0.1:${trial.local_port}`);
      assert(trial.elapsed_s! >= 1 && trial.held_s! >= 1, JSON.stringify(trial));
    }
    assertEquals(
      [summary.nat, summary.port_preserved, summary.binding_outcome, summary.binding_timeout_s],
      [false, true, "at-least-max", null],
    );
    assertEquals([summary.tried, summary.trials, summary.replied], [[1], 2, 2]);
    assertEquals(reflector.stats.delayed, { held: 2, sent: 2, failed: 0, dropped: 0, pending: 0 });
  } finally {
    await reflector.close();
  }
});

Deno.test("nat() in authenticated mode: tagged requests, tagged delayed replies", async () => {
  const key = await importKey(new Uint8Array(32).fill(1));
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, key });
  try {
    const { summary } = await nat({
      target: loopbackTarget(reflector.address.port),
      maxS: 1,
      waitMs: 500,
      key,
    });
    assertEquals([summary.binding_outcome, summary.replied], ["at-least-max", 2]);
    strictEqual(reflector.stats.refused["auth-missing"], 0);
  } finally {
    await reflector.close();
  }
});

/** A scripted reflector: `answer` says what to send back to each request (null: nothing). */
async function withScripted(
  answer: (request: Uint8Array) => Uint8Array | null,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const server = new Inbox();
  let stop = false;
  const serving = (async () => {
    while (!stop) {
      const received = await server.nextWithin(50);
      if (received === null) continue;
      const reply = answer(received.data);
      if (reply !== null) await server.send(reply, received.from);
    }
  })();
  try {
    await body(server.socket.address.port);
  } finally {
    stop = true;
    await serving;
    await server.close();
  }
}

const now = { seconds: 1_700_000_000, nanos: 0 };

/** A PONG at once, with a report of `port` when `report`. */
function pongNow(request: Uint8Array, report: boolean): Uint8Array {
  const bytes = request.slice();
  if (report) writePathReport(bytes.subarray(44, 68), 64, 0, { hostname: "127.0.0.1", port: 1 });
  return makePong(bytes, bytes, now, now);
}

Deno.test("nat() against an older reflector (no path report) says so and stops", async () => {
  await withScripted((request) => pongNow(request, false), async (port) => {
    const result = await nat({ target: loopbackTarget(port), maxS: 1, waitMs: 300 });
    strictEqual(result.stopReason, "protocol-error");
    assert(result.error?.includes("sent no path report"), String(result.error));
    assertEquals([result.summary.binding_outcome, result.summary.trials], ["not-searched", 0]);
  });
});

Deno.test("nat() against a reflector that ignores DELAYED (answers at once) says so", async () => {
  await withScripted((request) => pongNow(request, true), async (port) => {
    const result = await nat({ target: loopbackTarget(port), maxS: 2, waitMs: 300 });
    strictEqual(result.stopReason, "protocol-error");
    assert(result.error?.includes("does not do delayed replies"), String(result.error));
  });
});

Deno.test("nat() where no delayed reply ever comes: under the minimum", async () => {
  await withScripted((request) => {
    const decoded = decodeFrame(request);
    assert(decoded.kind === "frame");
    return readDelay(decoded.frame.payload) === 0 || !(decoded.frame.flags & 4)
      ? pongNow(request, true)
      : null;
  }, async (port) => {
    const { summary, stopReason } = await nat({
      target: loopbackTarget(port),
      maxS: 1,
      waitMs: 200,
    });
    strictEqual(stopReason, "done");
    assertEquals(
      [summary.binding_outcome, summary.expired_s, summary.trials, summary.replied],
      ["under-min", 1, 2, 0],
    );
    strictEqual(summary.mapped_address, "127.0.0.1:1");
    strictEqual(summary.port_preserved, false);
  });
});

Deno.test("nat() against an ERROR stops with the reflector's words", async () => {
  await withScripted((request) => {
    const reading = newRequestReading();
    udpFormat.readRequest(request, reading);
    const header = reading.header!;
    return encodeError(
      { ...header, sentAt: peekSentAt(request) },
      { code: ErrorCode.UNSUPPORTED_VERSION, values: [2] },
      request.length,
      now,
      now,
    );
  }, async (port) => {
    const result = await nat({ target: loopbackTarget(port), maxS: 1, waitMs: 300 });
    strictEqual(result.stopReason, "protocol-error");
    assert(result.error?.includes("does not speak protocol version 1"), String(result.error));
  });
});

Deno.test("nat() where nothing answers: no reply, nothing searched", async () => {
  const { summary, stopReason } = await nat({
    target: loopbackTarget(freePort()),
    maxS: 1,
    waitMs: 200,
  });
  strictEqual(stopReason, "no-reply");
  assertEquals([summary.mapped_address, summary.binding_outcome], [null, "not-searched"]);
});

// --- the command ----------------------------------------------------------------------------

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function lines(stdout: string): Json[] {
  return stdout.trim().split("\n").map((line) => JSON.parse(line));
}

Deno.test("udp nat --json --max 3 against udp serve on loopback: own address, at least 3 s", async () => {
  const { serve, port } = await startServe();
  try {
    const result = await runUdp(["nat", `127.0.0.1:${port}`, "--json", "--max", "3"]);
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stderr, "");
    const events = lines(result.stdout);
    assertEquals(events[0], {
      type: "start",
      target: `127.0.0.1:${port}`,
      host: "127.0.0.1",
      max_s: 3,
      wait_s: 2,
      resolution_s: 1,
    });
    const mapping = events[1];
    strictEqual(mapping.type, "mapping");
    const trials = events.filter((event) => event.type === "trial");
    assertEquals(trials.map((trial) => trial.delay_s).sort(), [1, 1, 2, 2, 3, 3]);
    assert(trials.every((trial) => trial.replied && trial.elapsed_s >= trial.delay_s));
    const summary: Json = events.at(-1)!;
    const { time_ms: timeMs, local_address: local, ...rest } = summary;
    assert(timeMs >= 3000 && timeMs < 20_000, String(timeMs));
    assertEquals(rest, {
      type: "summary",
      target: `127.0.0.1:${port}`,
      mapped_address: mapping.mapped_address,
      nat: false,
      port_preserved: true,
      binding_timeout_s: null,
      binding_outcome: "at-least-max",
      expired_s: null,
      longest_replied_s: 3,
      max_s: 3,
      tried: [1, 2, 3],
      trials: 6,
      replied: 6,
      lost: 0,
      cancelled: 0,
    });
    // No NAT: the reflector saw this host's own address and port (the native sockets tell
    // the address; Deno's would leave it null).
    assert(/^127\.0\.0\.1:\d+$/.test(summary.mapped_address));
    strictEqual(local, summary.mapped_address);
  } finally {
    const stopped = await serve.stop();
    assert(stopped.stdout.includes("delayed replies: 6 held, 6 sent, 0 failed, 0 dropped at exit"));
  }
});

Deno.test("udp nat through udp proxy --idle: a mapping that expires, found within the sweep", async () => {
  // The proxy is the NAT: one upstream socket (a source port of its own) per client, closed
  // once idle for 3 s; it looks every 1.5 s, so a mapping lasts 3 to 4.5 s.
  const { serve, port } = await startServe();
  const proxy = new UdpProcess([
    "proxy",
    "--listen",
    "127.0.0.1:0",
    "--to",
    `127.0.0.1:${port}`,
    "--idle",
    "3",
  ]);
  try {
    const [, proxyPort] = await proxy.waitFor(/^Proxying 127\.0\.0\.1:(\d+) ->/);
    proxy.keepReading();
    const result = await runUdp([
      "nat",
      `127.0.0.1:${proxyPort}`,
      "--json",
      "--max",
      "8",
      "-W",
      "1",
    ]);
    strictEqual(result.code, 0, result.stderr);
    const summary: Json = lines(result.stdout).at(-1)!;
    strictEqual(summary.binding_outcome, "found", JSON.stringify(summary));
    assert(
      summary.binding_timeout_s >= 3 && summary.binding_timeout_s < 4.5,
      JSON.stringify(summary),
    );
    strictEqual(summary.expired_s, summary.binding_timeout_s + 1);
    // The reflector saw the proxy's upstream port, not this host's: a NAT, no port kept.
    assertEquals([summary.nat, summary.port_preserved], [true, false]);
    assert(summary.mapped_address !== summary.local_address);
  } finally {
    await proxy.stop();
    await serve.stop();
  }
});

Deno.test("udp nat: usage errors are one line, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["nat"], /^udp nat: .*HOST\[:PORT\]/],
    [["nat", "127.0.0.1", "--max", "0"], /^udp nat: invalid --max '0'/],
    [["nat", "127.0.0.1", "--max", "601"], /^udp nat: invalid --max '601': use 1 to 600 seconds/],
    [["nat", "127.0.0.1", "--max", "0.5"], /^udp nat: invalid --max '0.5'/],
    [["nat", "127.0.0.1", "--max", "ten"], /^udp nat: invalid --max 'ten'/],
    [["nat", "127.0.0.1", "--resolution", "0.01"], /^udp nat: invalid --resolution '0.01'/],
    [["nat", "127.0.0.1", "-W", "0"], /^udp nat: invalid timeout '0'/],
    [["nat", "127.0.0.1", "--stamp"], /^udp nat: unknown option '--stamp'/],
    [["nat", "127.0.0.1:99999"], /^udp nat: invalid port/],
  ];
  for (const [args, pattern] of cases) {
    const result = await runUdp(args);
    strictEqual(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    strictEqual(result.stdout, "");
    const errorLines = result.stderr.trimEnd().split("\n");
    strictEqual(errorLines.length, 1, result.stderr);
    assert(pattern.test(errorLines[0]), `${args.join(" ")}: ${errorLines[0]}`);
  }
});

Deno.test("udp nat where nothing listens: exit 1, and the text says so", async () => {
  const result = await runUdp(["nat", `127.0.0.1:${freePort()}`, "-W", "0.3"]);
  strictEqual(result.code, 1, result.stderr);
  assert(result.stdout.includes("no reply: nothing answered"), result.stdout);
});

Deno.test("udp nat --help names its options and says the trials run in parallel", async () => {
  const result = await runUdp(["nat", "--help"]);
  strictEqual(result.code, 0);
  for (const text of ["--max SEC", "--resolution SEC", "-W, --timeout SEC", "in parallel"]) {
    assert(result.stdout.includes(text), text);
  }
  assert((await runUdp(["--help"])).stdout.includes("  nat "));
});
