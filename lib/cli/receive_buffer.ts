/**
 * `--rcvbuf BYTES` on serve, listen, ping and bench: the socket's receive buffer, which decides
 * how big a burst the kernel holds before it drops datagrams (counted as kernel drops). The
 * option is declared in lib/cli/shared_options.ts and its value parsed by lib/cli/parse.ts.
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import { defaultBackend } from "../net/socket.ts";

/**
 * Throws a UsageError where `--rcvbuf` cannot be honoured: Deno's own sockets have no such
 * option. Call it before opening the socket.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { defaultBackend } from "../net/socket.ts";
 * import { requireReceiveBufferSupport } from "./receive_buffer.ts";
 * if (defaultBackend() === "native") requireReceiveBufferSupport(); // fine
 * else throws(() => requireReceiveBufferSupport(), /^UsageError: --rcvbuf needs the native/);
 * ```
 */
export function requireReceiveBufferSupport(): void {
  if (defaultBackend() !== "native") {
    throw new UsageError(
      "--rcvbuf needs the native sockets (Linux x86-64 with glibc, and --allow-ffi): leave it out here",
    );
  }
}

/**
 * The line that says what the kernel granted for `--rcvbuf` (`granted` null: it could not be
 * set).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { describeReceiveBuffer } from "./receive_buffer.ts";
 * strictEqual(
 *   describeReceiveBuffer(4096, 8192),
 *   "receive buffer: asked for 4096 bytes, the kernel granted 8192 (Linux counts its bookkeeping too)",
 * );
 * ```
 */
export function describeReceiveBuffer(asked: number, granted: number | null): string {
  if (granted === null) {
    return `receive buffer: asked for ${asked} bytes, but it cannot be set here`;
  }
  const note = granted === 2 * asked
    ? " (Linux counts its bookkeeping too)"
    : granted < 2 * asked
    ? " (capped by net.core.rmem_max: raise it, or run with CAP_NET_ADMIN)"
    : "";
  return `receive buffer: asked for ${asked} bytes, the kernel granted ${granted}${note}`;
}
