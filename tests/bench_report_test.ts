/**
 * `deno task bench`'s reports from figures made up here: the closed-loop section's
 * (scripts/bench/closed_loop.ts: its ratios, the C echo's ratio to the Python loop as the cap
 * of the Python targets, the generator's busy time per reply) and scraping's effect on the hold
 * time (scripts/bench/daemons_report.ts: paired rounds).
 *
 * @module
 */

import { deepStrictEqual, ok as assert, strictEqual } from "node:assert/strict";
import {
  type ClosedLoopFigures,
  closedLoopReport,
  type ClosedLoopRow,
  generatorBusyUs,
} from "../scripts/bench/closed_loop.ts";
import type { LoadgenResult } from "../scripts/bench/anchors.ts";
import type { DaemonFigures } from "../scripts/bench/daemons.ts";
import { scrapeEffectPercent } from "../scripts/bench/daemons_report.ts";

function result(repliesPerS: number, waitedS: number): LoadgenResult {
  return {
    mode: "raw",
    size: 64,
    window: 64,
    sent: repliesPerS * 5,
    replies: repliesPerS * 5,
    echo_replies: repliesPerS * 5,
    late: 0,
    bad: 0,
    timeouts: 0,
    errors: 0,
    seconds: 5,
    cpu_s: 5,
    waited_s: waitedS,
    replies_per_s: repliesPerS,
    reply_kind: "echo",
  };
}

function row(key: string, mode: "raw" | "ping", repliesPerS: number, waitedS = 0): ClosedLoopRow {
  const median = result(repliesPerS, waitedS);
  return { key, server: key, mode, rounds: [median], median, serverCpuPercent: 99 };
}

const figures: ClosedLoopFigures = {
  skipped: null,
  seconds: 5,
  rounds: 1,
  window: 64,
  size: 64,
  rows: [
    row("udp_serve_ack", "raw", 190_000, 0.25),
    row("udp_serve_ping", "ping", 180_000),
    row("c_echo_raw", "raw", 200_000, 0.5),
    row("c_echo_ping", "ping", 160_000),
    row("python_raw", "raw", 125_000, 1),
  ],
  notes: [],
};

Deno.test("closed loop: the Python targets carry the C echo's own ratio as their cap", () => {
  const report = closedLoopReport(figures);
  deepStrictEqual(report.targets.map(([, value, met, cap]) => [value, met, cap]), [
    ["0.95", true, ""],
    ["1.13", true, ""],
    ["1.52", true, "1.60 (C echo)"],
    ["1.44", false, "1.28 (C echo)"],
  ]);
  strictEqual(report.headlines["closed_loop.ratio_udp_ping_python"], 180_000 / 125_000);
});

Deno.test("closed loop: the generator's busy time per reply leaves its wait out", () => {
  strictEqual(generatorBusyUs(result(200_000, 0.5)), 4.5); // 4.5 s busy over 1e6 replies
  strictEqual(generatorBusyUs(result(0, 5)), 0);
  const lines = closedLoopReport(figures).markdown;
  const python = lines.find((line) => line.startsWith("| python_raw |"));
  assert(python?.includes("| 99 | 6.40 | 20 |"), python);
});

Deno.test("scraping's effect on the hold time: the median of the pairs' ratios", () => {
  const load = (holdPairs: [number, number][]): DaemonFigures["load"] => ({
    repliesPerSecond: 50_000,
    scrapes: 0,
    scrapeMs: { p50: 1, p99: 1, max: 1 },
    holdQuietP50: 0,
    holdScrapedP50: 0,
    holdQuietRange: [0, 0],
    holdScrapedRange: [0, 0],
    holdPairs,
  });
  // The machine slowed down between the two rounds of the third pair and stayed slow: the
  // medians of each kind (0.16 against 0.57 ms) would blame the scrapes for +256%; pair by pair
  // they cost nothing.
  const drift: [number, number][] = [
    [0.16, 0.16],
    [0.16, 0.16],
    [0.16, 0.57],
    [0.57, 0.57],
    [0.57, 0.57],
  ];
  strictEqual(scrapeEffectPercent(load(drift)), 0);
  strictEqual(scrapeEffectPercent(load([[0.1, 0.3], [0.1, 0.3], [0.1, 0.1]])).toFixed(1), "200.0");
});
