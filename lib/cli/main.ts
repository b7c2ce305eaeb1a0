/**
 * The `udp` command line: dispatches to a subcommand and turns every failure into one line
 * on stderr with exit code 2. Standard output goes through lib/cli/output.ts (a closed pipe ends
 * the run quietly with exit code 141); file access ends where the command's files are open.
 *
 * @module
 */

import config from "../../deno.json" with { type: "json" };
import { closestMatch } from "./args.ts";
import { UsageError } from "./errors.ts";
import { giveUpFileAccess } from "./files.ts";
import { printLine } from "./output.ts";
import { PROTOCOL_VERSION } from "../wire/protocol.ts";
import { crc32cAccelerated } from "../wire/crc32c.ts";
import { defaultBackend } from "../net/socket.ts";
import { NetError, udpOffload } from "../net/mod.ts";
import type { Command, RunContext } from "./command.ts";
import { benchCommand } from "./commands/bench.ts";
import { keygenCommand } from "./commands/keygen.ts";
import { listenCommand } from "./commands/listen.ts";
import { pingCommand } from "./commands/ping.ts";
import { proxyCommand } from "./commands/proxy.ts";
import { sendCommand } from "./commands/send.ts";
import { serveCommand } from "./commands/serve.ts";
import { monitorCommand } from "./commands/monitor.ts";
import { mtuCommand } from "./commands/mtu.ts";
import { natCommand } from "./commands/nat.ts";

/** The version of this build, from deno.json. */
export const VERSION: string = config.version;

const COMMANDS: readonly Command[] = [
  serveCommand,
  pingCommand,
  monitorCommand,
  mtuCommand,
  natCommand,
  sendCommand,
  listenCommand,
  benchCommand,
  proxyCommand,
  keygenCommand,
];

const HELP =
  `udp ${VERSION}: a UDP toolkit. Does UDP get through, and with what loss, latency, jitter,
reordering and duplication?

Usage: udp COMMAND [OPTIONS]

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(8)}${command.summary}`).join("\n")}

Options:
  -h, --help       show this help (udp COMMAND --help for a command's options)
  -V, --version    show the version

Example: udp serve   (on one host)    then   udp ping HOST -c 5   (on another)`;

/**
 * Runs the CLI with `args` (without the program name) and resolves with the exit code. The
 * command gives up read and write permission for the rest of the process's life as soon as
 * its files are open (see {@linkcode RunContext}).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { main } from "./main.ts";
 * strictEqual(await main(["--version"]), 0);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" ? COMMANDS.find((command) => command.name === rest[0]) : null;
    printLine(topic ? topic.help : HELP);
    return 0;
  }
  if (first === "-V" || first === "--version") {
    printLine(`udp ${VERSION} (protocol version ${PROTOCOL_VERSION})`);
    printLine(`sockets: ${describeBackend()}`);
    printLine(
      `checks: CRC-32C ${
        crc32cAccelerated() ? "by the CPU's crc32 instruction (SSE4.2)" : "in JavaScript"
      }`,
    );
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === first);
  if (command === undefined) {
    console.error(`udp: ${describeUnknown(first)} (see 'udp --help')`);
    return 2;
  }
  try {
    return await command.run(rest, FILE_ACCESS_ENDS);
  } catch (error) {
    console.error(`udp ${command.name}: ${describeError(error)}`);
    return 2;
  }
}

/** The one place file access ends: every command calls filesOpened() once its files are open
 * and before its first datagram. */
const FILE_ACCESS_ENDS: RunContext = { filesOpened: giveUpFileAccess };

function describeUnknown(word: string): string {
  const option = word.startsWith("-");
  const names = COMMANDS.map((c) => c.name);
  const guess = closestMatch(word, option ? ["--help", "--version"] : [...names, "help"]);
  return `unknown ${option ? "option" : "command"} '${word}': ` +
    (guess ? `did you mean '${guess}'?` : `use one of ${names.join(", ")}`);
}

function describeBackend(): string {
  if (defaultBackend() === "deno") return "Deno.listenDatagram";
  const ffi = Deno.permissions.querySync({ name: "ffi" }).state;
  return `native (the C library's socket calls through FFI; FFI permission ${
    ffi === "granted" ? "held" : "given up"
  }); offload: ${describeOffload()}`;
}

/** Which UDP offloads the native sockets use, and why not the others. */
function describeOffload(): string {
  const { gso, gro, reason } = udpOffload();
  const used = [gso ? "GSO" : "", gro ? "GRO" : ""].filter((name) => name).join(" and ");
  return reason === null ? used : `${used || "none"} (${reason})`;
}

function describeError(error: unknown): string {
  if (error instanceof UsageError || error instanceof NetError) return error.message;
  if (error instanceof Deno.errors.NotCapable) {
    return `a permission is missing (${
      firstLine(error)
    }); run the compiled binary or 'deno task udp'`;
  }
  return `unexpected error: ${firstLine(error)}`;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0];
}
