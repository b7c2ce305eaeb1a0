/**
 * The count of open native sockets, which Deno's resource sanitizer cannot see.
 *
 * @module
 */

// Deno's resource sanitizer cannot see these file descriptors, so the tests count them.
export const openSockets = { count: 0 };

/**
 * How many native sockets are open: the tests check it is back to 0, as Deno's resource
 * sanitizer does for its own sockets.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { openNativeSockets } from "./mod.ts";
 * strictEqual(openNativeSockets(), 0);
 * ```
 */
export function openNativeSockets(): number {
  return openSockets.count;
}
