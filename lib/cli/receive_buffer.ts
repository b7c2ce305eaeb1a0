/**
 * `--rcvbuf BYTES` on serve, listen, ping and bench: the socket's receive buffer, which decides
 * how big a burst the kernel holds before it drops datagrams (counted as kernel drops).
 *
 * @module
 */

import { parseWholeNumber } from "./args.ts";
import { UsageError } from "./errors.ts";
import { defaultBackend } from "../net/socket.ts";

/** The largest value the kernel takes (an int). */
const MAX_RECEIVE_BUFFER = 0x7fff_ffff;

/**
 * Parses `--rcvbuf BYTES`: a whole number of bytes, with an optional k or M (×1024).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseReceiveBuffer } from "./receive_buffer.ts";
 * strictEqual(parseReceiveBuffer("4M"), 4 * 1024 * 1024);
 * strictEqual(parseReceiveBuffer("212992"), 212_992);
 * ```
 */
export function parseReceiveBuffer(text: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  const scale = match?.[2] === "" ? 1 : /k/i.test(match?.[2] ?? "") ? 1024 : 1024 * 1024;
  const bytes = match ? Number(match[1]) * scale : NaN;
  if (!(bytes >= 1024 && bytes <= MAX_RECEIVE_BUFFER)) {
    return parseWholeNumber("rcvbuf", text, 1024, MAX_RECEIVE_BUFFER); // throws, with the range
  }
  return bytes;
}

/**
 * Throws a UsageError where `--rcvbuf` cannot be honoured: Deno's own sockets have no such
 * option. Call it before opening the socket.
 *
 * @example
 * ```ts ignore
 * import { requireReceiveBufferSupport } from "./receive_buffer.ts";
 * requireReceiveBufferSupport();
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
