/**
 * The daemons' part of `deno task bench` (scripts/bench/mod.ts writes it into docs/performance.md,
 * with the text of ./daemons_report.ts):
 * what an idle `udp serve` costs, how long it holds a probe at one per second (against a bare
 * loop's floor), how fast `/metrics` answers while it reflects 50,000 datagrams/s and whether
 * scraping slows its replies, and what `udp monitor` costs for 1,000 targets. Every process is
 * a subprocess on loopback; every run is bounded. The kernel is the meter: CPU time from
 * /proc/PID/task/TID/schedstat (nanoseconds, every thread), wake-ups from their context
 * switches, memory from VmRSS.
 *
 * Alone: `deno task bench --only daemons` prints the section.
 *
 * @module
 */

import type { BenchSummary } from "../../lib/probe/bench.ts";
import type { PingSummary } from "../../lib/probe/ping.ts";
import { udpCommand } from "../flags.ts";

const DENO_FLOOR = new URL("../deno_floor.ts", import.meta.url).pathname;

/** The seconds each idle process is watched for. */
const IDLE_SECONDS = 15;
/** Probes at one per second for the hold time. */
const HOLD_PROBES = 30;
/** The load for the /metrics figures, and how long each round of it lasts. */
export const LOAD_PPS = 50_000;
export const LOAD_SECONDS = 8;
/** How often the scraper asks for /metrics while the load runs (ten a second: many samples). */
export const SCRAPE_EVERY_MS = 100;
/**
 * Rounds with and without scrapes, alternating: at 50k/s udp serve is busy most of the time, so
 * its hold time swings with whatever else the two processors run, round to round.
 */
export const LOAD_ROUND_PAIRS = 5;
/** The monitor's sizes, and how long each is watched after a warm-up. */
const MONITOR_SIZES = [10, 1000];
export const MONITOR_WARMUP_S = 5;
export const MONITOR_SECONDS = 20;

/** p50 and p99 of some samples (ms). */
interface Quantiles {
  p50: number;
  p99: number;
}

/** 200 scattered reads, warm and after sleeps (scripts/deno_floor.ts --native cold), in µs. */
interface ColdReads {
  warm_us: number;
  after_1ms_us: number;
  after_10ms_us: number;
  after_1000ms_us: number;
}

/** What the daemon benchmarks measured. */
export interface DaemonFigures {
  /** An idle `udp serve` (and one with `--metrics`): CPU and wake-ups, /metrics when idle. */
  idle: {
    seconds: number;
    serveCpuPercent: number;
    serveWakeupsPerSecond: number;
    metricsServeCpuPercent: number;
    metricsServeWakeupsPerSecond: number;
    idleScrapeMs: Quantiles;
  };
  /** udp serve's hold time at one probe per second, and the bare loop's. */
  hold: { probes: number; serve: Quantiles; floor: Quantiles; cold: ColdReads };
  /** /metrics under load, and udp serve's hold time with and without scraping. */
  load: {
    repliesPerSecond: number;
    scrapes: number;
    scrapeMs: Quantiles & { max: number };
    holdQuietP50: number;
    holdScrapedP50: number;
    /** The lowest and highest of each kind of round's hold time p50. */
    holdQuietRange: [number, number];
    holdScrapedRange: [number, number];
    /** Each pair of rounds, run back to back: its hold time p50s without and with scrapes. */
    holdPairs: [number, number][];
  };
  /** udp monitor at each size. */
  monitor: {
    targets: number;
    cpuPercent: number;
    rssKiB: number;
    sent: number;
    received: number;
    lost: number;
    metricsBytes: number;
    scrapeMs: Quantiles;
  }[];
}

/** A udp process, its stdout read line by line. */
class Daemon {
  readonly child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #pending = "";

  constructor(args: string[]) {
    const [command, argv] = udpCommand(args);
    this.child = new Deno.Command(command, { args: argv, stdout: "piped", stderr: "null" })
      .spawn();
    this.#lines = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The first line (a `--json` start line, or a banner). */
  async firstLine(): Promise<string> {
    while (!this.#pending.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`udp exited before its first line`);
      this.#pending += value;
    }
    const line = this.#pending.slice(0, this.#pending.indexOf("\n"));
    // Drained from now on, so that the process never blocks on a full pipe.
    (async () => {
      while (!(await this.#lines.read()).done);
    })();
    return line;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.child.status;
  }
}

/** What `command` prints (Deno reads /proc only with every permission: `cat` it is). */
async function output(command: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(result.stdout);
}

/** CPU nanoseconds and context switches so far, thread by thread (by thread id). */
async function usage(pid: number): Promise<Map<string, { cpuNs: number; switches: number }>> {
  const text = await output("sh", [
    "-c",
    `cd /proc/${pid}/task && for t in *; do echo "$t $(cut -d' ' -f1 $t/schedstat) ` +
    `$(grep -h _ctxt_switches $t/status | awk '{s += $2} END {print s}')"; done`,
  ]);
  const threads = new Map<string, { cpuNs: number; switches: number }>();
  for (const line of text.trim().split("\n")) {
    const [tid, cpuNs, switches] = line.split(" ");
    if (switches !== undefined) {
      threads.set(tid, { cpuNs: Number(cpuNs), switches: Number(switches) });
    }
  }
  return threads;
}

/**
 * CPU (% of one core) and wake-ups per second of `pid` over `seconds`: each thread's growth
 * (a thread that ended meanwhile, an idle one of Deno's pool, is left out; one that began
 * counts whole).
 */
async function watch(pid: number, seconds: number): Promise<{ cpu: number; wakeups: number }> {
  const before = await usage(pid);
  const start = performance.now();
  await sleep(seconds * 1000);
  const after = await usage(pid);
  const elapsedS = (performance.now() - start) / 1000;
  let cpuNs = 0;
  let switches = 0;
  for (const [tid, now] of after) {
    const then = before.get(tid) ?? { cpuNs: 0, switches: 0 };
    cpuNs += now.cpuNs - then.cpuNs;
    switches += now.switches - then.switches;
  }
  return { cpu: cpuNs / 1e9 / elapsedS * 100, wakeups: switches / elapsedS };
}

async function rssKiB(pid: number): Promise<number> {
  const status = await output("cat", [`/proc/${pid}/status`]);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function quantiles(samples: number[]): Quantiles & { max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

/** One scrape of `url`: how long the whole response took (ms) and its size. */
async function scrape(url: string): Promise<{ ms: number; bytes: number; body: string }> {
  const start = performance.now();
  const response = await fetch(url);
  const body = await response.text();
  return { ms: performance.now() - start, bytes: new TextEncoder().encode(body).length, body };
}

/** Scrapes `url` every `everyMs` until `signal` aborts; the latencies. */
async function scrapeUntil(url: string, everyMs: number, signal: AbortSignal): Promise<number[]> {
  const latencies: number[] = [];
  while (!signal.aborted) {
    const started = performance.now();
    latencies.push((await scrape(url)).ms);
    await sleep(Math.max(0, everyMs - (performance.now() - started)));
  }
  return latencies;
}

/** `udp ping --json -q` output's summary. */
async function udpJson<T>(args: string[]): Promise<T> {
  const [command, argv] = udpCommand(args);
  const output = await new Deno.Command(command, { args: argv, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (text === "") {
    throw new Error(`udp ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

function serverHold(summary: PingSummary): Quantiles {
  const { p50, p99 } = summary.server_ms;
  if (p50 === null || p99 === null) throw new Error("udp ping: no reply told its hold time");
  return { p50, p99 };
}

/** The sum of a metric's samples in an exposition. */
function total(body: string, name: string): number {
  let sum = 0;
  for (const line of body.split("\n")) {
    if (line.startsWith(name + "{") || line.startsWith(name + " ")) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

/** The port of a udp serve `--json` listening line, and its metrics URL if any. */
function listening(line: string): { port: number; metrics: string | undefined } {
  const parsed = JSON.parse(line);
  return { port: Number(parsed.address.split(":").at(-1)), metrics: parsed.metrics };
}

async function idle(): Promise<DaemonFigures["idle"]> {
  const plain = new Daemon(["serve", "--port", "0", "--json"]);
  await plain.firstLine();
  await sleep(2000); // started, compiled what it runs at start
  const serve = await watch(plain.child.pid, IDLE_SECONDS);
  await plain.stop();
  const withMetrics = new Daemon(["serve", "--port", "0", "--json", "--metrics", "127.0.0.1:0"]);
  const { metrics } = listening(await withMetrics.firstLine());
  await sleep(2000);
  const metricsServe = await watch(withMetrics.child.pid, IDLE_SECONDS);
  const latencies: number[] = [];
  for (let i = 0; i < 50; i++) {
    latencies.push((await scrape(metrics!)).ms);
    await sleep(20);
  }
  await withMetrics.stop();
  return {
    seconds: IDLE_SECONDS,
    serveCpuPercent: serve.cpu,
    serveWakeupsPerSecond: serve.wakeups,
    metricsServeCpuPercent: metricsServe.cpu,
    metricsServeWakeupsPerSecond: metricsServe.wakeups,
    idleScrapeMs: quantiles(latencies),
  };
}

async function hold(): Promise<DaemonFigures["hold"]> {
  const serve = new Daemon(["serve", "--port", "0", "--json"]);
  const { port } = listening(await serve.firstLine());
  const floor = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", DENO_FLOOR, "--native", "hold", String(HOLD_PROBES)],
    stdout: "piped",
  }).spawn();
  const floorLines = floor.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let floorText = "";
  while (!floorText.includes("\n")) floorText += (await floorLines.read()).value ?? "";
  const floorPort = Number(floorText.split("\n")[0]);
  const ping = (to: number, count: number) =>
    udpJson<PingSummary>([
      "ping",
      `127.0.0.1:${to}`,
      "-i",
      "1",
      "-c",
      String(count),
      "-q",
      "--json",
    ]);
  // Both at once, half a second apart, so that neither wakes the other's processor.
  const serveRun = ping(port, HOLD_PROBES);
  await sleep(500);
  const floorRun = ping(floorPort, HOLD_PROBES + 1); // the floor's first turns stamps on
  const summary = await serveRun;
  await floorRun;
  while (!floorText.trim().includes("\n")) floorText += (await floorLines.read()).value ?? "";
  await floor.status;
  await serve.stop();
  const floorFigures = JSON.parse(floorText.trim().split("\n")[1]);
  const cold = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", DENO_FLOOR, "--native", "cold"],
    stdout: "piped",
  }).output();
  return {
    probes: HOLD_PROBES,
    serve: serverHold(summary),
    floor: { p50: floorFigures.p50_ms, p99: floorFigures.p99_ms },
    cold: JSON.parse(new TextDecoder().decode(cold.stdout)),
  };
}

async function load(): Promise<DaemonFigures["load"]> {
  const serve = new Daemon(["serve", "--port", "0", "--json", "--metrics", "127.0.0.1:0"]);
  const { port, metrics } = listening(await serve.firstLine());
  const target = `127.0.0.1:${port}`;
  const replies: number[] = [];
  const holds = { quiet: [] as number[], scraped: [] as number[] };
  const scrapeLatencies: number[] = [];
  const rounds = Array.from({ length: LOAD_ROUND_PAIRS }, () => ["quiet", "scraped"] as const);
  for (const round of rounds.flat()) {
    const stop = new AbortController();
    const scraping = round === "scraped"
      ? scrapeUntil(metrics!, SCRAPE_EVERY_MS, stop.signal)
      : Promise.resolve([]);
    const loadRun = udpJson<BenchSummary>([
      "bench",
      target,
      "--rate",
      String(LOAD_PPS),
      "--duration",
      String(LOAD_SECONDS),
      "-s",
      "20",
      "-i",
      "0",
      "--json",
    ]);
    await sleep(1000);
    const probes = (LOAD_SECONDS - 2) * 100;
    const pinged = await udpJson<PingSummary>(
      ["ping", target, "-i", "0.01", "-c", String(probes), "-q", "--json"],
    );
    const summary = await loadRun;
    stop.abort();
    scrapeLatencies.push(...await scraping);
    holds[round].push(serverHold(pinged).p50);
    replies.push(summary.achieved_pps);
  }
  await serve.stop();
  return {
    repliesPerSecond: median(replies),
    scrapes: scrapeLatencies.length,
    scrapeMs: quantiles(scrapeLatencies),
    holdQuietP50: median(holds.quiet),
    holdScrapedP50: median(holds.scraped),
    holdQuietRange: [Math.min(...holds.quiet), Math.max(...holds.quiet)],
    holdScrapedRange: [Math.min(...holds.scraped), Math.max(...holds.scraped)],
    holdPairs: holds.quiet.map((quiet, i) => [quiet, holds.scraped[i]]),
  };
}

/** 127.1.X.Y for target `i`: addresses across 127.0.0.0/8, all reaching a serve on 0.0.0.0. */
function targetAddress(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

async function monitorAt(targets: number): Promise<DaemonFigures["monitor"][number]> {
  const serve = new Daemon(["serve", "--host", "0.0.0.0", "--port", "0", "--json"]);
  const { port } = listening(await serve.firstLine());
  const list = Array.from({ length: targets }, (_, i) => `t${i}=${targetAddress(i)}:${port}`);
  const monitor = new Daemon(["monitor", ...list, "-i", "1", "--metrics", "127.0.0.1:0"]);
  const url = /metrics on (http:\S+)/.exec(await monitor.firstLine())![1];
  await sleep(MONITOR_WARMUP_S * 1000);
  const { cpu } = await watch(monitor.child.pid, MONITOR_SECONDS);
  const rss = await rssKiB(monitor.child.pid);
  const scrapes = [];
  for (let i = 0; i < 20; i++) scrapes.push(await scrape(url));
  const last = scrapes.at(-1)!.body;
  await monitor.stop();
  await serve.stop();
  return {
    targets,
    cpuPercent: cpu,
    rssKiB: rss,
    sent: total(last, "udp_probe_sent_total"),
    received: total(last, "udp_probe_received_total"),
    lost: total(last, "udp_probe_lost_total"),
    metricsBytes: scrapes.at(-1)!.bytes,
    scrapeMs: quantiles(scrapes.map((s) => s.ms)),
  };
}

/** Runs every daemon benchmark, one after the other (about three minutes). */
export async function measureDaemons(): Promise<DaemonFigures> {
  console.error("daemons: idle udp serve");
  const idleFigures = await idle();
  console.error("daemons: hold time at one probe per second");
  const holdFigures = await hold();
  console.error(`daemons: /metrics while udp serve answers ${LOAD_PPS} datagrams/s`);
  const loadFigures = await load();
  const monitor = [];
  for (const size of MONITOR_SIZES) {
    console.error(`daemons: udp monitor with ${size} targets`);
    monitor.push(await monitorAt(size));
  }
  return { idle: idleFigures, hold: holdFigures, load: loadFigures, monitor };
}
