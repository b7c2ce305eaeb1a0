/**
 * A real Prometheus scrapes `udp monitor` and `udp serve`: what it stores equals what udp
 * measured (bucket for bucket, `histogram_quantile()` included), every exposition passes
 * `promtool check metrics`, the dashboard's queries all return data, and the alerting rules'
 * expressions pick out exactly the target that is down.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { RTT_BUCKETS_SECONDS } from "../lib/probe/mod.ts";
import { startServe, UdpProcess } from "./helpers.ts";
import { dashboardQueries, prometheusMissing, startPrometheus } from "./prometheus.ts";
import { prometheusBinary } from "./prometheus_bin.ts";

const DOCS = new URL("../docs/monitoring/", import.meta.url);

/** The metrics URL a `udp monitor --json` or `udp serve --json` start line names. */
function hostPort(url: string): string {
  return new URL(url).host;
}

/** Each reply's RTT in ms, in arrival order, from a monitor's `--json` lines for `target`. */
function rtts(lines: Record<string, unknown>[], target: string): number[] {
  const values: number[] = [];
  for (const line of lines) {
    if (line.target !== target || (line.type !== "interval" && line.type !== "summary")) continue;
    const rtt = line.rtt_ms as { count: number; min: number; max: number };
    assert(rtt.count <= 1, `one reply an interval at most, here: ${JSON.stringify(rtt)}`);
    if (rtt.count === 1) values.push(rtt.min);
  }
  return values;
}

/** histogram_quantile()'s estimate from cumulative bucket counts (Prometheus's formula:
 * linear within the bucket the rank falls in). */
function quantileOf(q: number, bounds: readonly number[], cumulative: number[]): number {
  const total = cumulative[cumulative.length - 1];
  const rank = q * total;
  let bucket = 0;
  while (cumulative[bucket] < rank) bucket++;
  const lower = bucket === 0 ? 0 : bounds[bucket - 1];
  const below = bucket === 0 ? 0 : cumulative[bucket - 1];
  const upper = bounds[bucket];
  return lower + (upper - lower) * (rank - below) / (cumulative[bucket] - below);
}

Deno.test({
  name: "prometheus scrapes udp monitor and udp serve: its series equal udp's own figures",
  ignore: prometheusMissing(),
  async fn() {
    const { serve, port } = await startServe(["--json", "--metrics", "127.0.0.1:0"]);
    const serveMetrics = JSON.parse(serve.seen.at(-1)!).metrics as string;
    // A target that never answers: its probes are awaited until their timeout, which once
    // starved the monitor's /metrics of the event loop (scrapes timed out).
    const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const monitor = new UdpProcess([
      "monitor",
      `local=127.0.0.1:${port}`,
      `dead=127.0.0.1:${(silent.addr as Deno.NetAddr).port}`,
      "--json",
      "-i",
      "0.05",
      "--metrics",
      "127.0.0.1:0",
    ]);
    let stopped = false;
    let prometheus: Awaited<ReturnType<typeof startPrometheus>> | null = null;
    try {
      const [startLine] = await monitor.waitFor(/^\{"type":"start".*$/);
      const monitorMetrics = JSON.parse(startLine).metrics as string;
      monitor.keepReading(); // a line per target per 50 ms: a full pipe would stop it
      prometheus = await startPrometheus({
        scrapeTargets: {
          "udp-monitor": [hostPort(monitorMetrics)],
          "udp-serve": [hostPort(serveMetrics)],
        },
        scrapeIntervalMs: 500,
      });
      // Probes for a few seconds' worth of scrapes, so that rate() over the dashboard's
      // windows has two points.
      await prometheus.waitForScrapes(5);
      for (const url of [monitorMetrics, serveMetrics]) {
        const response = await fetch(url);
        const body = await response.text();
        strictEqual(await checkMetrics(body), "", url);
      }
      // The last scrape's values, at one instant: what udp had counted when it was scraped.
      const at = (await prometheus.targets()).find((t) => t.job === "udp-monitor")!.lastScrape!;
      const value = async (expr: string) => await prometheus!.queryValue(expr, at);
      const received = await value('udp_probe_received_total{target="local"}');
      const sent = await value('udp_probe_sent_total{target="local"}');
      assert(received !== null && sent !== null && received >= 40, `${received} of ${sent}`);
      const buckets = await prometheus.queryVector(
        'udp_probe_rtt_seconds_bucket{target="local"}',
        at,
      );
      const stored = RTT_BUCKETS_SECONDS.map((bound) =>
        buckets.find((b) => Number(b.metric.le) === bound)!.value
      );
      const result = await monitor.stop("SIGTERM");
      stopped = true;
      strictEqual(result.code, 0, result.stderr);
      const lines = [...monitor.seen, ...result.stdout.trim().split("\n")]
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line));
      // The first `received` replies' RTTs, as udp printed them, bucket for bucket.
      const mine = rtts(lines, "local").slice(0, received!);
      strictEqual(mine.length, received);
      const expected = RTT_BUCKETS_SECONDS.map((bound) =>
        mine.filter((ms) => ms / 1000 <= bound).length
      );
      assertEquals(stored, expected);
      const median = await value(
        'histogram_quantile(0.5, udp_probe_rtt_seconds_bucket{target="local"})',
      );
      const cumulative = [...expected, received!];
      const estimate = quantileOf(0.5, [...RTT_BUCKETS_SECONDS, Infinity], cumulative);
      assert(Math.abs(median! - estimate) < 1e-12, `${median} vs ${estimate}`);
      const sorted = [...mine].sort((a, b) => a - b);
      const trueMedian = sorted[Math.ceil(sorted.length / 2) - 1] / 1000;
      const bucket = RTT_BUCKETS_SECONDS.findIndex((bound) => trueMedian <= bound);
      const lower = bucket === 0 ? 0 : RTT_BUCKETS_SECONDS[bucket - 1];
      assert(median! > lower && median! <= RTT_BUCKETS_SECONDS[bucket], `${median} ${trueMedian}`);
      await checkAlerts(prometheus, at);
      // Every scrape of both succeeded, the dead target's probes notwithstanding.
      for (const job of ["udp-monitor", "udp-serve"]) {
        strictEqual(await value(`min_over_time(up{job="${job}"}[1m])`), 1, job);
      }
      await checkDashboard(prometheus, at);
      // The reflector's counts as stored: all answered, nothing refused.
      const served = await value("udp_serve_datagrams_received_total");
      const replies = await value("udp_serve_replies_total");
      assert(served !== null && served > 0 && served === replies, `${served} ${replies}`);
      strictEqual(await value("sum(udp_serve_refused_total)"), 0);
    } finally {
      if (!stopped) await monitor.stop("SIGKILL");
      await prometheus?.close();
      await serve.stop();
      silent.close();
    }
  },
});

/** What `promtool check metrics` finds wrong with an exposition ("" when nothing). */
async function checkMetrics(body: string): Promise<string> {
  const child = new Deno.Command(prometheusBinary("promtool")!, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(body));
  await writer.close();
  const output = await child.output();
  const said = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return output.code === 0 ? said.trim() : `exit ${output.code}: ${said}`;
}

/**
 * The alerting rules' expressions (without their `for`): loss and target down pick out the
 * dead target alone; none fires for the healthy one.
 */
async function checkAlerts(
  prometheus: Awaited<ReturnType<typeof startPrometheus>>,
  at: Date,
): Promise<void> {
  const text = await Deno.readTextFile(new URL("alerts.yml", DOCS));
  const rules = [...text.matchAll(/- alert: (\w+)\n\s+expr: \|?\n?([\s\S]*?)\n\s+for:/g)];
  const exprs = Object.fromEntries(rules.map(([, name, expr]) => [name, expr.trim()]));
  const firing: [string, string[]][] = [
    ["UdpProbeLoss", ["dead"]],
    ["UdpTargetDown", ["dead"]],
    ["UdpProbeRttP99High", []],
  ];
  for (const [name, targets] of firing) {
    const result = await prometheus.queryVector(exprs[name], at);
    assertEquals(result.map((sample) => sample.metric.target).sort(), targets, name);
  }
}

/** Every query of the Grafana dashboard runs and returns data. */
async function checkDashboard(
  prometheus: Awaited<ReturnType<typeof startPrometheus>>,
  at: Date,
): Promise<void> {
  const queries = dashboardQueries(new URL("grafana-dashboard.json", DOCS));
  assert(queries.length >= 8, `${queries.length} queries`);
  for (const query of queries) {
    const result = await prometheus.query(query, at);
    const empty = result.resultType === "vector" || result.resultType === "matrix"
      ? result.result.length === 0
      : false;
    assert(!empty, `the dashboard's query returned nothing: ${query}`);
  }
}
