/**
 * The names of the `udp` protocol's message types, for people (logs, errors). Pure.
 *
 * @module
 */

/**
 * The name of a message type for people, e.g. "PING", or "type 9".
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { messageTypeName } from "./type_names.ts";
 * strictEqual(messageTypeName(2), "PONG");
 * strictEqual(messageTypeName(9), "type 9");
 * ```
 */
export function messageTypeName(type: number): string {
  return (TYPE_NAMES[type] as string | undefined) || `type ${type}`;
}

const TYPE_NAMES = [
  "",
  "PING",
  "PONG",
  "ERROR",
  "STATS_REQUEST",
  "STATS",
  "STREAM_REQUEST",
  "STREAM_GRANT",
  "STREAM_DATA",
];
