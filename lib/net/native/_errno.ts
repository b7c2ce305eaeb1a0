/**
 * errno values and the errors Deno throws for them, so that both backends fail alike.
 *
 * @module
 */

/** `EINTR`: a signal interrupted the call; it is made again. */
export const EINTR = 4;
/** `EAGAIN`: nothing to read without waiting. */
export const EAGAIN = 11;
/** `EMSGSIZE`: longer than any datagram can be. */
export const EMSGSIZE = 90;

// errno values and the texts Deno (Rust's io::Error) gives them.
const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  11: "Resource temporarily unavailable",
  13: "Permission denied",
  19: "No such device",
  22: "Invalid argument",
  90: "Message too long",
  97: "Address family not supported by protocol",
  98: "Address already in use",
  99: "Cannot assign requested address",
  100: "Network is down",
  101: "Network is unreachable",
  105: "No buffer space available",
  111: "Connection refused",
  113: "No route to host",
};

/**
 * The error Deno would throw for an errno: the same class (`Deno.errors.AddrInUse`, …) and
 * message ("Address already in use (os error 98)"), so callers need not know the backend.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { osError } from "./mod.ts";
 * strictEqual(osError(90).message, "Message too long (os error 90)");
 * strictEqual(osError(98) instanceof Deno.errors.AddrInUse, true);
 * ```
 */
export function osError(errno: number): Error {
  const message = `${ERRNO_TEXT[errno] ?? "Unknown error"} (os error ${errno})`;
  switch (errno) {
    case 1:
    case 13:
      return new Deno.errors.PermissionDenied(message);
    case 98:
      return new Deno.errors.AddrInUse(message);
    case 99:
      return new Deno.errors.AddrNotAvailable(message);
    case 111:
      return new Deno.errors.ConnectionRefused(message);
    case 19:
      return new Deno.errors.NotFound(message);
    default:
      return new Error(message);
  }
}
