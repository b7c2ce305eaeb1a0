/**
 * What the impairment proxy reports: one log record per datagram, and its counters with
 * their JSON.
 *
 * @module
 */

import type { DropReason } from "./impairment.ts";

/** A proxy direction: up is client → target, down is target → client. */
export type Direction = "up" | "down";

/** What happened to one copy of a datagram. */
export interface CopyRecord {
  /** Position in the direction's send order (0, 1, …); null when the copy was not sent. */
  order: number | null;
  /** Delay drawn for this copy (before any rate-limit queueing). */
  delay_ms: number;
  /** Why the copy was not sent, if it was not. */
  dropped: "queue-full" | "shutdown" | null;
}

/** One log line: one datagram that reached the proxy, and its fate. */
export interface ProxyLogRecord {
  /** Arrival time in ms since the proxy started. */
  t_ms: number;
  /** Direction. */
  dir: Direction;
  /** The client the datagram came from or goes to. */
  client: string;
  /** Arrival position within the direction (0, 1, …). */
  index: number;
  /** Size in bytes. */
  bytes: number;
  /** The `udp` frame it carried, if any (as it arrived, before corruption). */
  frame: { type: string; session: number; seq: number; attempt: number } | null;
  /** "dropped" (no copy sent), "duplicated" (two copies decided) or "forwarded". */
  action: "forwarded" | "dropped" | "duplicated";
  /** Why it was dropped by the loss models, if it was. */
  drop: "loss" | "burst-loss" | "too-many-clients" | null;
  /** Whether one bit was flipped, and where. */
  corrupted: { index: number; mask: number } | null;
  /** Whether it was held back behind later datagrams. */
  held: boolean;
  /** Each copy decided (none when dropped by loss). */
  copies: CopyRecord[];
}

/** Counters of one direction. */
export interface DirectionStats {
  /** Datagrams that reached the proxy in this direction. */
  received: number;
  /** Copies handed to the socket. */
  forwarded: number;
  /** Datagrams or copies dropped, by reason. */
  dropped: Record<DropReason | "too-many-clients" | "shutdown", number>;
  /** Datagrams sent twice. */
  duplicated: number;
  /** Datagrams held back for reordering. */
  reordered: number;
  /** Datagrams with a flipped bit. */
  corrupted: number;
  /** Copies the operating system refused to send. */
  sendErrors: number;
}

/** The proxy's counters (`Proxy.stats`). */
export interface ProxyStats {
  /** Client → target. */
  up: DirectionStats;
  /** Target → client. */
  down: DirectionStats;
  /** Clients seen. */
  clients: number;
  /** Datagrams from others than the target to the upstream sockets (not forwarded). */
  foreign: number;
}

/** {@linkcode proxyStatsJson}: the counters as `udp proxy --json` prints them on exit. */
export interface ProxyStatsJson extends ProxyStats {
  /** Always "stats". */
  type: "stats";
}

/**
 * The proxy's counters as JSON (`udp proxy --json`'s last line). The counts keep the names
 * the counters have; the writer (`--json`) puts every key in snake_case.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { NO_IMPAIRMENTS } from "./impairment.ts";
 * import { Proxy } from "./proxy.ts";
 * import { proxyStatsJson } from "./proxy_report.ts";
 * const proxy = Proxy.listen({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: 9, family: "ipv4" },
 *   up: NO_IMPAIRMENTS,
 *   down: NO_IMPAIRMENTS,
 *   seed: 1,
 * });
 * await proxy.close();
 * const json = proxyStatsJson(proxy.stats);
 * strictEqual(Object.keys(json).join(" "), "type up down clients foreign");
 * strictEqual(json.up.dropped["burst-loss"], 0);
 * ```
 */
export function proxyStatsJson(stats: ProxyStats): ProxyStatsJson {
  return {
    type: "stats",
    up: stats.up,
    down: stats.down,
    clients: stats.clients,
    foreign: stats.foreign,
  };
}
