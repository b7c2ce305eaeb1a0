/**
 * tests/prometheus.ts against the real thing: Prometheus scraping itself. Skipped, saying why,
 * where the binaries are absent; in CI (CI=true) they must be there (.ci/run installs them).
 */
import { deepStrictEqual, ok as assert, rejects, strictEqual } from "node:assert/strict";
import {
  type Alert,
  prometheusMissing,
  type PrometheusServer,
  promtool,
  SELF,
  startPrometheus,
} from "./prometheus.ts";

const ignore = prometheusMissing();

Deno.test({
  name:
    "Prometheus scraping itself: up is 1, instant and range queries answer, close leaves nothing",
  ignore,
  async fn() {
    const server = await startPrometheus({ scrapeTargets: { self: [SELF] } });
    const dir = server.dir;
    let closed = false;
    try {
      assert(/^127\.0\.0\.1:\d+$/.test(server.address), server.address);
      strictEqual((await Deno.stat(`${dir}/prometheus.yml`)).isFile, true);

      const before = Date.now() / 1000;
      await server.waitForScrapes(3);
      const targets = await server.targets();
      strictEqual(targets.length, 1);
      strictEqual(targets[0].job, "self");
      strictEqual(targets[0].instance, server.address);
      strictEqual(targets[0].health, "up", targets[0].lastError);
      assert(targets[0].lastScrape !== null);

      const up = await server.queryVector('up{job="self"}');
      strictEqual(up.length, 1);
      strictEqual(up[0].metric.instance, server.address);
      strictEqual(up[0].value, 1);
      strictEqual(await server.queryValue('up{job="self"}'), 1);

      // A scalar, a string, an infinity, and a vector of the server's own metrics.
      deepStrictEqual((await server.query("1 + 2", 1000)).result, { time: 1000, value: 3 });
      deepStrictEqual((await server.query('"text"', 1000)).result, { time: 1000, value: "text" });
      strictEqual(await server.queryValue("1 / 0"), Infinity);
      const info = await server.queryVector('prometheus_build_info{job="self"}');
      strictEqual(info.length, 1);
      assert(info[0].metric.version.length > 0);
      // Unknown metrics are an empty vector, not an error; bad PromQL is an error.
      deepStrictEqual(await server.queryVector("udp_no_such_metric_total"), []);
      await rejects(server.query("rate(up[5m]"), /bad_data/);
      await rejects(server.query("up[1x]"), /bad_data/);

      // Three scrapes 200 ms apart: a range query at 100 ms steps sees several points of up.
      const after = Date.now() / 1000;
      const range = await server.queryRange('up{job="self"}', before, after, 0.1);
      strictEqual(range.length, 1);
      assert(range[0].values.length >= 3, JSON.stringify(range));
      assert(range[0].values.every((point) => point.value === 1));
      const times = range[0].values.map((point) => point.time);
      deepStrictEqual(times, [...times].sort((a, b) => a - b));
      await rejects(server.queryRange("up", after, before, 0.1), /bad_data/);

      // Two more scrapes are counted from now, not from the start.
      const scraped = await server.queryValue('count_over_time(up{job="self"}[1h])');
      await server.waitForScrapes(2);
      assert((await server.queryValue('count_over_time(up{job="self"}[1h])'))! >= scraped! + 2);

      await server.close();
      closed = true;
      await server.close(); // a second close is harmless
      assert(server.exitStatus !== null);
      await rejects(Deno.stat(dir), Deno.errors.NotFound);
      await rejects(
        Deno.connect({ hostname: "127.0.0.1", port: Number(server.address.split(":")[1]) }),
        Deno.errors.ConnectionRefused,
      );
      assert(/SIGTERM/.test(server.stderr), server.stderr.slice(-2000));
    } finally {
      if (!closed) await server.close();
    }
  },
});

Deno.test({
  name: "Prometheus evaluates the rule files it is given, and reports a down target",
  ignore,
  async fn() {
    // A port where nothing listens: that target is down.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const dead = `127.0.0.1:${deadPort}`;
    const dir = await Deno.makeTempDir({ prefix: "udp-prometheus-rules-" });
    let server: PrometheusServer | null = null;
    try {
      const rules = `${dir}/rules.yml`;
      await Deno.writeTextFile(
        rules,
        `groups:
  - name: test
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: SomethingDown
        expr: up == 0
        labels:
          severity: test
        annotations:
          summary: "{{ $labels.instance }} is down"
`,
      );
      server = await startPrometheus({
        scrapeTargets: { self: [SELF], dead: [dead] },
        ruleFiles: [rules],
      });
      const checked = await promtool(["check", "rules", rules]);
      strictEqual(checked.code, 0, checked.stdout + checked.stderr);

      // Prometheus first scrapes some 5 s after it starts.
      await server.waitForScrapes(1, 8_000).then(
        () => assert(false, "a target where nothing listens was counted as scraped"),
        (error) =>
          assert(/dead 127\.0\.0\.1:\d+: 0 of 1 \(down: /.test(String(error)), String(error)),
      );
      const health = new Map((await server.targets()).map((t) => [t.job, t.health]));
      deepStrictEqual(health, new Map([["self", "up"], ["dead", "down"]]));

      let recorded: number | null = null;
      let alerts: Alert[] = [];
      const deadline = Date.now() + 10_000;
      while ((recorded === null || alerts.length === 0) && Date.now() < deadline) {
        recorded = await server.queryValue('job:up:sum{job="self"}');
        alerts = await server.alerts();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      strictEqual(recorded, 1);
      const loaded = await server.rules();
      deepStrictEqual(loaded.map((rule) => [rule.group, rule.type, rule.name, rule.health]), [
        ["test", "recording", "job:up:sum", "ok"],
        ["test", "alerting", "SomethingDown", "ok"],
      ]);
      strictEqual(loaded[1].labels.severity, "test");
      strictEqual(loaded[1].annotations.summary, "{{ $labels.instance }} is down");
      strictEqual(alerts.length, 1);
      strictEqual(alerts[0].labels.alertname, "SomethingDown");
      strictEqual(alerts[0].labels.instance, dead);
      strictEqual(alerts[0].state, "firing"); // no `for:`, so at once
      strictEqual(alerts[0].annotations.summary, `${dead} is down`);
    } finally {
      await server?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "startPrometheus throws with Prometheus's stderr when it cannot load its rules",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "udp-prometheus-rules-" });
    try {
      const rules = `${dir}/bad.yml`;
      await Deno.writeTextFile(
        rules,
        "groups:\n  - name: bad\n    rules:\n      - record: not a metric name\n        expr: up\n",
      );
      await rejects(startPrometheus({ scrapeTargets: {}, ruleFiles: [rules] }), (error: Error) => {
        assert(/exited with code 1/.test(error.message), error.message);
        assert(/not a metric name/.test(error.message), error.message);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "promtool runs and reports its exit code",
  ignore,
  async fn() {
    const version = await promtool(["--version"]);
    strictEqual(version.code, 0, version.stderr);
    assert(/promtool, version \d+\.\d+/.test(version.stdout + version.stderr));
    const bad = await promtool(["check", "rules", "/nonexistent/rules.yml"]);
    assert(bad.code !== 0);
  },
});
