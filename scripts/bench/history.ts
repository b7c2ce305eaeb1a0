/**
 * docs/performance-history.json, the append-only record of `deno task bench` runs (each: its
 * date, label, sections, machine facts and every headline figure by a stable name), and the
 * report's History table built from it.
 *
 * @module
 */

import type { MachineFacts } from "./machine.ts";

/** The history file. */
export const HISTORY: URL = new URL("../../docs/performance-history.json", import.meta.url);

/** One run of the bench. */
export interface HistoryRun {
  /** ISO 8601, when it started. */
  date: string;
  /** What the run was for (`--label`), or null. */
  label: string | null;
  /** Every section ran (a run that wrote docs/performance.md). */
  full: boolean;
  sections: string[];
  /** What is known of the machine; a run seeded from an old report has nulls. */
  machine: Partial<MachineFacts> & { kernel: string | null };
  figures: Record<string, number | null>;
  /** Anything a reader should know about the run (how it was recorded). */
  note?: string;
}

/** The runs so far, oldest first ([] when there is no file yet). */
export async function readHistory(): Promise<HistoryRun[]> {
  try {
    return JSON.parse(await Deno.readTextFile(HISTORY));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** Appends a run to the file (formatted as `deno fmt` would: the check gate reads it). */
export async function appendRun(run: HistoryRun): Promise<HistoryRun[]> {
  const runs = [...await readHistory(), run];
  await Deno.writeTextFile(HISTORY, JSON.stringify(runs, null, 2) + "\n");
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", HISTORY.pathname] }).output();
  return runs;
}

/** The figures the History table shows, in order: key, what it is, decimals. */
const ROWS: [string, string, number][] = [
  ["rtt_fast.ratio_udp_sockperf", "`udp ping -i 0` round trip / sockperf (≤ 1.15)", 2],
  ["rtt_10ms.ratio_udp_irtt", "`udp ping -i 0.01` RTT / irtt (≤ 0.35)", 2],
  ["capacity.ratio_udp_node", "`udp serve` / Node echo, open loop (≥ 2)", 2],
  ["capacity.udp_replies_pps", "`udp serve --raw echo` replies/s, open loop", 0],
  ["closed_loop.ratio_udp_ack_c", "`udp serve` raw / C echo, closed loop (≥ 0.9)", 2],
  ["closed_loop.ratio_udp_ping_c", "`udp serve` PING / C echo, closed loop (≥ 0.9)", 2],
  ["closed_loop.ratio_udp_ack_python", "`udp serve` raw / Python loop, closed loop (≥ 1.5)", 2],
  ["closed_loop.ratio_udp_ping_python", "`udp serve` PING / Python loop, closed loop (≥ 1.5)", 2],
  ["closed_loop.udp_serve_ping_pps", "`udp serve` PING replies/s, closed loop", 0],
  ["closed_loop.c_echo_raw_pps", "C echo replies/s, closed loop", 0],
  [
    "closed_loop.max_spread_percent",
    "closed loop: widest spread of a row's rounds (%, > 25 noisy)",
    0,
  ],
  ["sender.ratio_udp_iperf3", "`udp bench --rate max` / iperf3 (≥ 0.8)", 2],
  ["memory.udp_rss_growth_percent", "`udp serve` RSS growth, 10 k to 1 M (%, ±10)", 1],
  ["pacing.error_percent", "`udp bench --rate 10k` pacing error (%, ±1)", 2],
  ["daemons.idle_cpu_percent", "idle `udp serve` CPU (%, ≤ 0.1)", 3],
  ["daemons.hold_p50_ms", "hold time p50 at 1 probe/s (ms, ≤ 0.1)", 4],
  ["daemons.metrics_under_load_p99_ms", "`/metrics` p99 under 50k/s (ms, ≤ 50)", 1],
  ["daemons.scrape_hold_effect_percent", "scraping's effect on hold time (%, ≤ 10)", 1],
  ["daemons.monitor_1000_cpu_percent", "`udp monitor`, 1000 targets (% CPU, ≤ 10)", 1],
];

/** How many runs the table shows at most. */
const COLUMNS = 6;

/**
 * The runs the table shows, oldest first: the last {@link COLUMNS}, but never all from one
 * day while an earlier day has a run (then the oldest column is that day's last run).
 */
export function shownRuns(runs: HistoryRun[]): HistoryRun[] {
  const shown = runs.slice(-COLUMNS);
  const day = (run: HistoryRun) => run.date.slice(0, 10);
  if (shown.length > 0 && shown.every((run) => day(run) === day(shown[0]))) {
    const earlier = runs.slice(0, runs.length - shown.length).findLast((run) =>
      day(run) !== day(shown[0])
    );
    if (earlier && shown.length === COLUMNS) return [earlier, ...shown.slice(1)];
    if (earlier) return [earlier, ...shown];
  }
  return shown;
}

/** A run's load average at its start and the CPU time the hypervisor stole during it. */
function loadAndSteal(run: HistoryRun): string {
  const load = run.machine.load_start?.[0]?.toFixed(2) ?? "unknown";
  const steal = run.machine.steal_percent;
  return `${load}; ${steal === null || steal === undefined ? "unknown" : `${steal.toFixed(1)}%`}`;
}

/** The History table, as Markdown lines: one column per run, one row per headline figure. */
export function historyTable(runs: HistoryRun[]): string[] {
  const shown = shownRuns(runs);
  const cells = (f: (run: HistoryRun) => string) => shown.map(f).join(" | ");
  const lines = [
    `| Run | ${cells((r) => r.date.slice(0, 16).replace("T", " "))} |`,
    `| --- | ${cells(() => "---:")} |`,
    `| Label | ${cells((r) => r.label ?? "")} |`,
    `| Kernel | ${cells((r) => r.machine.kernel ?? "unknown")} |`,
    `| CPU | ${
      cells((r) => (r.machine.cpu_model ?? "unknown").replace(/\s*\(R\)|\s*Processor/g, ""))
    } |`,
    `| Sections | ${cells((r) => r.full ? "all" : r.sections.join(", "))} |`,
    `| Load at start; CPU stolen | ${cells(loadAndSteal)} |`,
  ];
  for (const [key, name, digits] of ROWS) {
    if (shown.every((r) => r.figures[key] === undefined || r.figures[key] === null)) continue;
    lines.push(`| ${name} | ${cells((r) => r.figures[key]?.toFixed(digits) ?? "—")} |`);
  }
  return lines;
}
