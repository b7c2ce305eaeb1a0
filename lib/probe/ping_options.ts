/**
 * What a ping run can be told ({@linkcode PingOptions}) and its defaults.
 *
 * @module
 */

import type { DontFragment, ResolvedAddress } from "../net/mod.ts";
import type { ProbeFormat } from "../wire/mod.ts";
import type { PingEvent } from "./ping_report.ts";
import type { SenderOptions } from "./_sender.ts";

/** Default payload (padding) size in bytes, as ping(8). */
export const DEFAULT_PAYLOAD_SIZE = 56;
/** Default time between probes. */
export const DEFAULT_INTERVAL_MS = 1000;
/** Default time to wait for the reply to one attempt. */
export const DEFAULT_TIMEOUT_MS = 2000;
/** The most retransmissions a probe may have. */
export const MAX_RETRIES = 10;
/** Attempts per probe in a timeout's key: more than MAX_RETRIES + 1. */
export const ATTEMPT_KEYS = 16;
/** Probes whose state is remembered, for classifying late and duplicate replies; also the
 * most probes that can be in flight at once. */
export const PROBE_WINDOW = 16384;

/** Options of {@linkcode ping}. */
export interface PingOptions {
  /** Where the reflector is (numeric address). */
  target: ResolvedAddress;
  /** Probes to send; with `deadlineMs`, replies to wait for. Unbounded when absent. */
  count?: number;
  /** Time between probe starts; 0 sends the next probe as soon as the previous one is
   * answered or timed out. Default 1000. */
  intervalMs?: number;
  /** Time to wait for the reply to the first attempt; attempt k waits timeoutMs·2^k·(1..1.25).
   * Default 2000. */
  timeoutMs?: number;
  /** Stop after this long whatever has been sent or received. */
  deadlineMs?: number;
  /** Retransmissions of an unanswered probe (0..10). Default 0. */
  retries?: number;
  /** After the last probe is answered or timed out, keep listening this long for late and
   * duplicate replies (as irtt's --wait). Default 0: stop at once, as ping(8). */
  lingerMs?: number;
  /** Padding bytes after the header. Default 56. */
  payloadSize?: number;
  /** The wire format of the probes; default the `udp` frame format. */
  format?: ProbeFormat;
  /** Authenticated mode: PINGs carry an HMAC tag, and PONGs without a valid one are rejected
   * (counted as foreign, reason "bad-tag"). */
  key?: CryptoKey;
  /** Stops the run (as Ctrl-C does); the summary is still produced. */
  signal?: AbortSignal;
  /** Receives every event as it happens. */
  onEvent?: (event: PingEvent) => void;
  /** The session ID; random by default. */
  session?: number;
  /** Random numbers in [0, 1) for backoff jitter; Math.random by default. */
  random?: () => number;
  /** The receive buffer to ask the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Told what the kernel granted for `receiveBuffer` (null: the backend cannot set it). */
  onReceiveBuffer?: (granted: number | null) => void;
  /** The IP TTL (IPv6: hop limit) of the probes; default 255 (as STAMP's, RFC
   * 8762 §4.2: so the reflector's Sender TTL tells the hops). */
  ttl?: number;
  /** The TOS byte (IPv6: traffic class) of the probes; default the system's. */
  tos?: number;
  /** Don't-fragment (`-M`); default the system's (`want` on Linux). */
  dontFragment?: DontFragment;
  /** The address to send from (`-I`); default any of the target's family. */
  source?: string;
  /** The network interface to send through (`--interface`); default the routes' choice. */
  device?: string;
  /** Whether this host's clock is known synchronized to UTC (STAMP: one-way delays are given
   * only when both ends' clocks are). Default false. */
  synchronized?: boolean;
}

/** What a ping run's sender is told of its options. */
export function pingSenderOptions(options: PingOptions): SenderOptions {
  return {
    target: options.target,
    format: options.format,
    key: options.key,
    session: options.session,
    payloadSize: options.payloadSize ?? DEFAULT_PAYLOAD_SIZE,
    receiveBuffer: options.receiveBuffer,
    onReceiveBuffer: options.onReceiveBuffer,
    // 255, so that the TTL the reflector saw tells the hops (RFC 8762 §4.2, udp's report).
    ttl: options.ttl ?? 255,
    tos: options.tos,
    path: true,
    dontFragment: options.dontFragment,
    source: options.source,
    device: options.device,
  };
}
