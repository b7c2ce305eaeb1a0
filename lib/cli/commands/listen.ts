/**
 * `udp listen`: print every datagram received (netcat's listener) and optionally reply.
 *
 * @module
 */

import { formatAddress, resolveListenAddress } from "../../net/address.ts";
import { defineCommand } from "../command.ts";
import { hexDump, payloadText } from "../format.ts";
import { option, section } from "../options.ts";
import { printJson, printLine } from "../output.ts";
import { parseChoice, parseWholeNumber } from "../parse.ts";
import { ackReply } from "../../reflector/reflector.ts";
import { interrupted } from "../signals.ts";
import { describeReceiveBuffer } from "../receive_buffer.ts";
import { jsonOption, listenAddressOptions, receiveBufferOption } from "../shared_options.ts";
import { errorKind, type PeerAddress, UdpSocket } from "../../net/socket.ts";

const REPLY_MODES = ["none", "ack", "echo"] as const;

type ReplyMode = typeof REPLY_MODES[number];

const OPTIONS = {
  address: listenAddressOptions(),
  reply: option<ReplyMode>({
    long: "reply",
    value: "MODE",
    help: `none (default), ack ("ack:" + the data) or echo (the data)`,
    parse: (text) => parseChoice("--reply mode", text, REPLY_MODES),
    default: "none",
  }),
  count: option({
    long: "count",
    short: "c",
    value: "N",
    help: "exit after N datagrams",
    parse: (text) => parseWholeNumber("count", text, 1, Number.MAX_SAFE_INTEGER),
    default: Infinity,
  }),
  receiveBuffer: receiveBufferOption(),
  json: jsonOption("print NDJSON: listening, then one object per datagram"),
};

/** The `udp listen` command. */
export const listenCommand = defineCommand({
  name: "listen",
  summary: "print datagrams received (text or hex dump); optionally ack or echo them",
  help: [
    `Usage: udp listen [--host ADDR] [--port PORT] [--reply none|ack|echo] [-c N] [--rcvbuf BYTES]
                  [--json]

Print every datagram received, with its source: text as a quoted string, anything else as a
hex dump. Optionally answer each one.`,
    section("Options:", OPTIONS, 21),
    "Ctrl-C or SIGTERM exits 0. Exit 2 on bad options or bind errors.",
  ],
  options: OPTIONS,
  async run({ address, reply, count, receiveBuffer, json }, _positionals, context) {
    const { hostname, port } = await resolveListenAddress(address.host, address.port);
    context.filesOpened();
    const socket = UdpSocket.bind(hostname, port);
    const granted = receiveBuffer === undefined ? null : socket.setReceiveBuffer(receiveBuffer);
    const where = formatAddress(socket.address);
    // Before the line that says it listens: a supervisor may send SIGTERM as soon as it reads it.
    const stop = interrupted();
    if (json) printJson({ type: "listening", address: where });
    else printLine(`Listening on ${where}`);
    if (receiveBuffer !== undefined) {
      if (json) printJson({ type: "receive_buffer", asked: receiveBuffer, granted });
      else printLine(describeReceiveBuffer(receiveBuffer, granted));
    }
    let received = 0;
    const loop = socket.receiveEach(async (data, from, _arrivedAt, meta) => {
      received++;
      printDatagram(data, formatAddress(from), json);
      if (reply !== "none") await answer(socket, reply, data, from, meta.local);
      if (received >= count) socket.close();
    });
    await Promise.race([loop, stop.promise]);
    stop.dispose();
    socket.close();
    await loop;
    return 0;
  },
});

/** One datagram, as text or a hex dump (or one NDJSON object). */
function printDatagram(data: Uint8Array, source: string, json: boolean): void {
  const text = payloadText(data);
  if (json) {
    const body = text === null ? { hex: data.toHex() } : { text };
    printJson({ type: "datagram", from: source, bytes: data.length, ...body });
  } else if (text !== null) {
    printLine(`From ${source} (${data.length} bytes): ${JSON.stringify(text)}`);
  } else {
    printLine(`From ${source} (${data.length} bytes):\n${hexDump(data)}`);
  }
}

/** Sends the --reply answer to a datagram; a failure is one line on stderr. */
async function answer(
  socket: UdpSocket,
  reply: Exclude<ReplyMode, "none">,
  data: Uint8Array,
  from: PeerAddress,
  local: string | null,
): Promise<void> {
  try {
    // From the address it was sent to (on 0.0.0.0 or ::), so the sender knows the answer.
    await socket.sendReply(reply === "echo" ? data : ackReply(data), from, -1, local);
  } catch (error) {
    console.error(`udp listen: reply to ${formatAddress(from)} failed: ${errorKind(error)}`);
  }
}
