/**
 * The runtime flags of the `udp` binary, defined once: in deno.json's `udp` task
 * (`deno run FLAGS main.ts`). `deno task compile` compiles with exactly these flags and the
 * end-to-end tests run `main.ts` with exactly these flags, so what is tested is what ships.
 *
 * @module
 */

import config from "../deno.json" with { type: "json" };

/**
 * The flags between `deno run` and `main.ts` in the `udp` task.
 *
 * @example
 * ```ts
 * import { runtimeFlags } from "./flags.ts";
 * console.log(runtimeFlags().includes("--allow-net")); // true
 * ```
 */
export function runtimeFlags(): string[] {
  const words = config.tasks.udp.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run" || words.at(-1) !== "main.ts") {
    throw new Error(
      `deno.json task "udp" must read "deno run FLAGS main.ts", got: ${config.tasks.udp}`,
    );
  }
  return words.slice(2, -1);
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * How to run `udp ARGS`: the binary in `$UDP_BIN` where set (a compiled one), else `deno run`
 * with exactly the binary's flags on main.ts.
 *
 * @example
 * ```ts
 * import { udpCommand } from "./flags.ts";
 * const [command, args] = udpCommand(["--version"]);
 * console.log(command, args.at(-1)); // deno … --version (or $UDP_BIN --version)
 * ```
 */
export function udpCommand(args: string[]): [string, string[]] {
  const binary = Deno.env.get("UDP_BIN");
  return binary
    ? [binary, args]
    : [Deno.execPath(), ["run", "--quiet", ...runtimeFlags(), MAIN, ...args]];
}
