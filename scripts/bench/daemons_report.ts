/**
 * The text of `deno task bench`'s daemons section (./daemons.ts measures it): its paragraphs,
 * target rows and headline figures.
 *
 * @module
 */

import { median, type SectionReport } from "./common.ts";
import {
  type DaemonFigures,
  LOAD_PPS,
  LOAD_ROUND_PAIRS,
  LOAD_SECONDS,
  MONITOR_SECONDS,
  MONITOR_WARMUP_S,
  SCRAPE_EVERY_MS,
} from "./daemons.ts";

const fixed = (value: number, digits = 3) => value.toFixed(digits);
const signed = (percent: number) => `${percent >= 0 ? "+" : ""}${percent.toFixed(1)}`;

/** The bytes each target adds to the monitor's RSS, between the smallest and largest run. */
export function bytesPerTarget(figures: DaemonFigures): number {
  const small = figures.monitor[0];
  const large = figures.monitor.at(-1)!;
  return (large.rssKiB - small.rssKiB) * 1024 / (large.targets - small.targets);
}

/**
 * How much scraping raised udp serve's hold time p50 under load, in %: the median over the pairs
 * of rounds of each pair's ratio. A pair runs back to back, so the machine's drift (its speed
 * swings by tens of % over a minute on a shared VM) is nearly the same for both of its rounds,
 * while the medians of the two kinds of rounds, each over the whole run, keep it.
 */
export function scrapeEffectPercent(load: DaemonFigures["load"]): number {
  return (median(load.holdPairs.map(([quiet, scraped]) => scraped / quiet)) - 1) * 100;
}

/** The target rows (target, udp's figure, met, a bare loop's) for the report's table. */
export function daemonTargetRows(figures: DaemonFigures): [string, string, boolean, string][] {
  const { idle, hold, load } = figures;
  const large = figures.monitor.at(-1)!;
  const scrapeEffect = scrapeEffectPercent(load);
  return [
    [
      "idle `udp serve` CPU ≤ 0.1% of a core",
      `${fixed(idle.serveCpuPercent)}%`,
      idle.serveCpuPercent <= 0.1,
      "",
    ],
    [
      "`udp serve` hold time p50 ≤ 0.1 ms at one probe per second",
      `${fixed(hold.serve.p50, 4)} ms`,
      hold.serve.p50 <= 0.1,
      `${fixed(hold.floor.p50, 4)} ms`,
    ],
    [
      `\`/metrics\` p99 ≤ 50 ms while \`udp serve\` answers ${LOAD_PPS / 1000}k datagrams/s`,
      `${fixed(load.scrapeMs.p99, 1)} ms`,
      load.scrapeMs.p99 <= 50,
      "",
    ],
    [
      "scraping raises `udp serve`'s hold time p50 ≤ 10%",
      `${signed(scrapeEffect)}%`,
      scrapeEffect <= 10,
      "",
    ],
    [
      `\`udp monitor\` with ${large.targets} targets at 1 pps each ≤ 10% of a core`,
      `${fixed(large.cpuPercent, 1)}%`,
      large.cpuPercent <= 10,
      "",
    ],
  ];
}

/** What the cold hold time is made of, and what it is not (measured once, dated). */
const HOLD_COLD_PATH =
  "The bare loop touches a few cache lines; udp serve's path from a datagram to " +
  "its stamped reply (its control messages, peer, rate limits, decoding, session counts) " +
  "touches hundreds, each a miss after a sleep. Timed step by step (2026-12-02, with the " +
  "sleep on the main thread, which did not change the total): 0.09 ms to wake, 0.06 ms to " +
  "read the batch and the clocks, 0.05–0.17 ms to the handler, 0.13–0.27 ms to the stamp. " +
  "The sleep on another thread (so the main one is free for timers, signals and scrapes) is " +
  "not what costs: a build that slept on the main thread held probes as long. Nor is the " +
  "JIT's warm-up: a server whose code V8 had optimized (two clients' 3000 probes at 1 kHz " +
  "first) and did not deoptimize meanwhile (`--trace-deopt`) held probes at 10 a second for " +
  "p50s of 0.22–0.31 ms (2026-12-04, four rounds of 30), against 0.39–0.43 ms for a fresh " +
  "server.";

/** The report's section on the daemons, as Markdown lines (without its heading). */
export function daemonSection(figures: DaemonFigures): string[] {
  const { idle, hold, load } = figures;
  const lines = [
    "scripts/bench/daemons.ts. CPU is every thread's time from the kernel's schedstat (to the",
    "nanosecond), wake-ups are context switches, memory is VmRSS.",
    "",
    `**Idle.** Watched for ${idle.seconds} s each after a 2 s start: \`udp serve\` used ` +
    `${fixed(idle.serveCpuPercent)}% of a core and woke ${fixed(idle.serveWakeupsPerSecond, 1)} ` +
    `times a second; with \`--metrics\`, ${fixed(idle.metricsServeCpuPercent)}% and ` +
    `${fixed(idle.metricsServeWakeupsPerSecond, 1)}. Its reactor sleeps in a \`ppoll()\` on ` +
    "another thread until a datagram, a timer of its own or its doorbell (an eventfd), so the " +
    "main thread waits in the event loop, which wakes for nothing. 50 scrapes of the idle " +
    `\`/metrics\`: p50 ${fixed(idle.idleScrapeMs.p50)} ms, p99 ${fixed(idle.idleScrapeMs.p99)} ms.`,
    "",
    `**Hold time at one probe per second** (${hold.probes} probes of \`udp ping -i 1\`, the ` +
    "reflector's own figure: from the probe's arrival by the kernel's stamp to its reply's " +
    `send): \`udp serve\` p50 ${fixed(hold.serve.p50, 4)} ms, p99 ${
      fixed(hold.serve.p99, 4)
    } ms; ` +
    "the bare loop (scripts/deno_floor.ts `--native hold`: a blocking `recvfrom()` and " +
    "`sendto()` through FFI on the main thread, the same stamps) p50 " +
    `${fixed(hold.floor.p50, 4)} ms, p99 ${fixed(hold.floor.p99, 4)} ms, at the same time. ` +
    "After a second asleep everything udp serve touches is cold: 200 reads scattered over " +
    `16 MB took ${fixed(hold.cold.warm_us, 1)} µs warm, ${fixed(hold.cold.after_1ms_us, 1)} µs ` +
    `after 1 ms asleep, ${fixed(hold.cold.after_10ms_us, 1)} µs after 10 ms and ` +
    `${fixed(hold.cold.after_1000ms_us, 1)} µs after 1 s (deno_floor.ts \`--native cold\`, in ` +
    "this run). " + HOLD_COLD_PATH,
    "",
    `**/metrics under load.** \`udp bench --rate ${LOAD_PPS / 1000}k\` for ${LOAD_SECONDS} s at ` +
    `\`udp serve --metrics\` (${Math.round(load.repliesPerSecond)} replies/s came back, ` +
    `median of ${2 * LOAD_ROUND_PAIRS} rounds), scraped every ${SCRAPE_EVERY_MS} ms in every ` +
    `other round: ` +
    `${load.scrapes} scrapes, p50 ${fixed(load.scrapeMs.p50, 2)} ms, p99 ` +
    `${fixed(load.scrapeMs.p99, 2)} ms, slowest ${fixed(load.scrapeMs.max, 2)} ms. While ` +
    "datagrams keep coming the reactor gives the event loop a whole turn (a zero-wait sleep) " +
    "at least each millisecond. udp serve's hold time p50 as a `udp ping -i 0.01` beside the " +
    `load measured it: ${fixed(load.holdQuietP50, 4)} ms without scrapes, ` +
    `${fixed(load.holdScrapedP50, 4)} ms with them (medians of ${LOAD_ROUND_PAIRS} rounds each; ` +
    `the rounds without ranged ${fixed(load.holdQuietRange[0], 4)}–` +
    `${fixed(load.holdQuietRange[1], 4)} ms, those with ${fixed(load.holdScrapedRange[0], 4)}–` +
    `${fixed(load.holdScrapedRange[1], 4)} ms). The rounds ran in pairs, one of each back to ` +
    "back, so that the machine's drift touches both alike; the pairs (without, with; ms): " +
    load.holdPairs.map(([quiet, scraped]) => `${fixed(quiet, 4)}, ${fixed(scraped, 4)}`)
      .join("; ") +
    `. Scraping's effect is the median of the pairs' ratios: ` +
    `${signed(scrapeEffectPercent(load))}%. At this rate udp serve is busy most of the ` +
    "time, so a datagram's wait behind those before it, most of its hold time, swings with " +
    "whatever else the two processors run.",
    "",
    "**`udp monitor`.** One `udp serve --host 0.0.0.0`, the targets spread across 127.1.0.0/16 " +
    `(each reply from the address probed), one probe per target per second, ` +
    `${MONITOR_WARMUP_S} s of warm-up, then ${MONITOR_SECONDS} s watched and 20 scrapes:`,
    "",
    "| Targets | CPU (% of a core) | RSS (KiB) | Sent | Received | Lost | /metrics (bytes) | Scrape p50 (ms) | p99 (ms) |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const m of figures.monitor) {
    lines.push(
      `| ${m.targets} | ${fixed(m.cpuPercent, 2)} | ${m.rssKiB} | ${m.sent} | ${m.received} | ` +
        `${m.lost} | ${m.metricsBytes} | ${fixed(m.scrapeMs.p50, 2)} | ${
          fixed(m.scrapeMs.p99, 2)
        } |`,
    );
  }
  lines.push(
    "",
    `Memory per target: ${Math.round(bytesPerTarget(figures))} bytes of RSS (from the ` +
      `${figures.monitor[0].targets}- to the ${figures.monitor.at(-1)!.targets}-target run): ` +
      "its counters, RTT histogram and ring of probes in flight (bounded: timeout / interval " +
      "probes), and its share of each scrape's text.",
    "",
  );
  return lines;
}

/** The section's text, target rows and headline figures. */
export function daemonsReport(figures: DaemonFigures): SectionReport {
  const { idle, hold, load } = figures;
  const large = figures.monitor.at(-1)!;
  return {
    markdown: daemonSection(figures),
    targets: daemonTargetRows(figures),
    headlines: {
      "daemons.idle_cpu_percent": idle.serveCpuPercent,
      "daemons.idle_metrics_cpu_percent": idle.metricsServeCpuPercent,
      "daemons.idle_wakeups_per_s": idle.serveWakeupsPerSecond,
      "daemons.hold_p50_ms": hold.serve.p50,
      "daemons.hold_floor_p50_ms": hold.floor.p50,
      "daemons.metrics_under_load_p99_ms": load.scrapeMs.p99,
      "daemons.scrape_hold_effect_percent": scrapeEffectPercent(load),
      "daemons.monitor_1000_cpu_percent": large.cpuPercent,
      "daemons.monitor_bytes_per_target": bytesPerTarget(figures),
    },
  };
}
