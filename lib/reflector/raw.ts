/**
 * What a reflector does with raw datagrams (not of its wire format): the modes, and the
 * classic tutorial server's `ack:` answer.
 *
 * @module
 */

/** What the reflector does with raw (non-`udp`) datagrams. */
export type RawMode = "ack" | "echo" | "ignore";

/** Every raw mode, for option validation. */
export const RAW_MODES: readonly RawMode[] = ["ack", "echo", "ignore"];

const ACK_PREFIX = new TextEncoder().encode("ack:");

/**
 * The classic tutorial server's answer to a raw datagram: `ack:` followed by the data; written
 * into `into` when it has room (a view of it is returned), else into a new array.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ackReply } from "./raw.ts";
 * strictEqual(new TextDecoder().decode(ackReply(new TextEncoder().encode("hi"))), "ack:hi");
 * const into = new Uint8Array(16);
 * strictEqual(ackReply(new TextEncoder().encode("yo"), into).buffer, into.buffer);
 * ```
 */
export function ackReply(data: Uint8Array, into?: Uint8Array): Uint8Array {
  const length = ACK_PREFIX.length + data.length;
  const out = into !== undefined && into.length >= length
    ? into.subarray(0, length)
    : new Uint8Array(length);
  out.set(ACK_PREFIX);
  out.set(data, ACK_PREFIX.length);
  return out;
}
