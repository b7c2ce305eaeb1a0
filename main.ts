/**
 * The `udp` executable: `deno compile` builds it into one self-contained binary.
 *
 * @module
 */

import { main } from "./lib/cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
