/**
 * The `udp` command line: dispatches to a subcommand and turns every failure into one line
 * on stderr with exit code 2.
 *
 * @module
 */

import config from "../deno.json" with { type: "json" };
import { UsageError } from "./errors.ts";
import { PROTOCOL_VERSION } from "./protocol.ts";
import { defaultBackend } from "./socket.ts";
import type { Command } from "./commands/command.ts";
import { benchCommand } from "./commands/bench.ts";
import { keygenCommand } from "./commands/keygen.ts";
import { listenCommand } from "./commands/listen.ts";
import { pingCommand } from "./commands/ping.ts";
import { proxyCommand } from "./commands/proxy.ts";
import { sendCommand } from "./commands/send.ts";
import { serveCommand } from "./commands/serve.ts";

/** The version of this build, from deno.json. */
export const VERSION: string = config.version;

const COMMANDS: readonly Command[] = [
  serveCommand,
  pingCommand,
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
 * Runs the CLI with `args` (without the program name) and resolves with the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * const code = await main(["--version"]);
 * console.log(code); // 0
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" ? COMMANDS.find((command) => command.name === rest[0]) : null;
    console.log(topic ? topic.help : HELP);
    return 0;
  }
  if (first === "-V" || first === "--version") {
    console.log(`udp ${VERSION} (protocol version ${PROTOCOL_VERSION})`);
    console.log(`sockets: ${describeBackend()}`);
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === first);
  if (command === undefined) {
    const what = first.startsWith("-") ? "option" : "command";
    console.error(
      `udp: unknown ${what} '${first}': use one of ${
        COMMANDS.map((c) => c.name).join(", ")
      } (see 'udp --help')`,
    );
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    console.error(`udp ${command.name}: ${describeError(error)}`);
    return 2;
  }
}

function describeBackend(): string {
  if (defaultBackend() === "deno") return "Deno.listenDatagram";
  const ffi = Deno.permissions.querySync({ name: "ffi" }).state;
  return `native (the C library's socket calls through FFI; FFI permission ${
    ffi === "granted" ? "held" : "given up"
  })`;
}

function describeError(error: unknown): string {
  if (error instanceof UsageError) return error.message;
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
