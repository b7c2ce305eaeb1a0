/**
 * What every subcommand module exports.
 *
 * @module
 */

/** What the CLI gives a command to run with. */
export interface RunContext {
  /**
   * The command calls this once, when every file it names is open (a key read, `--file`
   * read, a key or `--log` file created) and before its first datagram; commands without
   * files call it before their first socket. The CLI gives up read and write permission here
   * for the rest of the run (lib/files.ts, `giveUpFileAccess()`).
   */
  filesOpened(): void;
}

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
  /**
   * Runs the command and resolves with its exit code; throws UsageError for exit 2. Standard
   * output goes through lib/output.ts; `context.filesOpened()` marks where file access ends.
   */
  run(args: string[], context: RunContext): Promise<number>;
}
