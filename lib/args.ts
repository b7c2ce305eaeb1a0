/**
 * Command-line parsing on top of `node:util` parseArgs, with one-line errors for every bad
 * option or value.
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
    return `unknown option '${unknown}'`;
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
