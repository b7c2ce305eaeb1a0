/**
 * A native socket's birth: `socket()`, `bind()`, the options every one of them has, and the
 * address the kernel bound it to.
 *
 * @module
 */

import { osError } from "./_errno.ts";
import { native } from "./_ffi.ts";
import {
  AF_INET,
  AF_INET6,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCKADDR_IN_SIZE,
  SOCKADDR_SIZE,
} from "./_layout.ts";
import { askForControl, askForDestination } from "./_options.ts";
import { decodeSockaddr, encodeSockaddr } from "./_sockaddr.ts";

/** A socket just bound. */
export interface BoundSocket {
  fd: number;
  /** AF_INET or AF_INET6. */
  family: number;
  /** Where it is bound, with the real port when asked for port 0. */
  address: Deno.NetAddr;
  /** Whether the kernel tells its drop count with each datagram (SO_RXQ_OVFL). */
  countsDrops: boolean;
  /** Bound to 0.0.0.0 or ::, and told where each datagram was sent to (IP_PKTINFO). */
  wildcard: boolean;
}

/** Opens a UDP socket bound to `hostname` (numeric) and `port`; throws the error Deno would. */
export function bindSocket(hostname: string, port: number): BoundSocket {
  const { symbols, errno } = native();
  const sockaddr = new Uint8Array(SOCKADDR_SIZE);
  const length = encodeSockaddr(hostname, port, sockaddr);
  const family = length === SOCKADDR_IN_SIZE ? AF_INET : AF_INET6;
  const fd = symbols.socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw osError(errno());
  if (symbols.bind(fd, sockaddr, length) !== 0) {
    const error = osError(errno());
    symbols.close(fd);
    throw error;
  }
  const countsDrops = askForControl(fd);
  const bound = new Uint8Array(SOCKADDR_SIZE);
  const boundLength = new Uint32Array([SOCKADDR_SIZE]);
  symbols.getsockname(fd, bound, new Uint8Array(boundLength.buffer));
  const { hostname: boundHost, port: boundPort } = decodeSockaddr(bound);
  // Bound to every address: its replies must leave from the one each request came to.
  const wildcard = (boundHost === "0.0.0.0" || boundHost === "::") &&
    askForDestination(fd, family);
  const address: Deno.NetAddr = { transport: "udp", hostname: boundHost, port: boundPort };
  return { fd, family, address, countsDrops, wildcard };
}
