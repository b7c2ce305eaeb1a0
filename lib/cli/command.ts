/**
 * What a subcommand of the `udp` CLI is, and {@linkcode defineCommand}, which makes one from
 * its declared options: the help is generated from them, and the command's own code gets their
 * typed values.
 *
 * @module
 */

import { expectPositionals, parseCommandArgs } from "./args.ts";
import {
  flagSpecs,
  type HelpSection,
  helpText,
  optionsListed,
  type OptionTable,
  type OptionValues,
  readOptions,
} from "./options.ts";
import { printLine } from "./output.ts";

/** What the CLI gives a command to run with. */
export interface RunContext {
  /**
   * The command calls this once, when every file it names is open (a key read, `--file`
   * read, a key or `--log` file created) and before its first datagram; commands without
   * files call it before their first socket. The CLI gives up read and write permission here
   * for the rest of the run (lib/cli/files.ts, `giveUpFileAccess()`).
   */
  filesOpened(): void;
}

/**
 * A subcommand of the `udp` CLI.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import type { Command } from "./command.ts";
 * const hello: Command = {
 *   name: "hello",
 *   summary: "say hello",
 *   help: "Usage: udp hello",
 *   run: () => Promise.resolve(0),
 * };
 * strictEqual(await hello.run([], { filesOpened() {} }), 0);
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
   * output goes through lib/cli/output.ts; `context.filesOpened()` marks where file access
   * ends.
   */
  run(args: string[], context: RunContext): Promise<number>;
}

/** How many arguments that are not options a command takes, and what the usage calls them. */
export interface Positionals {
  /** The fewest. */
  readonly min: number;
  /** The most. */
  readonly max: number;
  /** Their names in the usage line, e.g. "HOST[:PORT] [MESSAGE]". */
  readonly usage: string;
}

/** A command as {@linkcode defineCommand} takes it. */
export interface CommandDefinition<S extends OptionTable> {
  /** The word after `udp`. */
  readonly name: string;
  /** One line for `udp --help`. */
  readonly summary: string;
  /**
   * The parts of `udp NAME --help`: paragraphs of text and sections listing options (see
   * {@linkcode helpText}). Every option of `options` is listed in one of the sections.
   */
  readonly help: readonly (string | HelpSection)[];
  /** Every option the command takes. */
  readonly options: S;
  /** The arguments that are not options (default: none). */
  readonly positionals?: Positionals;
  /** Runs the command with its options' typed values; resolves with the exit code. */
  run(options: OptionValues<S>, positionals: string[], context: RunContext): Promise<number>;
}

const NO_POSITIONALS: Positionals = { min: 0, max: 0, usage: "" };

/**
 * Makes a command from its definition. Running it checks the syntax (unknown options get "did
 * you mean"), prints the help for `--help` or `-h`, checks the number of positionals, reads
 * every option's value (the first bad one is the error), then runs the definition's `run`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { defineCommand } from "./command.ts";
 * import { option, section } from "./options.ts";
 * import { parseWholeNumber } from "./parse.ts";
 * const options = {
 *   count: option({
 *     long: "count",
 *     short: "c",
 *     value: "N",
 *     help: "say it N times",
 *     parse: (text) => parseWholeNumber("count", text, 1, 10),
 *     default: 1,
 *   }),
 * };
 * let said = 0;
 * const hello = defineCommand({
 *   name: "hello",
 *   summary: "say hello",
 *   help: ["Usage: udp hello [-c N]", section("Options:", options, 17)],
 *   options,
 *   run: ({ count }) => {
 *     said = count;
 *     return Promise.resolve(0);
 *   },
 * });
 * strictEqual(hello.help.split("\n")[3], "  -c, --count N  say it N times");
 * strictEqual(await hello.run(["-c", "3"], { filesOpened() {} }), 0);
 * strictEqual(said, 3);
 * ```
 */
export function defineCommand<S extends OptionTable>(definition: CommandDefinition<S>): Command {
  const { name, summary, options } = definition;
  const listed = optionsListed(definition.help);
  const unlisted = Object.keys(options).filter((key) => !listed.has(options[key]));
  if (unlisted.length > 0 || listed.size !== Object.keys(options).length) {
    throw new Error(`udp ${name}: the help and the options differ (${unlisted.join(", ")})`);
  }
  const help = helpText(...definition.help);
  const flags = flagSpecs(options);
  const { min, max, usage } = definition.positionals ?? NO_POSITIONALS;
  return {
    name,
    summary,
    help,
    async run(args: string[], context: RunContext): Promise<number> {
      const parsed = parseCommandArgs(name, args, flags);
      if (parsed.values.help) {
        printLine(help);
        return 0;
      }
      const positionals = expectPositionals(name, parsed.positionals, min, max, usage);
      return await definition.run(readOptions(options, parsed.values), positionals, context);
    },
  };
}
