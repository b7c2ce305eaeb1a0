/**
 * `udp keygen`: make a random 256-bit key for authenticated mode.
 *
 * @module
 */

import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { section } from "../options.ts";
import { printLine } from "../output.ts";

/** The `udp keygen` command. */
export const keygenCommand = defineCommand({
  name: "keygen",
  summary: "make a random key for authenticated mode (--key-file)",
  help: [
    `Usage: udp keygen [FILE]

Make a random 256-bit key for authenticated mode (udp serve / udp ping --key-file), written
as 64 hex digits to FILE (created with mode 600, never overwritten; anywhere you may write)
or to standard output.`,
    section("Options:", {}, 15),
  ],
  options: {},
  positionals: { min: 0, max: 1, usage: "[FILE]" },
  async run(_options, [file], context) {
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
});
