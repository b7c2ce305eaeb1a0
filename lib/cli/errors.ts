/**
 * The error type the CLI turns into one line on stderr and exit code 2.
 *
 * @module
 */

/**
 * A problem with what the user asked for (a bad flag, address, size, file …) or with the
 * environment (a port in use). Its message is one line that says what is wrong and what to do.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { UsageError } from "./errors.ts";
 * throws(() => {
 *   throw new UsageError("invalid count '0': use a whole number from 1 to 4,294,967,295");
 * }, UsageError);
 * strictEqual(new UsageError("bad").name, "UsageError");
 * ```
 */
export class UsageError extends Error {
  /** Creates the error; `message` must be a single line. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
