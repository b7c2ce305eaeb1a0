/**
 * ICMP errors about a socket's datagrams, as the kernel reports them (Linux: `IP_RECVERR`,
 * `IPV6_RECVERR` and the socket's error queue): what kind each is, and how ping(8) words it.
 * Pure: the native backend reads them, the senders count and print them.
 *
 * @module
 */

import type { PeerAddress } from "./socket.ts";

/**
 * The kinds the senders count ICMP errors by: the answers to "is anything listening, is it
 * routed, is it filtered, is it too big, is the TTL too small".
 */
export type IcmpKind =
  | "port_unreachable"
  | "host_unreachable"
  | "net_unreachable"
  | "admin_prohibited"
  | "frag_needed"
  | "time_exceeded"
  | "other";

/** Every kind, in the order the summaries list them. */
export const ICMP_KINDS: readonly IcmpKind[] = [
  "port_unreachable",
  "host_unreachable",
  "net_unreachable",
  "admin_prohibited",
  "frag_needed",
  "time_exceeded",
  "other",
];

/** One ICMP error about a datagram the socket sent. */
export interface IcmpReport {
  /** ICMP (IPv4) or ICMPv6. */
  readonly version: 4 | 6;
  /** The ICMP type and code, as the message carried them. */
  readonly type: number;
  /** The ICMP code. */
  readonly code: number;
  /** Its kind (see {@linkcode icmpKind}). */
  readonly kind: IcmpKind;
  /** The address that sent the error (a router, or the destination); null if not told. */
  readonly from: string | null;
  /** Where the datagram it is about was sent. */
  readonly to: PeerAddress;
  /** The next-hop MTU of a "fragmentation needed" or "packet too big"; null otherwise. */
  readonly mtu: number | null;
  /**
   * What the error quoted of the datagram's payload (from its first byte; routers quote at
   * least 8 bytes past the UDP header, mostly far more): enough to tell which probe it was.
   * A view valid only during the call that hands the report on.
   */
  readonly quoted: Uint8Array;
  /** When the error reached the socket, on the monotonic clock (`performance.now()`). */
  readonly arrivedAt: number;
  /**
   * True for this host's own error, no ICMP: a datagram bigger than its interface's MTU
   * (`mtu`, kind "frag_needed"), which the send that failed has already told.
   */
  readonly local: boolean;
}

/** Called once per ICMP error, synchronously; `report.quoted` is valid only during the call. */
export type IcmpHandler = (report: IcmpReport) => void;

const V4_UNREACHABLE: Readonly<Record<number, IcmpKind>> = {
  0: "net_unreachable",
  1: "host_unreachable",
  3: "port_unreachable",
  4: "frag_needed",
  6: "net_unreachable",
  7: "host_unreachable",
  9: "admin_prohibited",
  10: "admin_prohibited",
  11: "net_unreachable",
  12: "host_unreachable",
  13: "admin_prohibited",
};

const V6_UNREACHABLE: Readonly<Record<number, IcmpKind>> = {
  0: "net_unreachable",
  1: "admin_prohibited",
  3: "host_unreachable",
  4: "port_unreachable",
  5: "admin_prohibited",
  6: "admin_prohibited",
};

/**
 * The kind of an ICMP (`version` 4) or ICMPv6 (6) error of `type` and `code`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { icmpKind } from "./icmp.ts";
 * strictEqual(icmpKind(4, 3, 3), "port_unreachable");
 * strictEqual(icmpKind(4, 3, 13), "admin_prohibited");
 * strictEqual(icmpKind(6, 2, 0), "frag_needed");
 * strictEqual(icmpKind(6, 3, 0), "time_exceeded");
 * strictEqual(icmpKind(4, 12, 0), "other");
 * ```
 */
export function icmpKind(version: 4 | 6, type: number, code: number): IcmpKind {
  if (version === 4) {
    if (type === 3) return V4_UNREACHABLE[code] ?? "other";
    return type === 11 ? "time_exceeded" : "other";
  }
  if (type === 1) return V6_UNREACHABLE[code] ?? "other";
  if (type === 2) return "frag_needed";
  return type === 3 ? "time_exceeded" : "other";
}

const V4_WORDS: Readonly<Record<number, string>> = {
  0: "Destination Net Unreachable",
  1: "Destination Host Unreachable",
  2: "Destination Protocol Unreachable",
  3: "Destination Port Unreachable",
  5: "Source Route Failed",
  6: "Destination Net Unknown",
  7: "Destination Host Unknown",
  8: "Source Host Isolated",
  9: "Destination Net Prohibited",
  10: "Destination Host Prohibited",
  11: "Destination Net Unreachable for Type of Service",
  12: "Destination Host Unreachable for Type of Service",
  13: "Packet filtered",
  14: "Precedence Violation",
  15: "Precedence Cutoff",
};

const V6_WORDS: Readonly<Record<number, string>> = {
  0: "No route",
  1: "Administratively prohibited",
  2: "Beyond scope of source address",
  3: "Address unreachable",
  4: "Port unreachable",
  5: "Source address failed ingress/egress policy",
  6: "Reject route to destination",
};

/**
 * What ping(8) (iputils) prints for an ICMP error of `type` and `code`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { icmpWords } from "./icmp.ts";
 * strictEqual(icmpWords(4, 3, 3, null), "Destination Port Unreachable");
 * strictEqual(icmpWords(4, 3, 4, 1280), "Frag needed and DF set (mtu = 1280)");
 * strictEqual(icmpWords(4, 11, 0, null), "Time to live exceeded");
 * strictEqual(icmpWords(6, 1, 4, null), "Destination unreachable: Port unreachable");
 * strictEqual(icmpWords(6, 2, 0, 1280), "Packet too big: mtu=1280");
 * ```
 */
export function icmpWords(
  version: 4 | 6,
  type: number,
  code: number,
  mtu: number | null,
): string {
  if (version === 4) {
    if (type === 3 && code === 4) return `Frag needed and DF set (mtu = ${mtu ?? "?"})`;
    if (type === 3) return V4_WORDS[code] ?? `Dest Unreachable, Bad Code: ${code}`;
    if (type === 11) return code === 0 ? "Time to live exceeded" : "Frag reassembly time exceeded";
    if (type === 12) return "Parameter problem";
    return `Bad ICMP type: ${type}`;
  }
  if (type === 1) return `Destination unreachable: ${V6_WORDS[code] ?? `Unknown code ${code}`}`;
  if (type === 2) return `Packet too big: mtu=${mtu ?? "?"}`;
  if (type === 3) {
    return code === 0 ? "Time exceeded: Hop limit" : "Time exceeded: Defragmentation failure";
  }
  if (type === 4) return "Parameter problem";
  return `Unknown icmp type: ${type}`;
}

/** A count per {@linkcode IcmpKind}, every kind present. */
export type IcmpCounts = Record<IcmpKind, number>;

/**
 * A count of 0 for every kind.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { noIcmpCounts } from "./icmp.ts";
 * strictEqual(noIcmpCounts().port_unreachable, 0);
 * strictEqual(Object.keys(noIcmpCounts()).length, 7);
 * ```
 */
export function noIcmpCounts(): IcmpCounts {
  return Object.fromEntries(ICMP_KINDS.map((kind) => [kind, 0])) as IcmpCounts;
}
