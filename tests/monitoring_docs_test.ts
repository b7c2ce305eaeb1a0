/**
 * docs/monitoring/ checked by the real tools: promtool checks prometheus.yml and alerts.yml and
 * runs alerts_test.yml; a real Prometheus loads the alerts and runs every query of the Grafana
 * dashboard and of the README against exporter-shaped data; the README's YAML snippets go
 * through promtool; the systemd units are parsed here and, where systemd-analyze exists,
 * verified by it. Tests needing Prometheus are skipped, saying why, where it is absent (in CI
 * they must run: .ci/run installs it).
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert/strict";
import { hasProgram } from "./helpers.ts";
import {
  dashboardPanelQueries,
  dashboardPanels,
  dashboardQueries,
  prometheusMissing,
  type PrometheusServer,
  promtool,
  startPrometheus,
} from "./prometheus.ts";

const DOCS = new URL("../docs/monitoring/", import.meta.url);
const doc = (name: string): string => new URL(name, DOCS).pathname;
const read = (name: string): string => Deno.readTextFileSync(doc(name));

const ignore = prometheusMissing();

/** The metric names udp serves (the contract), as series: a histogram is its three. */
const PROBE_SERIES = [
  "udp_probe_sent_total",
  "udp_probe_received_total",
  "udp_probe_lost_total",
  "udp_probe_duplicates_total",
  "udp_probe_reordered_total",
  "udp_probe_corrupted_total",
  "udp_probe_late_total",
  "udp_probe_send_errors_total",
  "udp_probe_icmp_errors_total",
  "udp_probe_in_flight",
  "udp_probe_rtt_seconds_bucket",
  "udp_probe_rtt_seconds_sum",
  "udp_probe_rtt_seconds_count",
  "udp_probe_jitter_seconds",
];
const SERVE_SERIES = [
  "udp_serve_datagrams_received_total",
  "udp_serve_replies_total",
  "udp_serve_refused_total",
  "udp_serve_kernel_drops_total",
  "udp_serve_bytes_received_total",
  "udp_serve_bytes_replied_total",
  "udp_serve_malformed_total",
];
const CONTRACT = new Set([
  ...PROBE_SERIES,
  "udp_monitor_targets",
  ...SERVE_SERIES,
  "udp_build_info",
]);

/** The udp metric names a PromQL expression reads. */
function udpMetrics(expr: string): string[] {
  return [...expr.matchAll(/\budp_[a-z_]+/g)].map((match) => match[0]);
}

function assertContractMetrics(expr: string, where: string): void {
  for (const name of udpMetrics(expr)) {
    assert(CONTRACT.has(name), `${where}: ${name} is not a metric udp serves: ${expr}`);
  }
}

function assertSucceeded(result: { code: number; stdout: string; stderr: string }): void {
  strictEqual(result.code, 0, `promtool failed:\n${result.stdout}\n${result.stderr}`);
}

// --- promtool -------------------------------------------------------------------------------

Deno.test({
  name: "promtool check config: prometheus.yml, with the alerts.yml it names beside it",
  ignore,
  async fn() {
    // From another directory: rule_files are relative to the configuration file.
    const dir = await Deno.makeTempDir({ prefix: "udp-promtool-" });
    try {
      const result = await promtool(["check", "config", doc("prometheus.yml")], dir);
      assertSucceeded(result);
      const output = result.stdout + result.stderr;
      assert(/SUCCESS: 1 rule files found/.test(output), output);
      assert(/SUCCESS: 6 rules found/.test(output), output);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "promtool check rules: alerts.yml",
  ignore,
  async fn() {
    const result = await promtool(["check", "rules", doc("alerts.yml")]);
    assertSucceeded(result);
    assert(/SUCCESS: 6 rules found/.test(result.stdout), result.stdout);
  },
});

/** The alerts alerts.yml defines, in order. */
function alertNames(): string[] {
  return [...read("alerts.yml").matchAll(/^\s*- alert: (\w+)$/gm)].map((match) => match[1]);
}

Deno.test({
  name: "promtool test rules: alerts_test.yml passes, and tests every alert firing and quiet",
  ignore,
  async fn() {
    const result = await promtool(["test", "rules", "alerts_test.yml"], doc("."));
    assertSucceeded(result);
    assert(/SUCCESS/.test(result.stdout), result.stdout);

    // Each alert is expected to fire somewhere (exp_alerts with entries) and to stay quiet
    // somewhere (exp_alerts: []).
    const cases = new Map<string, { firing: number; quiet: number }>();
    let alert: string | null = null;
    for (const line of read("alerts_test.yml").split("\n")) {
      const named = line.match(/^\s*alertname: (\w+)\s*$/);
      if (named) alert = named[1];
      const expected = line.match(/^\s*exp_alerts:\s*(\[\])?\s*$/);
      if (expected && alert !== null) {
        const count = cases.get(alert) ?? { firing: 0, quiet: 0 };
        if (expected[1]) count.quiet++;
        else count.firing++;
        cases.set(alert, count);
        alert = null;
      }
    }
    const names = alertNames();
    deepStrictEqual(names, [
      "UdpProbeLoss",
      "UdpProbeRttP99High",
      "UdpTargetDown",
      "UdpProbeSendErrors",
      "UdpExporterDown",
      "UdpServeKernelDrops",
    ]);
    for (const name of names) {
      const count = cases.get(name);
      assert(count && count.firing > 0, `alerts_test.yml never expects ${name} to fire`);
      assert(count.quiet > 0, `alerts_test.yml never expects ${name} to stay quiet`);
    }
    deepStrictEqual([...cases.keys()].filter((name) => !names.includes(name)), []);
  },
});

// --- a real Prometheus: the alerts, the dashboard's and the README's queries ----------------

/**
 * A stand-in for udp monitor's and udp serve's /metrics: every contract metric, for two
 * targets, counters growing with each scrape. It only gives the queries something to find:
 * the real exporters are tested end to end elsewhere.
 */
function exporterText(scrape: number): string {
  const lines: string[] = [];
  const family = (name: string, type: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} A stand-in.`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const targets = ["host-b", "stamp://192.0.2.1"];
  const perTarget = (value: number): [string, number][] =>
    targets.map((target) => [`{target="${target}"}`, value]);
  family("udp_probe_sent_total", "counter", perTarget(10 * scrape + 2));
  family("udp_probe_received_total", "counter", perTarget(9 * scrape));
  family("udp_probe_lost_total", "counter", perTarget(scrape));
  for (const name of ["duplicates", "reordered", "corrupted", "late", "send_errors"]) {
    family(`udp_probe_${name}_total`, "counter", perTarget(scrape % 3));
  }
  family("udp_probe_icmp_errors_total", "counter", [
    ...targets.map((target): [string, number] => [
      `{target="${target}",kind="port_unreachable"}`,
      scrape % 2,
    ]),
    ...targets.map((target): [string, number] => [`{target="${target}",kind="other"}`, 0]),
  ]);
  family("udp_probe_in_flight", "gauge", perTarget(2));
  lines.push("# HELP udp_probe_rtt_seconds A stand-in.", "# TYPE udp_probe_rtt_seconds histogram");
  for (const target of targets) {
    for (const [le, share] of [["0.0005", 0], ["0.001", 3], ["0.0025", 8], ["+Inf", 9]] as const) {
      lines.push(`udp_probe_rtt_seconds_bucket{target="${target}",le="${le}"} ${share * scrape}`);
    }
    lines.push(`udp_probe_rtt_seconds_sum{target="${target}"} ${0.0012 * 9 * scrape}`);
    lines.push(`udp_probe_rtt_seconds_count{target="${target}"} ${9 * scrape}`);
  }
  family("udp_probe_jitter_seconds", "gauge", perTarget(0.0001));
  family("udp_monitor_targets", "gauge", [["", targets.length]]);
  family("udp_serve_datagrams_received_total", "counter", [["", 20 * scrape]]);
  family("udp_serve_replies_total", "counter", [["", 18 * scrape]]);
  family("udp_serve_refused_total", "counter", [
    ['{reason="rate-limit"}', 2 * scrape],
    ['{reason="auth-failed"}', 0],
  ]);
  family("udp_serve_kernel_drops_total", "counter", [["", scrape]]);
  family("udp_serve_bytes_received_total", "counter", [["", 2080 * scrape]]);
  family("udp_serve_bytes_replied_total", "counter", [["", 1872 * scrape]]);
  family("udp_serve_malformed_total", "counter", [['{reason="too-short"}', scrape]]);
  family("udp_build_info", "gauge", [['{version="0.1.0"}', 1]]);
  return lines.join("\n") + "\n";
}

/** The PromQL blocks of the README, one query per paragraph. */
function readmeQueries(): string[] {
  return codeBlocks(read("README.md"))
    .filter((block) => block.tag === "promql")
    .flatMap((block) => block.body.split(/\n\s*\n/))
    .map((query) => query.trim())
    .filter((query) => query !== "");
}

Deno.test({
  name: "a real Prometheus loads alerts.yml and runs every dashboard and README query",
  ignore,
  async fn(t) {
    let scrapes = 0;
    const exporter = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () =>
        new Response(exporterText(++scrapes), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        }),
    );
    const address = `127.0.0.1:${exporter.addr.port}`;
    let server: PrometheusServer | null = null;
    try {
      server = await startPrometheus({
        scrapeTargets: { "udp-monitor": [address], "udp-serve": [address] },
        ruleFiles: [doc("alerts.yml")],
      });
      const prometheus = server;
      await prometheus.waitForScrapes(3);

      await t.step("alerts.yml: each alert's for, severity and annotations", async () => {
        const rules = await prometheus.rules();
        const byName = (a: { name: string }, b: { name: string }) => a.name < b.name ? -1 : 1;
        deepStrictEqual(rules.map((rule) => [rule.type, rule.name, rule.forSeconds]).sort(), [
          ["alerting", "UdpExporterDown", 120],
          ["alerting", "UdpProbeLoss", 300],
          ["alerting", "UdpProbeRttP99High", 600],
          ["alerting", "UdpProbeSendErrors", 300],
          ["alerting", "UdpServeKernelDrops", 300],
          ["alerting", "UdpTargetDown", 60],
        ]);
        rules.sort(byName);
        for (const rule of rules) {
          assert(["warning", "critical"].includes(rule.labels.severity), rule.name);
          for (const annotation of ["summary", "description"]) {
            assert(/\$labels\.instance/.test(rule.annotations[annotation] ?? ""), rule.name);
          }
          assertContractMetrics(rule.query, rule.name);
        }
        // Evaluated without error on exporter-shaped data (the health of a rule that failed
        // is "err").
        const deadline = Date.now() + 10_000;
        let current = rules;
        while (current.some((rule) => rule.health !== "ok") && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          current = await prometheus.rules();
        }
        for (const rule of current) {
          strictEqual(rule.health, "ok", `${rule.name}: ${rule.lastError}`);
        }
      });

      await t.step("every dashboard query is valid PromQL and finds its series", async () => {
        const queries = dashboardPanelQueries(doc("grafana-dashboard.json"));
        assert(queries.length >= 20, `only ${queries.length} queries`);
        for (const query of queries) {
          const where = `panel ${query.id} "${query.title}": ${query.expr}`;
          const result = await prometheus.query(query.expr).catch((error) => {
            throw new Error(`${where}: ${error.message}`);
          });
          strictEqual(result.resultType, "vector", where);
          assert((result.result as unknown[]).length > 0, `${where}: no series`);
        }
      });

      await t.step("the dashboard's variable queries find their labels", async () => {
        const dashboard = JSON.parse(read("grafana-dashboard.json"));
        for (const variable of dashboard.templating.list) {
          if (variable.type !== "query") continue;
          const match = String(variable.definition).match(/^label_values\((.+), (\w+)\)$/);
          assert(match, `variable ${variable.name}: ${variable.definition}`);
          const selector = match[1].replaceAll("$instance", ".+");
          const samples = await prometheus.queryVector(selector);
          assert(samples.some((sample) => match[2] in sample.metric), variable.definition);
        }
      });

      await t.step("every PromQL recipe in the README is valid PromQL", async () => {
        const queries = readmeQueries();
        assert(queries.length >= 15, `only ${queries.length} README queries`);
        for (const query of queries) {
          await prometheus.query(query).catch((error) => {
            throw new Error(`README query ${query}: ${error.message}`);
          });
          assertContractMetrics(query, "README");
        }
      });
    } finally {
      await server?.close();
      await exporter.shutdown();
    }
  },
});

// --- the dashboard's shape ------------------------------------------------------------------

Deno.test("grafana-dashboard.json: panels, ids, data source, variables and their use", () => {
  const dashboard = JSON.parse(read("grafana-dashboard.json"));
  assert(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, dashboard.schemaVersion);
  assert(typeof dashboard.uid === "string" && dashboard.uid.length > 0);
  const variables = new Map(
    dashboard.templating.list.map((variable: { name: string }) => [variable.name, variable]),
  );
  deepStrictEqual([...variables.keys()], ["datasource", "instance", "target"]);
  const datasource = variables.get("datasource") as { type: string; query: string };
  deepStrictEqual([datasource.type, datasource.query], ["datasource", "prometheus"]);
  for (const name of ["instance", "target"]) {
    const variable = variables.get(name) as {
      type: string;
      definition: string;
      datasource: unknown;
    };
    strictEqual(variable.type, "query");
    assert(variable.definition.startsWith("label_values("), variable.definition);
    deepStrictEqual(variable.datasource, { type: "prometheus", uid: "${datasource}" });
  }

  const panels = dashboardPanels(dashboard);
  const ids = panels.map((panel) => panel.id);
  strictEqual(new Set(ids).size, ids.length, `duplicate panel ids: ${ids}`);
  assert(ids.every((id) => Number.isInteger(id)), `ids: ${ids}`);
  const graphs = panels.filter((panel) => panel.type !== "row");
  assert(graphs.length >= 14, `only ${graphs.length} panels`);
  const used = new Set<string>();
  for (const panel of graphs) {
    const where = `panel ${panel.id} "${panel.title}"`;
    const targets = panel.targets ?? [];
    assert(targets.length > 0 && targets.every((target) => typeof target.expr === "string"), where);
    deepStrictEqual(panel.datasource, { type: "prometheus", uid: "${datasource}" }, where);
    for (const target of targets) {
      const expr = target.expr as string;
      deepStrictEqual(target.datasource, { type: "prometheus", uid: "${datasource}" }, where);
      assert(typeof target.refId === "string", where);
      assertContractMetrics(expr, where);
      udpMetrics(expr).forEach((name) => used.add(name));
      // Every selector is filtered by the variables, as regex matchers (they may hold several
      // values, or All).
      const selectors = [...expr.matchAll(/\b(udp_[a-z_]+|up)\{([^}]*)\}/g)];
      assert(selectors.length > 0, `${where}: no selector with the variables: ${expr}`);
      for (const [selector, name, matchers] of selectors) {
        assert(matchers.includes('instance=~"$instance"'), `${where}: ${selector}`);
        if (name.startsWith("udp_probe_")) {
          assert(matchers.includes('target=~"$target"'), `${where}: ${selector}`);
        }
      }
      assert(!/\$__interval\b|\[\d+[smh]\]/.test(expr), `${where}: use $__rate_interval: ${expr}`);
    }
  }
  // Every metric udp serves is on some panel.
  deepStrictEqual([...CONTRACT].filter((name) => !used.has(name)), []);

  // The panels tile the 24-column grid without overlapping.
  const boxes = panels.map((panel) => {
    assert(panel.gridPos, `panel ${panel.id} has no gridPos`);
    return { id: panel.id as number, ...panel.gridPos };
  });
  for (const box of boxes) assert(box.x >= 0 && box.x + box.w <= 24 && box.h > 0, `${box.id}`);
  for (const a of boxes) {
    for (const b of boxes) {
      if (a.id >= b.id) continue;
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      assert(apart, `panels ${a.id} and ${b.id} overlap`);
    }
  }

  // dashboardQueries() fills in every variable.
  const queries = dashboardQueries(doc("grafana-dashboard.json"));
  strictEqual(queries.length, graphs.flatMap((panel) => panel.targets ?? []).length);
  for (const query of queries) assert(!query.includes("$"), query);
  assert(queries.some((query) => query.includes('target=~".*"')));
  assert(queries.some((query) => query.includes('instance=~".+"') && query.includes("[1m]")));
});

// --- the README -----------------------------------------------------------------------------

/** The fenced code blocks of a Markdown text (indented ones, in list items, dedented). */
function codeBlocks(text: string): { tag: string; body: string }[] {
  const pattern = /^( *)```(\w*)\n([\s\S]*?)\n\1```$/gm;
  return [...text.matchAll(pattern)].map(([, indent, tag, body]) => ({
    tag,
    body: body.split("\n").map((line) => line.startsWith(indent) ? line.slice(indent.length) : line)
      .join("\n"),
  }));
}

Deno.test({
  name: "README: every YAML snippet passes promtool (config, rules, file_sd targets)",
  ignore,
  async fn() {
    const blocks = codeBlocks(read("README.md")).filter((block) => block.tag === "yaml");
    assert(blocks.length >= 8, `only ${blocks.length} YAML blocks`);
    const dir = await Deno.makeTempDir({ prefix: "udp-readme-yaml-" });
    const kinds: string[] = [];
    try {
      for (const [index, { body }] of blocks.entries()) {
        const file = `${dir}/snippet-${index}.yml`;
        await Deno.writeTextFile(file, body + "\n");
        let args: string[];
        if (/^groups:/m.test(body)) {
          kinds.push("rules");
          args = ["check", "rules", file];
        } else if (/^(global|scrape_configs|remote_write|rule_files):/m.test(body)) {
          kinds.push("config");
          args = ["check", "config", file];
        } else if (body.startsWith("- targets:")) {
          // A file_sd file: promtool checks those a configuration names.
          kinds.push("file_sd");
          const config = `${dir}/file-sd-${index}.yml`;
          await Deno.writeTextFile(
            config,
            `scrape_configs:\n  - job_name: x\n    file_sd_configs:\n      - files: [${file}]\n`,
          );
          args = ["check", "config", config];
        } else {
          // Grafana's provisioning: not Prometheus's to check.
          assert(body.startsWith("apiVersion: 1\nproviders:"), `unknown YAML snippet:\n${body}`);
          kinds.push("grafana");
          continue;
        }
        const result = await promtool(args);
        strictEqual(result.code, 0, `${body}\n---\n${result.stdout}${result.stderr}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    for (const kind of ["rules", "config", "file_sd", "grafana"]) {
      assert(kinds.includes(kind), `no ${kind} snippet: ${kinds}`);
    }
  },
});

Deno.test("README: the metrics table has every metric, and the ports agree everywhere", () => {
  const readme = read("README.md");
  const table = readme.slice(readme.indexOf("## The metrics"), readme.indexOf("## PromQL recipes"));
  const rows = [...table.matchAll(/^\| `(udp_[a-z_]+)`/gm)].map((match) => match[1]);
  const families = [
    ...PROBE_SERIES.filter((name) => !name.startsWith("udp_probe_rtt_seconds_")),
    "udp_probe_rtt_seconds",
    "udp_monitor_targets",
    ...SERVE_SERIES,
    "udp_build_info",
  ];
  deepStrictEqual([...rows].sort(), [...families].sort());

  // Metrics ports: udp serve 9861, udp monitor 9862, in the units, prometheus.yml and here.
  const config = read("prometheus.yml");
  const job = (name: string) => {
    const start = config.indexOf(`- job_name: ${name}\n`);
    assert(start >= 0, name);
    const end = config.indexOf("- job_name:", start + 1);
    return config.slice(start, end < 0 ? undefined : end);
  };
  for (const [name, port] of [["udp-serve", "9861"], ["udp-monitor", "9862"]]) {
    const targets = [...job(name).matchAll(/^ +- ([\w.-]+:\d+)$/gm)].map((match) => match[1]);
    assert(targets.length > 0, name);
    for (const target of targets) strictEqual(target.split(":")[1], port, `${name}: ${target}`);
    const execStart = parseUnit(read(`${name}.service`)).get("Service")?.get("ExecStart")?.[0];
    assert(execStart?.includes(`--metrics 0.0.0.0:${port}`), `${name}.service: ${execStart}`);
    assert(readme.includes(`${port}`), port);
  }
  assert(read("prometheus.yml").includes("- alerts.yml"));
});

// --- the systemd units ----------------------------------------------------------------------

/** A unit file's sections, in order, each its keys' values (a key may repeat). */
type Unit = Map<string, Map<string, string[]>>;

/** Parses systemd's INI dialect: sections, `Key=Value`, `#`/`;` comments, `\` continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[([A-Za-z]+)\]$/);
    if (header) {
      assert(!unit.has(header[1]), `section [${header[1]}] twice`);
      section = new Map();
      unit.set(header[1], section);
      continue;
    }
    const entry = line.match(/^([A-Za-z][A-Za-z0-9]*)=(.*)$/);
    assert(entry, `line ${index + 1} is neither a section, a key nor a comment: ${raw}`);
    assert(section !== null, `line ${index + 1} comes before any section: ${raw}`);
    section.set(entry[1], [...(section.get(entry[1]) ?? []), entry[2].trim()]);
  }
  return unit;
}

/** The one value of `key` in `section` (an error if it is set twice), or undefined. */
function value(unit: Unit, section: string, key: string): string | undefined {
  const values = unit.get(section)?.get(key);
  if (values === undefined) return undefined;
  strictEqual(values.length, 1, `${key}= is set ${values.length} times`);
  return values[0];
}

const HARDENING: Record<string, string> = {
  NoNewPrivileges: "yes",
  ProtectSystem: "strict",
  ProtectHome: "yes",
  PrivateTmp: "yes",
  PrivateDevices: "yes",
  ProtectKernelTunables: "yes",
  ProtectKernelModules: "yes",
  ProtectControlGroups: "yes",
  RestrictNamespaces: "yes",
  LockPersonality: "yes",
  SystemCallArchitectures: "native",
  Restart: "on-failure",
};

for (const [name, command] of [["udp-serve", "serve"], ["udp-monitor", "monitor"]]) {
  Deno.test(`${name}.service parses, and is hardened as docs/monitoring says`, () => {
    const text = read(`${name}.service`);
    const unit = parseUnit(text);
    deepStrictEqual([...unit.keys()], ["Unit", "Service", "Install"]);
    assert(value(unit, "Unit", "Description"));
    assert(value(unit, "Unit", "After")?.split(/\s+/).includes("network-online.target"));
    strictEqual(value(unit, "Install", "WantedBy"), "multi-user.target");

    const execStart = value(unit, "Service", "ExecStart") ?? "";
    assert(execStart.startsWith(`/usr/local/bin/udp ${command} `), execStart);
    assert(/--metrics \S+:\d+/.test(execStart), execStart);
    for (const [key, expected] of Object.entries(HARDENING)) {
      strictEqual(value(unit, "Service", key), expected, `${key}=`);
    }
    assert(
      value(unit, "Service", "DynamicUser") === "yes" || value(unit, "Service", "User") === "udp",
      "DynamicUser=yes or User=udp",
    );
    const families = (value(unit, "Service", "RestrictAddressFamilies") ?? "").split(/\s+/);
    for (const family of ["AF_INET", "AF_INET6"]) assert(families.includes(family), family);
    for (const family of families) assert(/^AF_[A-Z0-9]+$/.test(family), family);

    // V8's JIT needs writable and executable memory: never set, and the unit says why.
    strictEqual(unit.get("Service")?.has("MemoryDenyWriteExecute"), false);
    assert(/^# MemoryDenyWriteExecute= must NOT be set[^\n]*(?:\n#[^\n]*)*?JIT/m.test(text));

    const bounding = value(unit, "Service", "CapabilityBoundingSet") ?? "";
    const ambient = value(unit, "Service", "AmbientCapabilities") ?? "";
    if (command === "serve") {
      strictEqual(bounding, "CAP_NET_BIND_SERVICE");
      strictEqual(ambient, "CAP_NET_BIND_SERVICE");
      assert(/^# Drop both lines when binding a port above 1023/m.test(text));
      strictEqual(value(unit, "Service", "ExecReload"), undefined);
    } else {
      strictEqual(bounding, "");
      strictEqual(ambient, "");
      assert(/--targets \S+/.test(execStart), execStart);
      strictEqual(value(unit, "Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    }
  });
}

Deno.test("README: the systemd drop-in snippet parses as a unit", () => {
  const blocks = codeBlocks(read("README.md")).filter((block) => block.tag === "ini");
  strictEqual(blocks.length, 1);
  const unit = parseUnit(blocks[0].body);
  const execStart = unit.get("Service")?.get("ExecStart");
  strictEqual(execStart?.[0], "", "ExecStart= first resets the unit's command");
  assert(execStart?.[1]?.startsWith("/usr/local/bin/udp monitor "));
});

/** Whether systemd-analyze is missing (then its test is skipped, saying so: it is optional,
 * in CI too, as installing systemd in a container is not to be done lightly). */
function noSystemdAnalyze(): boolean {
  if (hasProgram("systemd-analyze")) return false;
  console.log("skipping systemd-analyze verify: systemd-analyze is not installed");
  return true;
}

Deno.test({
  name: "systemd-analyze verify: both units, and with the key credential uncommented",
  ignore: noSystemdAnalyze(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "udp-units-" });
    try {
      // verify insists on an executable ExecStart: a stand-in for /usr/local/bin/udp.
      const udp = `${dir}/udp`;
      await Deno.writeTextFile(udp, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      const files: string[] = [];
      for (const name of ["udp-serve", "udp-monitor"]) {
        const text = read(`${name}.service`).replaceAll("/usr/local/bin/udp", udp);
        await Deno.writeTextFile(`${dir}/${name}.service`, text);
        // Authenticated mode, as the comments say: LoadCredential= and --key-file %d/udp.key.
        const keyed = text.replace(/^#LoadCredential=/m, "LoadCredential=")
          .replace(/--metrics/, "--key-file %d/udp.key --metrics");
        assert(keyed.includes("\nLoadCredential=udp.key:"), name);
        await Deno.writeTextFile(`${dir}/${name}-keyed.service`, keyed);
        files.push(`${dir}/${name}.service`, `${dir}/${name}-keyed.service`);
      }
      const output = await new Deno.Command("systemd-analyze", {
        args: ["verify", "--man=no", ...files],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      strictEqual(output.code, 0, text);
      // It warns without failing (an unknown value is "ignoring"): any line about our units
      // fails the test. Lines about the host's other units are not ours to judge.
      const ours = text.split("\n").filter((line) => /udp-(serve|monitor)/.test(line));
      deepStrictEqual(ours, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
