/**
 * The options of STAMP (`--stamp`, `--ptp`, `--tlv`) and of the IP header's fields a sender
 * sets (`-Q/--tos`, `--dscp`, `--ecn`, `-t/--ttl`), with where and how the probes leave (`-M`,
 * `-I`, `--interface`), shared by ping, bench and monitor, and the probe format they make.
 *
 * @module
 */

import { canonicalHost, defaultBackend, type DontFragment, localClockQuality } from "../net/mod.ts";
import { familyOf, formatAddress, type ResolvedAddress, validateHost } from "../net/mod.ts";
import type { Family } from "../net/address.ts";
import {
  MAX_DATAGRAM_IPV4,
  MAX_DATAGRAM_IPV6,
  type ProbeFormat,
  SENDER_TLVS,
  type SenderTlv,
  STAMP_PORT,
  stampFormat,
  udpFormat,
} from "../wire/mod.ts";
import { UsageError } from "./errors.ts";
import { flag, group, type Option, option } from "./options.ts";
import { parseChoice, parseWholeNumber } from "./parse.ts";

export { STAMP_PORT };

/** `--stamp`: speak STAMP (RFC 8762) instead of udp's protocol. */
export function stampFlag(help: string): Option<boolean> {
  return flag({ long: "stamp", help });
}

/** `--ptp`: STAMP timestamps in PTPv2's format instead of NTP's. */
export function ptpFlag(): Option<boolean> {
  return flag({
    long: "ptp",
    help: `with --stamp: PTPv2 timestamps (TAI) instead of NTP's (the Z bit
says which)`,
  });
}

/** `--tlv LIST`: the RFC 8972 TLVs a STAMP sender's packets carry. */
export function tlvOption(): Option<readonly SenderTlv[]> {
  return option({
    long: "tlv",
    value: "LIST",
    help: `with --stamp: RFC 8972 TLVs to add, comma-separated, or all:
${SENDER_TLVS.slice(0, 3).join(", ")},
${SENDER_TLVS.slice(3).join(", ")} (class-of-service brings
timestamp-info, which shows that a reflector filled it in)`,
    parse: parseTlvs,
    default: [],
  });
}

/**
 * Parses a `--tlv` list.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { parseTlvs } from "./stamp_options.ts";
 * deepStrictEqual(parseTlvs("direct-measurement"), ["direct-measurement"]);
 * deepStrictEqual(parseTlvs("class-of-service"), ["class-of-service", "timestamp-info"]);
 * throws(() => parseTlvs("cos"), /invalid --tlv 'cos'/);
 * ```
 */
export function parseTlvs(list: string): readonly SenderTlv[] {
  const names = list === "all" ? [...SENDER_TLVS] : list.split(",").map((name) => name.trim());
  const tlvs = new Set<SenderTlv>();
  for (const name of names) {
    if (!(SENDER_TLVS as readonly string[]).includes(name)) {
      throw new UsageError(
        `invalid --tlv '${name}': use a comma-separated list of ${SENDER_TLVS.join(", ")}, or all`,
      );
    }
    tlvs.add(name as SenderTlv);
  }
  if (tlvs.has("class-of-service")) tlvs.add("timestamp-info");
  return [...tlvs];
}

/** DSCP names (RFC 4594, RFC 5865, RFC 8622) and their code points. */
export const DSCP_NAMES: Readonly<Record<string, number>> = Object.freeze({
  CS0: 0,
  LE: 1,
  CS1: 8,
  AF11: 10,
  AF12: 12,
  AF13: 14,
  CS2: 16,
  AF21: 18,
  AF22: 20,
  AF23: 22,
  CS3: 24,
  AF31: 26,
  AF32: 28,
  AF33: 30,
  CS4: 32,
  AF41: 34,
  AF42: 36,
  AF43: 38,
  CS5: 40,
  VA: 44,
  EF: 46,
  CS6: 48,
  CS7: 56,
});

/** ECN code points (RFC 3168) by name. */
export const ECN_NAMES = ["not-ect", "ect1", "ect0", "ce"] as const;

/**
 * A DSCP for people: its name where it has one, else its number.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { dscpName } from "./stamp_options.ts";
 * strictEqual(dscpName(46), "EF");
 * strictEqual(dscpName(5), "5");
 * ```
 */
export function dscpName(dscp: number): string {
  return Object.entries(DSCP_NAMES).find(([, value]) => value === dscp)?.[0] ?? String(dscp);
}

/** An ECN code point for people: Not-ECT, ECT(1), ECT(0), CE. */
export function ecnName(ecn: number): string {
  return ["Not-ECT", "ECT(1)", "ECT(0)", "CE"][ecn & 3];
}

/**
 * Parses `--dscp NAME|N`.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseDscp } from "./stamp_options.ts";
 * strictEqual(parseDscp("ef"), 46);
 * strictEqual(parseDscp("10"), 10);
 * throws(() => parseDscp("64"), /invalid --dscp '64'/);
 * ```
 */
export function parseDscp(value: string): number {
  const named = DSCP_NAMES[value.toUpperCase()];
  if (named !== undefined) return named;
  if (/^\d+$/.test(value) && Number(value) <= 63) return Number(value);
  throw new UsageError(
    `invalid --dscp '${value}': use a number from 0 to 63 or a name (EF, AF41, CS0 to CS7, LE, ...)`,
  );
}

/**
 * `-Q/--tos N`, or `--dscp` and `--ecn`: the TOS byte (IPv6: traffic class) the probes leave
 * with; undefined for the system's.
 */
export function tosOptions(): Option<number | undefined> {
  return group(
    {
      tos: option({
        long: "tos",
        short: "Q",
        value: "N",
        help: "the whole TOS byte (IPv6: traffic class), 0 to 255 or 0x00 to 0xff, as ping -Q",
        // As ping(8): in hex too (0xb8 is DSCP EF).
        parse: (value) =>
          /^0x[0-9a-f]{1,2}$/i.test(value)
            ? Number.parseInt(value.slice(2), 16)
            : parseWholeNumber("--tos", value, 0, 255),
      }),
      dscp: option({
        long: "dscp",
        value: "NAME|N",
        help: "the DSCP of the probes (EF, AF41, CS1, ... or 0 to 63)",
        parse: parseDscp,
      }),
      ecn: option({
        long: "ecn",
        value: "CODE",
        help: "the ECN field of the probes: not-ect, ect0, ect1 or ce",
        parse: (value) => ECN_NAMES.indexOf(parseChoice("--ecn", value, ECN_NAMES)),
      }),
    },
    ({ tos, dscp, ecn }) => {
      if (tos !== undefined && (dscp !== undefined || ecn !== undefined)) {
        throw new UsageError("--tos sets the whole byte: give it alone, or --dscp and --ecn");
      }
      if (tos !== undefined) return tos;
      if (dscp === undefined && ecn === undefined) return undefined;
      return ((dscp ?? 0) << 2) | (ecn ?? 0);
    },
  );
}

/** `-t/--ttl N`: the probes' IP TTL (IPv6: hop limit); `--ttl` alone where `-t` is taken. */
export function ttlOption(
  byDefault = "the system's; with --stamp 255",
  short: "t" | null = "t",
): Option<number | undefined> {
  return option({
    long: "ttl",
    short: short ?? undefined,
    value: "N",
    help: `the probes' IP TTL (IPv6: hop limit), 1 to 255 (default:
${byDefault})`,
    parse: (value) => parseWholeNumber("--ttl", value, 1, 255),
  });
}

/** Where and how the probes leave: `-M`, `-I` and `--interface`. */
export interface PathChoice {
  /** Don't-fragment (`-M do|want|dont`); undefined for the system's. */
  dontFragment: DontFragment | undefined;
  /** The address to send from (`-I`); undefined for any. */
  source: string | undefined;
  /** The network interface to send through (`--interface`); undefined for the routes'. */
  device: string | undefined;
}

const DONT_FRAGMENT = ["do", "want", "dont"] as const;

/** `-M do|want|dont`, `-I ADDRESS` and `--interface NAME`, as ping(8)'s. */
export function pathOptions(): Option<PathChoice> {
  return group({
    dontFragment: option<DontFragment>({
      long: "pmtudisc",
      short: "M",
      value: "HINT",
      help: `don't-fragment, as ping -M: do (set it), want (set it until a router says the
path is narrower, then fragment), dont (never); default the system's (want)`,
      parse: (value) => parseChoice("-M", value, DONT_FRAGMENT),
    }),
    source: option({
      long: "source",
      short: "I",
      value: "ADDRESS",
      help: "send from this address of this machine (default: the one the routes pick)",
      parse: parseSourceAddress,
    }),
    device: option({
      long: "interface",
      value: "NAME",
      help: "send through this network interface only (SO_BINDTODEVICE), e.g. eth0",
      parse: (value) => {
        if (!/^[^\s/]{1,15}$/.test(value)) {
          throw new UsageError(
            `invalid --interface '${value}': an interface name is 1 to 15 characters, ` +
              "no spaces or slashes (ip link lists them)",
          );
        }
        return value;
      },
    }),
  }, (values) => values);
}

/** `-I ADDRESS`: a numeric address (an interface name goes to --interface). */
function parseSourceAddress(value: string): string {
  const family = familyOf(value);
  if (family === null) {
    throw new UsageError(
      `invalid -I '${value}': give an address of this machine (e.g. 192.0.2.10 or 2001:db8::10); ` +
        `for an interface use --interface ${value}`,
    );
  }
  try {
    validateHost(value);
  } catch (error) {
    throw new UsageError(`invalid -I '${value}': ${(error as Error).message}`);
  }
  return canonicalHost(value);
}

/** Checks that `-I` is of the target's family. */
export function checkSourceFamily(source: string | undefined, target: ResolvedAddress): void {
  if (source !== undefined && familyOf(source) !== target.family) {
    throw new UsageError(
      `-I ${source} is not of the target's family (${target.family === "ipv6" ? "IPv6" : "IPv4"}` +
        `: ${formatAddress(target)}): give an address of the same family`,
    );
  }
}

/**
 * `-Q/--tos`, `--dscp`, `--ecn`, `-t/--ttl`, `-M` and `--interface` are set on udp's native
 * sockets only: a usage error when they are asked for and the sockets are Deno's.
 */
export function requireSocketOptionSupport(
  options: { tos?: number; ttl?: number; path?: PathChoice },
): void {
  const { tos, ttl, path } = options;
  const asked = [tos, ttl, path?.dontFragment, path?.device].some((value) => value !== undefined);
  if (asked && defaultBackend() !== "native") {
    throw new UsageError(
      "-Q/--tos, --dscp, --ecn, -t/--ttl, -M and --interface need udp's native sockets " +
        "(Linux x86-64, glibc); these sockets cannot set them",
    );
  }
}

/** What makes a sender's probe format. */
export interface SenderFormatChoice {
  /** STAMP, else udp's protocol. */
  stamp: boolean;
  /** PTP timestamps (STAMP). */
  ptp: boolean;
  /** TLVs (STAMP). */
  tlvs: readonly SenderTlv[];
  /** Authenticated mode. */
  authenticated: boolean;
  /** The TOS byte the probes leave with, if set: Class of Service asks for its DSCP back. */
  tos: number | undefined;
}

/**
 * The probe format the options choose; a usage error for STAMP's options without `--stamp`.
 */
export function senderFormat(choice: SenderFormatChoice): ProbeFormat {
  if (!choice.stamp) {
    if (choice.ptp) throw new UsageError("--ptp goes with --stamp");
    if (choice.tlvs.length > 0) throw new UsageError("--tlv goes with --stamp");
    return udpFormat;
  }
  return stampFormat({
    authenticated: choice.authenticated,
    timestamps: choice.ptp ? "ptp" : "ntp",
    clock: localClockQuality,
    tlvs: choice.tlvs,
    dscpRequested: (choice.tos ?? 0) >> 2,
  });
}

/** The largest UDP payload over each family (65,535 minus the IP and UDP headers). */
const LARGEST_DATAGRAM: Record<Family, number> = {
  ipv4: MAX_DATAGRAM_IPV4,
  ipv6: MAX_DATAGRAM_IPV6,
};

/** Checks that a STAMP test packet of `bytes` fits in one datagram of the family. */
export function checkStampDatagram(bytes: number, family: Family): void {
  const most = LARGEST_DATAGRAM[family];
  if (bytes > most) {
    throw new UsageError(
      `invalid size: the STAMP test packet would be ${bytes} bytes, more than the ${most} ` +
        `a UDP datagram holds over ${family === "ipv6" ? "IPv6" : "IPv4"}; use a smaller -s`,
    );
  }
}
