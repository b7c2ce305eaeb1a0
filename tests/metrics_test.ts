/**
 * lib/metrics: both exposition formats to the byte, every validation error, Accept negotiation,
 * the HTTP endpoint over real sockets (IPv4 and IPv6), render speed, and real Prometheus tools:
 * `promtool check metrics` (which reads the text format only) and a Prometheus server that
 * scrapes the endpoint and so parses OpenMetrics. Outside CI a missing binary skips its test,
 * saying why; in CI (CI=true) it fails.
 */
import { deepStrictEqual, ok as assert, rejects, strictEqual, throws } from "node:assert/strict";
import {
  type Labels,
  type MetricFamily,
  MetricsServer,
  type MetricsServerOptions,
  negotiate,
  OPENMETRICS_CONTENT_TYPE,
  renderOpenMetrics,
  renderText,
  TEXT_CONTENT_TYPE,
} from "../lib/metrics/mod.ts";
import { formatCanonical, formatGo, formatValue } from "../lib/metrics/exposition.ts";
import { prometheusBinary } from "./prometheus_bin.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const FAMILIES: MetricFamily[] = [
  {
    type: "counter",
    name: "udp_probes_sent_total",
    help: "Probes sent.",
    samples: [
      { labels: { target: "a:9999", format: "udp" }, value: 1200 },
      { labels: { target: "[::1]:9999", format: "stamp" }, value: 0 },
    ],
  },
  {
    type: "gauge",
    name: "udp_odd",
    help: 'Help with \\ a backslash,\na newline and "quotes".',
    samples: [
      { labels: { target: 'q"uote\\back\nline' }, value: 0.125 },
      { labels: { target: "inf" }, value: Infinity },
      { labels: { target: "-inf" }, value: -Infinity },
      { labels: { target: "nan" }, value: NaN },
      { value: 1e21 },
    ],
  },
  { type: "gauge", name: "udp_nothing", help: "Nothing yet.", samples: [] },
  {
    type: "histogram",
    name: "udp_rtt_seconds",
    help: "Round trips.",
    samples: [
      { labels: { target: "a" }, bounds: [0.001, 0.01, 1, 2.5], counts: [1, 2, 3, 0, 4], sum: 1.5 },
      { bounds: [1e-6, 1e6], counts: new Uint32Array(3), sum: 0 },
    ],
  },
];

const SAMPLES = String.raw`udp_odd{target="q\"uote\\back\nline"} 0.125
udp_odd{target="inf"} +Inf
udp_odd{target="-inf"} -Inf
udp_odd{target="nan"} NaN
udp_odd 1e+21
`;

/** The histogram's samples, the same in both formats but for the `le` of 1. */
const HISTOGRAM = (one: string) =>
  String.raw`udp_rtt_seconds_bucket{target="a",le="0.001"} 1
udp_rtt_seconds_bucket{target="a",le="0.01"} 3
udp_rtt_seconds_bucket{target="a",le="${one}"} 6
udp_rtt_seconds_bucket{target="a",le="2.5"} 6
udp_rtt_seconds_bucket{target="a",le="+Inf"} 10
udp_rtt_seconds_sum{target="a"} 1.5
udp_rtt_seconds_count{target="a"} 10
udp_rtt_seconds_bucket{le="1e-06"} 0
udp_rtt_seconds_bucket{le="1e+06"} 0
udp_rtt_seconds_bucket{le="+Inf"} 0
udp_rtt_seconds_sum 0
udp_rtt_seconds_count 0
`;

Deno.test("renderText writes the text format 0.0.4, to the byte", () => {
  strictEqual(
    renderText(FAMILIES),
    String.raw`# HELP udp_probes_sent_total Probes sent.
# TYPE udp_probes_sent_total counter
udp_probes_sent_total{target="a:9999",format="udp"} 1200
udp_probes_sent_total{target="[::1]:9999",format="stamp"} 0
# HELP udp_odd Help with \\ a backslash,\na newline and "quotes".
# TYPE udp_odd gauge
${SAMPLES}# HELP udp_nothing Nothing yet.
# TYPE udp_nothing gauge
# HELP udp_rtt_seconds Round trips.
# TYPE udp_rtt_seconds histogram
${HISTOGRAM("1")}`,
  );
});

Deno.test("renderOpenMetrics writes OpenMetrics 1.0, to the byte", () => {
  strictEqual(
    renderOpenMetrics(FAMILIES),
    String.raw`# TYPE udp_probes_sent counter
# HELP udp_probes_sent Probes sent.
udp_probes_sent_total{target="a:9999",format="udp"} 1200
udp_probes_sent_total{target="[::1]:9999",format="stamp"} 0
# TYPE udp_odd gauge
# HELP udp_odd Help with \\ a backslash,\na newline and \"quotes\".
${SAMPLES}# TYPE udp_nothing gauge
# HELP udp_nothing Nothing yet.
# TYPE udp_rtt_seconds histogram
# HELP udp_rtt_seconds Round trips.
${HISTOGRAM("1.0")}# EOF
`,
  );
});

Deno.test("no families, no samples, empty help and empty labels", () => {
  strictEqual(renderText([]), "");
  strictEqual(renderOpenMetrics([]), "# EOF\n");
  // Both formats read an empty HELP as none: none is written.
  const quiet = [{ ...gauge("udp_g", {}), help: "" }];
  strictEqual(renderText(quiet), "# TYPE udp_g gauge\nudp_g 1\n");
  strictEqual(renderOpenMetrics(quiet), "# TYPE udp_g gauge\nudp_g 1\n# EOF\n");
});

Deno.test("le values: Go's %g in the text format, OpenMetrics' canonical numbers", () => {
  // The spec's own examples ("Considerations: Canonical Numbers"), then a few more.
  const canonical = "0.0 0.001 0.002 0.01 0.1 0.9 0.95 0.99 0.999 1.0 1.7 10.0 " +
    "1e-10 1e-09 1e-05 0.0001 0.1 1.0 100000.0 1e+06 1e+10 -1.0 1.234567e+06";
  for (const text of canonical.split(" ")) strictEqual(formatCanonical(Number(text)), text);
  // Go's strconv.FormatFloat(f, 'g', -1, 64), around the switches to exponent form.
  const go = "0 1 2.5 0.001 0.00012 1.2e-05 123456 999999.5 1.234567e+06 -2.5 -1e-07 1e+21 5e-324";
  for (const text of go.split(" ")) strictEqual(formatGo(Number(text)), text);
});

Deno.test("sample values: integers plain, other floats shortest, +Inf, -Inf, NaN", () => {
  const values = "0 42 -7 9007199254740991 18014398509481984 0.30000000000000004 1e-7 1.5e+300";
  for (const text of values.split(" ")) strictEqual(formatValue(Number(text)), text);
  deepStrictEqual([-0, Infinity, -Infinity, NaN].map(formatValue), ["0", "+Inf", "-Inf", "NaN"]);
});

/** One-sample families for the validation table. */
function gauge(name: string, labels?: Labels): MetricFamily {
  return { type: "gauge", name, help: "h", samples: [{ labels, value: 1 }] };
}

function counter(name: string): MetricFamily {
  return { type: "counter", name, help: "h", samples: [{ value: 1 }] };
}

function histogram(bounds: number[], counts: number[], labels?: Labels): MetricFamily {
  return { type: "histogram", name: "h", help: "", samples: [{ labels, bounds, counts, sum: 0 }] };
}

Deno.test("programming errors throw a TypeError, in both formats", () => {
  const cases: [string, MetricFamily[], RegExp][] = [
    ["empty name", [gauge("")], /invalid metric name ''/],
    ["leading digit", [gauge("1udp")], /invalid metric name '1udp'/],
    ["dash", [gauge("udp-x")], /invalid metric name 'udp-x'/],
    ["space", [gauge("udp x")], /invalid metric name 'udp x'/],
    ["non-ASCII", [gauge("udp_é")], /invalid metric name/],
    ["empty label", [gauge("udp_x", { "": "v" })], /invalid label name ''/],
    ["label digit", [gauge("udp_x", { "1a": "v" })], /invalid label name '1a'/],
    ["label colon", [gauge("udp_x", { "a:b": "v" })], /invalid label name 'a:b'/],
    ["label __", [gauge("udp_x", { __name__: "v" })], /invalid label name '__name__'.*__/],
    ["counter name", [counter("udp_sent")], /counter 'udp_sent' must be named <name>_total/],
    ["bare _total", [counter("_total")], /counter '_total' must be/],
    ["twice", [gauge("udp_x"), gauge("udp_x")], /'udp_x' appears twice/],
    // In OpenMetrics both are the family udp_x: refused in either format.
    ["clash", [gauge("udp_x"), counter("udp_x_total")], /'udp_x' appears twice/],
    ["type", [{ ...gauge("udp_x"), type: "summary" } as never], /unknown type 'summary'/],
    ["le label", [histogram([1], [0, 0], { le: "1" })], /'le' is the bucket's label/],
    ["descending", [histogram([2, 1], [0, 0, 0])], /bounds must ascend \(2, 1\)/],
    ["repeated", [histogram([1, 1], [0, 0, 0])], /bounds must ascend \(1, 1\)/],
    ["NaN bound", [histogram([NaN], [0, 0])], /bound NaN is not a finite number/],
    ["Inf bound", [histogram([1, Infinity], [0, 0, 0])], /bound Infinity is not a finite/],
    ["counts", [histogram([1, 2], [0, 0])], /2 counts for 2 bounds \(want bounds \+ 1\)/],
  ];
  for (const [what, families, message] of cases) {
    for (const render of [renderText, renderOpenMetrics]) {
      throws(() => render(families), { name: "TypeError", message }, what);
    }
  }
  // The le label is the histogram's own: other types may have one.
  strictEqual(renderText([gauge("udp_x", { le: "1" })]).split("\n")[2], 'udp_x{le="1"} 1');
});

const PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0," +
  "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

Deno.test("negotiate: OpenMetrics when asked for it, else the text format", () => {
  const om = OPENMETRICS_CONTENT_TYPE;
  const om001 = "application/openmetrics-text; version=0.0.1; charset=utf-8";
  const text = TEXT_CONTENT_TYPE;
  const cases: [string | null, string][] = [
    [PROMETHEUS_ACCEPT, om], // Prometheus 2.42
    // Prometheus 2.5 to 2.41, which know OpenMetrics 0.0.1 only.
    ["application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", om001],
    [null, text],
    ["", text],
    ["*/*", text], // curl
    ["text/plain", text],
    ["application/json", text],
    ["application/openmetrics-text", om],
    ["APPLICATION/OpenMetrics-Text ; Version=1.0.0", om],
    ['application/openmetrics-text; version="1.0.0"; charset=utf-8', om],
    ["application/openmetrics-text;version=1.0.0;q=0", text],
    ["application/openmetrics-text; q=0.0, text/plain", text],
    ["application/openmetrics-text;q=0.001", om],
    ["application/openmetrics-text;q=abc", text],
    ["application/openmetrics-text;version=2.0.0,text/plain;q=0.1", text],
    ["text/plain;version=0.0.4,application/openmetrics-text;q=0.5", text],
    ["application/openmetrics-text;q=0.5,text/plain;q=0.5", om], // a tie: the first listed
    ["text/plain;version=0.0.3,application/openmetrics-text;q=0.2", om],
  ];
  for (const [accept, contentType] of cases) {
    const chosen = negotiate(accept);
    strictEqual(chosen.contentType, contentType, `Accept: ${accept}`);
    strictEqual(chosen.render, contentType === text ? renderText : renderOpenMetrics);
  }
});

/**
 * What `udp monitor` might expose for `targets` targets, 30 series each: 13 counters and gauges
 * and a histogram of 14 bounds.
 */
function fleet(targets: number): MetricFamily[] {
  const bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const labels = Array.from({ length: targets }, (_, i) => ({
    target: `10.0.${i >> 8}.${i & 255}:9999`,
    format: i % 2 ? "udp" : "stamp",
  }));
  const counters = "sent replies lost duplicates reordered corrupted late".split(" ");
  const gauges = "up loss_ratio rtt_last_seconds rtt_min_seconds rtt_max_seconds jitter_seconds";
  const simple = [
    ...counters.map((name) => ["counter", `udp_target_${name}_total`] as const),
    ...gauges.split(" ").map((name) => ["gauge", `udp_target_${name}`] as const),
  ];
  return [
    ...simple.map(([type, name], f) => ({
      type,
      name,
      help: `The ${name.replaceAll("_", " ")}.`,
      samples: labels.map((l, i) => ({ labels: l, value: f % 3 ? i * 7 : i / 3 })),
    })),
    {
      type: "histogram",
      name: "udp_target_rtt_seconds",
      help: "Round-trip times.",
      samples: labels.map((l, i) => ({
        labels: l,
        bounds,
        counts: Array.from({ length: 15 }, (_, b) => (i + b) % 9),
        sum: i * 0.0123,
      })),
    },
  ];
}

// How fast they render is the benchmark's (the /metrics p99 of a 1,000-target udp monitor in
// docs/performance.md): a time bound here failed on a loaded machine, not on slow code.
Deno.test("1,000 targets × 30 series render every sample, in both formats", () => {
  const families = fleet(1000);
  for (const render of [renderText, renderOpenMetrics]) {
    const lines = render(families).split("\n").filter((l) => l && !l.startsWith("#")).length;
    strictEqual(lines, 30_000, render.name);
  }
});

/** Runs `body` against a server on `hostname`, port 0, closing it whatever happens. */
async function withServer(
  options: Partial<MetricsServerOptions>,
  body: (base: string, server: MetricsServer) => Promise<void>,
): Promise<void> {
  const server = await MetricsServer.start({
    hostname: "127.0.0.1",
    port: 0,
    collect: () => FAMILIES,
    ...options,
  });
  const { hostname, port } = server.address;
  try {
    await body(`http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`, server);
  } finally {
    await server.close();
  }
}

/** A response as `STATUS CONTENT-TYPE`, its headers and its whole body (always consumed). */
async function request(url: string, init?: RequestInit) {
  const response = await fetch(url, init);
  const head = `${response.status} ${response.headers.get("content-type")}`;
  return { head, headers: response.headers, body: await response.text() };
}

for (const hostname of ["127.0.0.1", "::1"]) {
  Deno.test(`MetricsServer on ${hostname}: /metrics negotiated, HEAD, /, 404, 405`, async () => {
    await withServer({ hostname }, async (base, server) => {
      strictEqual(server.address.hostname, hostname);
      assert(server.address.port > 0);
      const plain = await request(`${base}/metrics`, { headers: { accept: "*/*" } });
      deepStrictEqual([plain.head, plain.body], [`200 ${TEXT_CONTENT_TYPE}`, renderText(FAMILIES)]);
      strictEqual(plain.headers.get("vary"), "Accept");
      const init = { headers: { accept: PROMETHEUS_ACCEPT } };
      const om = await request(`${base}/metrics?query=ignored`, init);
      deepStrictEqual([om.head, om.body], [
        `200 ${OPENMETRICS_CONTENT_TYPE}`,
        renderOpenMetrics(FAMILIES),
      ]);
      const head = await request(`${base}/metrics`, { method: "HEAD" });
      deepStrictEqual([head.head, head.body], [`200 ${TEXT_CONTENT_TYPE}`, ""]);
      const root = await request(`${base}/`);
      strictEqual(root.head, "200 text/plain; charset=utf-8");
      assert(root.body.includes("/metrics"), root.body);
      for (const path of ["/nope", "/metrics/", "/metricsx"]) {
        strictEqual((await request(`${base}${path}`)).head, "404 text/plain; charset=utf-8", path);
      }
      for (const method of ["POST", "PUT", "DELETE"]) {
        const refused = await request(`${base}/metrics`, { method });
        strictEqual(refused.head, "405 text/plain; charset=utf-8", method);
        strictEqual(refused.headers.get("allow"), "GET, HEAD");
      }
    });
  });
}

Deno.test("a throwing collect() is a one-line 500, and the server goes on", async () => {
  let calls = 0;
  const collect = () => {
    if (++calls === 1) throw new Error("stats are gone\nsecond line");
    if (calls === 2) return [gauge("bad-name")]; // the renderer's TypeError, too
    return FAMILIES;
  };
  await withServer({ collect }, async (base) => {
    const failed = await request(`${base}/metrics`);
    deepStrictEqual([failed.head, failed.body], [
      "500 text/plain; charset=utf-8",
      "collecting metrics failed: stats are gone\n",
    ]);
    const invalid = await request(`${base}/metrics`);
    strictEqual(invalid.head, "500 text/plain; charset=utf-8");
    assert(/^collecting metrics failed: invalid metric name 'bad-name'.*\n$/.test(invalid.body));
    strictEqual((await request(`${base}/metrics`)).head, `200 ${TEXT_CONTENT_TYPE}`);
  });
});

Deno.test("close() is idempotent and stops listening", async () => {
  let url = "";
  await withServer({}, async (base, server) => {
    url = `${base}/metrics`;
    strictEqual((await request(url)).head, `200 ${TEXT_CONTENT_TYPE}`);
    await Promise.all([server.close(), server.close()]);
  });
  await rejects(fetch(url));
});

Deno.test("start() rejects with the address and the reason, of the system error's class", async () => {
  await withServer({}, async (_base, server) => {
    const { port } = server.address;
    const error = await MetricsServer.start({ hostname: "127.0.0.1", port, collect: () => [] })
      .then(() => null, (error) => error);
    assert(error instanceof Deno.errors.AddrInUse && error.cause instanceof Deno.errors.AddrInUse);
    const said = `cannot serve metrics on 127.0.0.1:${port}: the address is in use (EADDRINUSE)`;
    strictEqual(error.message, said);
  });
  await rejects(
    MetricsServer.start({ hostname: "192.0.2.1", port: 0, collect: () => [] }),
    /^AddrNotAvailable: cannot serve metrics on 192\.0\.2\.1:0: the address is not one of this host's/,
  );
});

Deno.test("MetricsServer prints nothing: no 'Listening on', no error output", async () => {
  const mod = new URL("../lib/metrics/mod.ts", import.meta.url).href;
  const code = `import { MetricsServer } from "${mod}";
    const collect = () => { throw new Error("boom"); };
    const server = await MetricsServer.start({ hostname: "127.0.0.1", port: 0, collect });
    const url = "http://127.0.0.1:" + server.address.port;
    for (const path of ["/metrics", "/", "/nope"]) await (await fetch(url + path)).text();
    await server.close();
  `;
  const output = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  deepStrictEqual([output.code, decode(output.stdout), decode(output.stderr)], [0, "", ""]);
});

// --- Real Prometheus tools (see tests/prometheus_bin.ts for where they are looked for) ---

const inCi = Deno.env.get("CI") === "true";
const promtool = prometheusBinary("promtool");
const prometheus = prometheusBinary("prometheus");
for (const [name, path] of [["promtool", promtool], ["prometheus", prometheus]]) {
  if (path === null && !inCi) {
    console.log(
      `metrics_test: skipping the ${name} test: no ${name} in $UDP_PROMETHEUS_DIR, $PATH or ` +
        "/opt/prometheus (.ci/run installs it there)",
    );
  }
}

function required(path: string | null, name: string): string {
  if (path === null) throw new Error(`${name} is missing: .ci/run installs it in /opt/prometheus`);
  return path;
}

Deno.test({
  name: "promtool check metrics finds no fault in a realistic exposition (it reads no OpenMetrics)",
  ignore: promtool === null && !inCi,
  async fn() {
    const text = renderText([...fleet(3), ...FAMILIES]);
    const tool = required(promtool, "promtool");
    const said = await sh('printf %s "$1" | "$2" check metrics', text, tool);
    deepStrictEqual(said, { code: 0, out: "" });
  },
});

/** A shell script's exit code and output (stdout then stderr), its arguments $1, $2, … */
async function sh(script: string, ...args: string[]): Promise<{ code: number; out: string }> {
  const run = await new Deno.Command("sh", { args: ["-c", script, "sh", ...args] }).output();
  return { code: run.code, out: (decode(run.stdout) + decode(run.stderr)).trim() };
}

// deno-lint-ignore no-explicit-any
const getJson = async (url: string): Promise<any> => (await fetch(url)).json();

/**
 * Runs `body` with the API URL of a Prometheus that scrapes `target` every second, in a
 * directory of its own (a configuration file, not /dev/stdin: Prometheus reads it twice). What
 * it logged is in the error when `body` fails.
 */
async function withPrometheus(target: string, body: (api: string) => Promise<void>) {
  const binary = required(prometheus, "prometheus"); // before mktemp, or its directory stays
  // mktemp, printf and rm make and remove its directory: the test needs no --allow-write.
  const dir = (await sh("mktemp -d -t udp-metrics-test-XXXXXX")).out;
  await sh(
    'printf %s "$1" > "$2/prometheus.yml"',
    `global: { scrape_interval: 1s, scrape_timeout: 1s }\nscrape_configs: [{ job_name: udp, ` +
      `static_configs: [{ targets: ["${target}"] }] }]\n`,
    dir,
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // a free port for its API
  const web = `127.0.0.1:${listener.addr.port}`;
  listener.close();
  const child = new Deno.Command(binary, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}`,
      `--web.listen-address=${web}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs = child.output(); // read all along: a full pipe would stall Prometheus
  const failure = await body(`http://${web}/api/v1`).then(() => null, (error) => error);
  try {
    child.kill("SIGTERM");
  } catch {
    // It had exited already: its log says why.
  }
  const said = decode((await logs).stderr).split("\n").slice(-15).join("\n");
  await sh('rm -rf "$1"', dir);
  if (failure !== null) {
    throw new Error(`${failure}\nPrometheus said:\n${said}`, { cause: failure });
  }
}

Deno.test({
  name: "Prometheus scrapes /metrics over OpenMetrics and stores every series",
  ignore: prometheus === null && !inCi,
  async fn() {
    const families = [...fleet(3), ...FAMILIES];
    await withServer({ collect: () => families }, async (_base, server) => {
      await withPrometheus(`127.0.0.1:${server.address.port}`, async (api) => {
        // Until its first scrape (health "unknown" until then), or 30 s.
        let target = { health: "unknown", lastError: "" };
        for (let tries = 0; target.health === "unknown" && tries < 150; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const targets = await getJson(`${api}/targets`).catch(() => null); // not up yet
          target = targets?.data.activeTargets[0] ?? target;
        }
        deepStrictEqual([target.health, target.lastError], ["up", ""]);
        // OpenMetrics it was: a counter's family is named without _total, and le="1.0" as sent.
        const metadata = await getJson(`${api}/metadata?metric=udp_probes_sent`);
        strictEqual(metadata.data.udp_probes_sent[0].type, "counter");
        const query = (promql: string) =>
          getJson(`${api}/query?query=${encodeURIComponent(promql)}`);
        strictEqual((await query('udp_target_rtt_seconds_bucket{le="1.0"}')).data.result.length, 3);
        const all = await query('{__name__=~"udp_.+"}');
        const lines = renderText(families).split("\n");
        strictEqual(all.data.result.length, lines.filter((line) => line && line[0] !== "#").length);
      });
    });
  },
});
