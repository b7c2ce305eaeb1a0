/**
 * A real Prometheus for the tests: `startPrometheus()` runs the server on a free loopback port
 * with its configuration and TSDB in a temporary directory, scraping the jobs it is given;
 * its methods query it over the HTTP API. `promtool()` runs promtool. `dashboardQueries()`
 * reads a Grafana dashboard's PromQL with the template variables filled in.
 *
 * The binaries are looked for by tests/prometheus_bin.ts: in $UDP_PROMETHEUS_DIR, on $PATH,
 * then in /opt/prometheus (where .ci/run puts them). Outside CI a test without them is
 * skipped (`ignore: prometheusMissing()`), saying why; in CI (CI=true) it runs, and fails.
 *
 * @module
 */

import { PROMETHEUS_INSTALL_DIR, prometheusBinary } from "./prometheus_bin.ts";

/** The binaries this harness runs. */
export type PrometheusTool = "prometheus" | "promtool";

/** The place-holder, in a scrape target, for the server's own address (it scrapes itself). */
export const SELF = "$self";

/** A Prometheus answer's labels. */
export type Labels = Record<string, string>;

/** One sample of an instant vector. */
export interface InstantSample {
  metric: Labels;
  /** Unix time, in seconds. */
  time: number;
  value: number;
}

/** One series of a range vector (a matrix). */
export interface RangeSeries {
  metric: Labels;
  values: { time: number; value: number }[];
}

/** What a query evaluated to, values parsed (`NaN`, `+Inf` and `-Inf` included). */
export type QueryResult =
  | { resultType: "vector"; result: InstantSample[] }
  | { resultType: "matrix"; result: RangeSeries[] }
  | { resultType: "scalar"; result: { time: number; value: number } }
  | { resultType: "string"; result: { time: number; value: string } };

/** A scrape target as /api/v1/targets reports it. */
export interface ScrapeTarget {
  job: string;
  instance: string;
  labels: Labels;
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
  /** When it was last scraped; null before its first scrape. */
  lastScrape: Date | null;
}

/** An alert as /api/v1/alerts reports it. */
export interface Alert {
  labels: Labels;
  annotations: Labels;
  state: "pending" | "firing";
  activeAt: Date;
  value: number;
}

/** A rule as /api/v1/rules reports it. */
export interface Rule {
  /** Its group's name. */
  group: string;
  type: "alerting" | "recording";
  name: string;
  query: string;
  /** An alerting rule's `for:`, in seconds (0 for a recording rule). */
  forSeconds: number;
  labels: Labels;
  annotations: Labels;
  health: string;
  lastError: string;
}

/** What to start Prometheus with. */
export interface PrometheusOptions {
  /** Scrape jobs: name to `host:port` targets ({@linkcode SELF} is the server itself). */
  scrapeTargets: Record<string, string[]>;
  /** Scrape interval (and timeout), in milliseconds; default 200. */
  scrapeIntervalMs?: number;
  /** Rule evaluation interval, in milliseconds; default the scrape interval. */
  evaluationIntervalMs?: number;
  /** Rule files (recording and alerting rules), relative to the working directory or not. */
  ruleFiles?: string[];
}

/** The result of a finished promtool run. */
export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Time a server is given to say it is ready, in milliseconds. */
const READY_TIMEOUT_MS = 20_000;
/** Time a server is given to exit on SIGTERM before it is killed, in milliseconds. */
const EXIT_TIMEOUT_MS = 10_000;
/** Time one HTTP request may take, in milliseconds. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How often readiness and scrapes are polled, in milliseconds. */
const POLL_MS = 50;
/** Attempts at a free port: another process may take the one found before Prometheus binds. */
const PORT_ATTEMPTS = 5;
/** How much of the server's stderr is kept for error messages. */
const STDERR_KEEP = 64 * 1024;

function requireBinary(name: PrometheusTool): string {
  const path = prometheusBinary(name);
  if (path === null) {
    throw new Error(
      `${name} not found in $UDP_PROMETHEUS_DIR, on $PATH or in ${PROMETHEUS_INSTALL_DIR} (.ci/run installs it)`,
    );
  }
  return path;
}

let toldMissing = false;

/**
 * Whether a test needing Prometheus's binaries must be skipped (for Deno.test's `ignore`): true
 * when one is missing, outside CI, saying so once. In CI (CI=true) it is false, so the test
 * runs and fails on the missing binary: .ci/run installs them.
 */
export function prometheusMissing(): boolean {
  const absent = (["prometheus", "promtool"] as const).filter((name) =>
    prometheusBinary(name) === null
  );
  if (absent.length === 0 || Deno.env.get("CI") === "true") return false;
  if (!toldMissing) {
    console.log(
      `skipping the Prometheus tests: ${absent.join(" and ")} not found in $UDP_PROMETHEUS_DIR, ` +
        `on $PATH or in ${PROMETHEUS_INSTALL_DIR} (.ci/run installs them; set UDP_PROMETHEUS_DIR)`,
    );
    toldMissing = true;
  }
  return true;
}

/** Runs promtool with `args` (in `cwd`, if given) and returns its exit code and output. */
export async function promtool(args: string[], cwd?: string): Promise<ToolResult> {
  const output = await new Deno.Command(requireBinary("promtool"), {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A free loopback TCP port: bound, then closed (Prometheus cannot report a port 0 bind). */
function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Prometheus's sample values are strings, and its infinities are spelled its own way. */
function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

type RawPoint = [number, string];
type RawData =
  | { resultType: "vector"; result: { metric: Labels; value: RawPoint }[] }
  | { resultType: "matrix"; result: { metric: Labels; values: RawPoint[] }[] }
  | { resultType: "scalar" | "string"; result: RawPoint };

function parseResult(data: RawData): QueryResult {
  switch (data.resultType) {
    case "vector":
      return {
        resultType: "vector",
        result: data.result.map(({ metric, value: [time, value] }) => ({
          metric,
          time,
          value: parseValue(value),
        })),
      };
    case "matrix":
      return {
        resultType: "matrix",
        result: data.result.map(({ metric, values }) => ({
          metric,
          values: values.map(([time, value]) => ({ time, value: parseValue(value) })),
        })),
      };
    case "scalar":
      return {
        resultType: "scalar",
        result: { time: data.result[0], value: parseValue(data.result[1]) },
      };
    case "string":
      return { resultType: "string", result: { time: data.result[0], value: data.result[1] } };
  }
}

/** A time for the API: a Date, or Unix seconds. */
function apiTime(time: Date | number): string {
  return String(time instanceof Date ? time.getTime() / 1000 : time);
}

/** The (job, instance) key of a target. */
function targetKey(job: string, instance: string): string {
  return `${job}\u0000${instance}`;
}

/** A running Prometheus server; `close()` stops it and removes its directory. */
export class PrometheusServer {
  /** `127.0.0.1:PORT`, where it listens (and its own scrape target's instance). */
  readonly address: string;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Its directory: configuration (`prometheus.yml`) and TSDB (`data/`). */
  readonly dir: string;
  /** The scrape interval, in milliseconds. */
  readonly scrapeIntervalMs: number;
  /** The (job, instance) pairs it was configured to scrape. */
  readonly configuredTargets: readonly { job: string; instance: string }[];

  readonly #child: Deno.ChildProcess;
  readonly #client: Deno.HttpClient;
  readonly #stderrDone: Promise<void>;
  #stderr = "";
  #exit: Deno.CommandStatus | null = null;
  readonly #status: Promise<Deno.CommandStatus>;
  #closed = false;

  /** Use {@linkcode startPrometheus}. */
  constructor(
    child: Deno.ChildProcess,
    address: string,
    dir: string,
    scrapeIntervalMs: number,
    configuredTargets: { job: string; instance: string }[],
  ) {
    this.#child = child;
    this.address = address;
    this.url = `http://${address}`;
    this.dir = dir;
    this.scrapeIntervalMs = scrapeIntervalMs;
    this.configuredTargets = configuredTargets;
    this.#client = Deno.createHttpClient({});
    this.#status = child.status.then((status) => this.#exit = status);
    this.#stderrDone = this.#readStderr();
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stderr) {
      this.#stderr = (this.#stderr + decoder.decode(chunk, { stream: true })).slice(-STDERR_KEEP);
    }
  }

  /** What the server wrote on stderr (its log; the last 64 KiB). */
  get stderr(): string {
    return this.#stderr;
  }

  /** Its exit status once it has exited, else null. */
  get exitStatus(): Deno.CommandStatus | null {
    return this.#exit;
  }

  /** The process's ID. */
  get pid(): number {
    return this.#child.pid;
  }

  /** One HTTP request to the server, its body always consumed; null when it cannot connect. */
  async #request(
    path: string,
    body?: URLSearchParams,
  ): Promise<{ status: number; text: string } | null> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(`${this.url}${path}`, {
        method: body ? "POST" : "GET",
        body,
        client: this.#client,
        signal: abort.signal,
      });
      return { status: response.status, text: await response.text() };
    } catch (error) {
      if (error instanceof TypeError) return null; // connection refused or reset
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A GET or POST to the JSON API: its `data`, or an error naming the API's error. */
  async #api<T>(path: string, what: string, body?: URLSearchParams): Promise<T> {
    const response = await this.#request(path, body);
    if (response === null) throw new Error(`Prometheus at ${this.url} refused ${what}`);
    let parsed: { status: string; data?: T; errorType?: string; error?: string };
    try {
      parsed = JSON.parse(response.text);
    } catch {
      throw new Error(`${what}: HTTP ${response.status}, not JSON: ${response.text.slice(0, 500)}`);
    }
    if (parsed.status !== "success") {
      throw new Error(`${what}: ${parsed.errorType ?? "error"}: ${parsed.error ?? response.text}`);
    }
    return parsed.data as T;
  }

  /** Waits until /-/ready says 200; false when the server exits first or `deadline` passes. */
  async waitReady(deadline: number): Promise<boolean> {
    while (Date.now() < deadline && this.#exit === null) {
      const response = await this.#request("/-/ready");
      if (response?.status === 200) return true;
      await sleep(POLL_MS);
    }
    return false;
  }

  /** An instant query (at `time`, Date or Unix seconds; default now); throws on an error. */
  async query(expr: string, time?: Date | number): Promise<QueryResult> {
    const body = new URLSearchParams({ query: expr });
    if (time !== undefined) body.set("time", apiTime(time));
    return parseResult(await this.#api<RawData>("/api/v1/query", `query ${expr}`, body));
  }

  /** An instant query that must evaluate to a vector: its samples. */
  async queryVector(expr: string, time?: Date | number): Promise<InstantSample[]> {
    const result = await this.query(expr, time);
    if (result.resultType !== "vector") {
      throw new Error(`query ${expr}: a ${result.resultType}, not a vector`);
    }
    return result.result;
  }

  /** The value of an instant query of at most one sample (a scalar's too); null for none. */
  async queryValue(expr: string, time?: Date | number): Promise<number | null> {
    const result = await this.query(expr, time);
    if (result.resultType === "scalar") return result.result.value;
    if (result.resultType !== "vector") {
      throw new Error(`query ${expr}: a ${result.resultType}, not a vector or scalar`);
    }
    if (result.result.length > 1) {
      throw new Error(`query ${expr}: ${result.result.length} samples, not one`);
    }
    return result.result[0]?.value ?? null;
  }

  /** A range query from `start` to `end` (Dates or Unix seconds) every `step` (seconds, or a
   * duration such as "200ms"): its series. */
  async queryRange(
    expr: string,
    start: Date | number,
    end: Date | number,
    step: number | string,
  ): Promise<RangeSeries[]> {
    const body = new URLSearchParams({
      query: expr,
      start: apiTime(start),
      end: apiTime(end),
      step: String(step),
    });
    const data = await this.#api<RawData>("/api/v1/query_range", `range query ${expr}`, body);
    const result = parseResult(data);
    if (result.resultType !== "matrix") {
      throw new Error(`range query ${expr}: a ${result.resultType}, not a matrix`);
    }
    return result.result;
  }

  /** The active scrape targets and their health. */
  async targets(): Promise<ScrapeTarget[]> {
    const data = await this.#api<{
      activeTargets: {
        labels: Labels;
        scrapeUrl: string;
        health: ScrapeTarget["health"];
        lastError: string;
        lastScrape: string;
      }[];
    }>("/api/v1/targets?state=active", "targets");
    return data.activeTargets.map((target) => {
      const lastScrape = new Date(target.lastScrape);
      return {
        job: target.labels.job,
        instance: target.labels.instance,
        labels: target.labels,
        scrapeUrl: target.scrapeUrl,
        health: target.health,
        lastError: target.lastError,
        lastScrape: lastScrape.getUTCFullYear() <= 1 ? null : lastScrape,
      };
    });
  }

  /** The alerts pending or firing (rules from `ruleFiles`). */
  async alerts(): Promise<Alert[]> {
    const data = await this.#api<{
      alerts: {
        labels: Labels;
        annotations: Labels;
        state: Alert["state"];
        activeAt: string;
        value: string;
      }[];
    }>("/api/v1/alerts", "alerts");
    return data.alerts.map((alert) => ({
      labels: alert.labels,
      annotations: alert.annotations,
      state: alert.state,
      activeAt: new Date(alert.activeAt),
      value: parseValue(alert.value),
    }));
  }

  /** The rules loaded from `ruleFiles`, by group, in order. */
  async rules(): Promise<Rule[]> {
    const data = await this.#api<{
      groups: {
        name: string;
        rules: {
          type: Rule["type"];
          name: string;
          query: string;
          duration?: number;
          labels?: Labels;
          annotations?: Labels;
          health: string;
          lastError?: string;
        }[];
      }[];
    }>("/api/v1/rules", "rules");
    return data.groups.flatMap((group) =>
      group.rules.map((rule) => ({
        group: group.name,
        type: rule.type,
        name: rule.name,
        query: rule.query,
        forSeconds: rule.duration ?? 0,
        labels: rule.labels ?? {},
        annotations: rule.annotations ?? {},
        health: rule.health,
        lastError: rule.lastError ?? "",
      }))
    );
  }

  /**
   * Waits until every configured target has been scraped successfully at least `n` more
   * times from now: counted from the `up` series (`sum_over_time(up[since now])`), so no scrape
   * is missed between two polls. Prometheus first scrapes about 5 s after it starts (its
   * discovery reload interval). Throws after `timeoutMs` (default 20 s plus 5 intervals a
   * scrape), naming each target's count and last error.
   */
  async waitForScrapes(n: number, timeoutMs?: number): Promise<void> {
    const since = Date.now();
    const deadline = since + (timeoutMs ?? READY_TIMEOUT_MS + n * this.scrapeIntervalMs * 5);
    let counts = new Map<string, number>();
    while (true) {
      const now = Date.now();
      const windowMs = Math.max(1, now - since);
      const samples = await this.queryVector(`sum_over_time(up[${windowMs}ms])`, now / 1000);
      counts = new Map(
        samples.map((
          sample,
        ) => [targetKey(sample.metric.job, sample.metric.instance), sample.value]),
      );
      const behind = this.configuredTargets.filter(({ job, instance }) =>
        (counts.get(targetKey(job, instance)) ?? 0) < n
      );
      if (behind.length === 0) return;
      if (this.#exit !== null) {
        throw new Error(`Prometheus exited (${this.#exit.code}):\n${this.#stderr}`);
      }
      if (Date.now() >= deadline) {
        const targets = await this.targets();
        const report = behind.map(({ job, instance }) => {
          const target = targets.find((t) => t.job === job && t.instance === instance);
          const count = counts.get(targetKey(job, instance)) ?? 0;
          return `${job} ${instance}: ${count} of ${n} (${target?.health ?? "not discovered"}` +
            `${target?.lastError ? `: ${target.lastError}` : ""})`;
        });
        throw new Error(`targets not scraped ${n} times in time:\n${report.join("\n")}`);
      }
      await sleep(POLL_MS);
    }
  }

  /** Stops the server (SIGTERM; SIGKILL if it lingers), waits for it and removes its directory. */
  close(): Promise<void> {
    return this.#stop("SIGTERM");
  }

  /** Kills the server at once (SIGKILL), waits for it and removes its directory. */
  kill(): Promise<void> {
    return this.#stop("SIGKILL");
  }

  async #stop(signal: Deno.Signal): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#exit === null) {
        this.#signal(signal);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const lingering = new Promise<"lingering">((resolve) =>
          timer = setTimeout(() => resolve("lingering"), EXIT_TIMEOUT_MS)
        );
        const outcome = await Promise.race([this.#status, lingering]);
        clearTimeout(timer);
        if (outcome === "lingering") this.#signal("SIGKILL");
      }
      await this.#status;
      await this.#stderrDone;
    } finally {
      this.#client.close();
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // it has exited already
    }
  }
}

/** The configuration file's text: YAML is a superset of JSON, so JSON it is. */
function configText(
  options: PrometheusOptions,
  address: string,
  scrapeIntervalMs: number,
): string {
  const interval = `${scrapeIntervalMs}ms`;
  return JSON.stringify(
    {
      global: {
        scrape_interval: interval,
        scrape_timeout: interval,
        evaluation_interval: `${options.evaluationIntervalMs ?? scrapeIntervalMs}ms`,
      },
      rule_files: (options.ruleFiles ?? []).map((file) =>
        file.startsWith("/") ? file : `${Deno.cwd()}/${file}`
      ),
      scrape_configs: Object.entries(options.scrapeTargets).map(([job, targets]) => ({
        job_name: job,
        static_configs: [{ targets: targets.map((target) => target === SELF ? address : target) }],
      })),
    },
    null,
    2,
  );
}

/**
 * Starts Prometheus on a free loopback port, with its configuration and TSDB in a fresh
 * temporary directory, and waits (up to 20 s) until it says it is ready; throws with its
 * stderr when it does not. Another process taking the port first means another port.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const binary = requireBinary("prometheus");
  const scrapeIntervalMs = options.scrapeIntervalMs ?? 200;
  let failure = "";
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const address = `127.0.0.1:${freeTcpPort()}`;
    const dir = await Deno.makeTempDir({ prefix: "udp-prometheus-" });
    let child: Deno.ChildProcess;
    try {
      const configFile = `${dir}/prometheus.yml`;
      await Deno.writeTextFile(configFile, configText(options, address, scrapeIntervalMs));
      child = new Deno.Command(binary, {
        args: [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=${address}`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
    const configured = Object.entries(options.scrapeTargets).flatMap(([job, targets]) =>
      targets.map((target) => ({ job, instance: target === SELF ? address : target }))
    );
    const server = new PrometheusServer(child, address, dir, scrapeIntervalMs, configured);
    if (await server.waitReady(Date.now() + READY_TIMEOUT_MS)) return server;
    const exited = server.exitStatus;
    await server.kill();
    failure = (exited === null
      ? `not ready after ${READY_TIMEOUT_MS / 1000} s (killed)`
      : `exited with code ${exited.code}`) + `; its stderr:\n${server.stderr}`;
    if (exited === null || !/address already in use/.test(server.stderr)) {
      break;
    }
  }
  throw new Error(`Prometheus did not start: ${failure}`);
}

/** What a dashboard's template variables and Grafana's own are replaced with, so that every
 * query can be run as it stands: regex matchers match everything, intervals are a minute. */
const DASHBOARD_VARIABLES: Record<string, string> = {
  instance: ".+",
  target: ".*",
  job: ".+",
  __rate_interval: "1m",
  __interval: "1m",
  __range: "1m",
};

/** A Grafana panel's query, the variables filled in. */
export interface PanelQuery {
  /** The panel's id. */
  id: number;
  /** The panel's title. */
  title: string;
  /** The query as written. */
  written: string;
  /** The query with the variables filled in: PromQL as it stands. */
  expr: string;
}

/** A Grafana panel, as far as the tests read it. */
export interface DashboardPanel {
  id?: number;
  title?: string;
  type?: string;
  datasource?: unknown;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string; refId?: string; datasource?: unknown }[];
  /** A row's panels (when collapsed). */
  panels?: DashboardPanel[];
}

/** Every panel of a dashboard, those inside rows included, in order. */
export function dashboardPanels(dashboard: { panels?: DashboardPanel[] }): DashboardPanel[] {
  return (dashboard.panels ?? []).flatMap((panel) => [panel, ...dashboardPanels(panel)]);
}

/** `$name`, `${name}` and `${name:format}` replaced with {@linkcode DASHBOARD_VARIABLES}'. */
function fillVariables(expr: string): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced, bare) => {
    const value = DASHBOARD_VARIABLES[braced ?? bare];
    if (value === undefined) throw new Error(`unknown variable ${whole} in ${expr}`);
    return value;
  });
}

/** Every panel query of the Grafana dashboard at `path`, with its panel. */
export function dashboardPanelQueries(path: string | URL): PanelQuery[] {
  const dashboard = JSON.parse(Deno.readTextFileSync(path));
  return dashboardPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).filter((target) => typeof target.expr === "string").map((target) => ({
      id: panel.id ?? -1,
      title: panel.title ?? "",
      written: target.expr as string,
      expr: fillVariables(target.expr as string),
    }))
  );
}

/**
 * The PromQL of every panel of the Grafana dashboard at `path`, in order, its variables
 * filled in: `$instance` as `.+`, `$target` as `.*` (so `target=~"$target"` matches every
 * target) and `$__rate_interval` as `1m`.
 */
export function dashboardQueries(path: string | URL): string[] {
  return dashboardPanelQueries(path).map((query) => query.expr);
}
