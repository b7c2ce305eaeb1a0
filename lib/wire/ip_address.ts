/**
 * Numeric IP addresses as the wire carries them: text to bytes (IPv4 4, IPv6 16) and IPv6
 * bytes back to text, for what a reflector reports of a request's source (STAMP's Location
 * TLV, the `udp` frame's path report). Pure; no I/O.
 *
 * @module
 */

/**
 * A numeric address's bytes (IPv4 4, IPv6 16); null when it is not one. An IPv4-mapped IPv6
 * address (`::ffff:192.0.2.1`) is 16 bytes, as written.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { addressBytes } from "./ip_address.ts";
 * deepStrictEqual(addressBytes("192.0.2.1"), [192, 0, 2, 1]);
 * deepStrictEqual(addressBytes("::1"), [...Array(15).fill(0), 1]);
 * deepStrictEqual(addressBytes("example.com"), null);
 * ```
 */
export function addressBytes(text: string): number[] | null {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(text)) {
    const parts = text.split(".").map(Number);
    return parts.every((part) => part <= 255) ? parts : null;
  }
  if (!text.includes(":")) return null;
  const mapped = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let body = text;
  if (mapped !== null) {
    const v4 = addressBytes(mapped[2]);
    if (v4 === null) return null;
    body = `${mapped[1]}${((v4[0] << 8) | v4[1]).toString(16)}:${
      ((v4[2] << 8) | v4[3]).toString(16)
    }`;
  }
  const [head, tail = null] = body.split("::");
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const first = groups(head);
  const last = tail === null ? [] : groups(tail);
  const missing = 8 - first.length - last.length;
  if (missing < 0 || (tail === null && missing !== 0)) return null;
  const all = [...first, ...Array(missing).fill("0"), ...last];
  const out: number[] = [];
  for (const group of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    const value = parseInt(group, 16);
    out.push(value >> 8, value & 0xff);
  }
  return out;
}

/**
 * An IPv6 address's text (RFC 5952: the longest run of zero groups as "::").
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatIpv6 } from "./ip_address.ts";
 * const bytes = new Uint8Array(16);
 * bytes.set([0x20, 0x01, 0x0d, 0xb8]);
 * bytes[15] = 1;
 * strictEqual(formatIpv6(bytes), "2001:db8::1");
 * ```
 */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let [bestStart, bestLength] = [-1, 0];
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i > 1) [bestStart, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const text = groups.map((group) => group.toString(16));
  if (bestStart < 0) return text.join(":");
  const head = text.slice(0, bestStart).join(":");
  const tail = text.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}
