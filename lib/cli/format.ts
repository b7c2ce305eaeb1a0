/**
 * Formatting for people: durations the way ping(8) prints them, and datagram payloads as
 * quoted text when they are text, as hex when they are not.
 *
 * @module
 */

import { type Family, ICMP_KINDS, type IcmpCounts, icmpWords } from "../net/mod.ts";
import type { IcmpEvent } from "../probe/mod.ts";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A duration as ping(8) prints a single RTT: three significant decimals below 10 ms.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatRtt } from "./format.ts";
 * strictEqual(formatRtt(0.04512), "0.045");
 * strictEqual(formatRtt(12.34), "12.3");
 * strictEqual(formatRtt(123.4), "123");
 * ```
 */
export function formatRtt(ms: number): string {
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

/**
 * A statistic with three decimals, as in ping's summary; "-" for a missing value.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatStat } from "./format.ts";
 * strictEqual(formatStat(0.0449), "0.045");
 * strictEqual(formatStat(null), "-");
 * ```
 */
export function formatStat(ms: number | null): string {
  return ms === null ? "-" : ms.toFixed(3);
}

/**
 * The payload as text when it is valid UTF-8 without control characters other than tab,
 * newline and carriage return; null when it is binary.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { payloadText } from "./format.ts";
 * strictEqual(payloadText(new TextEncoder().encode("hé\n")), "hé\n");
 * strictEqual(payloadText(new Uint8Array([0, 1])), null);
 * ```
 */
export function payloadText(data: Uint8Array): string | null {
  let text: string;
  try {
    text = strictUtf8.decode(data);
  } catch {
    return null;
  }
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text) ? null : text;
}

/**
 * One-line rendering of a payload: JSON-quoted text, or `hex:` and the bytes (cut after
 * `maxBytes` with the total given).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { describePayload } from "./format.ts";
 * strictEqual(describePayload(new TextEncoder().encode("hi")), '"hi"');
 * strictEqual(describePayload(new Uint8Array([0xde, 0xad, 0xbe, 0xef])), "hex:deadbeef");
 * ```
 */
export function describePayload(data: Uint8Array, maxBytes = 64): string {
  const text = payloadText(data);
  if (text !== null) {
    const shown = text.length > maxBytes ? `${text.slice(0, maxBytes)}…` : text;
    return JSON.stringify(shown);
  }
  const hex = data.subarray(0, maxBytes).toHex();
  return data.length > maxBytes ? `hex:${hex}… (${data.length} bytes)` : `hex:${hex}`;
}

/**
 * A hex dump in the style of `xxd` / `hexdump -C`: offset, 16 bytes, printable ASCII.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { hexDump } from "./format.ts";
 * strictEqual(
 *   hexDump(new Uint8Array([0x68, 0x69, 0x00])),
 *   "00000000  68 69 00                                          |hi.|",
 * );
 * ```
 */
export function hexDump(data: Uint8Array): string {
  const lines: string[] = [];
  for (let offset = 0; offset < data.length; offset += 16) {
    const row = data.subarray(offset, offset + 16);
    const hex = Array.from(row, (byte) => byte.toString(16).padStart(2, "0"));
    const left = hex.slice(0, 8).join(" ");
    const right = hex.slice(8).join(" ");
    const ascii = Array.from(
      row,
      (byte) => byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".",
    ).join("");
    lines.push(
      `${offset.toString(16).padStart(8, "0")}  ${left.padEnd(23)}  ${
        right.padEnd(23)
      }  |${ascii}|`,
    );
  }
  return lines.join("\n");
}

/**
 * The ICMP errors of a run, by kind, as one line; null when there were none.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { noIcmpCounts } from "../net/mod.ts";
 * import { icmpLine } from "./format.ts";
 * const counts = { ...noIcmpCounts(), port_unreachable: 3 };
 * strictEqual(icmpLine(counts, 3, "probe"), "ICMP errors: 3 port unreachable (about 3 probes: not silent loss)");
 * strictEqual(icmpLine(noIcmpCounts(), 0, "probe"), null);
 * ```
 */
export function icmpLine(counts: IcmpCounts, about: number, noun: string): string | null {
  const kinds = ICMP_KINDS.filter((kind) => counts[kind] > 0);
  if (kinds.length === 0) return null;
  const listed = kinds.map((kind) => `${counts[kind]} ${kind.replaceAll("_", " ")}`).join(", ");
  return `ICMP errors: ${listed} (about ${about} ${noun}${
    about === 1 ? "" : "s"
  }: not silent loss)`;
}

/** An ICMP error as ping(8) prints it: `From 192.0.2.1 icmp_seq=3 Destination Port Unreachable`. */
export function icmpEventLine(event: IcmpEvent, family: Family): string {
  const from = event.from ?? "an unknown address";
  const seq = event.seq === null ? "" : ` icmp_seq=${event.seq}`;
  const attempt = event.attempt !== null && event.attempt > 0 ? ` attempt=${event.attempt}` : "";
  const version = family === "ipv6" ? 6 : 4;
  return `From ${from}${seq}${attempt} ${
    icmpWords(version, event.icmp_type, event.icmp_code, event.mtu)
  }`;
}
