/**
 * Command-line syntax on top of `node:util` parseArgs: options and positionals, with one-line
 * errors for every unknown option, missing value or stray argument, and the "did you mean"
 * guess for a mistyped name. The options each command takes are declared in lib/cli/options.ts;
 * their values are parsed by lib/cli/parse.ts.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

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
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { parseCommandArgs } from "./args.ts";
 * const parsed = parseCommandArgs("ping", ["-c", "3", "127.0.0.1"], {
 *   count: { type: "string", short: "c" },
 * });
 * strictEqual(parsed.values.count, "3");
 * assertEquals(parsed.positionals, ["127.0.0.1"]);
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
 * Returns the positional arguments when there are `min` to `max` of them, or throws.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
 * import { expectPositionals } from "./args.ts";
 * assertEquals(expectPositionals("ping", ["h"], 1, 1, "HOST[:PORT]"), ["h"]);
 * throws(() => expectPositionals("ping", [], 1, 1, "HOST[:PORT]"), {
 *   message: "missing HOST[:PORT] (usage: udp ping HOST[:PORT])",
 * });
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
 * import { strictEqual } from "node:assert/strict";
 * import { editDistance } from "./args.ts";
 * strictEqual(editDistance("pnig", "ping"), 1);
 * strictEqual(editDistance("cuont", "count"), 1);
 * strictEqual(editDistance("serve", "send"), 3);
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
 * import { strictEqual } from "node:assert/strict";
 * import { closestMatch } from "./args.ts";
 * strictEqual(closestMatch("pnig", ["serve", "ping", "send"]), "ping");
 * strictEqual(closestMatch("--cuont", ["--count", "--interval"]), "--count");
 * strictEqual(closestMatch("bogus", ["serve", "ping", "send"]), null);
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
