/**
 * `udp keygen`: make a random 256-bit key for authenticated mode.
 *
 * @module
 */

import { expectPositionals, parseCommandArgs } from "../args.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { printLine } from "../output.ts";
import type { Command, RunContext } from "./command.ts";

const HELP = `Usage: udp keygen [FILE]

Make a random 256-bit key for authenticated mode (udp serve / udp ping --key-file), written
as 64 hex digits to FILE (created with mode 600, never overwritten; anywhere you may write)
or to standard output.

Options:
  -h, --help   show this help`;

/** The `udp keygen` command. */
export const keygenCommand: Command = {
  name: "keygen",
  summary: "make a random key for authenticated mode (--key-file)",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const { values, positionals } = parseCommandArgs("keygen", args, {});
    if (values.help) {
      printLine(HELP);
      return 0;
    }
    const [file] = expectPositionals("keygen", positionals, 0, 1, "[FILE]");
    const key = crypto.getRandomValues(new Uint8Array(32)).toHex() + "\n";
    if (file === undefined) {
      context.filesOpened();
      printLine(key.trimEnd());
      return 0;
    }
    try {
      await Deno.writeTextFile(file, key, { createNew: true, mode: 0o600 });
    } catch (error) {
      const why = error instanceof Deno.errors.AlreadyExists
        ? "it exists already (udp keygen never overwrites a key): remove it, or name a new file"
        : describeFileError(error, "write");
      throw new UsageError(`cannot write '${file}': ${why}`);
    }
    context.filesOpened();
    printLine(`Wrote a 256-bit key to ${file} (mode 600)`);
    return 0;
  },
};
