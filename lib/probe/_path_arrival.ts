/**
 * How the probes arrived at the reflector, as its replies say it, whatever the wire format:
 * the TTL (hence the hops on the way there), the DSCP and ECN they reached it with, and the
 * source address it saw them from (behind a NAT, the NAT's). STAMP says it in its Sender TTL,
 * Class of Service and Location TLVs, the `udp` frame in its path report (PATH); both feed one
 * {@linkcode PathArrival}.
 *
 * @module
 */

import type { PathReport } from "../wire/mod.ts";

/** The keys of a ping summary this tells; each null when not known. */
export interface ArrivalSummary {
  /** Routers on the way there plus one: the TTL the probes left with, + 1, − the TTL the
   * reflector saw (255 − 252 + 1 = 4: three routers); null when the reflector did not say or
   * our TTL could not be set. */
  hops_there: number | null;
  /** DSCP the probes left with; null when not known. */
  dscp_sent: number | null;
  /** DSCP the probes reached the reflector with; null when it did not say. */
  dscp_received: number | null;
  /** ECN the probes left with; null when not known. */
  ecn_sent: number | null;
  /** ECN the probes reached the reflector with; null when it did not say. */
  ecn_received: number | null;
  /** The source address and port the reflector saw, `HOST:PORT` (IPv6 in brackets); null
   * when it did not say. */
  seen_as: string | null;
}

/** What the socket took of the IP header fields the probes were to leave with (a sender). */
export interface HeaderSent {
  /** Whether the socket took the TTL asked for. */
  readonly ttlSet: boolean;
  /** The TTL asked for. */
  readonly ttl: number;
  /** Whether the socket took the TOS byte asked for. */
  readonly tosSet: boolean;
  /** The TOS byte asked for. */
  readonly tos: number;
}

/**
 * Collects, reply by reply, what the reflector saw of the probes' arrival; the last reply
 * that said a field wins.
 *
 * @example A udp path report of TTL 252 and DSCP EF, for probes sent with TTL 255 and CS0
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { PathArrival } from "./_path_arrival.ts";
 * const arrival = new PathArrival({ ttlSet: true, ttl: 255, tosSet: true, tos: 0 });
 * arrival.observeReport({ ttl: 252, tos: 0xb8, address: "198.51.100.23", port: 40000 });
 * deepStrictEqual(arrival.summary(), {
 *   hops_there: 4, dscp_sent: 0, dscp_received: 46, ecn_sent: 0, ecn_received: 0,
 *   seen_as: "198.51.100.23:40000",
 * });
 * ```
 */
export class PathArrival {
  readonly #sent: HeaderSent;
  #ttl: number | null = null;
  #dscp: number | null = null;
  #ecn: number | null = null;
  #seenAs: string | null = null;

  /** A collector for probes sent as `sent` says (read when the summary is made). */
  constructor(sent: HeaderSent) {
    this.#sent = sent;
  }

  /** A reply's word on its probe's arrival; null fields it did not say. */
  observe(
    ttl: number | null,
    dscp: number | null,
    ecn: number | null,
    address: string | null,
    port: number | null,
  ): void {
    if (ttl !== null) this.#ttl = ttl;
    if (dscp !== null) this.#dscp = dscp;
    if (ecn !== null) this.#ecn = ecn;
    if (address !== null && port !== null) {
      this.#seenAs = address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
    }
  }

  /** A `udp` PONG's path report. */
  observeReport(report: PathReport): void {
    const tos = report.tos;
    this.observe(
      report.ttl,
      tos === null ? null : tos >> 2,
      tos === null ? null : tos & 3,
      report.address,
      report.port,
    );
  }

  /** The summary's keys. */
  summary(): ArrivalSummary {
    const { ttlSet, ttl: ttlSent, tosSet, tos: tosSent } = this.#sent;
    const ttl = this.#ttl;
    return {
      hops_there: !ttlSet || ttl === null || ttl > ttlSent ? null : ttlSent - ttl + 1,
      dscp_sent: tosSet ? tosSent >> 2 : null,
      dscp_received: this.#dscp,
      ecn_sent: tosSet ? tosSent & 3 : null,
      ecn_received: this.#ecn,
      seen_as: this.#seenAs,
    };
  }
}
