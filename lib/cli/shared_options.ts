/**
 * The options several commands take, declared once: the address family (-4 / -6), the key
 * (--key-file F / --key-env), --json, the socket's receive buffer (--rcvbuf BYTES) and the
 * address to listen on (--host / --port). Where the commands word an option's help their own
 * way, they pass it in; the names, the parsing and the checks are the same everywhere.
 *
 * @module
 */

import { STAMP_PORT } from "../wire/mod.ts";
import { DEFAULT_PORT, type Family } from "../net/address.ts";
import { UsageError } from "./errors.ts";
import { KEY_ENV, type KeySource } from "./keys.ts";
import { flag, group, helpRow, type Option, option, text } from "./options.ts";
import { parseReceiveBuffer } from "./parse.ts";
import { requireReceiveBufferSupport } from "./receive_buffer.ts";

/**
 * `-4` / `-6`: use IPv4 / IPv6 only when resolving HOST (undefined: either); both at once is
 * an error. One row in the help.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { familyOption } from "./shared_options.ts";
 * const family = familyOption();
 * strictEqual(family.read({ ipv6: true }), "ipv6");
 * strictEqual(family.read({}), undefined);
 * throws(() => family.read({ ipv4: true, ipv6: true }), {
 *   message: "-4 and -6 exclude each other",
 * });
 * strictEqual(family.rows[0].label, "-4, -6");
 * ```
 */
export function familyOption(): Option<Family | undefined> {
  return group(
    {
      ipv4: flag({ long: "ipv4", short: "4", help: "" }),
      ipv6: flag({ long: "ipv6", short: "6", help: "" }),
    },
    ({ ipv4, ipv6 }) => {
      if (ipv4 && ipv6) throw new UsageError("-4 and -6 exclude each other");
      return ipv4 ? "ipv4" : ipv6 ? "ipv6" : undefined;
    },
    [helpRow("-4, -6", "use IPv4 / IPv6 only when resolving HOST")],
  );
}

/**
 * `--key-file F` / `--key-env`: where the key of authenticated mode comes from (null: no key);
 * both at once is an error. `keyFileHelp` says what the key does for the command.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
 * import { keyOptions } from "./shared_options.ts";
 * const key = keyOptions("authenticated mode");
 * assertEquals(key.read({ "key-file": "udp.key" }), { file: "udp.key" });
 * assertEquals(key.read({ "key-env": true }), { env: true });
 * assertEquals(key.read({}), null);
 * throws(() => key.read({ "key-file": "udp.key", "key-env": true }), {
 *   message: "give either --key-file or --key-env, not both",
 * });
 * ```
 */
export function keyOptions(keyFileHelp: string): Option<KeySource> {
  return group(
    {
      file: option({ long: "key-file", value: "F", help: keyFileHelp, parse: text }),
      env: flag({ long: "key-env", help: `authenticated mode with the key from $${KEY_ENV}` }),
    },
    ({ file, env }): KeySource => {
      if (file !== undefined && env) {
        throw new UsageError("give either --key-file or --key-env, not both");
      }
      return file !== undefined ? { file } : env ? { env: true } : null;
    },
  );
}

/**
 * `--json`: NDJSON output instead of text; `help` says what the command prints.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { jsonOption } from "./shared_options.ts";
 * strictEqual(jsonOption("print NDJSON").read({ json: true }), true);
 * ```
 */
export function jsonOption(help: string): Option<boolean> {
  return flag({ long: "json", help });
}

/**
 * `--rcvbuf BYTES`: the socket's receive buffer, in bytes (undefined: the system's default).
 * Where the sockets cannot set it (Deno's own), giving it is an error.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { receiveBufferOption } from "./shared_options.ts";
 * strictEqual(receiveBufferOption().read({}), undefined);
 * ```
 */
export function receiveBufferOption(
  help = "the socket's receive buffer (e.g. 4M); says what the kernel granted",
): Option<number | undefined> {
  const rcvbuf = option({ long: "rcvbuf", value: "BYTES", help, parse: parseReceiveBuffer });
  return group({ rcvbuf }, ({ rcvbuf }) => {
    if (rcvbuf !== undefined) requireReceiveBufferSupport();
    return rcvbuf;
  });
}

/** Where to listen, as given: resolved by `resolveListenAddress()` (lib/net/address.ts). */
export interface ListenAddress {
  /** `--host ADDR`, or undefined for the default. */
  readonly host: string | undefined;
  /** `--port PORT`, or undefined for the default. */
  readonly port: string | undefined;
}

/**
 * `--host ADDR` / `-p, --port PORT`: where `udp serve` and `udp listen` listen.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { listenAddressOptions } from "./shared_options.ts";
 * assertEquals(listenAddressOptions().read({ port: "0" }), { host: undefined, port: "0" });
 * ```
 */
export function listenAddressOptions(): Option<ListenAddress> {
  return group(
    {
      host: option({
        long: "host",
        value: "ADDR",
        help: "address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)",
        parse: text,
      }),
      port: option({
        long: "port",
        short: "p",
        value: "PORT",
        help:
          `port to listen on (default ${DEFAULT_PORT}, ${STAMP_PORT} with --stamp; 0 picks a free one)`,
        parse: text,
      }),
    },
    (address) => address,
  );
}
