/**
 * `udp serve`: run a reflector until Ctrl-C or SIGTERM, then print its counters.
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, resolveListenAddress } from "../../net/address.ts";
import {
  expectPositionals,
  parseChoice,
  parseCommandArgs,
  parseSeconds,
  parseWholeNumber,
} from "../args.ts";
import { UsageError } from "../errors.ts";
import { keyFromOptions } from "../keys.ts";
import { printLine, toJson } from "../output.ts";
import { describePayload, payloadText } from "../format.ts";
import {
  type DatagramEvent,
  RAW_MODES,
  type RawMode,
  Reflector,
  type ReflectorStats,
} from "../../reflector/reflector.ts";
import {
  describeReceiveBuffer,
  parseReceiveBuffer,
  requireReceiveBufferSupport,
} from "../receive_buffer.ts";
import { interrupted } from "../signals.ts";
import type { Command, RunContext } from "./command.ts";

const HELP =
  `Usage: udp serve [--host ADDR] [--port PORT] [--raw ack|echo|ignore] [--key-file F | --key-env]
                 [--rate-limit PPS [--rate-burst N]] [--global-limit PPS] [--rcvbuf BYTES]
                 [-v] [--json]

Answer udp pings: every PING frame gets a PONG of exactly its length. Datagrams that are not
udp frames ("raw") get "ack:" + the data by default, so any UDP client (nc -u) gets an answer.

Options:
      --host ADDR   address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  -p, --port PORT   port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
      --raw MODE    raw datagrams: ack (reply "ack:" + data, 4 bytes longer than the
                    request), echo (reply the data), ignore (no reply) (default ack; with
                    a key, ignore)
      --key-file F  authenticated mode: answer only PINGs tagged with this key (hex or
                    base64, in a file only its owner may read; udp keygen makes one)
      --key-env     authenticated mode with the key from $UDP_KEY
      --replay-window SEC
                    with a key: how far a PING's clock may be from ours, and how long it
                    is remembered against replays (default 30)
      --rate-limit PPS
                    answer at most PPS datagrams per second per source address
      --rate-burst N
                    datagrams a source may send at once (default: PPS, at least 1)
      --global-limit PPS
                    answer at most PPS datagrams per second from all sources together
      --rcvbuf BYTES
                    the socket's receive buffer (e.g. 8M), for bursts; says what the kernel
                    granted. Datagrams the kernel drops when it is full are counted
  -v, --verbose     log one line per datagram: source, size, kind, text or hex of raw data
      --json        print NDJSON: listening, final stats, and with -v one object per datagram
  -h, --help        show this help

Nothing is ever answered with more bytes than it carried, except "ack:" (+4 bytes). Refused
datagrams (rate limits, missing or wrong tags, replays) get no reply and are counted.
Ctrl-C or SIGTERM prints the counters and exits 0. Exit 2 on bad options or bind errors.`;

/** The `udp serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "answer udp pings (a reflector); ack or echo raw datagrams",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const { values, positionals } = parseCommandArgs("serve", args, {
      host: { type: "string" },
      port: { type: "string", short: "p" },
      raw: { type: "string" },
      verbose: { type: "boolean", short: "v" },
      json: { type: "boolean" },
      "key-file": { type: "string" },
      "key-env": { type: "boolean" },
      "replay-window": { type: "string" },
      "rate-limit": { type: "string" },
      "rate-burst": { type: "string" },
      "global-limit": { type: "string" },
      rcvbuf: { type: "string" },
    });
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    expectPositionals("serve", positionals, 0, 0, "");
    const raw = values.raw === undefined
      ? undefined
      : parseChoice("--raw mode", values.raw as string, RAW_MODES) as RawMode;
    const text = (name: string) => values[name] as string | undefined;
    const rateLimit = limitOption("--rate-limit", text("rate-limit"), text("rate-burst"));
    if (text("rate-burst") !== undefined && rateLimit === undefined) {
      throw new UsageError("--rate-burst goes with --rate-limit");
    }
    const globalLimit = limitOption("--global-limit", text("global-limit"), undefined);
    const replayWindowMs = text("replay-window") === undefined
      ? undefined
      : parseSeconds("replay-window", text("replay-window")!, false);
    const receiveBuffer = text("rcvbuf") === undefined
      ? undefined
      : parseReceiveBuffer(text("rcvbuf")!);
    if (receiveBuffer !== undefined) requireReceiveBufferSupport();
    const key = await keyFromOptions(text("key-file"), Boolean(values["key-env"]));
    context.filesOpened();
    if (replayWindowMs !== undefined && key === null) {
      throw new UsageError("--replay-window goes with --key-file or --key-env");
    }
    const address = await resolveListenAddress(
      values.host as string | undefined,
      values.port as string | undefined,
    );
    const json = Boolean(values.json);
    const log = !values.verbose
      ? undefined
      : json
      ? (event: DatagramEvent) => printLine(toJson(datagramJson(event)))
      : (event: DatagramEvent) => printLine(datagramLine(event));
    const reflector = Reflector.listen({
      hostname: address.hostname,
      port: address.port,
      raw,
      onDatagram: log,
      key: key ?? undefined,
      replayWindowMs,
      rateLimit,
      globalLimit,
      receiveBuffer,
    });
    const where = formatAddress(reflector.address);
    if (key === null && !isLoopback(reflector.address.hostname)) {
      console.error(
        `udp serve: notice: ${where} is reachable from other hosts and anyone may use it; ` +
          "consider --key-file, --rate-limit and --raw ignore (see docs/security.md)",
      );
    }
    const stop = interrupted();
    printLine(
      json
        ? toJson({ type: "listening", address: where, authenticated: key !== null })
        : `Listening on ${where}` + (key !== null ? " (authenticated mode)" : ""),
    );
    if (receiveBuffer !== undefined) {
      const granted = reflector.receiveBuffer;
      printLine(
        json
          ? toJson({ type: "receive_buffer", asked: receiveBuffer, granted })
          : describeReceiveBuffer(receiveBuffer, granted),
      );
    }
    await Promise.race([stop.promise, reflector.finished]);
    stop.dispose();
    await reflector.close();
    const stats = reflector.stats;
    printLine(json ? toJson(statsJson(stats)) : statsText(stats));
    return 0;
  },
};

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
      what = frame
        ? `${frame.type} seq=${frame.sequence} attempt=${frame.attempt}` +
          ` session=${frame.session.toString(16).padStart(8, "0")}`
        : "datagram";
      if (event.kind === "unexpected") what += " (not a request)";
      if (event.kind === "refused") what += ` refused (${event.refused})`;
    }
  }
  const reply = event.sendError
    ? `send failed: ${event.sendError}`
    : event.reply === "none"
    ? "no reply"
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
  if (event.sendError) json.send_error = event.sendError;
  return json;
}

function statsJson(stats: ReflectorStats): Record<string, unknown> {
  return {
    type: "stats",
    received: stats.received,
    bytes_received: stats.bytesReceived,
    replied: stats.replied,
    bytes_replied: stats.bytesReplied,
    kinds: stats.kinds,
    malformed: stats.malformed,
    refused: stats.refused,
    kernel_drops: stats.kernelDrops,
    errors: stats.errors,
  };
}

/**
 * The counters as `udp serve` prints them on exit.
 *
 * @example
 * ```ts ignore
 * console.log(statsText(reflector.stats));
 * ```
 */
export function statsText(stats: ReflectorStats): string {
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

function limitOption(
  option: string,
  rate: string | undefined,
  burst: string | undefined,
): { rate: number; burst: number } | undefined {
  if (rate === undefined) return undefined;
  const perSecond = parseWholeNumber(option, rate, 1, 10_000_000);
  const size = burst === undefined
    ? perSecond
    : parseWholeNumber("--rate-burst", burst, 1, 10_000_000);
  return { rate: perSecond, burst: size };
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
