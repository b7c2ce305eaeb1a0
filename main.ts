/**
 * The `udp` executable: `deno compile` builds it into one self-contained binary.
 *
 * @module
 */

import { enterStartDirectory, main } from "./lib/cli/mod.ts";
import { giveUpFfiPermission, hardwareCrc32c } from "./lib/net/mod.ts";
import { crc32cShift, useCrc32cUpdate } from "./lib/wire/mod.ts";

if (import.meta.main) {
  // The FFI permission is for the C library's socket calls only: bind them, then give it up.
  giveUpFfiPermission();
  // Every frame's check by the CPU's crc32 instruction where it has one (set up just before),
  // a long one in three lanes joined by the JavaScript's shift.
  useCrc32cUpdate(hardwareCrc32c(crc32cShift));
  // Relative paths start where the user typed the command, also under `deno task udp`.
  const problem = enterStartDirectory(import.meta.url);
  if (problem !== null) {
    console.error(`udp: ${problem}`);
    Deno.exit(2);
  }
  // Read and write permission end once the command's files are open (lib/cli/main.ts).
  Deno.exit(await main(Deno.args));
}
