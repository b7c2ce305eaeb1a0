/**
 * The `udp` executable: `deno compile` builds it into one self-contained binary.
 *
 * @module
 */

import { main } from "./lib/cli.ts";
import { giveUpFfiPermission } from "./lib/native_socket.ts";

if (import.meta.main) {
  // The FFI permission is for the C library's socket calls only: bind them, then give it up.
  giveUpFfiPermission();
  Deno.exit(await main(Deno.args));
}
