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
 * import { UsageError } from "./errors.ts";
 * try {
 *   throw new UsageError("count must be a positive whole number, got '0'");
 * } catch (error) {
 *   console.log(error instanceof UsageError); // true
 * }
 * ```
 */
export class UsageError extends Error {
  /** Creates the error; `message` must be a single line. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
