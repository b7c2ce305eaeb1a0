/**
 * `udp bench`: throughput, loss per direction and latency in one run, against a `udp serve`.
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, parseHostPort, resolveHost } from "../../net/address.ts";
import {
  checkPayloadSize,
  expectPositionals,
  parseCommandArgs,
  parsePayloadSize,
  parseSeconds,
} from "../args.ts";
import { bench, type BenchInterval, type BenchSummary } from "../../probe/bench.ts";
import { DEFAULT_PAYLOAD_SIZE } from "../../probe/ping.ts";
import { UsageError } from "../errors.ts";
import { formatStat } from "../format.ts";
import { keyFromOptions } from "../keys.ts";
import { printLine, toJson } from "../output.ts";
import { frameOverhead } from "../../wire/protocol.ts";
import {
  describeReceiveBuffer,
  parseReceiveBuffer,
  requireReceiveBufferSupport,
} from "../receive_buffer.ts";
import { onInterrupt } from "../signals.ts";
import { parsePercent, parseRate } from "./proxy.ts";
import type { Command, RunContext } from "./command.ts";

const HELP = `Usage: udp bench HOST[:PORT] [--rate PPS|Nk|NM|Nmbit|max] [--duration SEC] [-s BYTES]
                 [--interval SEC] [--search [--max-loss P%]] [--key-file F | --key-env]
                 [--rcvbuf BYTES] [--json]

Send paced datagrams to a udp serve, which reflects them, and report throughput, loss in each
direction (the server's counts come from a final STATS exchange), duplicates, reordering
(RFC 4737), jitter (RFC 3550) and RTT percentiles. Any UDP echo server works too (without
the per-direction split).

Options:
  -r, --rate R         datagrams/s (10000, 10k, 1M), bits/s of UDP payload (100mbit,
                       512kbit), or max: as fast as the socket takes them (default 1000)
  -t, --duration SEC   how long to send (default 10; with --search, per trial, default 2)
  -s, --size BYTES     padding bytes per datagram (default ${DEFAULT_PAYLOAD_SIZE}; header and check add ${
  frameOverhead(false)
},
                       ${frameOverhead(true)} with a key)
  -i, --interval SEC   report every SEC seconds, 0 for none (default 1)
      --search         find the highest rate whose loss stays under --max-loss, by bisection
                       over short trials, starting at --rate
      --max-loss P%    loss allowed by --search (default 1%)
      --key-file F     authenticated mode, as udp ping: PINGs and STATS requests are tagged
      --key-env        authenticated mode with the key from $UDP_KEY
      --rcvbuf BYTES   the socket's receive buffer (e.g. 4M); says what the kernel granted
      --json           NDJSON: interval objects and a summary
  -h, --help           show this help

Exit status: 0 when replies came, 1 when none did, 2 on errors.`;

/** The `udp bench` command. */
export const benchCommand: Command = {
  name: "bench",
  summary: "throughput, per-direction loss and latency at a set rate (or the highest)",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const { values, positionals } = parseCommandArgs("bench", args, {
      rate: { type: "string", short: "r" },
      duration: { type: "string", short: "t" },
      size: { type: "string", short: "s" },
      interval: { type: "string", short: "i" },
      search: { type: "boolean" },
      "max-loss": { type: "string" },
      "key-file": { type: "string" },
      "key-env": { type: "boolean" },
      rcvbuf: { type: "string" },
      json: { type: "boolean" },
    });
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    const [destination] = expectPositionals("bench", positionals, 1, 1, "HOST[:PORT]");
    const text = (name: string) => values[name] as string | undefined;
    const search = Boolean(values.search);
    const size = text("size") === undefined
      ? DEFAULT_PAYLOAD_SIZE
      : parsePayloadSize(text("size")!);
    const key = await keyFromOptions(text("key-file"), Boolean(values["key-env"]));
    context.filesOpened();
    const receiveBuffer = text("rcvbuf") === undefined
      ? undefined
      : parseReceiveBuffer(text("rcvbuf")!);
    if (receiveBuffer !== undefined) requireReceiveBufferSupport();
    const datagramBytes = size + frameOverhead(key !== null);
    const rate = parseBenchRate(text("rate") ?? "1000", datagramBytes);
    const durationMs = text("duration") === undefined
      ? (search ? 2000 : 10_000)
      : parseSeconds("duration", text("duration")!, false);
    const intervalMs = text("interval") === undefined
      ? 1000
      : parseSeconds("interval", text("interval")!, true);
    if (text("max-loss") !== undefined && !search) {
      throw new UsageError("--max-loss goes with --search");
    }
    const maxLoss = text("max-loss") === undefined
      ? 0.01
      : parsePercent("--max-loss", text("max-loss")!);
    const { host, port } = parseHostPort(destination, DEFAULT_PORT);
    const target = await resolveHost(host, port);
    checkPayloadSize(size, target.family, key !== null);
    const json = Boolean(values.json);
    const controller = new AbortController();
    const removeInterrupt = onInterrupt(() => controller.abort());
    try {
      const run = (trialRate: number | "max", quiet: boolean) =>
        bench({
          target,
          rate: trialRate,
          durationMs,
          payloadSize: size,
          intervalMs: quiet ? 0 : intervalMs,
          graceMs: 300,
          signal: controller.signal,
          key: key ?? undefined,
          receiveBuffer,
          onReceiveBuffer: (granted) => {
            if (quiet) return;
            printLine(
              json
                ? toJson({ type: "receive_buffer", asked: receiveBuffer, granted })
                : describeReceiveBuffer(receiveBuffer!, granted),
            );
          },
          onInterval: (report) =>
            printLine(json ? toJson(report) : intervalLine(report, datagramBytes)),
        });
      if (!search) {
        if (!json) {
          printLine(
            `UDP BENCH ${formatAddress(target)}: ${datagramBytes}-byte datagrams at ${
              rate === "max" ? "the highest rate the socket takes" : `${rate} pps`
            } for ${durationMs / 1000} s`,
          );
        }
        const summary = await run(rate, false);
        printLine(json ? toJson(summary) : summaryText(summary));
        return summary.received > 0 ? 0 : 1;
      }
      return await searchRate(run, rate, maxLoss, json, controller.signal);
    } finally {
      removeInterrupt();
    }
  },
};

/** Bisection: double from the start rate until loss exceeds the limit, then narrow to 5%. */
async function searchRate(
  run: (rate: number | "max", quiet: boolean) => Promise<BenchSummary>,
  start: number | "max",
  maxLoss: number,
  json: boolean,
  signal: AbortSignal,
): Promise<number> {
  let low = 0;
  let best: BenchSummary | null = null;
  let high: number | null = null;
  let rate = start === "max" ? 1000 : start;
  const trial = async (candidate: number) => {
    const summary = await run(Math.round(candidate), true);
    const ok = summary.loss_percent !== null && summary.loss_percent / 100 <= maxLoss &&
      summary.offered_pps >= 0.95 * candidate;
    const line = {
      type: "trial",
      rate_pps: Math.round(candidate),
      offered_pps: summary.offered_pps,
      loss_percent: summary.loss_percent,
      passed: ok,
    };
    printLine(
      json
        ? toJson(line)
        : `trial ${line.rate_pps} pps: offered ${line.offered_pps} pps, loss ${
          line.loss_percent === null ? "-" : formatPercent(line.loss_percent)
        } -> ${ok ? "ok" : "too much"}`,
    );
    if (ok && (best === null || candidate > low)) best = summary;
    return ok;
  };
  for (let step = 0; step < 12 && high === null && !signal.aborted; step++) {
    if (await trial(rate)) {
      low = rate;
      rate *= 2;
    } else high = rate;
  }
  while (high !== null && !signal.aborted && (high - low) / high > 0.05) {
    const middle = (low + high) / 2;
    if (await trial(middle)) low = middle;
    else high = middle;
  }
  const found = best as BenchSummary | null;
  if (json) {
    printLine(
      toJson({
        type: "search",
        max_loss_percent: maxLoss * 100,
        best_pps: Math.round(low),
        summary: found,
      }),
    );
  } else if (found) {
    printLine(
      `\nhighest rate with loss <= ${formatPercent(maxLoss * 100)}: ${Math.round(low)} pps`,
    );
    printLine(summaryText(found));
  } else printLine(`\nno rate tried kept loss <= ${formatPercent(maxLoss * 100)}`);
  return found ? 0 : 1;
}

function parseBenchRate(text: string, datagramBytes: number): number | "max" {
  if (text === "max") return "max";
  const rate = parseRate("--rate", text);
  const pps = rate.unit === "pps" ? rate.value : rate.value / (datagramBytes * 8);
  if (pps < 1 || pps > 10_000_000) {
    throw new UsageError(
      `invalid --rate '${text}': that is ${Math.round(pps)} datagrams/s; use 1 to 10M, or max`,
    );
  }
  return pps;
}

function formatPercent(percent: number): string {
  return `${Number(percent.toPrecision(3))}%`;
}

function formatBits(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${(bps / 1e3).toFixed(2)} kbit/s`;
}

function intervalLine(report: BenchInterval, datagramBytes: number): string {
  const span = `[${report.start_s.toFixed(1).padStart(5)}-${
    report.end_s.toFixed(1).padStart(5)
  } s]`;
  const loss = report.sent === 0
    ? 0
    : Math.max(0, (report.sent - report.received) / report.sent * 100);
  return `${span} sent ${report.sent} (${Math.round(report.sent_pps)} pps, ${
    formatBits(report.sent_pps * datagramBytes * 8)
  }), received ${report.received} (${formatBits(report.received_bps)}), ${
    formatPercent(loss)
  } not (yet) back`;
}

function lossLine(s: BenchSummary): string {
  const loss = `loss ${s.loss_percent === null ? "-" : formatPercent(s.loss_percent)}`;
  if (s.echo_server) return `${loss} (an echo server: no per-direction split)`;
  if (s.loss_up === null || s.loss_down === null || s.server_refused === null) {
    return `${loss} (the server's counts did not arrive: no per-direction split)`;
  }
  const reasons = Object.entries(s.server_refused).filter(([, count]) => count > 0);
  const refusedTotal = reasons.reduce((sum, [, count]) => sum + count, 0);
  const refused = refusedTotal === 0
    ? ""
    : `${refusedTotal} refused by the server (${
      reasons.map(([reason, count]) => `${reason.replace("_", "-")} ${count}`).join(", ")
    }), `;
  return `${loss}: ${refused}${s.loss_up} lost on the way there, ${s.loss_down} on the way ` +
    `back (server received ${s.server_received}, replied ${s.server_replied})`;
}

/**
 * The text summary of a bench run.
 *
 * @example
 * ```ts ignore
 * console.log(summaryText(summary));
 * ```
 */
export function summaryText(s: BenchSummary): string {
  const lines = [
    "",
    `--- ${s.target} udp bench (${s.datagram_bytes}-byte datagrams, ${s.duration_s} s) ---`,
    `offered  ${s.offered_pps} pps, ${formatBits(s.offered_bps)} (${s.sent} datagrams` +
    (s.requested_pps === null
      ? ", as fast as possible)"
      : `, ${Math.round(s.requested_pps)} pps requested)`),
    `achieved ${s.achieved_pps} pps, ${formatBits(s.achieved_bps)} (${s.received} replies)`,
    lossLine(s),
  ];
  if (s.server_kernel_drops !== null && s.server_kernel_drops > 0) {
    lines.push(
      `the server's kernel dropped ${s.server_kernel_drops} datagrams during the run (all ` +
        "sources: its receive buffer was full; see udp serve --rcvbuf)",
    );
  }
  if (s.corrupted > 0) {
    lines.push(`${s.corrupted} corrupted replies (failed their check: not counted as received)`);
  }
  if (s.received > 0) {
    lines.push(
      `rtt min/avg/max = ${formatStat(s.rtt_ms.min)}/${formatStat(s.rtt_ms.avg)}/${
        formatStat(s.rtt_ms.max)
      } ms, ` +
        `p50/p90/p99 = ${formatStat(s.rtt_ms.p50)}/${formatStat(s.rtt_ms.p90)}/${
          formatStat(s.rtt_ms.p99)
        } ms` +
        (s.jitter_ms === null ? "" : `, jitter ${formatStat(s.jitter_ms)} ms`),
    );
  }
  lines.push(`${s.duplicates} duplicates, ${s.reordered} reordered`);
  return lines.join("\n");
}
