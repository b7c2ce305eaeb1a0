/**
 * The value parsers of every command's options: each turns the text given on the command line
 * into a typed value, or throws a UsageError of one line that names the option and says what
 * to write instead. `name` is the option as the message calls it (`count`, `--loss`, …).
 *
 * @module
 */

import { UsageError } from "./errors.ts";
import type { Family } from "../net/address.ts";
import type { BurstLoss, RateLimit } from "../proxy/impairment.ts";
import { maxPayloadSize, TAG_SIZE } from "../wire/protocol.ts";

/**
 * Parses a whole number within [min, max] for option `name`.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseWholeNumber } from "./parse.ts";
 * strictEqual(parseWholeNumber("count", "5", 1, 100), 5);
 * throws(() => parseWholeNumber("count", "0", 1, 100), {
 *   message: "invalid count '0': use a whole number from 1 to 100",
 * });
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
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseSeconds } from "./parse.ts";
 * strictEqual(parseSeconds("interval", "0.2", true), 200);
 * throws(() => parseSeconds("timeout", "0", false), {
 *   message: "invalid timeout '0': use a number of seconds, more than 0",
 * });
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
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseChoice } from "./parse.ts";
 * strictEqual(parseChoice("--raw mode", "echo", ["ack", "echo", "ignore"] as const), "echo");
 * throws(() => parseChoice("--raw mode", "loud", ["ack", "echo", "ignore"] as const), {
 *   message: "invalid --raw mode 'loud': use one of ack, echo, ignore",
 * });
 * ```
 */
export function parseChoice<T extends string>(
  name: string,
  text: string,
  choices: readonly T[],
): T {
  const choice = choices.find((candidate) => candidate === text);
  if (choice === undefined) {
    throw new UsageError(`invalid ${name} '${text}': use one of ${choices.join(", ")}`);
  }
  return choice;
}

/**
 * Parses "10%", "10" (percent) or "0.5%" into a probability 0..1.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parsePercent } from "./parse.ts";
 * strictEqual(parsePercent("--loss", "12.5%"), 0.125);
 * strictEqual(parsePercent("--loss", "10"), 0.1);
 * ```
 */
export function parsePercent(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  if (!match || Number(match[1]) > 100) {
    throw new UsageError(`invalid ${name} '${text}': use a percentage from 0% to 100%, e.g. 10%`);
  }
  return Number(match[1]) / 100;
}

/**
 * Parses milliseconds: "20", "20ms" or "0.5".
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseMs } from "./parse.ts";
 * strictEqual(parseMs("--delay", "20ms"), 20);
 * strictEqual(parseMs("--delay", "0.5"), 0.5);
 * ```
 */
export function parseMs(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms)?$/.exec(text);
  if (!match || Number(match[1]) > 3_600_000) {
    throw new UsageError(`invalid ${name} '${text}': use milliseconds, e.g. 20 or 20ms`);
  }
  return Number(match[1]);
}

/**
 * Parses a rate: datagrams per second ("1000", "5k", "1000pps") or bits per second of
 * payload ("10mbit", "512kbit", "64000bit").
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { parseRate } from "./parse.ts";
 * assertEquals(parseRate("--rate", "10mbit"), { unit: "bps", value: 10_000_000 });
 * assertEquals(parseRate("--rate", "5k"), { unit: "pps", value: 5000 });
 * ```
 */
export function parseRate(name: string, text: string): RateLimit {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)(pps|bit|bps)?$/i.exec(text);
  const scale = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[(match?.[2] ?? "").toLowerCase()] ?? 1;
  const value = match ? Number(match[1]) * scale : NaN;
  if (!match || !(value > 0)) {
    throw new UsageError(
      `invalid ${name} '${text}': use datagrams/s (1000, 5k, 1000pps) or bits/s (10mbit, 512kbit)`,
    );
  }
  const unit = (match[3] ?? "pps").toLowerCase() === "pps" ? "pps" : "bps";
  return { unit, value };
}

/**
 * Parses Gilbert–Elliott parameters "ENTER%,EXIT%[,BAD%[,GOOD%]]".
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { parseBurst } from "./parse.ts";
 * assertEquals(parseBurst("--burst-loss", "1%,25%"), {
 *   enter: 0.01,
 *   exit: 0.25,
 *   badLoss: 1,
 *   goodLoss: 0,
 * });
 * ```
 */
export function parseBurst(name: string, text: string): BurstLoss {
  const parts = text.split(",");
  if (parts.length < 2 || parts.length > 4) {
    throw new UsageError(
      `invalid ${name} '${text}': use ENTER%,EXIT%[,BAD%[,GOOD%]], e.g. 1%,25%`,
    );
  }
  const [enter, exit, bad, good] = parts.map((part) => parsePercent(name, part));
  return { enter, exit, badLoss: bad ?? 1, goodLoss: good ?? 0 };
}

/** The largest receive buffer the kernel takes (an int). */
const MAX_RECEIVE_BUFFER = 0x7fff_ffff;

/**
 * Parses `--rcvbuf BYTES`: a whole number of bytes, with an optional k or M (×1024).
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseReceiveBuffer } from "./parse.ts";
 * strictEqual(parseReceiveBuffer("4M"), 4 * 1024 * 1024);
 * strictEqual(parseReceiveBuffer("212992"), 212_992);
 * throws(() => parseReceiveBuffer("12"), {
 *   message: "invalid rcvbuf '12': use a whole number from 1024 to 2,147,483,647",
 * });
 * ```
 */
export function parseReceiveBuffer(text: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  const scale = match?.[2] === "" ? 1 : /k/i.test(match?.[2] ?? "") ? 1024 : 1024 * 1024;
  const bytes = match ? Number(match[1]) * scale : NaN;
  if (!(bytes >= 1024 && bytes <= MAX_RECEIVE_BUFFER)) {
    return parseWholeNumber("rcvbuf", text, 1024, MAX_RECEIVE_BUFFER); // throws, with the range
  }
  return bytes;
}

/**
 * What a probe's padding may be, said one way wherever a size is refused: "use 0 to 65,459
 * (IPv4) or 65,479 (IPv6)", from {@linkcode maxPayloadSize} (less the tag with a key).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { maxPayloadSize } from "../wire/protocol.ts";
 * import { payloadSizeLimit } from "./parse.ts";
 * const most = (family: "ipv4" | "ipv6") => maxPayloadSize(family).toLocaleString("en");
 * strictEqual(payloadSizeLimit(false), `use 0 to ${most("ipv4")} (IPv4) or ${most("ipv6")} (IPv6)`);
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
 * import { strictEqual } from "node:assert/strict";
 * import { parsePayloadSize } from "./parse.ts";
 * strictEqual(parsePayloadSize("56"), 56);
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
 * import { throws } from "node:assert/strict";
 * import { maxPayloadSize } from "../wire/protocol.ts";
 * import { checkPayloadSize } from "./parse.ts";
 * checkPayloadSize(56, "ipv4", false); // fine
 * const tooBig = maxPayloadSize("ipv4") + 1;
 * throws(() => checkPayloadSize(tooBig, "ipv4", false), /the target is IPv4$/);
 * checkPayloadSize(tooBig, "ipv6", false); // fine over IPv6
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
