/**
 * `udp listen`: print every datagram received (netcat's listener) and optionally reply.
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, resolveListenAddress } from "../address.ts";
import { expectPositionals, parseChoice, parseCommandArgs, parseWholeNumber } from "../args.ts";
import { hexDump, payloadText } from "../format.ts";
import { ackReply } from "../server.ts";
import { interrupted } from "../signals.ts";
import { errorKind, UdpSocket } from "../socket.ts";
import type { Command } from "./command.ts";

const REPLY_MODES = ["none", "ack", "echo"] as const;

const HELP = `Usage: udp listen [--host ADDR] [--port PORT] [--reply none|ack|echo] [-c N] [--json]

Print every datagram received, with its source: text as a quoted string, anything else as a
hex dump. Optionally answer each one.

Options:
      --host ADDR    address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  -p, --port PORT    port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
      --reply MODE   none (default), ack ("ack:" + the data) or echo (the data)
  -c, --count N      exit after N datagrams
      --json         print NDJSON: listening, then one object per datagram
  -h, --help         show this help

Ctrl-C or SIGTERM exits 0. Exit 2 on bad options or bind errors.`;

/** The `udp listen` command. */
export const listenCommand: Command = {
  name: "listen",
  summary: "print datagrams received (text or hex dump); optionally ack or echo them",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs("listen", args, {
      host: { type: "string" },
      port: { type: "string", short: "p" },
      reply: { type: "string" },
      count: { type: "string", short: "c" },
      json: { type: "boolean" },
    });
    if (values.help) {
      console.log(HELP);
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
    const socket = UdpSocket.bind(address.hostname, address.port);
    const where = formatAddress(socket.address);
    console.log(
      json ? JSON.stringify({ type: "listening", address: where }) : `Listening on ${where}`,
    );
    let received = 0;
    const stop = interrupted();
    const loop = socket.receiveEach(async (data, from) => {
      received++;
      const source = formatAddress(from);
      const text = payloadText(data);
      if (json) {
        const body = text === null ? { hex: data.toHex() } : { text };
        console.log(
          JSON.stringify({ type: "datagram", from: source, bytes: data.length, ...body }),
        );
      } else if (text !== null) {
        console.log(`From ${source} (${data.length} bytes): ${JSON.stringify(text)}`);
      } else {
        console.log(`From ${source} (${data.length} bytes):\n${hexDump(data)}`);
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
