/**
 * `udp send`: send one datagram (netcat style) and optionally wait for the reply.
 *
 * @module
 */

import {
  DEFAULT_PORT,
  type Family,
  formatAddress,
  parseHostPort,
  resolveHost,
  sameAddress,
  wildcardFor,
} from "../../net/address.ts";
import { expectPositionals, parseCommandArgs, parseSeconds, parseWholeNumber } from "../args.ts";
import { DEFAULT_TIMEOUT_MS, MAX_RETRIES } from "../../probe/ping.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { hexDump, payloadText } from "../format.ts";
import { printLine } from "../output.ts";
import { MAX_DATAGRAM_IPV4, MAX_DATAGRAM_IPV6 } from "../../wire/protocol.ts";
import { errorKind, UdpSocket } from "../../net/socket.ts";
import type { Command, RunContext } from "./command.ts";

const HELP = `Usage: udp send HOST[:PORT] [MESSAGE] [--hex|--base64] [--file F] [--wait] [-W SEC]
                [--retries N] [-q] [-4|-6]

Send one datagram. The data is MESSAGE, or the contents of --file F, or standard input when
neither is given; text is sent as UTF-8, or decoded from hex or base64.

Options:
      --hex          MESSAGE (or the file / stdin) is hex, e.g. "de ad be ef"
      --base64       MESSAGE (or the file / stdin) is base64
  -f, --file F       send the contents of file F, wherever it is ("-" for standard input)
      --wait         wait for a reply from HOST:PORT and print it
  -W, --timeout SEC  how long to wait for the reply (default ${DEFAULT_TIMEOUT_MS / 1000})
      --retries N    re-send up to N times (0..${MAX_RETRIES}) while no reply came; attempt k waits
                     TIMEOUT x 2^k x (1 to 1.25)
  -q, --quiet        do not print the "Sent" line
  -4, -6             use IPv4 / IPv6 only when resolving HOST
  -h, --help         show this help

Exit status: 0 when sent (and, with --wait, answered), 1 when no reply came in time, 2 on
errors.`;

/** The `udp send` command. */
export const sendCommand: Command = {
  name: "send",
  summary: "send one datagram (text, hex, base64, file or stdin); --wait prints the reply",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const { values, positionals } = parseCommandArgs("send", args, {
      hex: { type: "boolean" },
      base64: { type: "boolean" },
      file: { type: "string", short: "f" },
      wait: { type: "boolean" },
      timeout: { type: "string", short: "W" },
      retries: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      ipv4: { type: "boolean", short: "4" },
      ipv6: { type: "boolean", short: "6" },
    });
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    const [destination, message] = expectPositionals(
      "send",
      positionals,
      1,
      2,
      "HOST[:PORT] [MESSAGE]",
    );
    if (values.hex && values.base64) throw new UsageError("--hex and --base64 exclude each other");
    if (values.ipv4 && values.ipv6) throw new UsageError("-4 and -6 exclude each other");
    if (message !== undefined && values.file !== undefined) {
      throw new UsageError("give either MESSAGE or --file, not both");
    }
    const timeoutMs = values.timeout === undefined
      ? DEFAULT_TIMEOUT_MS
      : parseSeconds("timeout", values.timeout as string, false);
    const retries = values.retries === undefined
      ? 0
      : parseWholeNumber("retries", values.retries as string, 0, MAX_RETRIES);
    if (!values.wait && (values.timeout !== undefined || values.retries !== undefined)) {
      throw new UsageError("-W and --retries need --wait");
    }
    const { host, port } = parseHostPort(destination, DEFAULT_PORT);
    const family: Family | undefined = values.ipv4 ? "ipv4" : values.ipv6 ? "ipv6" : undefined;
    const encoding = values.hex ? "hex" : values.base64 ? "base64" : "text";
    const data = decodeData(await readData(message, values.file as string | undefined), encoding);
    context.filesOpened();
    const target = await resolveHost(host, port, { family });
    const limit = target.family === "ipv6" ? MAX_DATAGRAM_IPV6 : MAX_DATAGRAM_IPV4;
    if (data.length > limit) {
      throw new UsageError(
        `the message is ${data.length} bytes; a UDP datagram over ${
          target.family === "ipv6" ? "IPv6" : "IPv4"
        } carries at most ${limit}`,
      );
    }
    using socket = UdpSocket.bind(wildcardFor(target.family), 0);
    const targetText = formatAddress(target);
    const reply = values.wait ? waitForReply(socket, target) : null;
    for (let attempt = 0; attempt <= (values.wait ? retries : 0); attempt++) {
      try {
        await socket.send(data, target);
      } catch (error) {
        throw new UsageError(`cannot send to ${targetText}: ${errorKind(error)}`);
      }
      if (!values.quiet) {
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
  },
};

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

function decodeData(raw: Uint8Array, encoding: "text" | "hex" | "base64"): Uint8Array {
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
