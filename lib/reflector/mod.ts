/**
 * `lib/reflector/`: the reflector behind `udp serve`. It keeps the limits (per source and
 * global token buckets), authentication (tags and the replay window), the counting and the
 * sending; what a datagram is and what answers it are its wire format's (`lib/wire/`'s
 * `ProbeFormat`, the `udp` frame format unless told otherwise).
 *
 * @example Answer one PING
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { UdpSocket } from "../net/mod.ts";
 * import { newReplyReading, udpFormat } from "../wire/mod.ts";
 * import { Reflector, reflectorStatsJson } from "./mod.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = UdpSocket.bind("127.0.0.1", 0);
 * const replied = Promise.withResolvers<Uint8Array>();
 * const receiving = client.receiveEach((data) => {
 *   replied.resolve(data.slice());
 *   client.close();
 * });
 * await client.send(
 *   udpFormat.encodeRequest({
 *     type: "ping", session: 1, sequence: 0, attempt: 0, sentAt: { seconds: 1, nanos: 0 },
 *     padding: new Uint8Array(8), authenticated: false,
 *   }),
 *   reflector.address,
 * );
 * const reply = newReplyReading();
 * udpFormat.readReply(await replied.promise, reply);
 * await receiving;
 * await reflector.close();
 * strictEqual(reply.kind, "reply");
 * strictEqual(reflectorStatsJson(reflector.stats).kinds.ping, 1);
 * ```
 *
 * @module
 */

export {
  ackReply,
  DEFAULT_REPLAY_WINDOW_MS,
  MAX_SESSIONS,
  RAW_MODES,
  type RawMode,
  Reflector,
  type ReflectorOptions,
} from "./reflector.ts";
export {
  type DatagramEvent,
  type DatagramKind,
  type DelayedCounts,
  type ReflectorStats,
  type ReflectorStatsJson,
  reflectorStatsJson,
  type RefusalReason,
  type ReplyKind,
  type StreamCounts,
} from "./reflector_stats.ts";
export { reflectorMetrics } from "./reflector_metrics.ts";
export { SourceLimiter, type SourceLimiterOptions, TokenBucket } from "./ratelimit.ts";
export { ReplayGuard, type ReplayGuardOptions, type ReplayVerdict } from "./replay.ts";
// Types of other folders this face's API refers to.
export type * from "../wire/probe_format.ts";
export type { SessionCounts, Timestamp } from "../wire/mod.ts";
export type { PeerAddress } from "../net/mod.ts";
