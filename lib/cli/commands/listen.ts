/**
 * `udp listen`: print every datagram received (netcat's listener) and optionally reply.
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, resolveListenAddress } from "../../net/address.ts";
import { expectPositionals, parseChoice, parseCommandArgs, parseWholeNumber } from "../args.ts";
import { hexDump, payloadText } from "../format.ts";
import { printJson, printLine } from "../output.ts";
import { ackReply } from "../../reflector/reflector.ts";
import { interrupted } from "../signals.ts";
import {
  describeReceiveBuffer,
  parseReceiveBuffer,
  requireReceiveBufferSupport,
} from "../receive_buffer.ts";
import { errorKind, UdpSocket } from "../../net/socket.ts";
import type { Command, RunContext } from "./command.ts";

const REPLY_MODES = ["none", "ack", "echo"] as const;

const HELP =
  `Usage: udp listen [--host ADDR] [--port PORT] [--reply none|ack|echo] [-c N] [--rcvbuf BYTES]
                  [--json]

Print every datagram received, with its source: text as a quoted string, anything else as a
hex dump. Optionally answer each one.

Options:
      --host ADDR    address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  -p, --port PORT    port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
      --reply MODE   none (default), ack ("ack:" + the data) or echo (the data)
  -c, --count N      exit after N datagrams
      --rcvbuf BYTES the socket's receive buffer (e.g. 4M); says what the kernel granted
      --json         print NDJSON: listening, then one object per datagram
  -h, --help         show this help

Ctrl-C or SIGTERM exits 0. Exit 2 on bad options or bind errors.`;

/** The `udp listen` command. */
export const listenCommand: Command = {
  name: "listen",
  summary: "print datagrams received (text or hex dump); optionally ack or echo them",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const { values, positionals } = parseCommandArgs("listen", args, {
      host: { type: "string" },
      port: { type: "string", short: "p" },
      reply: { type: "string" },
      count: { type: "string", short: "c" },
      rcvbuf: { type: "string" },
      json: { type: "boolean" },
    });
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    expectPositionals("listen", positionals, 0, 0, "");
    const reply = parseChoice("--reply mode", (values.reply as string) ?? "none", REPLY_MODES);
    const count = values.count === undefined
      ? Infinity
      : parseWholeNumber("count", values.count as string, 1, Number.MAX_SAFE_INTEGER);
    const address = await resolveListenAddress(
      values.host as string | undefined,
      values.port as string | undefined,
    );
    const json = Boolean(values.json);
    const receiveBuffer = values.rcvbuf === undefined
      ? undefined
      : parseReceiveBuffer(values.rcvbuf as string);
    if (receiveBuffer !== undefined) requireReceiveBufferSupport();
    context.filesOpened();
    const socket = UdpSocket.bind(address.hostname, address.port);
    const granted = receiveBuffer === undefined ? null : socket.setReceiveBuffer(receiveBuffer);
    const where = formatAddress(socket.address);
    if (json) printJson({ type: "listening", address: where });
    else printLine(`Listening on ${where}`);
    if (receiveBuffer !== undefined) {
      if (json) printJson({ type: "receive_buffer", asked: receiveBuffer, granted });
      else printLine(describeReceiveBuffer(receiveBuffer, granted));
    }
    let received = 0;
    const stop = interrupted();
    const loop = socket.receiveEach(async (data, from) => {
      received++;
      const source = formatAddress(from);
      const text = payloadText(data);
      if (json) {
        const body = text === null ? { hex: data.toHex() } : { text };
        printJson({ type: "datagram", from: source, bytes: data.length, ...body });
      } else if (text !== null) {
        printLine(`From ${source} (${data.length} bytes): ${JSON.stringify(text)}`);
      } else {
        printLine(`From ${source} (${data.length} bytes):\n${hexDump(data)}`);
      }
      if (reply !== "none") {
        const answer = reply === "echo" ? data : ackReply(data);
        try {
          await socket.send(answer, from);
        } catch (error) {
          console.error(`udp listen: reply to ${source} failed: ${errorKind(error)}`);
        }
      }
      if (received >= count) socket.close();
    });
    await Promise.race([loop, stop.promise]);
    stop.dispose();
    socket.close();
    await loop;
    return 0;
  },
};
