/**
 * What every subcommand module exports.
 *
 * @module
 */

/**
 * A subcommand of the `udp` CLI.
 *
 * @example
 * ```ts
 * import type { Command } from "./command.ts";
 * const hello: Command = {
 *   name: "hello",
 *   summary: "say hello",
 *   help: "Usage: udp hello",
 *   run: () => Promise.resolve(0),
 * };
 * console.log(hello.name); // hello
 * ```
 */
export interface Command {
  /** The word after `udp`. */
  name: string;
  /** One line for `udp --help`. */
  summary: string;
  /** The full text of `udp NAME --help`. */
  help: string;
  /** Runs the command and resolves with its exit code; throws UsageError for exit 2. */
  run(args: string[]): Promise<number>;
}
