/**
 * The sockaddr codec: numeric IPv4 and IPv6 addresses and ports to and from the kernel's
 * `sockaddr_in` and `sockaddr_in6`, whether one is IPv4-mapped, an address's bytes as a
 * socket sends from it, and the cache of peers a socket decoded.
 *
 * @module
 */

import { canonicalHost } from "../address.ts";
import {
  AF_INET,
  AF_INET6,
  SOCKADDR_FAMILY,
  SOCKADDR_IN6_ADDR,
  SOCKADDR_IN6_SCOPE_ID,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_ADDR,
  SOCKADDR_IN_SIZE,
  SOCKADDR_PORT,
  SOCKADDR_SIZE,
} from "./_layout.ts";

/**
 * Writes a numeric IPv4 or IPv6 address and a port into `into` as a `sockaddr_in` or
 * `sockaddr_in6`; returns its length. `into` must hold 28 bytes.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { encodeSockaddr } from "./mod.ts";
 * const bytes = new Uint8Array(28);
 * strictEqual(encodeSockaddr("127.0.0.1", 9999, bytes), 16);
 * strictEqual(bytes.subarray(0, 8).toHex(), "0200270f7f000001");
 * ```
 */
export function encodeSockaddr(hostname: string, port: number, into: Uint8Array): number {
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  into.fill(0, 0, SOCKADDR_SIZE);
  view.setUint16(SOCKADDR_PORT, port, false);
  const v4 = parseIpv4(hostname);
  if (v4 !== null) {
    view.setUint16(SOCKADDR_FAMILY, AF_INET, true);
    into.set(v4, SOCKADDR_IN_ADDR);
    return SOCKADDR_IN_SIZE;
  }
  const v6 = parseIpv6(hostname);
  if (v6 === null) throw new TypeError(`not a numeric IP address: ${hostname}`);
  view.setUint16(SOCKADDR_FAMILY, AF_INET6, true);
  into.set(v6, SOCKADDR_IN6_ADDR);
  return SOCKADDR_IN6_SIZE;
}

/**
 * Reads a `sockaddr_in` or `sockaddr_in6` back into a hostname (canonical text, IPv4-mapped
 * IPv6 shown as IPv4, as Deno reports peers) and a port.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { decodeSockaddr } from "./mod.ts";
 * const bytes = Uint8Array.fromHex("0200270f7f0000010000000000000000");
 * assertEquals(decodeSockaddr(bytes), { hostname: "127.0.0.1", port: 9999 });
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): { hostname: string; port: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const port = view.getUint16(SOCKADDR_PORT, false);
  if (view.getUint16(SOCKADDR_FAMILY, true) === AF_INET) {
    const a = SOCKADDR_IN_ADDR;
    return { hostname: `${bytes[a]}.${bytes[a + 1]}.${bytes[a + 2]}.${bytes[a + 3]}`, port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push(view.getUint16(SOCKADDR_IN6_ADDR + 2 * i, false).toString(16));
  }
  return { hostname: canonicalHost(groups.join(":")), port };
}

/**
 * Whether a `sockaddr_in6` holds an IPv4-mapped address (`::ffff:a.b.c.d`): an IPv6 socket
 * sends to it as IPv4, with the IPv4 options.
 */
export function isIpv4Mapped(bytes: Uint8Array): boolean {
  const a = SOCKADDR_IN6_ADDR;
  for (let i = 0; i < 10; i++) if (bytes[a + i] !== 0) return false;
  return bytes[a + 10] === 0xff && bytes[a + 11] === 0xff;
}

function parseIpv4(hostname: string): Uint8Array | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  if (!match) return null;
  const bytes = match.slice(1).map(Number);
  return bytes.every((byte) => byte <= 255) ? new Uint8Array(bytes) : null;
}

function parseIpv6(hostname: string): Uint8Array | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(hostname)) return null;
  let text = hostname;
  const embedded = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (embedded) {
    const v4 = parseIpv4(embedded[1]);
    if (v4 === null) return null;
    const high = ((v4[0] << 8) | v4[1]).toString(16);
    const low = ((v4[2] << 8) | v4[3]).toString(16);
    text = `${text.slice(0, -embedded[1].length)}${high}:${low}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9A-Fa-f]{1,4}$/.test(groups[i])) return null;
    const value = parseInt(groups[i], 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 255;
  }
  return bytes;
}

/**
 * The bytes of a numeric address as a socket sends from it: 4 on an IPv4 socket, 16 on an
 * IPv6 one (an IPv4 address IPv4-mapped there). Throws a TypeError for anything else.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { addressBytes } from "./_sockaddr.ts";
 * strictEqual(addressBytes("127.0.0.2", false).toHex(), "7f000002");
 * strictEqual(addressBytes("127.0.0.2", true).toHex(), "00000000000000000000ffff7f000002");
 * ```
 */
export function addressBytes(hostname: string, ipv6Socket: boolean): Uint8Array {
  const name = new Uint8Array(SOCKADDR_SIZE);
  const v4 = encodeSockaddr(hostname, 0, name) === SOCKADDR_IN_SIZE;
  const address = v4 ? name.slice(SOCKADDR_IN_ADDR, SOCKADDR_IN_ADDR + 4) : null;
  if (!ipv6Socket) {
    if (address === null) throw new TypeError(`not an IPv4 address: ${hostname}`);
    return address;
  }
  if (address === null) return name.slice(SOCKADDR_IN6_ADDR, SOCKADDR_IN6_ADDR + 16);
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(address, 12);
  return mapped;
}

/** The most peers a socket remembers by their sockaddr bytes before it starts afresh. */
const PEER_CACHE_SIZE = 4096;

/** Peers by their sockaddr bytes, so that a busy peer costs no string work per datagram. */
export class PeerCache {
  readonly #peers = new Map<string | number, Deno.NetAddr>();

  /** The peer of the sockaddr received at `at` of `names`, decoded once. */
  peerOf(names: Uint8Array, at: number): Deno.NetAddr {
    // IPv4: address and port fit one exact number; IPv6: port, flow label and address as hex.
    const a = at + SOCKADDR_IN_ADDR;
    const p = at + SOCKADDR_PORT;
    const key = names[at + SOCKADDR_FAMILY] === AF_INET && names[at + SOCKADDR_FAMILY + 1] === 0
      ? ((names[a] * 256 + names[a + 1]) * 256 + names[a + 2]) * 256 * 65536 +
        names[a + 3] * 65536 + names[p] * 256 + names[p + 1]
      : names.subarray(p, at + SOCKADDR_IN6_SCOPE_ID).toHex();
    let peer = this.#peers.get(key);
    if (peer === undefined) {
      if (this.#peers.size >= PEER_CACHE_SIZE) this.#peers.clear();
      peer = { transport: "udp", ...decodeSockaddr(names.subarray(at, at + SOCKADDR_SIZE)) };
      this.#peers.set(key, peer);
    }
    return peer;
  }
}

/** A destination as the kernel takes it (see {@linkcode DestinationCache}). */
export interface Destination {
  readonly hostname: string;
  readonly port: number;
  /** Its `sockaddr_in` or `sockaddr_in6`. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** How many of those bytes it is. */
  readonly length: number;
  /** Sent as IPv4 (an IPv4-mapped address on an IPv6 socket too). */
  readonly ipv4: boolean;
}

/** No destination yet: matches none. */
export const NO_DESTINATION: Destination = {
  hostname: "",
  port: -1,
  bytes: new Uint8Array(SOCKADDR_SIZE),
  length: 0,
  ipv4: false,
};

/**
 * Each destination object a socket sends to, encoded once: a monitor probes a thousand targets,
 * each with its own, and parsing the address text costs more than the send's own work. Keyed by
 * the object (forgotten with it), checked against its address and port (it may have changed).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DestinationCache } from "./_sockaddr.ts";
 * const cache = new DestinationCache();
 * const target = { hostname: "127.0.0.1", port: 9999 };
 * const first = cache.encode(target);
 * strictEqual(first.bytes.subarray(0, 8).toHex(), "0200270f7f000001");
 * strictEqual(cache.encode(target), first);
 * target.port = 1;
 * strictEqual(cache.encode(target).bytes.subarray(2, 4).toHex(), "0001");
 * ```
 */
export class DestinationCache {
  readonly #known = new WeakMap<object, Destination>();
  #last: Destination = NO_DESTINATION; // most sockets send to one peer, or answer the last one

  /** `to` as the kernel takes it. */
  encode(to: { hostname: string; port: number }): Destination {
    const last = this.#last;
    if (to.hostname === last.hostname && to.port === last.port) return last;
    this.#last = this.#lookUp(to);
    return this.#last;
  }

  #lookUp(to: { hostname: string; port: number }): Destination {
    const known = this.#known.get(to);
    if (known !== undefined && known.hostname === to.hostname && known.port === to.port) {
      return known;
    }
    const bytes = new Uint8Array(SOCKADDR_SIZE);
    const length = encodeSockaddr(to.hostname, to.port, bytes);
    const ipv4 = length === SOCKADDR_IN_SIZE || isIpv4Mapped(bytes);
    const encoded = { hostname: to.hostname, port: to.port, bytes, length, ipv4 };
    this.#known.set(to, encoded);
    return encoded;
  }
}

/** The source addresses replies are sent from, as bytes ({@linkcode addressBytes}): the last. */
export class SourceCache {
  #text = "";
  #bytes: Uint8Array = new Uint8Array(4);

  /** The bytes of `source` as a socket of that kind sends from it. */
  bytesOf(source: string, ipv6Socket: boolean): Uint8Array {
    if (source !== this.#text) {
      this.#bytes = addressBytes(source, ipv6Socket);
      this.#text = source;
    }
    return this.#bytes;
  }
}
