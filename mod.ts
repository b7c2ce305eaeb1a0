/**
 * `udp` as a library: the framed, versioned protocol codec, a reflector, a pinger that
 * accounts for loss, duplicates, reordering and late replies, and the statistics behind them.
 *
 * @example Ping a local reflector
 * ```ts
 * import { ping, Reflector } from "./mod.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const { summary } = await ping({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   count: 3,
 *   intervalMs: 0,
 * });
 * await reflector.close();
 * console.log(summary.received, summary.loss_percent); // 3 0
 * ```
 *
 * @module
 */

export {
  type Decoded,
  decodeErrorDetail,
  decodeFrame,
  encodeError,
  encodeFrame,
  type EncodeOptions,
  ErrorCode,
  type ErrorDetail,
  Flags,
  type Frame,
  HEADER_SIZE,
  INVARIANT_SIZE,
  type Invariants,
  isTimestampSet,
  MAGIC,
  makePong,
  type MalformedReason,
  MAX_DATAGRAM_IPV4,
  MAX_DATAGRAM_IPV6,
  maxPayloadSize,
  MessageType,
  messageTypeName,
  NO_TIMESTAMP,
  peekSentAt,
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  TAG_SIZE,
  type Timestamp,
  timestampDiffMs,
  timestampFromMs,
} from "./lib/wire/protocol.ts";
export {
  ackReply,
  type DatagramEvent,
  type DatagramKind,
  DEFAULT_REPLAY_WINDOW_MS,
  RAW_MODES,
  type RawMode,
  Reflector,
  type ReflectorOptions,
  type ReflectorStats,
  type RefusalReason,
  type ReplyKind,
} from "./lib/reflector/reflector.ts";
export {
  type CopyRecord,
  type Direction,
  type DirectionStats,
  Proxy,
  type ProxyLogRecord,
  type ProxyOptions,
} from "./lib/proxy/proxy.ts";
export {
  type BurstLoss,
  type Decision,
  type DropReason,
  ImpairmentModel,
  type Impairments,
  NO_IMPAIRMENTS,
  type RateLimit,
} from "./lib/proxy/impairment.ts";
export { type Random, randomSeed, seededRandom } from "./lib/proxy/random.ts";
export {
  computeTag,
  importKey,
  MAX_KEY_BYTES,
  MIN_KEY_BYTES,
  signFrame,
  verifyFrame,
} from "./lib/wire/auth.ts";
export { KEY_ENV, parseKey, readKeyEnv, readKeyFile } from "./lib/cli/keys.ts";
export { ReplayGuard, type ReplayGuardOptions, type ReplayVerdict } from "./lib/reflector/replay.ts";
export { SourceLimiter, type SourceLimiterOptions, TokenBucket } from "./lib/reflector/ratelimit.ts";
export {
  DEFAULT_INTERVAL_MS,
  DEFAULT_PAYLOAD_SIZE,
  DEFAULT_TIMEOUT_MS,
  type ForeignReason,
  MAX_RETRIES,
  ping,
  type PingEvent,
  type PingOptions,
  type PingResult,
  type PingSummary,
  PROBE_WINDOW,
  type StopReason,
} from "./lib/probe/ping.ts";
export {
  canonicalHost,
  DEFAULT_LISTEN_HOST,
  DEFAULT_PORT,
  type Family,
  familyOf,
  formatAddress,
  type HostPort,
  parseHostPort,
  parsePort,
  type ResolvedAddress,
  resolveHost,
  resolveListenAddress,
  type ResolveOptions,
  sameAddress,
} from "./lib/net/address.ts";
export {
  type DatagramHandler,
  defaultBackend,
  errorKind,
  type PeerAddress,
  type SocketBackend,
  UdpSocket,
  yieldToEventLoop,
} from "./lib/net/socket.ts";
export { giveUpFfiPermission } from "./lib/net/native_socket.ts";
export {
  EXACT_SAMPLE_LIMIT,
  JitterEstimator,
  LatencyStats,
  type LatencySummary,
  ReorderDetector,
} from "./lib/stats/latency.ts";
export { measureRoundTrip, type RoundTrip } from "./lib/stats/rtt.ts";
export { Histogram } from "./lib/stats/histogram.ts";
export { UsageError } from "./lib/cli/errors.ts";
export { main, VERSION } from "./lib/cli/main.ts";
