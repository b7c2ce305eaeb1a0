/**
 * The socket options the native sockets set (`setsockopt()`): what each asks the kernel to tell
 * with every datagram it reads (the control messages _control.ts reads), its receive buffer,
 * and the TTL and TOS byte it sends with. An IPv6 socket
 * sets the IPv4 option beside each IPv6 one: a dual-stack socket's IPv4 peers are sent to and
 * read from as IPv4, by the IPv4 options.
 *
 * @module
 */

import { checkTos, checkTtl } from "../_ip_header.ts";
import type { DontFragment } from "../socket.ts";
import { osError } from "./_errno.ts";
import { native } from "./_ffi.ts";
import {
  AF_INET6,
  IP_MTU_DISCOVER,
  IP_PKTINFO,
  IP_RECVTOS,
  IP_RECVTTL,
  IP_TOS,
  IP_TTL,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_MTU_DISCOVER,
  IPV6_RECVHOPLIMIT,
  IPV6_RECVPKTINFO,
  IPV6_RECVTCLASS,
  IPV6_TCLASS,
  IPV6_UNICAST_HOPS,
  PMTUDISC,
  SO_BINDTODEVICE,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_RXQ_OVFL,
  SO_TIMESTAMPNS,
  SOL_SOCKET,
} from "./_layout.ts";

/** A socket option's value: an int, as bytes. */
function intOption(value: number): Uint8Array {
  return new Uint8Array(new Int32Array([value]).buffer);
}

/** Sets an int option; whether the kernel took it. */
function setInt(fd: number, level: number, name: number, value: number): boolean {
  const bytes = intOption(value);
  return native().symbols.setsockopt(fd, level, name, bytes, bytes.byteLength) === 0;
}

/**
 * Asks the kernel for the control messages every socket reads, on a new one; returns whether
 * it will tell the socket's drops. None is needed to receive, so a refusal is not an error:
 * what it would tell is then unknown (the arrival, only less exact).
 */
export function askForControl(fd: number): boolean {
  // Arrival timestamps: RTTs by the kernel's clock, not by when the process got round to it.
  setInt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
  // The kernel's drops (receive buffer full) told with each datagram: loss that is this
  // host's, not the network's, and that no other counter of the socket shows.
  return setInt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
}

/**
 * Asks the kernel for the TTL and TOS each datagram came with (a STAMP reflector reports them)
 * as well, on a socket of `family`: not on every socket, since the kernel's two control
 * messages more per datagram make a read about 15% dearer. A refusal leaves them unknown.
 */
export function askForTtlAndTos(fd: number, family: number): void {
  setInt(fd, IPPROTO_IP, IP_RECVTTL, 1);
  setInt(fd, IPPROTO_IP, IP_RECVTOS, 1);
  if (family === AF_INET6) {
    setInt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
    setInt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1);
  }
}

/**
 * Asks for a receive buffer of `bytes` (past `net.core.rmem_max` where the process may) and
 * returns what the kernel granted, as it reports it; throws the error Deno would.
 */
export function setReceiveBuffer(fd: number, bytes: number): number {
  const { symbols, errno } = native();
  if (!setInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes) && !setInt(fd, SOL_SOCKET, SO_RCVBUF, bytes)) {
    throw osError(errno());
  }
  const granted = new Int32Array(1);
  const length = new Uint32Array([granted.byteLength]);
  const status = symbols.getsockopt(
    fd,
    SOL_SOCKET,
    SO_RCVBUF,
    new Uint8Array(granted.buffer),
    new Uint8Array(length.buffer),
  );
  if (status !== 0) throw osError(errno());
  return granted[0];
}

/**
 * Asks the kernel to tell, with every datagram of a socket bound to a wildcard address (0.0.0.0
 * or ::), the address it was sent to, so that its reply can leave from that address: the one
 * the peer asked, not the one the kernel would pick. An IPv6 socket's IPv4 peers' datagrams are
 * told too, as IPv4-mapped addresses. Whether the kernel took it.
 */
export function askForDestination(fd: number, family: number): boolean {
  return family === AF_INET6
    ? setInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    : setInt(fd, IPPROTO_IP, IP_PKTINFO, 1);
}

/**
 * Sends the datagrams of a socket of `family` with TTL (IPv6: hop limit) `ttl` from now on;
 * whether the kernel took it. Throws a RangeError for a TTL out of 1 to 255.
 */
export function setTtl(fd: number, family: number, ttl: number): boolean {
  checkTtl(ttl);
  const v6 = family !== AF_INET6 || setInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
  return setInt(fd, IPPROTO_IP, IP_TTL, ttl) && v6;
}

/**
 * Sends the datagrams of a socket of `family` with TOS byte (IPv6: traffic class) `tos` from
 * now on, the ECN bits included; whether the kernel took it. Throws a RangeError for a TOS out
 * of 0 to 255.
 */
export function setTos(fd: number, family: number, tos: number): boolean {
  checkTos(tos);
  const v6 = family !== AF_INET6 || setInt(fd, IPPROTO_IPV6, IPV6_TCLASS, tos);
  return setInt(fd, IPPROTO_IP, IP_TOS, tos) && v6;
}

/**
 * Sends the datagrams of a socket of `family` with don't-fragment as `mode` says (IPv6: whether
 * this host fragments them; routers never do); whether the kernel took it.
 */
export function setDontFragment(fd: number, family: number, mode: DontFragment): boolean {
  const value = PMTUDISC[mode];
  const v6 = family !== AF_INET6 || setInt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, value);
  return setInt(fd, IPPROTO_IP, IP_MTU_DISCOVER, value) && v6;
}

/**
 * Sends and receives through network interface `name` only (`SO_BINDTODEVICE`), whatever the
 * routes say; throws the error Deno would (no such device: NotFound; not allowed: PermissionDenied).
 */
export function bindToDevice(fd: number, name: string): void {
  const bytes = new TextEncoder().encode(name + "\0");
  const { symbols, errno } = native();
  if (symbols.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, bytes, bytes.byteLength) !== 0) {
    throw osError(errno());
  }
}
