/**
 * `lib/proxy/`: the impairment proxy behind `udp proxy`. It forwards datagrams both ways
 * between clients and a target and does to them what real networks do (loss, bursts,
 * corruption, duplication, reordering, delay, jitter, rate limits), each decision drawn from
 * a pure, seeded model so that a run can be repeated; every datagram gets one log record.
 *
 * @example Decide the fate of datagrams, repeatably
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { ImpairmentModel, NO_IMPAIRMENTS, seededRandom } from "./mod.ts";
 * const config = { ...NO_IMPAIRMENTS, loss: 0.3, duplicate: 0.1 };
 * const fates = (seed: number) => {
 *   const model = new ImpairmentModel(config, seededRandom(seed));
 *   return Array.from({ length: 20 }, () => model.decide(100).drop);
 * };
 * assertEquals(fates(7), fates(7));
 * ```
 *
 * @module
 */

export { Proxy, type ProxyOptions } from "./proxy.ts";
export {
  type CopyRecord,
  type Direction,
  type DirectionStats,
  type ProxyLogRecord,
  type ProxyStats,
  type ProxyStatsJson,
  proxyStatsJson,
} from "./proxy_report.ts";
export {
  type BurstLoss,
  type Decision,
  type DropReason,
  ImpairmentModel,
  type Impairments,
  NO_IMPAIRMENTS,
  type RateLimit,
} from "./impairment.ts";
export { type Random, randomSeed, seededRandom } from "./random.ts";

// Types of other folders this face's API refers to.
export type { Family, PeerAddress, ResolvedAddress } from "../net/mod.ts";
export type * from "../wire/probe_format.ts";
export type { SessionCounts, Timestamp } from "../wire/mod.ts";
