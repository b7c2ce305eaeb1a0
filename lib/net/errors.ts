/**
 * The error the network layer throws for a problem its caller can act on: an address that does
 * not parse or resolve, a socket that cannot be bound. Turning it into what people see (one line
 * on stderr, exit code 2) is the command line's job, not this layer's.
 *
 * @module
 */

/**
 * A problem with an address or a socket, told in one line that says what is wrong and what to
 * do (e.g. "cannot listen on 127.0.0.1:9999: the port is already in use; …"). `cause` is the
 * underlying error (the resolver's, the operating system's), where there is one.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { NetError } from "./errors.ts";
 * const cause = new Error("Address already in use (os error 98)");
 * const error = new NetError("cannot listen on 127.0.0.1:9999: the port is already in use", {
 *   cause,
 * });
 * strictEqual(error instanceof NetError, true);
 * strictEqual(error.name, "NetError");
 * strictEqual(error.cause, cause);
 * ```
 */
export class NetError extends Error {
  /** Creates the error; `message` must be a single line, `options.cause` the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NetError";
  }
}
