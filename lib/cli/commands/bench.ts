/**
 * `udp bench`: throughput, loss per direction and latency in one run, against a `udp serve`.
 *
 * @module
 */

import { benchIntervalJson, type BenchMode, benchSummaryJson } from "../../probe/mod.ts";
import {
  DEFAULT_PORT,
  formatAddress,
  parseHostPort,
  type ResolvedAddress,
  resolveHost,
} from "../../net/address.ts";
import { benchStreams, type BenchSummary } from "../../probe/bench.ts";
import { DEFAULT_PAYLOAD_SIZE } from "../../probe/ping.ts";
import type { RateLimit } from "../../proxy/impairment.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { formatPercent, intervalLine, streamLine, summaryText } from "../bench_text.ts";
import { loadKey } from "../keys.ts";
import { flag, option, type OptionValues, section } from "../options.ts";
import { printLine, toJson } from "../output.ts";
import {
  checkPayloadSize,
  parsePayloadSize,
  parsePercent,
  parseRate,
  parseSeconds,
  parseWholeNumber,
} from "../parse.ts";
import { frameOverhead } from "../../wire/protocol.ts";
import type { ProbeFormat } from "../../wire/mod.ts";
import { probeBytes } from "../../probe/mod.ts";
import {
  checkSourceFamily,
  checkStampDatagram,
  pathOptions,
  ptpFlag,
  requireSocketOptionSupport,
  senderFormat,
  STAMP_PORT,
  stampFlag,
  tlvOption,
  tosOptions,
  ttlOption,
} from "../stamp_options.ts";
import { describeReceiveBuffer } from "../receive_buffer.ts";
import { jsonOption, keyOptions, receiveBufferOption } from "../shared_options.ts";
import { onInterrupt } from "../signals.ts";

/** `--rate`: as fast as the socket takes them, or a rate as written (turned into datagrams/s
 * once the datagram's size is known). */
type BenchRate = "max" | { readonly text: string; readonly limit: RateLimit };

const OPTIONS = {
  rate: option<BenchRate>({
    long: "rate",
    short: "r",
    value: "R",
    help: `datagrams/s (10000, 10k, 1M), bits/s of UDP payload (100mbit,
512kbit), or max: as fast as the socket takes them (default 1000)`,
    parse: (text) => text === "max" ? "max" : { text, limit: parseRate("--rate", text) },
    default: { text: "1000", limit: { unit: "pps", value: 1000 } },
  }),
  durationMs: option({
    long: "duration",
    short: "t",
    value: "SEC",
    help: "how long to send (default 10; with --search, per trial, default 2)",
    parse: (text) => parseSeconds("duration", text, false),
  }),
  size: option({
    long: "size",
    short: "s",
    value: "BYTES",
    help: `padding bytes per datagram (default ${DEFAULT_PAYLOAD_SIZE}; header and check add ${
      frameOverhead(false)
    },
${frameOverhead(true)} with a key); with --stamp: an Extra Padding TLV of BYTES,
default none`,
    parse: parsePayloadSize,
  }),
  stamp: stampFlag(`bench a STAMP or TWAMP-light reflector (default port ${STAMP_PORT});
loss per direction from a stateful reflector's sequence numbers, or with
--tlv direct-measurement`),
  ptp: ptpFlag(),
  tlvs: tlvOption(),
  intervalMs: option({
    long: "interval",
    short: "i",
    value: "SEC",
    help: "report every SEC seconds, 0 for none (default 1)",
    parse: (text) => parseSeconds("interval", text, true),
    default: 1000,
  }),
  oneWay: flag({
    long: "one-way",
    help: `the reflector counts the PINGs and sends none back: what arrived (loss,
duplicates, reordering, one-way jitter) comes from its STATS, one per
interval and one at the end (iperf3's UDP mode)`,
  }),
  reverse: flag({
    long: "reverse",
    short: "R",
    help: `the reflector sends, this host counts (iperf3's -R): a stream at --rate for
--duration, asked for after a round trip that proves this host receives here`,
  }),
  bidir: flag({
    long: "bidir",
    help: "both at once: --one-way there and the reflector's stream back (iperf3's)",
  }),
  parallel: option({
    long: "parallel",
    short: "P",
    value: "N",
    help: `N streams at once, each its own socket and session at --rate, reported
per stream and summed (default 1)`,
    parse: (text) => parseWholeNumber("--parallel", text, 1, MAX_STREAMS),
    default: 1,
  }),
  search: flag({
    long: "search",
    help: `find the highest rate whose loss stays under --max-loss, by bisection
over short trials, starting at --rate`,
  }),
  maxLoss: option({
    long: "max-loss",
    value: "P%",
    help: "loss allowed by --search (default 1%)",
    parse: (text) => parsePercent("--max-loss", text),
  }),
  tos: tosOptions(),
  // -t is --duration here, as iperf3's: the TTL has its long name only.
  ttl: ttlOption(undefined, null),
  path: pathOptions(),
  key: keyOptions("authenticated mode, as udp ping: PINGs and STATS requests are tagged"),
  receiveBuffer: receiveBufferOption(),
  json: jsonOption("NDJSON: interval objects and a summary"),
};

type BenchValues = OptionValues<typeof OPTIONS>;

/** Streams `-P` may ask for. */
const MAX_STREAMS = 128;

/** One run of `bench()` at `rate`; `quiet` for a trial of --search (no interval lines). */
type Trial = (rate: number | "max", quiet: boolean) => Promise<BenchSummary>;

/** The `udp bench` command. */
export const benchCommand = defineCommand({
  name: "bench",
  summary: "throughput, per-direction loss and latency at a set rate (or the highest)",
  help: [
    `Usage: udp bench HOST[:PORT] [--rate PPS|Nk|NM|Nmbit|max] [--duration SEC] [-s BYTES]
                 [--one-way | -R | --bidir] [-P N]
                 [--interval SEC] [--search [--max-loss P%]] [--key-file F | --key-env]
                 [--stamp [--ptp] [--tlv LIST]] [--rcvbuf BYTES] [--json]
                 [-Q N | --dscp D --ecn E] [--ttl N] [-M do|want|dont] [-I ADDRESS]
                 [--interface NAME]

Send paced datagrams to a udp serve, which reflects them, and report throughput, loss in each
direction (the server's counts come from a final STATS exchange), duplicates, reordering
(RFC 4737), jitter (RFC 3550) and RTT percentiles. Any UDP echo server works too (without
the per-direction split).`,
    section("Options:", OPTIONS, 23),
    "Exit status: 0 when replies came, 1 when none did, 2 on errors.",
  ],
  options: OPTIONS,
  positionals: { min: 1, max: 1, usage: "HOST[:PORT]" },
  async run(options, [destination], context) {
    const { search, json } = options;
    const key = await loadKey(options.key);
    context.filesOpened();
    requireSocketOptionSupport(options);
    const format = senderFormat({ ...options, authenticated: key !== null });
    const size = options.size ?? (options.stamp ? 0 : DEFAULT_PAYLOAD_SIZE);
    const datagramBytes = probeBytes(format, size, key !== null);
    const rate = datagramRate(options.rate, datagramBytes);
    const durationMs = options.durationMs ?? (search ? 2000 : 10_000);
    if (options.maxLoss !== undefined && !search) {
      throw new UsageError("--max-loss goes with --search");
    }
    const mode = benchMode(options);
    const { host, port } = parseHostPort(destination, options.stamp ? STAMP_PORT : DEFAULT_PORT);
    const target = await resolveHost(host, port);
    checkSourceFamily(options.path.source, target);
    if (options.stamp) checkStampDatagram(datagramBytes, target.family);
    else checkPayloadSize(size, target.family, key !== null);
    const controller = new AbortController();
    const removeInterrupt = onInterrupt(() => controller.abort());
    try {
      const run = trialRunner(options, {
        target,
        key,
        durationMs,
        signal: controller.signal,
        format,
        size,
        datagramBytes,
        mode,
      });
      if (search) {
        return await searchRate(run, rate, options.maxLoss ?? 0.01, json, controller.signal);
      }
      if (!json) {
        const streams = options.parallel > 1 ? `${options.parallel} streams, each ` : "";
        printLine(
          `${options.stamp ? "STAMP" : "UDP"} BENCH ${formatAddress(target)}: ${streams}` +
            `${datagramBytes}-byte datagrams at ${
              rate === "max" ? "the highest rate the socket takes" : `${rate} pps`
            } for ${durationMs / 1000} s${MODE_WORDS[mode]}`,
        );
      }
      const summary = await run(rate, false);
      printLine(json ? toJson(benchSummaryJson(summary)) : summaryText(summary));
      return (summary.received ?? 0) > 0 || (summary.back?.received ?? 0) > 0 ? 0 : 1;
    } finally {
      removeInterrupt();
    }
  },
});

/** How the header line names each mode. */
const MODE_WORDS: Record<BenchMode, string> = {
  reflected: "",
  "one-way": ", one way (the reflector counts, and sends nothing back)",
  reverse: ", reverse (the reflector sends, this host counts)",
  bidir: ", both ways at once (one way there, the reflector's stream back)",
};

/** The mode the flags ask for; STAMP reflectors reflect every packet, so only that. */
function benchMode(options: BenchValues): BenchMode {
  const asked = [
    options.oneWay && "--one-way",
    options.reverse && "-R",
    options.bidir && "--bidir",
  ].filter((name): name is string => typeof name === "string");
  if (asked.length > 1) throw new UsageError(`${asked.join(" and ")}: give one of them`);
  if (asked.length === 1 && options.stamp) {
    throw new UsageError(
      `${asked[0]} needs udp serve: a STAMP reflector answers every packet (RFC 8762) and ` +
        "sends nothing else",
    );
  }
  if ((options.reverse || options.bidir) && options.search) {
    throw new UsageError(`--search goes with the reflected or --one-way modes, not ${asked[0]}`);
  }
  return options.oneWay
    ? "one-way"
    : options.reverse
    ? "reverse"
    : options.bidir
    ? "bidir"
    : "reflected";
}

/** What every run of one `udp bench` shares, whatever its rate. */
interface TrialSetting {
  target: ResolvedAddress;
  key: CryptoKey | null;
  durationMs: number;
  signal: AbortSignal;
  format: ProbeFormat;
  size: number;
  datagramBytes: number;
  mode: BenchMode;
}

/** Runs `bench()` with the options, printing its interval lines (unless quiet). */
function trialRunner(options: BenchValues, setting: TrialSetting): Trial {
  const { json, receiveBuffer } = options;
  const { size, datagramBytes } = setting;
  const onStream = (summary: BenchSummary) =>
    printLine(json ? toJson(benchSummaryJson(summary)) : streamLine(summary));
  return (rate, quiet) =>
    benchStreams(
      {
        target: setting.target,
        mode: setting.mode,
        format: setting.format,
        rate,
        durationMs: setting.durationMs,
        payloadSize: size,
        intervalMs: quiet ? 0 : options.intervalMs,
        graceMs: 300,
        signal: setting.signal,
        key: setting.key ?? undefined,
        ttl: options.ttl,
        tos: options.tos,
        ...options.path,
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
          printLine(
            json
              ? toJson(benchIntervalJson(report))
              : intervalLine(report, datagramBytes, options.parallel > 1),
          ),
      },
      options.parallel,
      quiet ? undefined : onStream,
    );
}

/** Bisection: double from the start rate until loss exceeds the limit, then narrow to 5%. */
async function searchRate(
  run: Trial,
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
        summary: found && benchSummaryJson(found),
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

/** The datagrams per second of `--rate` (a bit rate counts `datagramBytes` a datagram). */
function datagramRate(rate: BenchRate, datagramBytes: number): number | "max" {
  if (rate === "max") return "max";
  const { text, limit } = rate;
  const pps = limit.unit === "pps" ? limit.value : limit.value / (datagramBytes * 8);
  if (pps < 1 || pps > 10_000_000) {
    throw new UsageError(
      `invalid --rate '${text}': that is ${Math.round(pps)} datagrams/s; use 1 to 10M, or max`,
    );
  }
  return pps;
}
