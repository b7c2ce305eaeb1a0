/**
 * `udp ping`: measure loss, RTT, jitter, reordering and duplication to a `udp serve`.
 *
 * @module
 */

import { pingSummaryJson } from "../../probe/mod.ts";
import {
  DEFAULT_PORT,
  formatAddress,
  parseHostPort,
  type ResolvedAddress,
  resolveHost,
} from "../../net/address.ts";
import {
  DEFAULT_INTERVAL_MS,
  DEFAULT_PAYLOAD_SIZE,
  DEFAULT_TIMEOUT_MS,
  MAX_RETRIES,
  ping,
  type PingEvent,
  type PingResult,
} from "../../probe/ping.ts";
import { defineCommand } from "../command.ts";
import { formatRtt, formatStat, icmpEventLine, icmpLine } from "../format.ts";
import { frameOverhead } from "../../wire/protocol.ts";
import { loadKey } from "../keys.ts";
import { flag, option, type OptionValues, section } from "../options.ts";
import { printJson, printLine, toJson } from "../output.ts";
import { checkPayloadSize, parsePayloadSize, parseSeconds, parseWholeNumber } from "../parse.ts";
import { describeReceiveBuffer } from "../receive_buffer.ts";
import { familyOption, jsonOption, keyOptions, receiveBufferOption } from "../shared_options.ts";
import { onInterrupt } from "../signals.ts";
import { UsageError } from "../errors.ts";
import { type Family, localClockQuality } from "../../net/mod.ts";
import { probeBytes } from "../../probe/mod.ts";
import { type ProbeFormat, STAMP_AUTHENTICATED, STAMP_UNAUTHENTICATED } from "../../wire/mod.ts";
import {
  checkSourceFamily,
  checkStampDatagram,
  dscpName,
  ecnName,
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

const OPTIONS = {
  count: option({
    long: "count",
    short: "c",
    value: "N",
    help: "stop after N probes (default: until Ctrl-C); with -w, after N replies",
    parse: (text) => parseWholeNumber("count", text, 1, 0xffff_ffff),
  }),
  intervalMs: option({
    long: "interval",
    short: "i",
    value: "SEC",
    help: `time between probes (default ${DEFAULT_INTERVAL_MS / 1000}); 0 sends the next probe as
soon as the previous one is answered or timed out`,
    parse: (text) => parseSeconds("interval", text, true),
  }),
  timeoutMs: option({
    long: "timeout",
    short: "W",
    value: "SEC",
    help: `time to wait for a reply (default ${
      DEFAULT_TIMEOUT_MS / 1000
    }); a reply after that is "late"
and the probe stays lost`,
    parse: (text) => parseSeconds("timeout", text, false),
  }),
  deadlineMs: option({
    long: "deadline",
    short: "w",
    value: "SEC",
    help: "stop after SEC seconds whatever was sent or received",
    parse: (text) => parseSeconds("deadline", text, false),
  }),
  retries: option({
    long: "retries",
    value: "N",
    help: `re-send an unanswered probe up to N times (0..${MAX_RETRIES}, default 0); attempt k
waits TIMEOUT x 2^k x (1 to 1.25); RTT is timed from the answered attempt`,
    parse: (text) => parseWholeNumber("retries", text, 0, MAX_RETRIES),
  }),
  lingerMs: option({
    long: "linger",
    value: "SEC",
    help: `after the last probe, keep listening SEC seconds for late and duplicate
replies (default 0: stop at once, as ping(8))`,
    parse: (text) => parseSeconds("linger", text, true),
  }),
  payloadSize: option({
    long: "size",
    short: "s",
    value: "BYTES",
    help: `padding bytes per probe (default ${DEFAULT_PAYLOAD_SIZE}); the datagram adds ${
      frameOverhead(false)
    } bytes
(header and check; ${frameOverhead(true)} with a key). With --stamp: an Extra Padding TLV of
BYTES after the ${STAMP_UNAUTHENTICATED.base}-byte packet (${STAMP_AUTHENTICATED.base} with a key), default none`,
    parse: parsePayloadSize,
  }),
  stamp: stampFlag(`speak STAMP (RFC 8762) to a STAMP or TWAMP-light reflector (default port
${STAMP_PORT}); adds loss and delay variation per direction, hops, one-way delays`),
  ptp: ptpFlag(),
  tlvs: tlvOption(),
  tos: tosOptions(),
  ttl: ttlOption("255, so that the reflector's report tells the hops"),
  path: pathOptions(),
  key: keyOptions(`authenticated mode: tag PINGs with this key, reject PONGs without a
valid tag (hex or base64, in a file only its owner may read)`),
  receiveBuffer: receiveBufferOption(),
  quiet: flag({ long: "quiet", short: "q", help: "print only the summary" }),
  json: jsonOption("print NDJSON: start, one object per event, summary"),
  family: familyOption(),
};

type PingValues = OptionValues<typeof OPTIONS>;

/** The `udp ping` command. */
export const pingCommand = defineCommand({
  name: "ping",
  summary: "measure loss, RTT, jitter, reordering and duplicates to a udp serve",
  help: [
    `Usage: udp ping HOST[:PORT] [-c N] [-i SEC] [-W SEC] [-w SEC] [--retries N] [-s BYTES]
                [--linger SEC] [--key-file F | --key-env] [--rcvbuf BYTES] [-q] [--json] [-4|-6]
                [--stamp [--ptp] [--tlv LIST]] [-Q N | --dscp D --ecn E] [-t TTL]
                [-M do|want|dont] [-I ADDRESS] [--interface NAME]

Send PING frames to a udp reflector (udp serve) and report loss, round-trip time, jitter,
reordering, duplicates, late replies and ICMP errors (unreachable, filtered, too big, TTL
exceeded: each from the address that sent it). Options follow ping(8). The RTT is the network's: from
the probe's hand-over to the kernel to its reply's arrival (the kernel's timestamp), minus the
time the reflector says it held the probe (as irtt counts it); the summary gives both.
Against udp serve the probes leave with TTL 255 and ask for the reflector's path report: the
summary adds the hops there, what the path did to DSCP and ECN, and the address it saw.
With --stamp, the probes are STAMP test packets (RFC 8762) for any STAMP or TWAMP-light
reflector (a router's, udp serve --stamp), and the summary adds what each direction did.`,
    section("Options:", OPTIONS, 21),
    `Exit status: 0 if any reply was received (with -c and -w: if N replies were), 1 if not,
2 on errors. Ctrl-C prints the summary.`,
  ],
  options: OPTIONS,
  positionals: { min: 1, max: 1, usage: "HOST[:PORT]" },
  async run(options, [destination], context) {
    const { host, port } = parseHostPort(destination, options.stamp ? STAMP_PORT : DEFAULT_PORT);
    const target = await resolveHost(host, port, { family: options.family });
    const key = await loadKey(options.key);
    context.filesOpened();
    if (options.stamp && (options.retries ?? 0) > 0) {
      throw new UsageError(
        "--retries goes without --stamp: STAMP packets carry no retransmission number",
      );
    }
    requireSocketOptionSupport(options);
    checkSourceFamily(options.path.source, target);
    const format = senderFormat({ ...options, authenticated: key !== null });
    const payloadSize = options.payloadSize ?? (options.stamp ? 0 : DEFAULT_PAYLOAD_SIZE);
    const datagramBytes = probeBytes(format, payloadSize, key !== null);
    if (options.stamp) checkStampDatagram(datagramBytes, target.family);
    else checkPayloadSize(payloadSize, target.family, key !== null);
    const targetText = formatAddress(target);
    const named = host === target.hostname ? targetText : `${host} (${targetText})`;
    printStart(options, named, {
      target: targetText,
      host,
      authenticated: key !== null,
      payloadSize,
      datagramBytes,
    });
    const result = await runPing(options, target, key, format, payloadSize);
    printLine(options.json ? toJson(pingSummaryJson(result.summary)) : summaryText(result));
    return exitCode(result, options.count, options.deadlineMs);
  },
});

/** The first line: what is pinged, with datagrams of what size. */
function printStart(
  options: PingValues,
  named: string,
  { target, host, authenticated, payloadSize, datagramBytes }: {
    target: string;
    host: string;
    authenticated: boolean;
    payloadSize: number;
    datagramBytes: number;
  },
): void {
  const protocol = options.stamp ? "stamp" : "udp";
  if (options.json) {
    printJson({
      type: "start",
      target,
      host,
      protocol,
      payload_bytes: payloadSize,
      datagram_bytes: datagramBytes,
    });
  } else {
    printLine(
      `${options.stamp ? "STAMP" : "UDP"} PING ${named}: ${payloadSize} data bytes, ` +
        `${datagramBytes}-byte datagrams` + (authenticated ? " (authenticated)" : ""),
    );
  }
}

/** Pings until done or Ctrl-C, printing each event as it comes. */
async function runPing(
  options: PingValues,
  target: ResolvedAddress,
  key: CryptoKey | null,
  format: ProbeFormat,
  payloadSize: number,
): Promise<PingResult> {
  const { json, quiet, receiveBuffer } = options;
  const controller = new AbortController();
  const removeInterrupt = onInterrupt(() => controller.abort());
  const print = json
    ? (event: PingEvent) => printJson(event)
    : (event: PingEvent) => printEvent(event, target.family);
  try {
    return await ping({
      count: options.count,
      intervalMs: options.intervalMs,
      timeoutMs: options.timeoutMs,
      deadlineMs: options.deadlineMs,
      retries: options.retries,
      lingerMs: options.lingerMs,
      target,
      payloadSize,
      format,
      ttl: options.ttl,
      ...options.path,
      // udp's path report and STAMP's Class of Service compare the DSCP and ECN sent with
      // those that arrived: they must be known.
      tos: options.tos ??
        (!options.stamp || options.tlvs.includes("class-of-service") ? 0 : undefined),
      synchronized: localClockQuality().synchronized,
      key: key ?? undefined,
      signal: controller.signal,
      receiveBuffer,
      onReceiveBuffer: (granted) => {
        const text = describeReceiveBuffer(receiveBuffer!, granted);
        if (json) {
          printJson({ type: "receive_buffer", asked: receiveBuffer, granted });
        } else if (!quiet) printLine(text);
      },
      onEvent: (event) => {
        if (event.type === "error") console.error(`udp ping: ${event.message}`);
        if (!quiet || event.type === "error") print(event);
      },
    });
  } finally {
    removeInterrupt();
  }
}

function printEvent(event: PingEvent, family: Family): void {
  switch (event.type) {
    case "reply":
      printLine(
        `${replyPrefix(event)} time=${formatRtt(event.rtt_ms)} ms` +
          (event.reordered ? " (reordered)" : ""),
      );
      break;
    case "duplicate":
      printLine(`${replyPrefix(event)} time=${formatRtt(event.rtt_ms)} ms (DUP!)`);
      break;
    case "late": {
      const time = event.rtt_ms === null ? "" : ` time=${formatRtt(event.rtt_ms)} ms`;
      printLine(`${replyPrefix(event)}${time} (late: counted as lost)`);
      break;
    }
    case "redundant":
      printLine(
        `${replyPrefix(event)} time=${formatRtt(event.rtt_ms)} ms (already answered)`,
      );
      break;
    case "timeout":
      printLine(
        `no reply to seq=${event.seq}` +
          (event.attempts > 1 ? ` after ${event.attempts} attempts` : ""),
      );
      break;
    case "retransmit":
      printLine(`retransmit seq=${event.seq} attempt=${event.attempt}`);
      break;
    case "send_error":
      console.error(
        `udp ping: sending seq=${event.seq} failed: ${event.error}` +
          (event.mtu === null ? "" : `, mtu=${event.mtu}`),
      );
      break;
    case "corrupted":
      printLine(`${event.bytes} bytes from ${event.from}: corrupted (its check fails), ignored`);
      break;
    case "echo_server":
      printLine(
        `${event.from} is an echo server: it sends the probes back unchanged, without ` +
          "timestamps, so each rtt includes its own time",
      );
      break;
    case "icmp":
      printLine(icmpEventLine(event, family));
      break;
    case "foreign":
    case "error":
      break;
  }
}

function replyPrefix(event: { bytes: number; from: string; seq: number; attempt: number }): string {
  const attempt = event.attempt > 0 ? ` attempt=${event.attempt}` : "";
  return `${event.bytes} bytes from ${event.from}: seq=${event.seq}${attempt}`;
}

function formatPercent(percent: number): string {
  return `${Number(percent.toPrecision(3))}%`;
}

/**
 * The text summary, ping(8)'s layout plus udp's extra lines.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ping } from "../../probe/ping.ts";
 * import { Reflector } from "../../reflector/reflector.ts";
 * import { summaryText } from "./ping.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = reflector.address.port;
 * const result = await ping({
 *   target: { hostname: "127.0.0.1", port, family: "ipv4" },
 *   count: 2,
 *   intervalMs: 0,
 * });
 * await reflector.close();
 * const lines = summaryText(result).split("\n");
 * strictEqual(lines[1], `--- 127.0.0.1:${port} udp ping statistics ---`);
 * strictEqual(lines[2].startsWith("2 packets transmitted, 2 received, 0% packet loss"), true);
 * ```
 */
export function summaryText(result: PingResult): string {
  const s = result.summary;
  const unanswered = s.in_flight > 0 ? ` (${s.in_flight} unanswered when the run ended)` : "";
  const loss = s.loss_percent === null ? "" : `, ${formatPercent(s.loss_percent)} packet loss`;
  const errors = s.errors > 0 ? `, +${s.errors} errors` : "";
  const lines = [
    "",
    `--- ${s.target} ${result.path === null ? "udp" : "stamp"} ping statistics ---`,
    `${s.transmitted} packets transmitted, ${s.received} received${errors}${loss}` +
    `${unanswered}, time ${s.time_ms}ms`,
  ];
  const icmp = icmpLine(s.icmp, s.errors, "probe");
  if (icmp !== null) lines.push(icmp);
  if (s.received > 0) {
    const rtt = s.rtt_ms;
    lines.push(
      `rtt min/avg/max/mdev = ${formatStat(rtt.min)}/${formatStat(rtt.avg)}/` +
        `${formatStat(rtt.max)}/${formatStat(rtt.mdev)} ms`,
      `rtt p50/p90/p99 = ${formatStat(rtt.p50)}/${formatStat(rtt.p90)}/${formatStat(rtt.p99)} ms` +
        (result.exactQuantiles ? "" : " (histogram, within 0.2%)") +
        (s.jitter_ms === null ? "" : `, jitter ${formatStat(s.jitter_ms)} ms`),
    );
  }
  const server = s.server_ms;
  if (server.min !== null) {
    const total = s.round_trip_ms;
    lines.push(
      `server processing min/avg/max = ${formatStat(server.min)}/${formatStat(server.avg)}/` +
        `${formatStat(server.max)} ms, left out of the rtt (as irtt does)`,
      `round trip with it p50/p90/p99 = ${formatStat(total.p50)}/${formatStat(total.p90)}/` +
        `${formatStat(total.p99)} ms`,
    );
  }
  const counters: [number, string][] = [
    [s.duplicates, "duplicates"],
    [s.reordered, "reordered"],
    [s.late, "late"],
    [s.foreign, "foreign"],
    [s.retransmitted, "retransmitted"],
    [result.redundant, "redundant"],
    [result.sendErrors, "send errors"],
    [result.authFailures, "replies with a missing or wrong tag"],
  ];
  const nonZero = counters.filter(([count]) => count > 0);
  if (nonZero.length > 0) lines.push(nonZero.map(([n, name]) => `${n} ${name}`).join(", "));
  if (s.corrupted > 0) {
    lines.push(`${s.corrupted} corrupted (damaged on the way: failed their check, not counted)`);
  }
  if (s.echo_server) lines.push("the target is an echo server: no reflector timestamps");
  if (result.path !== null) lines.push(...pathLines(s, result.path));
  else if (s.received > 0) lines.push(...arrivalLines(s));
  return lines.join("\n");
}

/** What a STAMP run adds to the summary: each direction of the path. */
function pathLines(s: PingResult["summary"], path: NonNullable<PingResult["path"]>): string[] {
  const lines: string[] = [];
  if (s.received === 0) return lines;
  if (s.lost_there !== null && s.lost_back !== null) {
    const source = path.lossSource === "direct-measurement"
      ? "Direct Measurement TLV"
      : path.lossSource === "reflector-sequence"
      ? "the reflector's own sequence numbers"
      : "no loss up to it";
    lines.push(
      `loss up to the last probe answered: ${s.lost_there} on the way there, ` +
        `${s.lost_back} on the way back (${source})`,
    );
  } else {
    lines.push(
      "loss per direction: not known (a stateless reflector: udp serve --stamp --stateful " +
        "or --tlv direct-measurement tells it)",
    );
  }
  const ipdv = (name: string, d: typeof s.ipdv_there_ms) =>
    `${name} min/mean |ipdv|/max = ${formatStat(d.min)}/${formatStat(d.mean_abs)}/` +
    `${formatStat(d.max)} ms`;
  if (s.ipdv_there_ms.samples > 0) {
    lines.push(`${ipdv("ipdv there", s.ipdv_there_ms)}, ${ipdv("back", s.ipdv_back_ms)}`);
  }
  const oneWay = (name: string, d: NonNullable<typeof s.one_way_there_ms>) =>
    `${name} min/avg/max = ${formatStat(d.min)}/${formatStat(d.avg)}/${formatStat(d.max)} ms`;
  if (s.one_way_there_ms !== null && s.one_way_back_ms !== null) {
    lines.push(
      `${oneWay("one-way delay there", s.one_way_there_ms)}, ${oneWay("back", s.one_way_back_ms)}`,
    );
  } else if (path.oneWayOmitted !== null) {
    lines.push(`one-way delays omitted: ${path.oneWayOmitted}`);
  }
  lines.push(...arrivalLines(s));
  if (path.dscpBack !== null && s.dscp_sent !== null && path.dscpBack !== s.dscp_sent) {
    lines.push(
      `DSCP ${dscpName(s.dscp_sent)} asked for the replies, ${dscpName(path.dscpBack)} arrived`,
    );
  }
  if (path.tlvsUntouched) {
    lines.push("the reflector returned the TLVs unchanged: it does not process RFC 8972 TLVs");
  }
  const flags = path.tlvFlags;
  const flagged: [number, string][] = [
    [flags.unrecognized, "not recognized (U)"],
    [flags.malformed, "malformed (M)"],
    [flags.integrity, "failing the HMAC check (I)"],
  ];
  for (const [count, what] of flagged) {
    if (count > 0) lines.push(`${count} TLVs flagged by the reflector as ${what}`);
  }
  return lines;
}

/** What the reflector said of the probes' arrival: STAMP's TLVs, or udp's path report. */
function arrivalLines(s: PingResult["summary"]): string[] {
  const lines: string[] = [];
  if (s.hops_there !== null) lines.push(`hops there: ${s.hops_there}`);
  // What the path did to a field of the IP header: kept, or changed (by its names).
  const field = (label: string, sent: string, received: string) =>
    sent === received
      ? `${label} ${sent} kept on the way there`
      : `${label} ${sent} -> ${received} on the way there`;
  if (s.dscp_received !== null && s.dscp_sent !== null) {
    lines.push(field("DSCP", dscpName(s.dscp_sent), dscpName(s.dscp_received)));
  }
  if (s.ecn_received !== null && s.ecn_sent !== null) {
    lines.push(field("ECN", ecnName(s.ecn_sent), ecnName(s.ecn_received)));
  }
  if (s.seen_as !== null) lines.push(`the reflector saw this host as ${s.seen_as}`);
  return lines;
}

function exitCode(result: PingResult, count?: number, deadlineMs?: number): number {
  if (result.stopReason === "protocol-error") return 2;
  const received = result.summary.received;
  if (received === 0) return 1;
  if (count !== undefined && deadlineMs !== undefined && received < count) return 1;
  return 0;
}
