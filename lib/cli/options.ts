/**
 * The option model of every command. An option is declared once, with everything about it
 * together: its long name, short alias, value placeholder, help text and the parser of its value
 * (with the default when it is not given). A command's table of options then gives both its help
 * (the option list, {@linkcode helpText}) and its parsing (a typed object,
 * {@linkcode readOptions}); options read together, such as -4 and -6, form one option of their
 * own ({@linkcode group}).
 *
 * @example A table of options: its help and its typed values
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { flag, helpText, option, readOptions, section } from "./options.ts";
 * const options = {
 *   count: option({
 *     long: "count",
 *     short: "c",
 *     value: "N",
 *     help: "stop after N probes",
 *     parse: Number,
 *     default: 5,
 *   }),
 *   quiet: flag({ long: "quiet", short: "q", help: "print only the summary" }),
 * };
 * strictEqual(
 *   helpText("Usage: udp hello", section("Options:", options, 19)),
 *   [
 *     "Usage: udp hello",
 *     "",
 *     "Options:",
 *     "  -c, --count N    stop after N probes",
 *     "  -q, --quiet      print only the summary",
 *     "  -h, --help       show this help",
 *   ].join("\n"),
 * );
 * const values: { count: number; quiet: boolean } = readOptions(options, { quiet: true });
 * assertEquals(values, { count: 5, quiet: true });
 * ```
 *
 * @module
 */

import type { OptionSpec } from "./args.ts";
import { UsageError } from "./errors.ts";

/** What parseArgs found: an option's text, true for a flag given, undefined when not given. */
export type RawValues = Readonly<Record<string, string | boolean | undefined>>;

/** One flag of the command line, as parseArgs sees it. */
export interface Flag {
  /** The long name, without the dashes. */
  readonly long: string;
  /** The one-letter alias, without the dash. */
  readonly short?: string;
  /** "string" when it takes a value, "boolean" when it does not. */
  readonly type: "string" | "boolean";
}

/** One entry of an option list in the help. */
export interface HelpRow {
  /** The left column: "-c, --count N", "    --json", "-4, -6". */
  readonly label: string;
  /** The help text, a line each. */
  readonly lines: readonly string[];
}

/**
 * An option, or several read together (-4 and -6, --key-file and --key-env): the flags the
 * command line may hold of it, how it shows in the help, and how its typed value is read.
 */
export interface Option<T> {
  /** Every flag it takes, listed in the help or not. */
  readonly flags: readonly Flag[];
  /** Its entries in the help's option list, in order. */
  readonly rows: readonly HelpRow[];
  /** Its value from what parseArgs found; throws a UsageError for a bad one. */
  read(raw: RawValues): T;
}

/** A command's options (or a group's), by the name of their typed value. */
export type OptionTable = Readonly<Record<string, Option<unknown>>>;

/** The typed values of a table of options, by the same names. */
export type OptionValues<S extends OptionTable> = {
  readonly [K in keyof S]: S[K] extends Option<infer T> ? T : never;
};

/** What every option says of itself: its names and its help. */
export interface OptionNames {
  /** The long name, without the dashes: `--count` is "count". */
  readonly long: string;
  /** The one-letter alias, without the dash: `-c` is "c". */
  readonly short?: string;
  /** The help text; a newline starts a new line, in the help's second column. */
  readonly help: string;
}

/** An option that takes a value, as {@linkcode option} declares it. */
export interface ValueOption<T> extends OptionNames {
  /** The placeholder of its value in the help: "N", "SEC", "HOST:PORT". */
  readonly value: string;
  /** Turns the text given into the value (or throws a UsageError). */
  readonly parse: (text: string) => T;
  /** The value when the option is not given (undefined when there is none). */
  readonly default?: T;
  /** Whether it must be given: without it, the error is "missing --NAME VALUE". */
  readonly required?: boolean;
}

/**
 * A flag that takes no value: true when given.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { flag } from "./options.ts";
 * const quiet = flag({ long: "quiet", short: "q", help: "print only the summary" });
 * strictEqual(quiet.read({ quiet: true }), true);
 * strictEqual(quiet.read({}), false);
 * strictEqual(quiet.rows[0].label, "-q, --quiet");
 * ```
 */
export function flag(spec: OptionNames): Option<boolean> {
  return {
    flags: [{ long: spec.long, short: spec.short, type: "boolean" }],
    rows: [helpRow(label(spec.long, spec.short), spec.help)],
    read: (raw) => raw[spec.long] === true,
  };
}

/**
 * An option that takes a value: parsed when given, its default (or undefined) when not; a
 * required one that is not given is an error.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { option } from "./options.ts";
 * import { parseSeconds } from "./parse.ts";
 * const interval = option({
 *   long: "interval",
 *   short: "i",
 *   value: "SEC",
 *   help: "time between probes",
 *   parse: (text) => parseSeconds("interval", text, true),
 *   default: 1000,
 * });
 * strictEqual(interval.read({ interval: "0.2" }), 200);
 * strictEqual(interval.read({}), 1000);
 * throws(() => interval.read({ interval: "fast" }), /^UsageError: invalid interval 'fast'/);
 * strictEqual(interval.rows[0].label, "-i, --interval SEC");
 * const to = option({ long: "to", value: "HOST:PORT", help: "", parse: String, required: true });
 * throws(() => to.read({}), { message: "missing --to HOST:PORT" });
 * ```
 */
export function option<T>(spec: ValueOption<T> & { readonly default: T }): Option<T>;
/** An option that takes a value and must be given. */
export function option<T>(spec: ValueOption<T> & { readonly required: true }): Option<T>;
/** An option that takes a value, undefined when not given. */
export function option<T>(spec: ValueOption<T>): Option<T | undefined>;
export function option<T>(spec: ValueOption<T>): Option<T | undefined> {
  return {
    flags: [{ long: spec.long, short: spec.short, type: "string" }],
    rows: [helpRow(label(spec.long, spec.short, spec.value), spec.help)],
    read(raw) {
      const text = raw[spec.long];
      if (typeof text === "string") return spec.parse(text);
      if (spec.required) throw new UsageError(`missing --${spec.long} ${spec.value}`);
      return spec.default;
    },
  };
}

/**
 * The parser of an option whose value is used as written (a file name, an address resolved
 * later).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { text } from "./options.ts";
 * strictEqual(text("udp.key"), "udp.key");
 * ```
 */
export function text(value: string): string {
  return value;
}

/**
 * Options read together as one: `combine` turns their values into one (and checks how they go
 * together). The help lists their rows, or `rows` instead (-4 and -6 share one).
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { flag, group } from "./options.ts";
 * const encoding = group(
 *   { hex: flag({ long: "hex", help: "hex" }), base64: flag({ long: "base64", help: "base64" }) },
 *   ({ hex, base64 }) => {
 *     if (hex && base64) throw new Error("--hex and --base64 exclude each other");
 *     return hex ? "hex" : base64 ? "base64" : "text";
 *   },
 * );
 * strictEqual(encoding.read({ hex: true }), "hex");
 * strictEqual(encoding.read({}), "text");
 * throws(() => encoding.read({ hex: true, base64: true }), /exclude each other/);
 * strictEqual(encoding.flags.length, 2);
 * ```
 */
export function group<S extends OptionTable, T>(
  options: S,
  combine: (values: OptionValues<S>) => T,
  rows?: readonly HelpRow[],
): Option<T> {
  const members = Object.values(options);
  return {
    flags: members.flatMap((member) => member.flags),
    rows: rows ?? members.flatMap((member) => member.rows),
    read: (raw) => combine(readOptions(options, raw)),
  };
}

/**
 * One help row, for options whose rows are made by hand; `help` as in {@linkcode OptionNames}.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { helpRow } from "./options.ts";
 * assertEquals(helpRow("-4, -6", "use IPv4 / IPv6 only"), {
 *   label: "-4, -6",
 *   lines: ["use IPv4 / IPv6 only"],
 * });
 * ```
 */
export function helpRow(label: string, help: string): HelpRow {
  return { label, lines: help.split("\n") };
}

/**
 * The label of an option in the help: "-c, --count N", or "    --json" without a short alias
 * (so that long names line up).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { label } from "./options.ts";
 * strictEqual(label("count", "c", "N"), "-c, --count N");
 * strictEqual(label("json"), "    --json");
 * ```
 */
export function label(long: string, short?: string, value?: string): string {
  return `${short === undefined ? "    " : `-${short}, `}--${long}${
    value === undefined ? "" : ` ${value}`
  }`;
}

/**
 * Reads every option of `options` from what parseArgs found, in the order they are declared;
 * the first bad value throws its UsageError.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { flag, option, readOptions, text } from "./options.ts";
 * const options = {
 *   file: option({ long: "file", short: "f", value: "F", help: "read F", parse: text }),
 *   wait: flag({ long: "wait", help: "wait for a reply" }),
 * };
 * assertEquals(readOptions(options, { wait: true }), { file: undefined, wait: true });
 * ```
 */
export function readOptions<S extends OptionTable>(options: S, raw: RawValues): OptionValues<S> {
  const values = Object.entries(options).map(([name, option]) => [name, option.read(raw)]);
  return Object.fromEntries(values) as OptionValues<S>;
}

/**
 * The flags of `options` as {@linkcode parseCommandArgs} takes them. Two options of one
 * command with the same name or alias are a mistake in the code: it throws.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
 * import { flag, flagSpecs } from "./options.ts";
 * const quiet = flag({ long: "quiet", short: "q", help: "print only the summary" });
 * assertEquals(flagSpecs({ quiet }), { quiet: { type: "boolean", short: "q" } });
 * throws(() => flagSpecs({ quiet, again: quiet }), /--quiet is declared twice/);
 * ```
 */
export function flagSpecs(options: OptionTable): Record<string, OptionSpec> {
  const specs: Record<string, OptionSpec> = {};
  const shorts = new Set<string>(["h"]);
  for (const { long, short, type } of Object.values(options).flatMap((option) => option.flags)) {
    if (long in specs || long === "help") throw new Error(`--${long} is declared twice`);
    if (short !== undefined && shorts.has(short)) throw new Error(`-${short} is declared twice`);
    if (short !== undefined) shorts.add(short);
    specs[long] = short === undefined ? { type } : { type, short };
  }
  return specs;
}

/** A part of a command's help that lists options: a heading, then a row per option. */
export interface HelpSection {
  /** The heading, e.g. "Options:" (it may run over several lines). */
  readonly heading: string;
  /** The options listed, in order. */
  readonly options: OptionTable;
  /** The column the help texts start at; a longer label has a line of its own. */
  readonly column: number;
  /** Whether the list ends with "-h, --help" (every command takes it). */
  readonly helpOption: boolean;
}

/**
 * A section of the help that lists `options`, their help texts starting at `column`, and by
 * default "-h, --help" last.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { helpText, section } from "./options.ts";
 * strictEqual(helpText(section("Options:", {}, 15)), "Options:\n  -h, --help   show this help");
 * ```
 */
export function section(
  heading: string,
  options: OptionTable,
  column: number,
  helpOption = true,
): HelpSection {
  return { heading, options, column, helpOption };
}

const HELP_ROW = helpRow("-h, --help", "show this help");

/**
 * A command's help: its parts (paragraphs of text and sections of options) with a blank line
 * between each two. A help text that does not fit beside its label starts on the next line.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { helpText, option, section, text } from "./options.ts";
 * const options = {
 *   window: option({
 *     long: "replay-window",
 *     value: "SEC",
 *     help: "how far a clock may be\nfrom ours",
 *     parse: text,
 *   }),
 * };
 * strictEqual(
 *   helpText("Usage: udp serve", section("Options:", options, 12, false), "Exit 2 on errors."),
 *   [
 *     "Usage: udp serve",
 *     "",
 *     "Options:",
 *     "      --replay-window SEC",
 *     "            how far a clock may be",
 *     "            from ours",
 *     "",
 *     "Exit 2 on errors.",
 *   ].join("\n"),
 * );
 * ```
 */
export function helpText(...parts: readonly (string | HelpSection)[]): string {
  return parts.map((part) => typeof part === "string" ? part : sectionText(part)).join("\n\n");
}

/** Every option of the tables listed in `parts`' sections, for checking them against others. */
export function optionsListed(parts: readonly (string | HelpSection)[]): Set<Option<unknown>> {
  return new Set(
    parts.flatMap((part) => typeof part === "string" ? [] : Object.values(part.options)),
  );
}

function sectionText({ heading, options, column, helpOption }: HelpSection): string {
  const rows = Object.values(options).flatMap((option) => option.rows);
  if (helpOption) rows.push(HELP_ROW);
  return [heading, ...rows.flatMap((row) => rowLines(row, column))].join("\n");
}

function rowLines({ label, lines }: HelpRow, column: number): string[] {
  const left = `  ${label}`;
  const indent = " ".repeat(column);
  const [first, ...rest] = lines;
  const head = left.length < column ? [left.padEnd(column) + first] : [left, indent + first];
  return [...head, ...rest.map((line) => indent + line)];
}
