/**
 * `udp monitor` and `udp serve --metrics`: the monitor's counters against the proxy's log (the
 * oracle of what was dropped, duplicated, corrupted), `/metrics` over HTTP in both formats,
 * `--json`, SIGHUP reloads that keep counters, and every usage error.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { Monitor, type MonitorTarget, type TargetCounters } from "../lib/probe/mod.ts";
import { NO_IMPAIRMENTS } from "../lib/proxy/impairment.ts";
import { Proxy, type ProxyLogRecord } from "../lib/proxy/proxy.ts";
import { monotonicMs } from "../lib/net/clock.ts";
import { Reflector } from "../lib/reflector/mod.ts";
import { stampFormat, udpFormat } from "../lib/wire/mod.ts";
import { loopbackTarget, runUdp, startServe, UdpProcess, withTempDir } from "./helpers.ts";

const OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";

function count(log: ProxyLogRecord[], dir: "up" | "down", action: string): number {
  return log.filter((record) => record.dir === dir && record.action === action).length;
}

/** Runs the monitor until every target has sent `probes`, then drains it. */
async function monitorUntil(
  targets: MonitorTarget[],
  probes: number,
  intervalMs = 4,
): Promise<TargetCounters[]> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const done = new Set<string>();
  const monitor = new Monitor({
    intervalMs,
    timeoutMs: 400,
    payloadSize: 16,
    onInterval: (counters) => {
      if (counters.sent >= probes) done.add(counters.label);
      if (done.size === targets.length) resolve();
    },
  });
  monitor.setTargets(targets);
  monitor.start();
  await promise;
  await monitor.stop(true);
  return monitor.counters();
}

Deno.test("monitor: loss, duplicates and corruption per target equal the proxies' logs, exactly", async () => {
  const udp = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const stamp = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
  const logs: ProxyLogRecord[][] = [[], [], []];
  const proxy = (port: number, index: number, up: object, down: object) =>
    Proxy.listen({
      listen: { hostname: "127.0.0.1", port: 0 },
      target: loopbackTarget(port),
      up: { ...NO_IMPAIRMENTS, ...up },
      down: { ...NO_IMPAIRMENTS, ...down },
      seed: 11 + index,
      onLog: (record) => logs[index].push(structuredClone(record)),
    });
  const lossy = proxy(udp.address.port, 0, { loss: 0.1 }, { loss: 0.1 });
  const doubling = proxy(udp.address.port, 1, { duplicate: 0.2 }, { corrupt: 0.1 });
  const stampLossy = proxy(stamp.address.port, 2, { loss: 0.15 }, { loss: 0.05 });
  try {
    const [a, b, c] = await monitorUntil([
      { label: "lossy", address: loopbackTarget(lossy.address.port), format: udpFormat },
      { label: "doubling", address: loopbackTarget(doubling.address.port), format: udpFormat },
      { label: "stamp", address: loopbackTarget(stampLossy.address.port), format: stampFormat() },
    ], 150);
    for (const target of [a, b, c]) {
      strictEqual(target.inFlight, 0, `${target.label}: drained`);
      strictEqual(target.sent, target.received + target.lost, target.label);
      strictEqual(target.late, 0, target.label);
      strictEqual(target.rttBuckets.reduce((sum, n) => sum + n, 0), target.received);
    }
    const [lossyLog, doublingLog, stampLog] = logs;
    assert(count(lossyLog, "up", "dropped") > 5 && count(lossyLog, "down", "dropped") > 5);
    strictEqual(a.lost, count(lossyLog, "up", "dropped") + count(lossyLog, "down", "dropped"));
    strictEqual(c.lost, count(stampLog, "up", "dropped") + count(stampLog, "down", "dropped"));
    // Each request the proxy doubled is answered twice: one reply counts, the other is a
    // duplicate, unless the one counted was corrupted on the way back (then the copy counts).
    const doubled = count(doublingLog, "up", "duplicated");
    const corrupted = doublingLog.filter((r) => r.dir === "down" && r.corrupted !== null).length;
    assert(doubled > 10 && corrupted > 5, `${doubled} ${corrupted}`);
    strictEqual(b.corrupted, corrupted);
    strictEqual(b.duplicates + b.received, count(doublingLog, "down", "forwarded") - corrupted);
    strictEqual(b.sent, count(doublingLog, "up", "forwarded") + doubled);
    assertEquals([a.duplicates, a.corrupted, c.duplicates, c.corrupted], [0, 0, 0, 0]);
  } finally {
    await Promise.all([lossy.close(), doubling.close(), stampLossy.close()]);
    await Promise.all([udp.close(), stamp.close()]);
  }
});

/** Resolves waits on a monitor's interval reports: "until target X has sent N probes". */
class IntervalWatch {
  readonly #waits: { label: string; sent: number; resolve: () => void }[] = [];
  readonly onInterval = (counters: TargetCounters): void => {
    for (const wait of [...this.#waits]) {
      if (wait.label !== counters.label || counters.sent < wait.sent) continue;
      this.#waits.splice(this.#waits.indexOf(wait), 1);
      wait.resolve();
    }
  };

  until(label: string, sent: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waits.push({ label, sent, resolve });
    return promise;
  }
}

Deno.test("monitor: a silent target's probes are in flight until their timeout, then lost", async () => {
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const target = {
    label: "s",
    address: loopbackTarget((silent.addr as Deno.NetAddr).port),
    format: udpFormat,
  };
  const watch = new IntervalWatch();
  const patient = new Monitor({ intervalMs: 5, timeoutMs: 60_000, payloadSize: 0 });
  const brief = new Monitor({ intervalMs: 5, timeoutMs: 30, payloadSize: 0, ...watch });
  try {
    patient.setTargets([target]);
    brief.setTargets([target]);
    patient.start();
    brief.start();
    await watch.until("s", 20);
    await patient.stop(); // a minute's timeout, not drained: every probe still in flight
    const [long] = patient.counters();
    assert(long.sent > 0);
    assertEquals([long.received, long.lost, long.inFlight], [0, 0, long.sent]);
    await brief.stop(true);
    const [short] = brief.counters();
    assertEquals([short.received, short.lost, short.inFlight], [0, short.sent, 0]);
  } finally {
    await patient.stop();
    await brief.stop();
    silent.close();
  }
});

Deno.test("monitor: a send held up past its target's next probe does not send that one at once", async () => {
  // Once, a probe sent right after the one before (its time already past) left the first's
  // reply unread until after it: one interval showed 0 replies, the next 2.
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const intervalMs = 20;
  const sends: number[] = []; // just before each of the target's probes (from the second on)
  const { promise, resolve } = Promise.withResolvers<void>();
  const monitor = new Monitor({
    intervalMs,
    timeoutMs: 1_000,
    payloadSize: 0,
    onInterval: () => {
      if (sends.length === 3) {
        const until = monotonicMs() + 2.5 * intervalMs; // this loop held up (preempted, say)
        while (monotonicMs() < until);
      }
      sends.push(monotonicMs());
      if (sends.length === 8) resolve();
    },
  });
  try {
    const address = loopbackTarget((silent.addr as Deno.NetAddr).port);
    monitor.setTargets([{ label: "s", address, format: udpFormat }]);
    monitor.start();
    await promise;
    await monitor.stop();
    // The probe after the hold-up waits for a slot half an interval on at least; none is due
    // early (the reactor's timers never fire early), so no two are closer than that.
    const gaps = sends.slice(1).map((at, i) => at - sends[i]);
    assert(gaps.every((gap) => gap >= intervalMs / 2), JSON.stringify(gaps));
  } finally {
    await monitor.stop();
    silent.close();
  }
});

Deno.test("monitor: a reload keeps the counters of the targets it keeps", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const other = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const watch = new IntervalWatch();
  const monitor = new Monitor({ intervalMs: 2, timeoutMs: 500, payloadSize: 0, ...watch });
  const a = { label: "a", address: loopbackTarget(reflector.address.port), format: udpFormat };
  const b = { label: "b", address: loopbackTarget(other.address.port), format: udpFormat };
  try {
    monitor.setTargets([a]);
    monitor.start();
    await watch.until("a", 10);
    monitor.setTargets([a, b]);
    await watch.until("b", 10);
    const [kept] = monitor.counters();
    assert(kept.sent >= 15, `a kept counting: ${kept.sent}`);
    monitor.setTargets([b]);
    strictEqual(monitor.counters().map((c) => c.label).join(), "b");
    await monitor.stop(true);
    const [done] = monitor.counters();
    assertEquals([done.received, done.lost], [done.sent, 0]);
  } finally {
    await monitor.stop();
    await Promise.all([reflector.close(), other.close()]);
  }
});

Deno.test("monitor: two targets with one label or one reflector are refused, nothing changed", () => {
  const monitor = new Monitor({ intervalMs: 1000, timeoutMs: 1000, payloadSize: 0 });
  const t = (label: string, port: number) => ({
    label,
    address: loopbackTarget(port),
    format: udpFormat,
  });
  monitor.setTargets([t("a", 1000)]);
  try {
    monitor.setTargets([t("x", 1), t("x", 2)]);
    assert(false);
  } catch (error) {
    strictEqual((error as Error).message, 'target "x" is listed twice');
  }
  try {
    monitor.setTargets([t("x", 1), t("y", 1)]);
    assert(false);
  } catch (error) {
    strictEqual(
      (error as Error).message,
      'targets "x" and "y" are the same reflector: list it once',
    );
  }
  strictEqual(monitor.counters().map((c) => c.label).join(), "a");
});

/** The next line of a `--json` output that matches `pattern`, parsed. */
// deno-lint-ignore no-explicit-any
async function jsonLine(process: UdpProcess, pattern: RegExp): Promise<Record<string, any>> {
  const [line] = await process.waitFor(new RegExp(`^.*${pattern.source}.*$`));
  return JSON.parse(line);
}

/** GET a metrics URL; the body and content type. */
async function scrape(url: string, accept?: string): Promise<{ type: string; body: string }> {
  const response = await fetch(url, { headers: accept ? { accept } : {} });
  const body = await response.text();
  strictEqual(response.status, 200, body);
  return { type: response.headers.get("content-type") ?? "", body };
}

/** The value of one sample line of an exposition, or null. */
function sample(body: string, series: string): number | null {
  const line = body.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

Deno.test("cli: udp monitor and udp serve --metrics, end to end: /metrics, --json, -w drains", async () => {
  const { serve, port } = await startServe(["--json", "--metrics", "127.0.0.1:0"]);
  try {
    const listening = JSON.parse(serve.seen.at(-1)!);
    const serveMetrics: string = listening.metrics;
    assert(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(serveMetrics), serveMetrics);
    const monitor = new UdpProcess([
      "monitor",
      `local=127.0.0.1:${port}`,
      "--json",
      "-i",
      "0.02",
      "-w",
      "1.5",
      "--metrics",
      "127.0.0.1:0",
    ]);
    const start = await jsonLine(monitor, /"type":"start"/);
    assertEquals([start.targets, start.interval_ms, start.timeout_ms], [1, 20, 2000]);
    await monitor.waitFor(/"type":"interval".*"received":[1-9]/);
    const text = await scrape(start.metrics);
    strictEqual(text.type, "text/plain; version=0.0.4; charset=utf-8");
    assert((sample(text.body, 'udp_probe_sent_total{target="local"}') ?? 0) >= 1, text.body);
    assert(text.body.includes('udp_probe_rtt_seconds_bucket{target="local",le="+Inf"}'));
    assert(text.body.includes('udp_build_info{version="'));
    const open = await scrape(start.metrics, OPENMETRICS_ACCEPT);
    assert(open.type.startsWith("application/openmetrics-text; version=1.0.0"), open.type);
    assert(open.body.endsWith("# EOF\n"));
    assert(open.body.includes("# TYPE udp_probe_sent counter\n"));
    const result = await monitor.finish();
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stderr, "");
    const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    const summary = lines.find((line) => line.type === "summary");
    assert(summary.sent > 20, JSON.stringify(summary));
    assertEquals([summary.received, summary.lost, summary.in_flight], [summary.sent, 0, 0]);
    const intervals = lines.filter((line) => line.type === "interval");
    assert(intervals.every((line) => line.target === "local"));
    // Every reply's RTT is in exactly one line, the interval's in which it arrived or, after
    // the last interval, the summary's (a reply late for its probe's interval is in the next:
    // no line's count is bounded by one).
    // (The lines waitFor() read are not in the output here: counted from the first one left.)
    const before = intervals[0].received - intervals[0].rtt_ms.count;
    strictEqual(
      intervals.reduce((sum, line) => sum + line.rtt_ms.count, 0) + summary.rtt_ms.count,
      summary.received - before,
    );
    // The reflector counted exactly the probes the monitor sent, and answered them all.
    const served = await scrape(serveMetrics);
    strictEqual(sample(served.body, "udp_serve_datagrams_received_total"), summary.sent);
    strictEqual(sample(served.body, "udp_serve_replies_total"), summary.sent);
    strictEqual(sample(served.body, 'udp_serve_refused_total{reason="rate-limit"}'), 0);
    strictEqual(sample(served.body, "udp_serve_kernel_drops_total") !== null, true);
  } finally {
    await serve.stop();
  }
});

Deno.test("cli: SIGHUP re-reads --targets in place, keeping each target's counters", async () => {
  await withTempDir(async (dir) => {
    const { serve, port } = await startServe();
    const second = await startServe();
    const file = `${dir}/targets`;
    await Deno.writeTextFile(file, `# peers\na=127.0.0.1:${port}\n`);
    const monitor = new UdpProcess(["monitor", "--targets", file, "--json", "-i", "0.01"]);
    try {
      await monitor.waitFor(/"type":"start","targets":1/);
      const before = await jsonLine(monitor, /"target":"a".*"sent":(\d\d)/);
      await Deno.writeTextFile(file, `a=127.0.0.1:${port}\nb=127.0.0.1:${second.port} # new\n`);
      monitor.child.kill("SIGHUP");
      await monitor.waitFor(/"type":"reload".*"targets":2,"unchanged":false/);
      await monitor.waitFor(/"target":"b"/);
      const after = await jsonLine(monitor, /"target":"a"/);
      assert(after.sent > before.sent, `${after.sent} > ${before.sent}: counters kept`);
      await Deno.writeTextFile(file, "bad target\n");
      monitor.child.kill("SIGHUP");
      const failed = await jsonLine(monitor, /"type":"reload_failed"/);
      strictEqual(failed.targets, 2);
      const kept = await jsonLine(monitor, /"target":"b"/);
      assert(kept.sent > 0);
      const result = await monitor.stop("SIGTERM");
      strictEqual(result.code, 0);
      strictEqual(
        result.stderr.trim(),
        `udp monitor: reload of ${file} failed, still probing the 2 targets as before: ` +
          `${file}:1: one target a line, not 'bad target'`,
      );
    } finally {
      await serve.stop();
      await second.serve.stop();
    }
  });
});

Deno.test("cli: udp monitor's usage errors are one line, exit 2", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/bad`, "ok=127.0.0.1:9\n\nnope=stamp://[::1\n");
    const cases: [string[], RegExp][] = [
      [[], /^udp monitor: no targets: name them/],
      [["ftp://host"], /^udp monitor: invalid target 'ftp:\/\/host': write HOST\[:PORT\]/],
      [["=127.0.0.1"], /a name before '=' must be non-empty/],
      [["127.0.0.1:99999"], /invalid target '127.0.0.1:99999'/],
      [["a=127.0.0.1:9", "a=127.0.0.1:10"], /target "a" is listed twice/],
      [["127.0.0.1:9", "x=127.0.0.1:9"], /are the same reflector: list it once/],
      [["127.0.0.1:9", "--metrics", "127.0.0.1"], /--metrics needs a port/],
      [["127.0.0.1:9", "--interval", "0"], /interval/],
      [["--targets", `${dir}/missing`], /cannot read --targets .*missing: no such file/],
      [["--targets", `${dir}/bad`], /bad:3: invalid target 'nope=stamp:\/\/\[::1'/],
      [["127.0.0.1:9", "-s", "70000"], /size/],
    ];
    for (const [args, pattern] of cases) {
      const result = await runUdp(["monitor", ...args]);
      strictEqual(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      const lines = result.stderr.trim().split("\n");
      strictEqual(lines.length, 1, result.stderr);
      assert(pattern.test(lines[0]), `${args.join(" ")}: ${lines[0]}`);
      strictEqual(result.stdout, "");
    }
  });
});

Deno.test("cli: --metrics on a port in use is one line, exit 2", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const where = `127.0.0.1:${listener.addr.port}`;
    for (
      const args of [["monitor", "127.0.0.1:9", "--metrics", where], [
        "serve",
        "--port",
        "0",
        "--metrics",
        where,
      ]]
    ) {
      const result = await runUdp(args);
      strictEqual(result.code, 2, result.stderr);
      strictEqual(
        result.stderr.trim(),
        `udp ${args[0]}: cannot serve metrics on ${where}: the port is already in use; ` +
          "choose another, or port 0 for any free port",
      );
    }
  } finally {
    listener.close();
  }
});
