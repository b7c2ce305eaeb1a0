/**
 * The socket's error queue: ICMP errors about the datagrams it sent (port, host or net
 * unreachable, filtered, fragmentation needed, TTL exceeded), which Linux queues there, each
 * with the address that sent it and what it quoted of the datagram, once the socket asks
 * (`IP_RECVERR`, `IPV6_RECVERR`). Without that the kernel keeps them from the socket (but
 * for a connected one, which sees only the last, as an errno): ping(8) and tracepath read
 * them so, and so does udp.
 *
 * Asking has a cost the socket must bear: the kernel then also sets the socket's pending
 * error with each one, which fails the next `sendto()` (the datagram is not sent) or
 * `recvmmsg()` with it. The socket reads the queue when that happens, and sends or reads
 * again ({@linkcode readErrorQueue} says whether there was anything to read).
 *
 * @module
 */

import { BATCH_SIZE, SLOT_SIZE } from "./_arena.ts";
import { readClocks } from "./_clock.ts";
import { control, readControl } from "./_control.ts";
import { EMSGSIZE } from "./_errno.ts";
import { native } from "./_ffi.ts";
import {
  AF_INET6,
  EE_CODE,
  EE_ERRNO,
  EE_INFO,
  EE_ORIGIN,
  EE_ORIGIN_ICMP,
  EE_ORIGIN_ICMP6,
  EE_ORIGIN_LOCAL,
  EE_SIZE,
  EE_TYPE,
  IP_RECVERR,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_RECVERR,
  MMSGHDR_LEN,
  MMSGHDR_SIZE,
  MSG_DONTWAIT,
  MSG_ERRQUEUE,
  MSGHDR_NAMELEN,
  SOCKADDR_FAMILY,
  SOCKADDR_SIZE,
} from "./_layout.ts";
import { decodeSockaddr } from "./_sockaddr.ts";
import { type IcmpHandler, icmpKind } from "../icmp.ts";

/** Batches of errors read per call at most: a flood of them cannot hold the reactor. */
const MAX_ROUNDS = 4;

/**
 * Asks the kernel to queue ICMP errors about this socket's datagrams (an IPv6 socket's IPv4
 * peers' too); whether it took the option.
 */
export function askForErrors(fd: number, family: number): boolean {
  const on = new Uint8Array(new Int32Array([1]).buffer);
  const { setsockopt } = native().symbols;
  const v6 = family !== AF_INET6 || setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, on, 4) === 0;
  return setsockopt(fd, IPPROTO_IP, IP_RECVERR, on, 4) === 0 && v6;
}

const offender = new Uint8Array(SOCKADDR_SIZE);

/**
 * Reads what waits in the socket's error queue, without waiting, into the receive arena (free
 * whenever the socket reads: the reactor hands one batch on before it reads the next), and
 * hands each ICMP or ICMPv6 error to `report`, and this host's own "too big for the
 * interface" (`local`: the send that failed told it, this tells the interface's MTU); other
 * errors of this host's own are dropped. Returns how many
 * entries it read, of every origin: more than 0 means the socket's pending error was one of
 * them, so the send or read it failed should be tried again.
 */
export function readErrorQueue(fd: number, report: IcmpHandler): number {
  const { symbols, receiveBatch: arena } = native();
  const view = arena.controlView;
  let read = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const count = symbols.recvmmsg(
      fd,
      arena.headers,
      BATCH_SIZE,
      MSG_ERRQUEUE | MSG_DONTWAIT,
      null,
    );
    if (count <= 0) break;
    readClocks();
    read += count;
    for (let i = 0; i < count; i++) {
      const header = i * MMSGHDR_SIZE;
      const length = arena.headerView.getUint32(header + MMSGHDR_LEN, true);
      const name = arena.names.subarray(i * SOCKADDR_SIZE, (i + 1) * SOCKADDR_SIZE);
      const to = { transport: "udp" as const, ...decodeSockaddr(name) };
      arena.headerView.setUint32(header + MSGHDR_NAMELEN, SOCKADDR_SIZE, true); // next time
      readControl(arena, i);
      const at = control.errorAt;
      if (at < 0) continue;
      const origin = view.getUint8(at + EE_ORIGIN);
      const local = origin === EE_ORIGIN_LOCAL;
      if (local && view.getUint32(at + EE_ERRNO, true) !== EMSGSIZE) continue;
      if (!local && origin !== EE_ORIGIN_ICMP && origin !== EE_ORIGIN_ICMP6) continue;
      const version = origin === EE_ORIGIN_ICMP6 || (local && to.hostname.includes(":")) ? 6 : 4;
      const [type, code] = local
        ? [0, 0]
        : [view.getUint8(at + EE_TYPE), view.getUint8(at + EE_CODE)];
      const kind = local ? "frag_needed" : icmpKind(version, type, code);
      for (let k = 0; k < SOCKADDR_SIZE; k++) offender[k] = view.getUint8(at + EE_SIZE + k);
      const told = !local &&
        (offender[SOCKADDR_FAMILY] !== 0 || offender[SOCKADDR_FAMILY + 1] !== 0);
      report({
        version,
        type,
        code,
        kind,
        from: told ? decodeSockaddr(offender).hostname : null,
        to,
        mtu: kind === "frag_needed" ? view.getUint32(at + EE_INFO, true) : null,
        quoted: arena.data.subarray(i * SLOT_SIZE, i * SLOT_SIZE + length),
        arrivedAt: control.arrivedAt,
        local,
      });
    }
    if (count < BATCH_SIZE) break;
  }
  return read;
}
