/**
 * The `udp` command line: {@linkcode main} runs it (main.ts, the executable, is a thin shell
 * around it). Every failure it reports is one line on stderr with exit code 2 (a
 * {@linkcode UsageError} for a bad invocation); keys for authenticated mode come from a file or
 * from `$UDP_KEY`, never from the command line. This is the folder's face: what the rest of
 * `udp`, its scripts and the library may use of lib/cli/.
 *
 * @example Run the CLI as `udp --version` does
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { main, VERSION } from "./mod.ts";
 * strictEqual(await main(["--version"]), 0);
 * strictEqual(typeof VERSION, "string");
 * ```
 *
 * @module
 */

export { main, VERSION } from "./main.ts";
export { UsageError } from "./errors.ts";
export { enterStartDirectory, startDirectory, type StartPlace } from "./files.ts";
export { KEY_ENV, parseKey, readKeyEnv, readKeyFile } from "./keys.ts";
export { type Counts, type ServeStats, statsText } from "./commands/serve.ts";
