/**
 * Command-line parsing on top of `node:util` parseArgs, with one-line errors for every bad
 * option or value.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import type { Family } from "../net/address.ts";
import { maxPayloadSize, TAG_SIZE } from "../wire/protocol.ts";

/** One option of a command. */
export interface OptionSpec {
  /** "boolean" for a flag, "string" for an option that takes a value. */
  type: "boolean" | "string";
  /** A one-letter alias. */
  short?: string;
}

/** Parsed options and positionals. */
export interface ParsedArgs {
  /** Option values by long name. */
  values: Record<string, string | boolean | undefined>;
  /** Arguments that are not options. */
  positionals: string[];
}

/**
 * Parses `args` against `options`; every problem becomes a UsageError naming the command.
 * `--help` / `-h` is always accepted.
 *
 * @example
 * ```ts
 * import { parseCommandArgs } from "./args.ts";
 * const parsed = parseCommandArgs("ping", ["-c", "3", "127.0.0.1"], {
 *   count: { type: "string", short: "c" },
 * });
 * console.log(parsed.values.count, parsed.positionals); // 3 [ "127.0.0.1" ]
 * ```
 */
export function parseCommandArgs(
  command: string,
  args: string[],
  options: Record<string, OptionSpec>,
): ParsedArgs {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError(`${describeParseError(error, options)} (see 'udp ${command} --help')`);
  }
}

function describeParseError(error: unknown, options: Record<string, OptionSpec>): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  const named = /Option '(?:-(\w), )?(--?[\w-]+)/.exec(message);
  const option = named ? named[2] : "option";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const unknown = /Unknown option '([^']+)'/.exec(message)?.[1] ?? "?";
    const names = [...Object.keys(options), "help"].map((name) => `--${name}`);
    const guess = unknown.startsWith("--") ? closestMatch(unknown, names) : null;
    return `unknown option '${unknown}'` + (guess ? `: did you mean '${guess}'?` : "");
  }
  if (message.includes("does not take an argument")) return `option '${option}' takes no value`;
  if (message.includes("argument is ambiguous")) {
    const long = Object.keys(options).find((name) => `--${name}` === option) ??
      Object.entries(options).find(([, spec]) => `-${spec.short}` === option)?.[0];
    return `option '${option}' needs a value; to give one that starts with '-', write --${
      long ?? "OPTION"
    }=VALUE`;
  }
  if (message.includes("argument missing")) {
    const long = named?.[2] ?? option;
    return `option '${long}' needs a value`;
  }
  return message.split("\n")[0];
}

/**
 * Parses a whole number within [min, max] for option `name`.
 *
 * @example
 * ```ts
 * import { parseWholeNumber } from "./args.ts";
 * console.log(parseWholeNumber("count", "5", 1, 100)); // 5
 * ```
 */
export function parseWholeNumber(name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(
      `invalid ${name} '${text}': use a whole number from ${min} to ${max.toLocaleString("en")}`,
    );
  }
  return Number(text);
}

/**
 * Parses a duration in seconds (decimals allowed, e.g. 0.2) and returns milliseconds.
 *
 * @example
 * ```ts
 * import { parseSeconds } from "./args.ts";
 * console.log(parseSeconds("interval", "0.2", true)); // 200
 * ```
 */
export function parseSeconds(name: string, text: string, allowZero: boolean): number {
  const value = /^\d+(\.\d+)?$|^\.\d+$/.test(text) ? Number(text) : NaN;
  const limit = 86400 * 365;
  if (!Number.isFinite(value) || value > limit || (!allowZero && value === 0)) {
    const range = allowZero ? "0 or more" : "more than 0";
    throw new UsageError(`invalid ${name} '${text}': use a number of seconds, ${range}`);
  }
  return value * 1000;
}

/**
 * Checks that `text` is one of `choices`.
 *
 * @example
 * ```ts
 * import { parseChoice } from "./args.ts";
 * console.log(parseChoice("raw", "echo", ["ack", "echo", "ignore"] as const)); // echo
 * ```
 */
export function parseChoice<T extends string>(
  name: string,
  text: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`invalid ${name} '${text}': use one of ${choices.join(", ")}`);
  }
  return text as T;
}

/**
 * Returns the single positional argument a command expects, or throws.
 *
 * @example
 * ```ts
 * import { expectPositionals } from "./args.ts";
 * console.log(expectPositionals("ping", ["h"], 1, 1, "HOST[:PORT]")); // [ "h" ]
 * ```
 */
export function expectPositionals(
  command: string,
  positionals: string[],
  min: number,
  max: number,
  usage: string,
): string[] {
  if (positionals.length < min) {
    throw new UsageError(`missing ${usage} (usage: udp ${command} ${usage})`);
  }
  if (positionals.length > max) {
    throw new UsageError(
      `unexpected argument '${positionals[max]}' (see 'udp ${command} --help')`,
    );
  }
  return positionals;
}

/**
 * The Damerau–Levenshtein distance between two strings (optimal string alignment): how many
 * insertions, deletions, substitutions and swaps of two adjacent characters turn one into the
 * other.
 *
 * @example
 * ```ts
 * import { editDistance } from "./args.ts";
 * console.log(editDistance("pnig", "ping"), editDistance("cuont", "count")); // 1 1
 * console.log(editDistance("serve", "send")); // 3
 * ```
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: distance between the first i characters of a and the first j of b.
  const rows = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidate a mistyped word most likely meant, for "did you mean …?", or null. Case and
 * leading dashes are ignored; a candidate qualifies at an {@linkcode editDistance} of at most
 * 2 and at most a third of its length, and is suggested only when no other is as close.
 *
 * @example
 * ```ts
 * import { closestMatch } from "./args.ts";
 * console.log(closestMatch("pnig", ["serve", "ping", "send"])); // ping
 * console.log(closestMatch("--cuont", ["--count", "--interval"])); // --count
 * console.log(closestMatch("bogus", ["serve", "ping", "send"])); // null
 * ```
 */
export function closestMatch(word: string, candidates: readonly string[]): string | null {
  const bare = (text: string) => text.replace(/^-+/, "").toLowerCase();
  const scored = candidates
    .map((candidate) => ({ candidate, distance: editDistance(bare(word), bare(candidate)) }))
    .sort((x, y) => x.distance - y.distance);
  const [best, second] = scored;
  if (best === undefined) return null;
  const close = best.distance <= 2 && best.distance * 3 <= bare(best.candidate).length;
  const clear = second === undefined || second.distance > best.distance;
  return close && clear ? best.candidate : null;
}

/**
 * What a probe's padding may be, said one way wherever a size is refused: "use 0 to 65,459
 * (IPv4) or 65,479 (IPv6)", from {@linkcode maxPayloadSize} (less the tag with a key).
 *
 * @example
 * ```ts
 * import { payloadSizeLimit } from "./args.ts";
 * console.log(payloadSizeLimit(false).startsWith("use 0 to ")); // true
 * ```
 */
export function payloadSizeLimit(authenticated: boolean): string {
  const most = (family: Family) => largestPayload(family, authenticated).toLocaleString("en");
  return `use 0 to ${most("ipv4")} (IPv4) or ${most("ipv6")} (IPv6)` +
    (authenticated ? " with a key" : "");
}

/**
 * Parses `-s BYTES`, the padding of a probe: a whole number no larger than the largest over
 * any family (the address family is checked by {@linkcode checkPayloadSize} once known).
 *
 * @example
 * ```ts
 * import { parsePayloadSize } from "./args.ts";
 * console.log(parsePayloadSize("56")); // 56
 * ```
 */
export function parsePayloadSize(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > maxPayloadSize("ipv6")) {
    throw new UsageError(`invalid size '${text}': ${payloadSizeLimit(false)}`);
  }
  return Number(text);
}

/**
 * Checks a padding size against the target's address family (and the tag, with a key).
 *
 * @example
 * ```ts
 * import { checkPayloadSize } from "./args.ts";
 * checkPayloadSize(56, "ipv4", false); // fine
 * ```
 */
export function checkPayloadSize(size: number, family: Family, authenticated: boolean): void {
  if (size > largestPayload(family, authenticated)) {
    throw new UsageError(
      `invalid size '${size}': ${payloadSizeLimit(authenticated)}; the target is ${
        family === "ipv6" ? "IPv6" : "IPv4"
      }`,
    );
  }
}

function largestPayload(family: Family, authenticated: boolean): number {
  return maxPayloadSize(family) - (authenticated ? TAG_SIZE : 0);
}
