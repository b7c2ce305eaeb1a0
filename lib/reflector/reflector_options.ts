/**
 * What a `Reflector` is started with (`Reflector.listen`), apart from the reflector
 * itself, which re-exports it.
 *
 * @module
 */

import type { ProbeFormat } from "../wire/mod.ts";
import type { RawMode } from "./raw.ts";
import type { DatagramEvent } from "./reflector_stats.ts";

/** Options of `Reflector.listen`. */
export interface ReflectorOptions {
  /** Numeric address to bind (resolve names first). */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** The wire format of the probes it answers; default the `udp` frame format. */
  format?: ProbeFormat;
  /** Raw datagram handling; default "ack". */
  raw?: RawMode;
  /** Called after each datagram has been handled. */
  onDatagram?: (event: DatagramEvent) => void;
  /** With a key, only PINGs with a valid tag are answered (and PONGs are tagged); everything
   * else is dropped without a reply and counted. */
  key?: CryptoKey;
  /** With a key: how far a PING's timestamp may be from this clock, and how long its
   * (session, sequence, attempt) is remembered against replays. Default 30 s. */
  replayWindowMs?: number;
  /** Per source address: datagrams per second and burst; more are dropped and counted. */
  rateLimit?: { rate: number; burst: number };
  /** All sources together: datagrams per second and burst. */
  globalLimit?: { rate: number; burst: number };
  /** The receive buffer to ask the kernel for, bytes (`Reflector.receiveBuffer`). */
  receiveBuffer?: number;
  /** Read what the kernel coalesces (UDP_GRO; its drop count is then unknown). */
  gro?: boolean;
}

/** Default of {@linkcode ReflectorOptions.replayWindowMs}. */
export const DEFAULT_REPLAY_WINDOW_MS = 30_000;
