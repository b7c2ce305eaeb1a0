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
 * The classic tutorial server's answer to a raw datagram: `ack:` followed by the data.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ackReply } from "./raw.ts";
 * strictEqual(new TextDecoder().decode(ackReply(new TextEncoder().encode("hi"))), "ack:hi");
 * ```
 */
export function ackReply(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(ACK_PREFIX.length + data.length);
  out.set(ACK_PREFIX);
  out.set(data, ACK_PREFIX.length);
  return out;
}
