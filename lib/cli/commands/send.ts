/**
 * `udp send`: send one datagram (netcat style) and optionally wait for the reply.
 *
 * @module
 */

import {
  DEFAULT_PORT,
  formatAddress,
  parseHostPort,
  type ResolvedAddress,
  resolveHost,
  sameAddress,
  wildcardFor,
} from "../../net/address.ts";
import { DEFAULT_TIMEOUT_MS, MAX_RETRIES } from "../../probe/ping.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { hexDump, payloadText } from "../format.ts";
import { flag, group, option, type OptionValues, section, text } from "../options.ts";
import { printLine } from "../output.ts";
import { parseSeconds, parseWholeNumber } from "../parse.ts";
import { familyOption } from "../shared_options.ts";
import { MAX_DATAGRAM_IPV4, MAX_DATAGRAM_IPV6 } from "../../wire/protocol.ts";
import { errorKind, UdpSocket } from "../../net/socket.ts";

/** How MESSAGE (or the file, or stdin) is written. */
type Encoding = "text" | "hex" | "base64";

const OPTIONS = {
  encoding: group(
    {
      hex: flag({ long: "hex", help: `MESSAGE (or the file / stdin) is hex, e.g. "de ad be ef"` }),
      base64: flag({ long: "base64", help: "MESSAGE (or the file / stdin) is base64" }),
    },
    ({ hex, base64 }): Encoding => {
      if (hex && base64) throw new UsageError("--hex and --base64 exclude each other");
      return hex ? "hex" : base64 ? "base64" : "text";
    },
  ),
  file: option({
    long: "file",
    short: "f",
    value: "F",
    help: `send the contents of file F, wherever it is ("-" for standard input)`,
    parse: text,
  }),
  wait: flag({ long: "wait", help: "wait for a reply from HOST:PORT and print it" }),
  timeoutMs: option({
    long: "timeout",
    short: "W",
    value: "SEC",
    help: `how long to wait for the reply (default ${DEFAULT_TIMEOUT_MS / 1000})`,
    parse: (text) => parseSeconds("timeout", text, false),
  }),
  retries: option({
    long: "retries",
    value: "N",
    help: `re-send up to N times (0..${MAX_RETRIES}) while no reply came; attempt k waits
TIMEOUT x 2^k x (1 to 1.25)`,
    parse: (text) => parseWholeNumber("retries", text, 0, MAX_RETRIES),
  }),
  quiet: flag({ long: "quiet", short: "q", help: `do not print the "Sent" line` }),
  family: familyOption(),
};

type SendValues = OptionValues<typeof OPTIONS>;

/** The `udp send` command. */
export const sendCommand = defineCommand({
  name: "send",
  summary: "send one datagram (text, hex, base64, file or stdin); --wait prints the reply",
  help: [
    `Usage: udp send HOST[:PORT] [MESSAGE] [--hex|--base64] [--file F] [--wait] [-W SEC]
                [--retries N] [-q] [-4|-6]

Send one datagram. The data is MESSAGE, or the contents of --file F, or standard input when
neither is given; text is sent as UTF-8, or decoded from hex or base64.`,
    section("Options:", OPTIONS, 21),
    `Exit status: 0 when sent (and, with --wait, answered), 1 when no reply came in time, 2 on
errors.`,
  ],
  options: OPTIONS,
  positionals: { min: 1, max: 2, usage: "HOST[:PORT] [MESSAGE]" },
  async run(options, [destination, message], context) {
    if (message !== undefined && options.file !== undefined) {
      throw new UsageError("give either MESSAGE or --file, not both");
    }
    if (!options.wait && (options.timeoutMs !== undefined || options.retries !== undefined)) {
      throw new UsageError("-W and --retries need --wait");
    }
    const { host, port } = parseHostPort(destination, DEFAULT_PORT);
    const data = decodeData(await readData(message, options.file), options.encoding);
    context.filesOpened();
    const target = await resolveHost(host, port, { family: options.family });
    const limit = target.family === "ipv6" ? MAX_DATAGRAM_IPV6 : MAX_DATAGRAM_IPV4;
    if (data.length > limit) {
      throw new UsageError(
        `the message is ${data.length} bytes; a UDP datagram over ${
          target.family === "ipv6" ? "IPv6" : "IPv4"
        } carries at most ${limit}`,
      );
    }
    using socket = UdpSocket.bind(wildcardFor(target.family), 0);
    return await sendAndWait(socket, data, target, options);
  },
});

/** Sends the datagram, and with --wait re-sends it until a reply comes or the attempts end. */
async function sendAndWait(
  socket: UdpSocket,
  data: Uint8Array,
  target: ResolvedAddress,
  options: SendValues,
): Promise<number> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = options.retries ?? 0;
  const targetText = formatAddress(target);
  const reply = options.wait ? waitForReply(socket, target) : null;
  for (let attempt = 0; attempt <= (options.wait ? retries : 0); attempt++) {
    try {
      await socket.send(data, target);
    } catch (error) {
      throw new UsageError(`cannot send to ${targetText}: ${errorKind(error)}`);
    }
    if (!options.quiet) {
      printLine(
        `Sent ${data.length} bytes to ${targetText}` +
          (attempt > 0 ? ` (attempt ${attempt + 1})` : ""),
      );
    }
    if (reply === null) return 0;
    const wait = attempt === 0 ? timeoutMs : timeoutMs * 2 ** attempt * (1 + Math.random() / 4);
    const answer = await reply.within(wait);
    if (answer !== null) {
      printLine(describeReply(answer, targetText));
      socket.close();
      await reply.done;
      return 0;
    }
  }
  printLine(
    `No reply received in time (${retries + 1} attempt${retries > 0 ? "s" : ""})`,
  );
  socket.close();
  await reply?.done;
  return 1;
}

async function readData(
  message: string | undefined,
  file: string | undefined,
): Promise<Uint8Array> {
  if (message !== undefined) return new TextEncoder().encode(message);
  if (file === undefined || file === "-") return await readAll(Deno.stdin.readable);
  try {
    return await Deno.readFile(file);
  } catch (error) {
    throw new UsageError(`cannot read --file '${file}': ${describeFileError(error)}`);
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function decodeData(raw: Uint8Array, encoding: Encoding): Uint8Array {
  if (encoding === "text") return raw;
  const text = new TextDecoder().decode(raw).replace(/\s+/g, "");
  try {
    return encoding === "hex" ? Uint8Array.fromHex(text) : Uint8Array.fromBase64(text);
  } catch {
    throw new UsageError(
      encoding === "hex"
        ? "the message is not valid hex: use pairs of 0-9a-f digits, e.g. 'de ad be ef'"
        : "the message is not valid base64: use A-Z a-z 0-9 + / with = padding",
    );
  }
}

interface PendingReply {
  /** The first reply from the target within `ms`, or null. */
  within(ms: number): Promise<{ data: Uint8Array; from: string } | null>;
  /** Resolves when the receive loop has ended (after the socket is closed). */
  done: Promise<void>;
}

/** Receives on the socket until it is closed; remembers the first datagram from the target. */
function waitForReply(socket: UdpSocket, target: { hostname: string; port: number }): PendingReply {
  const arrived = Promise.withResolvers<{ data: Uint8Array; from: string }>();
  const done = socket.receiveEach((data, from) => {
    if (sameAddress(from, target)) {
      arrived.resolve({ data: data.slice(), from: formatAddress(from) });
    }
  });
  return {
    done,
    async within(ms: number) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
      try {
        return await Promise.race([arrived.promise, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function describeReply(reply: { data: Uint8Array; from: string }, target: string): string {
  const text = payloadText(reply.data);
  if (text !== null) {
    return `Received ${JSON.stringify(text)} from ${target} (${reply.data.length} bytes)`;
  }
  const dump = hexDump(reply.data);
  return `Received ${reply.data.length} bytes from ${target}:` + (dump ? `\n${dump}` : "");
}
