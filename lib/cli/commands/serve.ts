/**
 * `udp serve`: run a reflector until Ctrl-C or SIGTERM, then print its counters.
 *
 * @module
 */

import { reflectorMetrics, reflectorStatsJson } from "../../reflector/mod.ts";
import { formatAddress, resolveListenAddress } from "../../net/address.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { loadKey } from "../keys.ts";
import { flag, group, option, type OptionValues, section, text } from "../options.ts";
import { printLine, toJson } from "../output.ts";
import { parseChoice, parseSeconds, parseWholeNumber } from "../parse.ts";
import { describePayload, payloadText } from "../format.ts";
import {
  type DatagramEvent,
  type DelayedCounts,
  RAW_MODES,
  Reflector,
} from "../../reflector/reflector.ts";
import { describeReceiveBuffer } from "../receive_buffer.ts";
import {
  jsonOption,
  keyOptions,
  listenAddressOptions,
  receiveBufferOption,
} from "../shared_options.ts";
import { interrupted } from "../signals.ts";
import { localClockQuality } from "../../net/mod.ts";
import { stampFormat, udpFormat } from "../../wire/mod.ts";
import { ptpFlag, STAMP_PORT, stampFlag } from "../stamp_options.ts";
import { metricsOption, metricsUrl, startMetricsEndpoint } from "../metrics_endpoint.ts";
import type { MetricsServer } from "../../metrics/mod.ts";

/** A token bucket's rate and burst, as the reflector takes them. */
interface Limit {
  rate: number;
  burst: number;
}

const OPTIONS = {
  address: listenAddressOptions(),
  stamp: stampFlag(
    `be a STAMP session-reflector (RFC 8762, RFC 8972; default port ${STAMP_PORT}): answer
STAMP and TWAMP-light senders, routers' among them`,
  ),
  stateful: flag({
    long: "stateful",
    help: `with --stamp: keep the reflector's own sequence number per session
(RFC 8972 §4), so senders tell loss on the way there from loss on the way back`,
  }),
  ptp: ptpFlag(),
  raw: option({
    long: "raw",
    value: "MODE",
    help: `raw datagrams: ack (reply "ack:" + data, 4 bytes longer than the
request), echo (reply the data), ignore (no reply) (default ack; with
a key, ignore)`,
    parse: (text) => parseChoice("--raw mode", text, RAW_MODES),
  }),
  key: keyOptions(`authenticated mode: answer only PINGs tagged with this key (hex or
base64, in a file only its owner may read; udp keygen makes one)`),
  replayWindowMs: option({
    long: "replay-window",
    value: "SEC",
    help: `with a key: how far a PING's clock may be from ours, and how long it
is remembered against replays (default 30)`,
    parse: (text) => parseSeconds("replay-window", text, false),
  }),
  rateLimit: group(
    {
      rate: option({
        long: "rate-limit",
        value: "PPS",
        help: "answer at most PPS datagrams per second per source address",
        parse: text,
      }),
      burst: option({
        long: "rate-burst",
        value: "N",
        help: "datagrams a source may send at once (default: PPS, at least 1)",
        parse: text,
      }),
    },
    ({ rate, burst }): Limit | undefined => {
      if (rate === undefined) {
        if (burst !== undefined) throw new UsageError("--rate-burst goes with --rate-limit");
        return undefined;
      }
      const perSecond = parseLimit("--rate-limit", rate);
      return {
        rate: perSecond,
        burst: burst === undefined ? perSecond : parseLimit("--rate-burst", burst),
      };
    },
  ),
  globalLimit: option({
    long: "global-limit",
    value: "PPS",
    help: "answer at most PPS datagrams per second from all sources together",
    parse: (text): Limit => {
      const perSecond = parseLimit("--global-limit", text);
      return { rate: perSecond, burst: perSecond };
    },
  }),
  receiveBuffer: receiveBufferOption(
    `the socket's receive buffer (e.g. 8M), for bursts; says what the kernel
granted. Datagrams the kernel drops when it is full are counted`,
  ),
  gro: flag({
    long: "gro",
    help: `read what the kernel coalesces (Linux UDP_GRO): fewer reads from senders that
use GSO (udp bench does); the kernel then counts a dropped coalesced message once,
so the drops are reported as unknown`,
  }),
  metrics: metricsOption(`serve the counters to Prometheus at http://HOST:PORT/metrics
(docs/monitoring/)`),
  verbose: flag({
    long: "verbose",
    short: "v",
    help: "log one line per datagram: source, size, kind, text or hex of raw data",
  }),
  json: jsonOption("print NDJSON: listening, final stats, and with -v one object per datagram"),
};

function parseLimit(name: string, text: string): number {
  return parseWholeNumber(name, text, 1, 10_000_000);
}

/** The `udp serve` command. */
export const serveCommand = defineCommand({
  name: "serve",
  summary: "answer udp pings (a reflector); ack or echo raw datagrams",
  help: [
    `Usage: udp serve [--host ADDR] [--port PORT] [--raw ack|echo|ignore] [--key-file F | --key-env]
                 [--rate-limit PPS [--rate-burst N]] [--global-limit PPS] [--rcvbuf BYTES]
                 [--gro] [--metrics HOST:PORT] [-v] [--json]
       udp serve --stamp [--stateful] [--ptp] [--host ADDR] [--port PORT]
                 [--key-file F | --key-env] [--rate-limit PPS [--rate-burst N]]
                 [--global-limit PPS] [--rcvbuf BYTES] [--metrics HOST:PORT] [-v] [--json]

Answer udp pings: every PING frame gets a PONG of exactly its length. Datagrams that are not
udp frames ("raw") get "ack:" + the data by default, so any UDP client (nc -u) gets an answer.
With --stamp it answers STAMP test packets instead (and TWAMP-light ones), with replies of
exactly their length; shorter packets than a STAMP base packet are counted (too-short), never
answered.`,
    section("Options:", OPTIONS, 20),
    `Nothing is ever answered with more bytes than it carried, except "ack:" (+4 bytes). Refused
datagrams (rate limits, missing or wrong tags, replays) get no reply and are counted.
Ctrl-C or SIGTERM prints the counters and exits 0. Exit 2 on bad options or bind errors.`,
  ],
  options: OPTIONS,
  async run(options, _positionals, context) {
    const key = await loadKey(options.key);
    context.filesOpened();
    if (options.replayWindowMs !== undefined && key === null) {
      throw new UsageError("--replay-window goes with --key-file or --key-env");
    }
    if (!options.stamp) {
      if (options.stateful) throw new UsageError("--stateful goes with --stamp");
      if (options.ptp) throw new UsageError("--ptp goes with --stamp");
    } else if (options.raw !== undefined) {
      throw new UsageError("--raw goes without --stamp: every STAMP datagram is a test packet");
    }
    const reflector = await startReflector(options, key);
    let metrics: MetricsServer | null = null;
    try {
      if (options.metrics !== undefined) {
        metrics = await startMetricsEndpoint(
          options.metrics,
          () => reflectorMetrics(reflector.stats),
        );
      }
    } catch (error) {
      await reflector.close();
      throw error;
    }
    const where = formatAddress(reflector.address);
    if (key === null && !isLoopback(reflector.address.hostname)) {
      console.error(
        `udp serve: notice: ${where} is reachable from other hosts and anyone may use it; ` +
          "consider --key-file, --rate-limit and --raw ignore (see docs/security.md)",
      );
    }
    const stop = interrupted();
    printListening(options, reflector, key !== null, metrics);
    await Promise.race([stop.promise, reflector.finished]);
    stop.dispose();
    await metrics?.close();
    await reflector.close();
    const stats = reflector.stats;
    printLine(options.json ? toJson(reflectorStatsJson(stats)) : statsText(stats));
    return 0;
  },
});

type ServeValues = OptionValues<typeof OPTIONS>;

/** Binds the reflector where the options say, with their limits and the key. */
async function startReflector(options: ServeValues, key: CryptoKey | null): Promise<Reflector> {
  const address = await resolveListenAddress(
    options.address.host,
    options.address.port ?? (options.stamp ? String(STAMP_PORT) : undefined),
  );
  const format = options.stamp
    ? stampFormat({
      authenticated: key !== null,
      stateful: options.stateful,
      timestamps: options.ptp ? "ptp" : "ntp",
      clock: localClockQuality,
    })
    : udpFormat;
  const log = !options.verbose
    ? undefined
    : options.json
    ? (event: DatagramEvent) => printLine(toJson(datagramJson(event)))
    : (event: DatagramEvent) => printLine(datagramLine(event));
  return Reflector.listen({
    hostname: address.hostname,
    port: address.port,
    format,
    raw: options.raw,
    onDatagram: log,
    key: key ?? undefined,
    replayWindowMs: options.replayWindowMs,
    rateLimit: options.rateLimit,
    globalLimit: options.globalLimit,
    receiveBuffer: options.receiveBuffer,
    gro: options.gro,
  });
}

/** "Listening on …", and what the kernel granted for --rcvbuf. */
function printListening(
  options: ServeValues,
  reflector: Reflector,
  authenticated: boolean,
  metrics: MetricsServer | null,
): void {
  const where = formatAddress(reflector.address);
  const protocol = options.stamp ? "stamp" : "udp";
  const mode = options.stamp
    ? ` (STAMP session-reflector, ${options.stateful ? "stateful" : "stateless"}` +
      `${authenticated ? ", authenticated" : ""})`
    : authenticated
    ? " (authenticated mode)"
    : "";
  printLine(
    options.json
      ? toJson({
        type: "listening",
        address: where,
        protocol,
        authenticated,
        ...(options.stamp ? { stateful: options.stateful } : {}),
        ...(metrics === null ? {} : { metrics: metricsUrl(metrics) }),
      })
      : `Listening on ${where}${mode}` +
        (metrics === null ? "" : `; metrics on ${metricsUrl(metrics)}`),
  );
  const asked = options.receiveBuffer;
  if (asked !== undefined) {
    const granted = reflector.receiveBuffer;
    printLine(
      options.json
        ? toJson({ type: "receive_buffer", asked, granted })
        : describeReceiveBuffer(asked, granted),
    );
  }
}

function datagramLine(event: DatagramEvent): string {
  const from = formatAddress(event.from);
  let what: string;
  switch (event.kind) {
    case "raw":
      what = `raw ${describePayload(event.payload as Uint8Array)}`;
      break;
    case "malformed":
      what = `malformed (${event.malformed?.reason}: ${event.malformed?.detail})`;
      break;
    case "corrupted":
      what = "corrupted (its check fails)";
      break;
    case "unsupported-version":
      what = `unsupported version ${event.frame?.version ?? "?"}`;
      break;
    default: {
      const frame = event.frame;
      what = frame === undefined
        ? "datagram"
        : frame.type === "STAMP"
        ? `STAMP seq=${frame.sequence} ssid=${frame.session}`
        : `${frame.type} seq=${frame.sequence} attempt=${frame.attempt}` +
          ` session=${frame.session.toString(16).padStart(8, "0")}`;
      if (event.kind === "unexpected") what += " (not a request)";
      if (event.kind === "refused") what += ` refused (${event.refused})`;
    }
  }
  const reply = event.sendError
    ? `send failed: ${event.sendError}`
    : event.reply === "none"
    ? "no reply"
    : event.reply === "delayed"
    ? `PONG ${event.bytes} bytes in ${event.delayMs} ms (delayed)`
    : `${event.reply.toUpperCase()} ${event.replyBytes} bytes`;
  return `${from} ${event.bytes} bytes ${what} -> ${reply}`;
}

function datagramJson(event: DatagramEvent): Record<string, unknown> {
  const json: Record<string, unknown> = {
    type: "datagram",
    from: formatAddress(event.from),
    bytes: event.bytes,
    kind: event.kind,
  };
  if (event.frame) {
    json.version = event.frame.version;
    json.message = event.frame.type;
    json.session = event.frame.session;
    json.seq = event.frame.sequence;
    json.attempt = event.frame.attempt;
  }
  if (event.malformed) {
    json.reason = event.malformed.reason;
    json.detail = event.malformed.detail;
  }
  if (event.refused) json.reason = event.refused;
  if (event.payload) {
    const text = payloadText(event.payload);
    if (text === null) json.hex = event.payload.toHex();
    else json.text = text;
  }
  json.reply = event.reply;
  json.reply_bytes = event.replyBytes;
  if (event.delayMs !== undefined) json.delay_ms = event.delayMs;
  if (event.sendError) json.send_error = event.sendError;
  return json;
}

/** Counts by name (kind of datagram, reason, error). */
export type Counts = Readonly<Record<string, number>>;

/**
 * The counters {@linkcode statsText} prints: those of a reflector (its `stats`, lib/reflector/).
 */
export interface ServeStats {
  /** Datagrams received. */
  readonly received: number;
  /** Bytes received (UDP payload). */
  readonly bytesReceived: number;
  /** Replies sent. */
  readonly replied: number;
  /** Bytes sent in replies. */
  readonly bytesReplied: number;
  /** Datagrams by kind, `corrupted` among them. */
  readonly kinds: Counts;
  /** Malformed frames by reason. */
  readonly malformed: Counts;
  /** Refused datagrams by reason. */
  readonly refused: Counts;
  /** Errors by kind. */
  readonly errors: Counts;
  /** Datagrams the kernel dropped on the socket; null where it does not say. */
  readonly kernelDrops: number | null;
  /** Delayed replies: held, then sent, failed or dropped at exit; pending now. */
  readonly delayed: DelayedCounts;
}

/**
 * The counters as `udp serve` prints them on exit.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../../reflector/reflector.ts";
 * import { statsText } from "./serve.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * await reflector.close();
 * const lines = statsText(reflector.stats).split("\n");
 * strictEqual(lines[1], "--- udp serve statistics ---");
 * strictEqual(lines[2], "0 datagrams received (0 bytes), 0 replies sent (0 bytes)");
 * strictEqual(lines.at(-1), "errors: none");
 * ```
 */
export function statsText(stats: ServeStats): string {
  const lines = [
    "",
    "--- udp serve statistics ---",
    `${stats.received} datagrams received (${stats.bytesReceived} bytes), ` +
    `${stats.replied} replies sent (${stats.bytesReplied} bytes)`,
    Object.entries(stats.kinds).map(([kind, count]) => `${kind} ${count}`).join(", "),
  ];
  const malformed = nonZero(stats.malformed);
  if (malformed) lines.push(`malformed: ${malformed}`);
  const refused = nonZero(stats.refused);
  if (refused) lines.push(`refused: ${refused}`);
  if (stats.kinds.corrupted > 0) {
    lines.push(`corrupted: ${stats.kinds.corrupted} (failed their check: never answered)`);
  }
  const { held, sent, failed, dropped, pending } = stats.delayed;
  if (held > 0) {
    lines.push(
      `delayed replies: ${held} held, ${sent} sent, ${failed} failed, ${dropped} dropped at exit` +
        (pending > 0 ? `, ${pending} waiting` : ""),
    );
  }
  lines.push(
    stats.kernelDrops === null
      ? "kernel drops: unknown (these sockets cannot tell)"
      : `kernel drops: ${stats.kernelDrops}` +
        (stats.kernelDrops > 0 ? " (the receive buffer was full: --rcvbuf raises it)" : ""),
  );
  const errors = nonZero(stats.errors);
  lines.push(`errors: ${errors || "none"}`);
  return lines.join("\n");
}

function isLoopback(hostname: string): boolean {
  return hostname === "::1" || /^127\./.test(hostname);
}

function nonZero(counts: Record<string, number>): string {
  return Object.entries(counts)
    .filter(([, count]) => count > 0)
    .map(([name, count]) => `${name} ${count}`)
    .join(", ");
}
