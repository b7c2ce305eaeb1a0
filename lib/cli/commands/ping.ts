/**
 * `udp ping`: measure loss, RTT, jitter, reordering and duplication to a `udp serve`.
 *
 * @module
 */

import {
  DEFAULT_PORT,
  type Family,
  formatAddress,
  parseHostPort,
  resolveHost,
} from "../../net/address.ts";
import {
  checkPayloadSize,
  expectPositionals,
  parseCommandArgs,
  type ParsedArgs,
  parsePayloadSize,
  parseSeconds,
  parseWholeNumber,
} from "../args.ts";
import {
  DEFAULT_INTERVAL_MS,
  DEFAULT_PAYLOAD_SIZE,
  DEFAULT_TIMEOUT_MS,
  MAX_RETRIES,
  ping,
  type PingEvent,
  type PingOptions,
  type PingResult,
} from "../../probe/ping.ts";
import { UsageError } from "../errors.ts";
import { formatRtt, formatStat } from "../format.ts";
import { frameOverhead } from "../../wire/protocol.ts";
import { keyFromOptions } from "../keys.ts";
import { printJson, printLine, toJson } from "../output.ts";
import {
  describeReceiveBuffer,
  parseReceiveBuffer,
  requireReceiveBufferSupport,
} from "../receive_buffer.ts";
import { onInterrupt } from "../signals.ts";
import type { Command, RunContext } from "./command.ts";

const HELP = `Usage: udp ping HOST[:PORT] [-c N] [-i SEC] [-W SEC] [-w SEC] [--retries N] [-s BYTES]
                [--linger SEC] [--key-file F | --key-env] [--rcvbuf BYTES] [-q] [--json] [-4|-6]

Send PING frames to a udp reflector (udp serve) and report loss, round-trip time, jitter,
reordering, duplicates and late replies. Options follow ping(8). The RTT is the network's: from
the probe's hand-over to the kernel to its reply's arrival (the kernel's timestamp), minus the
time the reflector says it held the probe (as irtt counts it); the summary gives both.

Options:
  -c, --count N      stop after N probes (default: until Ctrl-C); with -w, after N replies
  -i, --interval SEC time between probes (default ${
  DEFAULT_INTERVAL_MS / 1000
}); 0 sends the next probe as
                     soon as the previous one is answered or timed out
  -W, --timeout SEC  time to wait for a reply (default ${
  DEFAULT_TIMEOUT_MS / 1000
}); a reply after that is "late"
                     and the probe stays lost
  -w, --deadline SEC stop after SEC seconds whatever was sent or received
      --retries N    re-send an unanswered probe up to N times (0..${MAX_RETRIES}, default 0); attempt k
                     waits TIMEOUT x 2^k x (1 to 1.25); RTT is timed from the answered attempt
      --linger SEC   after the last probe, keep listening SEC seconds for late and duplicate
                     replies (default 0: stop at once, as ping(8))
  -s, --size BYTES   padding bytes per probe (default ${DEFAULT_PAYLOAD_SIZE}); the datagram adds ${
  frameOverhead(false)
} bytes (header and check; ${frameOverhead(true)} with a key)
      --key-file F   authenticated mode: tag PINGs with this key, reject PONGs without a
                     valid tag (hex or base64, in a file only its owner may read)
      --key-env      authenticated mode with the key from $UDP_KEY
      --rcvbuf BYTES the socket's receive buffer (e.g. 4M); says what the kernel granted
  -q, --quiet        print only the summary
      --json         print NDJSON: start, one object per event, summary
  -4, -6             use IPv4 / IPv6 only when resolving HOST
  -h, --help         show this help

Exit status: 0 if any reply was received (with -c and -w: if N replies were), 1 if not,
2 on errors. Ctrl-C prints the summary.`;

/** The `udp ping` command. */
export const pingCommand: Command = {
  name: "ping",
  summary: "measure loss, RTT, jitter, reordering and duplicates to a udp serve",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const parsed = parseCommandArgs("ping", args, {
      count: { type: "string", short: "c" },
      interval: { type: "string", short: "i" },
      timeout: { type: "string", short: "W" },
      deadline: { type: "string", short: "w" },
      retries: { type: "string" },
      linger: { type: "string" },
      "key-file": { type: "string" },
      "key-env": { type: "boolean" },
      rcvbuf: { type: "string" },
      size: { type: "string", short: "s" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      ipv4: { type: "boolean", short: "4" },
      ipv6: { type: "boolean", short: "6" },
    });
    if (parsed.values.help) {
      printLine(HELP);
      return 0;
    }
    const options = parseOptions(parsed);
    const rcvbuf = parsed.values.rcvbuf as string | undefined;
    const receiveBuffer = rcvbuf === undefined ? undefined : parseReceiveBuffer(rcvbuf);
    if (receiveBuffer !== undefined) requireReceiveBufferSupport();
    const [destination] = expectPositionals("ping", parsed.positionals, 1, 1, "HOST[:PORT]");
    const { host, port } = parseHostPort(destination, DEFAULT_PORT);
    const target = await resolveHost(host, port, { family: familyOption(parsed) });
    const key = await keyFromOptions(
      parsed.values["key-file"] as string | undefined,
      Boolean(parsed.values["key-env"]),
    );
    context.filesOpened();
    const overhead = frameOverhead(key !== null);
    const size = options.payloadSize ?? DEFAULT_PAYLOAD_SIZE;
    checkPayloadSize(size, target.family, key !== null);
    const targetText = formatAddress(target);
    const named = host === target.hostname ? targetText : `${host} (${targetText})`;
    const json = Boolean(parsed.values.json);
    const quiet = Boolean(parsed.values.quiet);
    const controller = new AbortController();
    const removeInterrupt = onInterrupt(() => controller.abort());
    const print = json
      ? (event: PingEvent) => printJson(event)
      : (event: PingEvent) => printEvent(event);
    let result: PingResult;
    try {
      if (json) {
        printJson({
          type: "start",
          target: targetText,
          host,
          payload_bytes: size,
          datagram_bytes: size + overhead,
        });
      } else {
        printLine(
          `UDP PING ${named}: ${size} data bytes, ${size + overhead}-byte datagrams` +
            (key ? " (authenticated)" : ""),
        );
      }
      result = await ping({
        ...options,
        target,
        payloadSize: size,
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
    printLine(json ? toJson(result.summary) : summaryText(result));
    return exitCode(result, options.count, options.deadlineMs);
  },
};

type PingCliOptions = Pick<
  PingOptions,
  "count" | "intervalMs" | "timeoutMs" | "deadlineMs" | "retries" | "lingerMs" | "payloadSize"
>;

function parseOptions({ values }: ParsedArgs): PingCliOptions {
  const text = (name: string) => values[name] as string | undefined;
  const options: PingCliOptions = {};
  if (text("count") !== undefined) {
    options.count = parseWholeNumber("count", text("count")!, 1, 0xffff_ffff);
  }
  if (text("interval") !== undefined) {
    options.intervalMs = parseSeconds("interval", text("interval")!, true);
  }
  if (text("timeout") !== undefined) {
    options.timeoutMs = parseSeconds("timeout", text("timeout")!, false);
  }
  if (text("deadline") !== undefined) {
    options.deadlineMs = parseSeconds("deadline", text("deadline")!, false);
  }
  if (text("retries") !== undefined) {
    options.retries = parseWholeNumber("retries", text("retries")!, 0, MAX_RETRIES);
  }
  if (text("linger") !== undefined) {
    options.lingerMs = parseSeconds("linger", text("linger")!, true);
  }
  if (text("size") !== undefined) {
    options.payloadSize = parsePayloadSize(text("size")!);
  }
  return options;
}

function familyOption({ values }: ParsedArgs): Family | undefined {
  if (values.ipv4 && values.ipv6) throw new UsageError("-4 and -6 exclude each other");
  return values.ipv4 ? "ipv4" : values.ipv6 ? "ipv6" : undefined;
}

function printEvent(event: PingEvent): void {
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
      console.error(`udp ping: sending seq=${event.seq} failed: ${event.error}`);
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
 * ```ts ignore
 * console.log(summaryText(result));
 * ```
 */
export function summaryText(result: PingResult): string {
  const s = result.summary;
  const unanswered = s.in_flight > 0 ? ` (${s.in_flight} unanswered when the run ended)` : "";
  const loss = s.loss_percent === null ? "" : `, ${formatPercent(s.loss_percent)} packet loss`;
  const lines = [
    "",
    `--- ${s.target} udp ping statistics ---`,
    `${s.transmitted} packets transmitted, ${s.received} received${loss}${unanswered}, ` +
    `time ${s.time_ms}ms`,
  ];
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
  return lines.join("\n");
}

function exitCode(result: PingResult, count?: number, deadlineMs?: number): number {
  if (result.stopReason === "protocol-error") return 2;
  const received = result.summary.received;
  if (received === 0) return 1;
  if (count !== undefined && deadlineMs !== undefined && received < count) return 1;
  return 0;
}
