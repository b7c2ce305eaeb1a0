/**
 * `udp monitor`: probe many reflectors continuously, for Prometheus (`--metrics`) or as
 * NDJSON (`--json`), until Ctrl-C or SIGTERM; SIGHUP re-reads `--targets`.
 *
 * @module
 */

import {
  DEFAULT_PAYLOAD_SIZE,
  DEFAULT_TIMEOUT_MS,
  type IntervalRtt,
  Monitor,
  monitorMetrics,
  type MonitorTarget,
  probeBytes,
  type TargetCounters,
} from "../../probe/mod.ts";
import type { MetricsServer } from "../../metrics/mod.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { formatStat } from "../format.ts";
import { loadKey } from "../keys.ts";
import { metricsOption, metricsUrl, startMetricsEndpoint } from "../metrics_endpoint.ts";
import { parseTarget, resolveTargets, TargetsFile, type TargetSpec } from "../monitor_targets.ts";
import { option, type OptionValues, section, text } from "../options.ts";
import { printJson, printLine } from "../output.ts";
import { checkPayloadSize, parsePayloadSize, parseSeconds } from "../parse.ts";
import { familyOption, jsonOption, keyOptions, receiveBufferOption } from "../shared_options.ts";
import { interrupted } from "../signals.ts";
import { checkStampDatagram, ptpFlag, senderFormat, tlvOption } from "../stamp_options.ts";
import { checkSourceFamily, pathOptions, requireSocketOptionSupport } from "../stamp_options.ts";
import { tosOptions, ttlOption } from "../stamp_options.ts";

const DEFAULT_MONITOR_INTERVAL_MS = 1000;

const OPTIONS = {
  targets: option({
    long: "targets",
    value: "FILE",
    help: `more targets, one a line (# comments); re-read on SIGHUP, each target
keeping its counters (rewrite it in place: the file opened at start is read again)`,
    parse: text,
  }),
  intervalMs: option({
    long: "interval",
    short: "i",
    value: "SEC",
    help: `time between two probes of a target (default ${
      DEFAULT_MONITOR_INTERVAL_MS / 1000
    }); the targets' probes are spread over it`,
    parse: (value) => parseSeconds("interval", value, false),
  }),
  timeoutMs: option({
    long: "timeout",
    short: "W",
    value: "SEC",
    help: `time a probe waits for its reply (default ${DEFAULT_TIMEOUT_MS / 1000}); until then it is
neither received nor lost`,
    parse: (value) => parseSeconds("timeout", value, false),
  }),
  deadlineMs: option({
    long: "deadline",
    short: "w",
    value: "SEC",
    help: `stop probing after SEC seconds, wait for the probes in flight (up to the
timeout) and print the counters (default: until Ctrl-C or SIGTERM, which leave those in flight)`,
    parse: (value) => parseSeconds("deadline", value, false),
  }),
  payloadSize: option({
    long: "size",
    short: "s",
    value: "BYTES",
    help: `padding bytes per probe (default ${DEFAULT_PAYLOAD_SIZE}; none for stamp:// targets)`,
    parse: parsePayloadSize,
  }),
  metrics: metricsOption(`serve the targets' counters to Prometheus at
http://HOST:PORT/metrics (docs/monitoring/)`),
  json: jsonOption("print NDJSON: start, one line per target per interval, summary"),
  ptp: ptpFlag(),
  tlvs: tlvOption(),
  tos: tosOptions(),
  ttl: ttlOption(),
  path: pathOptions(),
  key: keyOptions(`authenticated mode: tag probes with this key, count only replies with a
valid tag (hex or base64, in a file only its owner may read)`),
  receiveBuffer: receiveBufferOption(),
  family: familyOption(),
};

type MonitorValues = OptionValues<typeof OPTIONS>;

/** The `udp monitor` command. */
export const monitorCommand = defineCommand({
  name: "monitor",
  summary: "probe many reflectors continuously, for Prometheus (/metrics) or as NDJSON",
  help: [
    `Usage: udp monitor [TARGET ...] [--targets FILE] [--interval SEC] [-W SEC] [-w SEC]
                   [--metrics HOST:PORT] [--json] [-s BYTES] [--key-file F | --key-env]
                   [--ptp] [--tlv LIST] [-Q N | --dscp D --ecn E] [-t TTL] [--rcvbuf BYTES]
                   [-M do|want|dont] [-I ADDRESS] [--interface NAME] [-4|-6]

Probe every target once an interval, continuously, the targets' probes spread over the
interval. A target is HOST[:PORT] (a udp serve; port 9999) or stamp://HOST[:PORT] (any STAMP
or TWAMP-light reflector; port 862), optionally named: NAME=TARGET. Its counters (sent,
received, lost, duplicates, reordered, corrupted, late, in flight, an RTT histogram, jitter)
are served to Prometheus with --metrics, labelled target=NAME (else the target as written),
and streamed with --json. The RTT is the network's, as udp ping's (the reflector's hold out).`,
    section("Options:", OPTIONS, 21),
    `SIGHUP re-reads --targets: targets kept keep their counters, new ones start at zero,
removed ones go. Ctrl-C or SIGTERM prints each target's counters and exits 0; exit 2 on errors.`,
  ],
  options: OPTIONS,
  positionals: { min: 0, max: Infinity, usage: "[TARGET ...]" },
  async run(options, positionals, context) {
    const fromArguments = positionals.map(parseTarget);
    const file = options.targets === undefined ? null : await TargetsFile.open(options.targets);
    const key = await loadKey(options.key);
    context.filesOpened();
    try {
      const fileSpecs = file === null ? [] : (await file.read()).specs;
      if (fromArguments.length + fileSpecs.length === 0) {
        throw new UsageError(
          "no targets: name them (udp monitor HOST[:PORT] stamp://HOST ...) or give --targets FILE",
        );
      }
      requireSocketOptionSupport(options);
      const build = targetBuilder(options, key);
      const targets = await build([...fromArguments, ...fileSpecs]);
      return await runMonitor(options, key, targets, file, fromArguments, build);
    } finally {
      file?.close();
    }
  },
});

/** Turns specs into the monitor's targets; a usage error for a size that does not fit. */
type TargetBuilder = (specs: readonly TargetSpec[]) => Promise<MonitorTarget[]>;

function targetBuilder(options: MonitorValues, key: CryptoKey | null): TargetBuilder {
  const authenticated = key !== null;
  const choice = { ptp: options.ptp, tlvs: options.tlvs, authenticated, tos: options.tos };
  const udp = senderFormat({ ...choice, stamp: false, ptp: false, tlvs: [] });
  const stamp = senderFormat({ ...choice, stamp: true });
  return async (specs) => {
    const resolved = await resolveTargets(specs, options.family);
    return resolved.map((target) => {
      const format = target.protocol === "stamp" ? stamp : udp;
      const payloadSize = payloadFor(options, target.protocol);
      if (target.protocol === "stamp") {
        checkStampDatagram(probeBytes(format, payloadSize, authenticated), target.address.family);
      } else checkPayloadSize(payloadSize, target.address.family, authenticated);
      checkSourceFamily(options.path.source, target.address);
      return { label: target.label, address: target.address, format, payloadSize };
    });
  };
}

function payloadFor(options: MonitorValues, protocol: "udp" | "stamp"): number {
  return options.payloadSize ?? (protocol === "stamp" ? 0 : DEFAULT_PAYLOAD_SIZE);
}

async function runMonitor(
  options: MonitorValues,
  key: CryptoKey | null,
  targets: MonitorTarget[],
  file: TargetsFile | null,
  fromArguments: readonly TargetSpec[],
  build: TargetBuilder,
): Promise<number> {
  const intervalMs = options.intervalMs ?? DEFAULT_MONITOR_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const monitor = new Monitor({
    intervalMs,
    timeoutMs,
    payloadSize: options.payloadSize ?? DEFAULT_PAYLOAD_SIZE,
    key: key ?? undefined,
    ttl: options.ttl,
    tos: options.tos,
    ...options.path,
    receiveBuffer: options.receiveBuffer,
    onInterval: options.json
      ? (counters, rtt) => printJson(intervalJson(counters, rtt))
      : undefined,
  });
  try {
    monitor.setTargets(targets);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
  const metrics = options.metrics === undefined
    ? null
    : await startMetricsEndpoint(options.metrics, () =>
      monitorMetrics(monitor.counters(), monitor.foreign));
  const stop = interrupted();
  const timeUp = Promise.withResolvers<void>();
  const deadline = options.deadlineMs === undefined
    ? undefined
    : setTimeout(timeUp.resolve, options.deadlineMs);
  const reload = () => reloadTargets(monitor, file as TargetsFile, fromArguments, build, options);
  if (file !== null) Deno.addSignalListener("SIGHUP", reload);
  try {
    monitor.start();
    printStart(options, monitor.size, intervalMs, timeoutMs, metrics);
    const why = await Promise.race([
      stop.promise.then(() => "interrupted"),
      timeUp.promise.then(() => "deadline"),
    ]);
    await monitor.stop(why === "deadline");
  } finally {
    clearTimeout(deadline);
    stop.dispose();
    if (file !== null) Deno.removeSignalListener("SIGHUP", reload);
    await monitor.stop();
    await metrics?.close();
  }
  for (const { counters, rtt } of monitor.finalReport()) {
    if (options.json) printJson({ ...intervalJson(counters, rtt), type: "summary" });
    else printLine(summaryLine(counters));
  }
  return 0;
}

/** SIGHUP: the file's targets again; on any error, says so and keeps every target as it was. */
async function reloadTargets(
  monitor: Monitor,
  file: TargetsFile,
  fromArguments: readonly TargetSpec[],
  build: TargetBuilder,
  options: MonitorValues,
): Promise<void> {
  const before = monitor.size;
  try {
    const { specs, unchanged } = await file.read();
    monitor.setTargets(await build([...fromArguments, ...specs]));
    const note = unchanged
      ? " (its text is unchanged: a file replaced by a new one, as an editor saves, is not " +
        "seen; rewrite it in place, e.g. cat new > FILE)"
      : "";
    if (options.json) {
      printJson({ type: "reload", file: file.path, targets: monitor.size, unchanged });
    } else {
      printLine(`reloaded ${file.path}: ${monitor.size} targets (${before} before)${note}`);
    }
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (options.json) {
      printJson({ type: "reload_failed", file: file.path, targets: before, error: why });
    }
    console.error(
      `udp monitor: reload of ${file.path} failed, still probing the ${before} targets as ` +
        `before: ${why}`,
    );
  }
}

function printStart(
  options: MonitorValues,
  count: number,
  intervalMs: number,
  timeoutMs: number,
  metrics: MetricsServer | null,
): void {
  const url = metrics === null ? null : metricsUrl(metrics);
  if (options.json) {
    printJson({
      type: "start",
      targets: count,
      interval_ms: intervalMs,
      timeout_ms: timeoutMs,
      metrics: url,
    });
    return;
  }
  printLine(
    `UDP MONITOR ${count} target${count === 1 ? "" : "s"}, one probe each every ` +
      `${intervalMs / 1000} s (timeout ${timeoutMs / 1000} s)` +
      (url === null ? "" : `; metrics on ${url}`),
  );
}

/** One target's line of `--json`: its counters so far, and the interval's RTTs. */
function intervalJson(counters: TargetCounters, rtt: IntervalRtt): Record<string, unknown> {
  return {
    type: "interval",
    target: counters.label,
    address: counters.address,
    protocol: counters.protocol,
    sent: counters.sent,
    received: counters.received,
    lost: counters.lost,
    in_flight: counters.inFlight,
    duplicates: counters.duplicates,
    reordered: counters.reordered,
    corrupted: counters.corrupted,
    late: counters.late,
    send_errors: counters.sendErrors,
    icmp: { ...counters.icmp },
    rtt_ms: rtt,
    rtt_sum_ms: counters.rttSumSeconds * 1000,
    jitter_ms: counters.jitterMs,
  };
}

function summaryLine(counters: TargetCounters): string {
  const resolved = counters.received + counters.lost;
  const loss = resolved === 0 ? "-" : `${Number((100 * counters.lost / resolved).toPrecision(3))}%`;
  const mean = counters.received === 0 ? null : (counters.rttSumSeconds * 1000) / counters.received;
  return `${counters.label} (${counters.protocol} ${counters.address}): ${counters.sent} sent, ` +
    `${counters.received} received, ${counters.lost} lost (${loss} of those answered or timed ` +
    `out), ${counters.inFlight} in flight, ${counters.duplicates} duplicates, ` +
    `${counters.reordered} reordered, ${counters.corrupted} corrupted, ${counters.late} late; ` +
    `rtt mean ${formatStat(mean)} ms, jitter ${formatStat(counters.jitterMs)} ms`;
}
