/**
 * One-line descriptions of file errors, shared by every option that names a file.
 *
 * @module
 */

/**
 * Why a file could not be opened, for people: "no such file", "permission denied", … The
 * binary may only touch files below the directory it runs in, so a refusal says so.
 *
 * @example
 * ```ts
 * import { describeFileError } from "./files.ts";
 * console.log(describeFileError(new Deno.errors.NotFound("x"))); // no such file
 * ```
 */
export function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Deno.errors.NotCapable) {
    return "udp only reads and writes files below the directory it runs in: run it from there, or use standard input";
  }
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\(os error \d+\).*$/, "").split("\n")[0];
}
