/**
 * Standard output of every command: text lines and NDJSON lines, in one JSON style.
 *
 * A closed pipe ends the run at once and quietly, as SIGPIPE ends ping(8): `udp ping HOST |
 * head -2` exits as soon as `head` has gone, with no message and exit code
 * {@linkcode BROKEN_PIPE_EXIT_CODE} (128 + SIGPIPE, what a shell reports for a program killed
 * by SIGPIPE). Deno ignores SIGPIPE and `console.log` drops write errors silently, so the
 * commands write through here instead, where the error is seen.
 *
 * @module
 */

/** The exit code when standard output is a closed pipe: 128 + SIGPIPE (13). */
export const BROKEN_PIPE_EXIT_CODE = 141;

const encoder = new TextEncoder();

/**
 * Writes `text` and a newline to standard output. When stdout is a closed pipe the process
 * exits at once with {@linkcode BROKEN_PIPE_EXIT_CODE}, printing nothing.
 *
 * @example
 * ```ts
 * import { printLine } from "./output.ts";
 * printLine("Listening on 127.0.0.1:9999");
 * ```
 */
export function printLine(text: string): void {
  writeAll(encoder.encode(text + "\n"));
}

/**
 * Writes `value` as one line of JSON (see {@linkcode toJson}) to standard output, as
 * {@linkcode printLine} does.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { printJson, toJson } from "./output.ts";
 * const reply = { type: "reply", rtt_ms: 0.5487010000000019 };
 * strictEqual(toJson(reply), '{"type":"reply","rtt_ms":0.548701}'); // the line printed:
 * printJson(reply);
 * ```
 */
export function printJson(value: unknown): void {
  printLine(toJson(value));
}

/**
 * The one JSON style of every command's output and of `udp proxy --log`: every key in
 * snake_case (`sendErrors` and `burst-loss` become `send_errors` and `burst_loss`), and
 * times rounded to the nanosecond: a number whose key ends in `_ms` (or any number in an
 * object under such a key, e.g. `rtt_ms.p50`) to 6 decimals, one ending in `_s` to 9. Other
 * fractions keep 15 significant digits, which drops floating-point noise
 * (0.30000000000000004 is 0.3) and nothing else. Whole numbers are never changed.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { toJson } from "./output.ts";
 * strictEqual(
 *   toJson({ sendErrors: 2, rtt_ms: { min: 0.10227100000000378 }, end_s: 1.0000000004 }),
 *   '{"send_errors":2,"rtt_ms":{"min":0.102271},"end_s":1}',
 * );
 * ```
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, normalize);
}

/** The JSON.stringify replacer behind {@linkcode toJson}. */
function normalize(key: string, value: unknown): unknown {
  if (typeof value === "number") return round(value, decimalsFor(key));
  if (!isPlainObject(value)) return value;
  // An object under a key with a unit passes the unit to its unit-less numbers.
  const inherited = decimalsFor(key);
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    const snake = snakeCase(name);
    out[snake] = typeof field === "number" && decimalsFor(snake) === null
      ? round(field, inherited)
      : field;
  }
  return out;
}

function decimalsFor(key: string): number | null {
  if (/(^|_)ms$/.test(key)) return 6;
  if (/(^|_)s$/.test(key)) return 9;
  return null;
}

function round(value: number, decimals: number | null): number {
  if (!Number.isFinite(value) || Number.isInteger(value)) return value;
  return decimals === null ? Number(value.toPrecision(15)) : Number(value.toFixed(decimals));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A key in snake_case: `sendErrors` → `send_errors`, `unsupported-version` →
 * `unsupported_version`; snake_case keys are kept as they are.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { snakeCase } from "./output.ts";
 * strictEqual(snakeCase("reorderGap"), "reorder_gap");
 * strictEqual(snakeCase("too-many-clients"), "too_many_clients");
 * ```
 */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
}

function writeAll(bytes: Uint8Array): void {
  try {
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) Deno.exit(BROKEN_PIPE_EXIT_CODE);
    throw error;
  }
}
