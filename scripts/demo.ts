/**
 * `deno task demo`: start a local reflector, ping it five times with the real CLI, and print
 * what the reflector counted, so a first run shows the whole job on one machine.
 *
 * @module
 */

import { main, statsText } from "../lib/cli/mod.ts";
import { formatAddress } from "../lib/net/address.ts";
import { Reflector } from "../lib/reflector/reflector.ts";

const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
const address = formatAddress(reflector.address);
console.log(`$ udp serve --port 0        (a reflector, started in this process)`);
console.log(`Listening on ${address}\n`);
const args = ["ping", address, "-c", "5", "-i", "0.2"];
console.log(`$ udp ${args.join(" ")}`);
const code = await main(args);
await reflector.close();
console.log(`\n(the reflector, stopped)${statsText(reflector.stats)}`);
Deno.exit(code);
