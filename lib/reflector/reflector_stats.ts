/**
 * What a reflector reports: one event per datagram, and its counters with their JSON.
 *
 * @module
 */

import type { PeerAddress } from "../net/mod.ts";
import type { ProbeFormat, RequestHeader, RequestKind } from "../wire/mod.ts";

/** How the reflector classified a datagram: what its wire format made of it, or "refused",
 * which covers datagrams dropped by a rate limit and, with a key, PINGs without a valid tag
 * or replayed or stale ones. */
export type DatagramKind = RequestKind | "refused";

/** Why a datagram was refused without a reply. */
export type RefusalReason =
  | "rate-limit"
  | "global-limit"
  | "auth-missing"
  | "auth-failed"
  | "stale"
  | "replayed"
  | "replay-cache-full"
  | "delay-too-long"
  | "delayed-too-large"
  | "delayed-source-cap"
  | "delayed-global-cap";

/** What the reflector sent back ("delayed": a PONG, after the delay its PING asked for). */
export type ReplyKind =
  | "pong"
  | "error"
  | "stats"
  | "grant"
  | "ack"
  | "echo"
  | "delayed"
  | "none";

/** One datagram as the reflector saw and answered it (for `-v` and `--json` logs). */
export interface DatagramEvent {
  /** The sender. */
  from: PeerAddress;
  /** Size of the datagram. */
  bytes: number;
  /** Its classification. */
  kind: DatagramKind;
  /** For frames: type, session, sequence and attempt as far as they could be read. */
  frame?: RequestHeader;
  /** For malformed frames: the reason (one of the format's) and a one-line detail. */
  malformed?: { reason: string; detail: string };
  /** For raw datagrams: the data, a view valid only during the callback. */
  payload?: Uint8Array;
  /** For refused datagrams: why. */
  refused?: RefusalReason;
  /** The reply sent, if any. */
  reply: ReplyKind;
  /** Size of the reply (0 when none was sent, or not yet: a delayed one). */
  replyBytes: number;
  /** A delayed reply's delay, in milliseconds. */
  delayMs?: number;
  /** Why sending the reply failed, if it did. */
  sendError?: string;
}

/** Counters of everything the reflector received and sent. */
export interface ReflectorStats {
  /** Datagrams received. */
  received: number;
  /** Bytes received (UDP payload). */
  bytesReceived: number;
  /** Replies sent successfully. */
  replied: number;
  /** Bytes sent in replies. */
  bytesReplied: number;
  /** Datagrams by classification. */
  kinds: Record<DatagramKind, number>;
  /** Malformed frames by reason, every reason of the wire format (for `udp`, its
   * `MalformedReason`s). */
  malformed: Record<string, number>;
  /** Refused datagrams by reason. */
  refused: Record<RefusalReason, number>;
  /** Errors by kind: replies that could not be sent, receive errors, internal errors. */
  errors: Record<string, number>;
  /** Delayed replies (DELAYED PINGs accepted): held, then sent, failed (also among the
   * errors) or dropped (still waiting when the reflector stopped); pending: waiting now. */
  delayed: DelayedCounts;
  /** The streams it sent (`udp bench -R`, `--bidir`): started, refused, running now, and
   * their datagrams. */
  streams: StreamCounts;
  /** Datagrams the kernel dropped on the socket before the reflector could read them (its
   * receive buffer was full), as of the last one read; null where the kernel does not say. */
  kernelDrops: number | null;
}

/** The streams a reflector sent ({@linkcode ReflectorStats.streams}). */
export interface StreamCounts {
  /** Streams started. */
  started: number;
  /** Requests refused (busy, rate, size). */
  refused: number;
  /** Streams running now. */
  active: number;
  /** STREAM_DATA datagrams sent. */
  datagrams: number;
}

/** What became of the delayed replies a reflector held ({@linkcode ReflectorStats.delayed}):
 * held = sent + failed + dropped + pending. */
export interface DelayedCounts {
  /** DELAYED PINGs accepted, their replies held. */
  held: number;
  /** Delayed replies sent. */
  sent: number;
  /** Delayed replies that could not be built, signed or sent. */
  failed: number;
  /** Delayed replies still waiting when the reflector stopped. */
  dropped: number;
  /** Delayed replies waiting now. */
  pending: number;
}

/** {@linkcode reflectorStatsJson}: the counters as `udp serve --json` prints them on exit,
 * those of {@linkcode ReflectorStats} under JSON's names. */
export type ReflectorStatsJson =
  & Pick<
    ReflectorStats,
    | "received"
    | "replied"
    | "kinds"
    | "malformed"
    | "refused"
    | "errors"
    | "delayed"
    | "streams"
  >
  & { type: "stats"; bytes_received: number; bytes_replied: number; kernel_drops: number | null };

/**
 * The reflector's counters as JSON (`udp serve --json`'s last line). The counts under
 * `kinds`, `malformed`, `refused` and `errors` keep the names the counters have; the writer
 * (`--json`) puts every key in snake_case.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "./reflector.ts";
 * import { reflectorStatsJson } from "./reflector_stats.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * await reflector.close();
 * const json = reflectorStatsJson(reflector.stats);
 * strictEqual(json.type, "stats");
 * strictEqual(json.bytes_received, 0);
 * strictEqual(json.kinds["unsupported-version"], 0);
 * strictEqual(json.malformed["too-short"], 0);
 * ```
 */
export function reflectorStatsJson(stats: ReflectorStats): ReflectorStatsJson {
  return {
    type: "stats",
    received: stats.received,
    bytes_received: stats.bytesReceived,
    replied: stats.replied,
    bytes_replied: stats.bytesReplied,
    kinds: stats.kinds,
    malformed: stats.malformed,
    refused: stats.refused,
    kernel_drops: stats.kernelDrops,
    errors: stats.errors,
    delayed: stats.delayed,
    streams: stats.streams,
  };
}

/**
 * The counters before any datagram: every kind, and every reason of the format, zero.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { udpFormat } from "../wire/mod.ts";
 * import { emptyStats } from "./reflector_stats.ts";
 * const stats = emptyStats(udpFormat);
 * strictEqual(stats.kinds.ping, 0);
 * strictEqual(stats.malformed["bad-stats-payload"], 0);
 * strictEqual(stats.kernelDrops, null);
 * ```
 */
export function emptyStats(format: ProbeFormat): ReflectorStats {
  return {
    received: 0,
    bytesReceived: 0,
    replied: 0,
    bytesReplied: 0,
    kinds: {
      ping: 0,
      corrupted: 0,
      raw: 0,
      malformed: 0,
      "unsupported-version": 0,
      unexpected: 0,
      refused: 0,
      stats: 0,
      stream: 0,
    },
    malformed: Object.fromEntries(format.malformedReasons.map((reason) => [reason, 0])),
    refused: {
      "rate-limit": 0,
      "global-limit": 0,
      "auth-missing": 0,
      "auth-failed": 0,
      stale: 0,
      replayed: 0,
      "replay-cache-full": 0,
      "delay-too-long": 0,
      "delayed-too-large": 0,
      "delayed-source-cap": 0,
      "delayed-global-cap": 0,
    },
    errors: {},
    delayed: { held: 0, sent: 0, failed: 0, dropped: 0, pending: 0 },
    streams: { started: 0, refused: 0, active: 0, datagrams: 0 },
    kernelDrops: null,
  };
}
