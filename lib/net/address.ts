/**
 * Host and port parsing, name resolution and address formatting.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { NetError } from "./errors.ts";

/** The port `udp serve` listens on and `udp ping` sends to unless told otherwise. */
export const DEFAULT_PORT = 9999;

/** The address `udp serve` and `udp listen` bind unless told otherwise: loopback only. */
export const DEFAULT_LISTEN_HOST = "127.0.0.1";

/** An IP address family. */
export type Family = "ipv4" | "ipv6";

/** A host (name or literal, without brackets) and a port. */
export interface HostPort {
  /** A host name, an IPv4 literal or an IPv6 literal without brackets. */
  host: string;
  /** A port number 0..65535. */
  port: number;
}

/** A resolved UDP address. */
export interface ResolvedAddress {
  /** The numeric address, in canonical form. */
  hostname: string;
  /** The port. */
  port: number;
  /** The address family. */
  family: Family;
}

/**
 * Parses a port number; `allowZero` admits 0 (bind to any free port). Throws a
 * {@linkcode NetError} with one line for anything else.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { NetError } from "./errors.ts";
 * import { parsePort } from "./address.ts";
 * strictEqual(parsePort("9999", false), 9999);
 * throws(() => parsePort("0", false), NetError);
 * ```
 */
export function parsePort(text: string, allowZero: boolean): number {
  const lowest = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535 || Number(text) < lowest) {
    throw new NetError(`invalid port '${text}': use a whole number from ${lowest} to 65535`);
  }
  return Number(text);
}

/**
 * Parses `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT` or a bare IPv6 literal; throws a
 * {@linkcode NetError} with one line when it cannot.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { parseHostPort } from "./address.ts";
 * assertEquals(parseHostPort("[::1]:7", 9999), { host: "::1", port: 7 });
 * assertEquals(parseHostPort("example.net", 9999), { host: "example.net", port: 9999 });
 * ```
 */
export function parseHostPort(text: string, defaultPort: number, allowPortZero = false): HostPort {
  let host = text;
  let port = defaultPort;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
    if (bracketed[2] !== undefined) port = parsePort(bracketed[2], allowPortZero);
    if (!host.includes(":")) throw new NetError(`'[${host}]' is not an IPv6 address`);
  } else if (text.includes("[") || text.includes("]")) {
    throw new NetError(`invalid address '${text}': write IPv6 as [ADDRESS]:PORT`);
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const colon = text.indexOf(":");
    host = text.slice(0, colon);
    port = parsePort(text.slice(colon + 1), allowPortZero);
  }
  validateHost(host, text);
  return { host, port };
}

/**
 * Checks that a host is a plausible name or IP literal, so that typos get a precise message
 * before any lookup (a {@linkcode NetError} says which).
 *
 * @example
 * ```ts
 * import { doesNotThrow, throws } from "node:assert/strict";
 * import { NetError } from "./errors.ts";
 * import { validateHost } from "./address.ts";
 * doesNotThrow(() => validateHost("127.0.0.1"));
 * throws(() => validateHost("999.1.1.1"), NetError);
 * ```
 */
export function validateHost(host: string, original = host): void {
  if (host === "") throw new NetError(`missing host in '${original}': e.g. 127.0.0.1:9999`);
  if (/^[\d.]+$/.test(host)) {
    const parts = host.split(".");
    const valid = parts.length === 4 &&
      parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255);
    if (!valid) throw new NetError(`invalid IPv4 address '${host}'`);
    return;
  }
  if (host.includes(":")) {
    if (canonicalIpv6(host) === null) throw new NetError(`invalid IPv6 address '${host}'`);
    return;
  }
  if (!/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/.test(host) || host.length > 253) {
    throw new NetError(`invalid host name '${host}'`);
  }
}

/**
 * The family of a numeric address, or null for a name.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { familyOf } from "./address.ts";
 * strictEqual(familyOf("::1"), "ipv6");
 * ```
 */
export function familyOf(address: string): Family | null {
  if (address.includes(":")) return "ipv6";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return "ipv4";
  return null;
}

/** Options of {@linkcode resolveHost}. */
export interface ResolveOptions {
  /** Only accept an address of this family (ping's -4 / -6). */
  family?: Family;
}

/**
 * Resolves a host name or literal to one numeric address (the system resolver's first
 * answer, /etc/hosts included). Throws a {@linkcode NetError} with one line when it cannot.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { resolveHost } from "./address.ts";
 * const address = await resolveHost("127.0.0.1", 9999);
 * strictEqual(address.family, "ipv4");
 * ```
 */
export async function resolveHost(
  host: string,
  port: number,
  options: ResolveOptions = {},
): Promise<ResolvedAddress> {
  validateHost(host);
  const literal = familyOf(host);
  if (literal !== null) {
    if (options.family && options.family !== literal) {
      throw new NetError(`'${host}' is an ${literal} address but ${options.family} was asked`);
    }
    return { hostname: canonicalHost(host), port, family: literal };
  }
  let answer: { address: string; family: number };
  try {
    answer = await lookup(host, {
      family: options.family === "ipv6" ? 6 : options.family === "ipv4" ? 4 : 0,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === "ENOTFOUND" || code === "ENODATA"
      ? "no such host"
      : code === "EAI_AGAIN"
      ? "the resolver did not answer (try again, or use an IP address)"
      : (error as Error).message;
    throw new NetError(`cannot resolve host '${host}': ${why}`, { cause: error });
  }
  return {
    hostname: canonicalHost(answer.address),
    port,
    family: answer.family === 6 ? "ipv6" : "ipv4",
  };
}

/**
 * The address to listen on from `--host` and `--port` options (either may be absent):
 * defaults {@linkcode DEFAULT_LISTEN_HOST} and {@linkcode DEFAULT_PORT}; port 0 is allowed.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { resolveListenAddress } from "./address.ts";
 * assertEquals(await resolveListenAddress(undefined, "0"), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   family: "ipv4",
 * });
 * ```
 */
export async function resolveListenAddress(
  host: string | undefined,
  port: string | undefined,
): Promise<ResolvedAddress> {
  const portNumber = port === undefined ? DEFAULT_PORT : parsePort(port, true);
  return await resolveHost(host ?? DEFAULT_LISTEN_HOST, portNumber);
}

/**
 * Canonical text of a numeric address: IPv6 compressed per RFC 5952, IPv4-mapped IPv6
 * addresses (as a dual-stack socket reports IPv4 peers) shown as plain IPv4.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { canonicalHost } from "./address.ts";
 * strictEqual(canonicalHost("::ffff:127.0.0.1"), "127.0.0.1");
 * strictEqual(canonicalHost("0:0:0:0:0:0:0:1"), "::1");
 * ```
 */
export function canonicalHost(address: string): string {
  if (!address.includes(":")) return address; // IPv4 (or a name): as it is, and cheaply
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1];
  const canonical = canonicalIpv6(address);
  if (canonical === null) return address;
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (hexMapped) {
    const high = parseInt(hexMapped[1], 16);
    const low = parseInt(hexMapped[2], 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return canonical;
}

/**
 * Formats an address as `HOST:PORT`, with IPv6 in brackets.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatAddress } from "./address.ts";
 * strictEqual(formatAddress({ hostname: "::1", port: 9999 }), "[::1]:9999");
 * ```
 */
export function formatAddress(address: { hostname: string; port: number }): string {
  const host = canonicalHost(address.hostname);
  return host.includes(":") ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

/**
 * Whether two addresses name the same host and port, whatever their textual form.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { sameAddress } from "./address.ts";
 * strictEqual(
 *   sameAddress({ hostname: "::ffff:127.0.0.1", port: 1 }, { hostname: "127.0.0.1", port: 1 }),
 *   true,
 * );
 * ```
 */
export function sameAddress(
  a: { hostname: string; port: number },
  b: { hostname: string; port: number },
): boolean {
  if (a.port !== b.port) return false;
  // The same text is the same address: a sender checks every reply's source this way.
  return a.hostname === b.hostname || canonicalHost(a.hostname) === canonicalHost(b.hostname);
}

/**
 * The wildcard address of a family, for a client socket that may send anywhere.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { wildcardFor } from "./address.ts";
 * strictEqual(wildcardFor("ipv6"), "::");
 * ```
 */
export function wildcardFor(family: Family): string {
  return family === "ipv6" ? "::" : "0.0.0.0";
}

function canonicalIpv6(address: string): string | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(address)) return null;
  try {
    // The URL parser implements RFC 5952 serialisation and rejects malformed literals.
    const hostname = new URL(`http://[${address}]/`).hostname;
    return hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/**
 * Peers with their address in canonical text ({@linkcode canonicalHost}), made once for a peer
 * that sends again: the native backend hands the same object for the same peer, so a busy one
 * costs nothing per datagram. Treat what it returns as read-only: it is shared.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CanonicalPeers } from "./address.ts";
 * const peers = new CanonicalPeers();
 * const from = { transport: "udp" as const, hostname: "::ffff:192.0.2.1", port: 9 };
 * strictEqual(peers.of(from).hostname, "192.0.2.1");
 * strictEqual(peers.of(from), peers.of(from));
 * ```
 */
export class CanonicalPeers {
  #last: Deno.NetAddr | null = null;
  #canonical: Deno.NetAddr = { transport: "udp", hostname: "", port: 0 };

  /** `from`, its hostname canonical. */
  of(from: Deno.NetAddr): Deno.NetAddr {
    if (from !== this.#last) {
      this.#last = from;
      this.#canonical = { ...from, hostname: canonicalHost(from.hostname) };
    }
    return this.#canonical;
  }
}
