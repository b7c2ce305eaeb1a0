/**
 * The control messages: those `recvmmsg()` gives with each datagram, as the native sockets ask
 * for them (its arrival stamp, `SO_TIMESTAMPNS`; the socket's drop count, `SO_RXQ_OVFL`; the
 * TTL or hop limit and the TOS byte or traffic class it arrived with, `IP_RECVTTL`,
 * `IP_RECVTOS`, `IPV6_RECVHOPLIMIT`, `IPV6_RECVTCLASS`; on a socket bound to a wildcard
 * address, the address it was sent to, `IP_PKTINFO`, `IPV6_PKTINFO`; read from the error
 * queue, the ICMP error, `IP_RECVERR`, `IPV6_RECVERR`; the segment size of a coalesced message,
 * `UDP_GRO`), and those a datagram may be sent with:
 * its TOS (`IP_TOS` or `IPV6_TCLASS`) and its source address (`IP_PKTINFO` or `IPV6_PKTINFO`).
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, CONTROL_SIZE } from "./_arena.ts";
import { batchReadAt, monotonicOfRealtime } from "./_clock.ts";
import {
  AF_INET,
  AF_INET6,
  CMSG_ALIGN_MASK,
  CMSG_INT_LEN,
  CMSG_INT_SPACE,
  CMSGHDR_LEN,
  CMSGHDR_LEVEL,
  CMSGHDR_SIZE,
  CMSGHDR_TYPE,
  IN6_PKTINFO_ADDR,
  IN6_PKTINFO_SIZE,
  IN_PKTINFO_ADDR,
  IN_PKTINFO_SIZE,
  IN_PKTINFO_SPEC_DST,
  IP_PKTINFO,
  IP_RECVERR,
  IP_TOS,
  IP_TTL,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_HOPLIMIT,
  IPV6_PKTINFO,
  IPV6_RECVERR,
  IPV6_TCLASS,
  MMSGHDR_SIZE,
  MSGHDR_CONTROLLEN,
  SO_RXQ_OVFL,
  SO_TIMESTAMPNS,
  SOCKADDR_FAMILY,
  SOCKADDR_IN6_ADDR,
  SOCKADDR_IN_ADDR,
  SOCKADDR_SIZE,
  SOL_SOCKET,
} from "./_layout.ts";
import { decodeSockaddr } from "./_sockaddr.ts";
import { SOL_UDP, UDP_GRO } from "./_offload.ts";
import type { ReceiveMeta } from "../socket.ts";

/** What the control messages of the datagram read last said (see {@linkcode readControl}). */
export const control = {
  /** When it arrived, on the monotonic clock. */
  arrivedAt: 0,
  /** The socket's drop count when it was queued (SO_RXQ_OVFL); -1 when not given. */
  drops: -1,
  /** The size of the datagrams a coalesced message holds (UDP_GRO); 0 when it is one datagram. */
  segment: 0,
  /**
   * Read from the error queue: where its struct sock_extended_err starts in the arena's
   * control view (IP_RECVERR, IPV6_RECVERR); -1 when it has none.
   */
  errorAt: -1,
};

/** A {@linkcode ReceiveMeta} as {@linkcode readControl} fills it in. */
type SlotMeta = { -readonly [field in keyof ReceiveMeta]: ReceiveMeta[field] };

/**
 * The TTL and TOS of each datagram of the batch read last, by slot: what a handler is given.
 * One per slot of the one receive arena, so each stays valid exactly as long as its datagram's
 * data (no batch is read before the last one's handlers are done), and none is made per datagram.
 */
export const slotMeta: readonly SlotMeta[] = Array.from(
  { length: BATCH_SIZE },
  () => ({ ttl: -1, tos: -1, local: null }),
);

// The last address datagrams were sent to, as bytes and as text: a socket's datagrams mostly
// go to one, so its text is made once, not per datagram.
const lastLocal = new Uint8Array(16);
let lastLocalLength = 0;
let lastLocalText = "";
const localSockaddr = new Uint8Array(SOCKADDR_SIZE);

/** The text of the `length`-byte address at `at` (as Deno reports peers: IPv4-mapped as IPv4). */
function localAddress(view: DataView, at: number, length: 4 | 16): string {
  let same = length === lastLocalLength;
  for (let i = 0; same && i < length; i++) same = view.getUint8(at + i) === lastLocal[i];
  if (same) return lastLocalText;
  for (let i = 0; i < length; i++) lastLocal[i] = view.getUint8(at + i);
  lastLocalLength = length;
  localSockaddr.fill(0);
  const family = new DataView(localSockaddr.buffer);
  family.setUint16(SOCKADDR_FAMILY, length === 4 ? AF_INET : AF_INET6, true);
  localSockaddr.set(
    lastLocal.subarray(0, length),
    length === 4 ? SOCKADDR_IN_ADDR : SOCKADDR_IN6_ADDR,
  );
  lastLocalText = decodeSockaddr(localSockaddr).hostname;
  return lastLocalText;
}

/**
 * Reads the control messages of datagram `slot` of the batch just read into
 * {@linkcode control} and {@linkcode slotMeta}: its arrival by SCM_TIMESTAMPNS (without one,
 * when the batch was read), the socket's drop count by SO_RXQ_OVFL (the kernel leaves it out
 * while it is 0), and its TTL and TOS by IP_TTL and IP_TOS (IPv4, on an IPv6 socket too for
 * IPv4-mapped peers) or IPV6_HOPLIMIT and IPV6_TCLASS (IPv6). Gives the slot its room for
 * control messages back, for the next batch.
 */
export function readControl(arena: BatchArena, slot: number): void {
  const header = slot * MMSGHDR_SIZE;
  const controlLength = arena.headerView.getUint32(header + MSGHDR_CONTROLLEN, true);
  arena.headerView.setUint32(header + MSGHDR_CONTROLLEN, CONTROL_SIZE, true); // room, next time
  const view = arena.controlView;
  const start = slot * CONTROL_SIZE;
  const meta = slotMeta[slot];
  control.arrivedAt = batchReadAt;
  control.drops = -1;
  control.segment = 0;
  control.errorAt = -1;
  meta.ttl = -1;
  meta.tos = -1;
  meta.local = null;
  for (let at = start; at + CMSGHDR_SIZE <= start + controlLength;) {
    const length = view.getUint32(at + CMSGHDR_LEN, true); // a size_t: the high half is 0
    if (length < CMSGHDR_SIZE || at + length > start + controlLength) break;
    const level = view.getInt32(at + CMSGHDR_LEVEL, true);
    const type = view.getInt32(at + CMSGHDR_TYPE, true);
    const data = at + CMSGHDR_SIZE;
    if (level === SOL_SOCKET) {
      if (type === SO_TIMESTAMPNS) control.arrivedAt = monotonicOfRealtime(view, data);
      else if (type === SO_RXQ_OVFL) control.drops = view.getUint32(data, true);
    } else if (level === IPPROTO_IP) {
      if (type === IP_TTL) meta.ttl = view.getInt32(data, true);
      else if (type === IP_TOS) meta.tos = view.getUint8(data); // one byte, not an int
      else if (type === IP_PKTINFO) meta.local = localAddress(view, data + IN_PKTINFO_ADDR, 4);
      else if (type === IP_RECVERR) control.errorAt = data;
    } else if (level === SOL_UDP) {
      if (type === UDP_GRO) control.segment = view.getInt32(data, true);
    } else if (level === IPPROTO_IPV6) {
      if (type === IPV6_HOPLIMIT) meta.ttl = view.getInt32(data, true);
      else if (type === IPV6_RECVERR) control.errorAt = data;
      else if (type === IPV6_TCLASS) meta.tos = view.getInt32(data, true);
      else if (type === IPV6_PKTINFO) {
        meta.local = localAddress(view, data + IN6_PKTINFO_ADDR, 16);
      }
    }
    at += (length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK; // CMSG_ALIGN
  }
}

/** `CMSG_LEN` and `CMSG_SPACE` of a control message with `size` bytes of data. */
function cmsgLength(size: number): { length: number; space: number } {
  const length = CMSGHDR_SIZE + size;
  return { length, space: (length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK };
}

const IN_PKTINFO = cmsgLength(IN_PKTINFO_SIZE);
const IN6_PKTINFO = cmsgLength(IN6_PKTINFO_SIZE);

/**
 * Gives the datagram in `slot` of a send arena (put there by fillSlot, which clears it) the
 * control messages it is sent with: its TOS byte `tos` unless it is -1 (IP_TOS for an IPv4
 * destination, an IPv4-mapped one too, which an IPv6 socket sends as IPv4; IPV6_TCLASS for an
 * IPv6 one), and its source address `source` unless it is null: IP_PKTINFO's `ipi_spec_dst`
 * (4 bytes) on an IPv4 socket, IPV6_PKTINFO's address (16 bytes, IPv4-mapped for an IPv4
 * destination) on an IPv6 one, the interface left to the routing table.
 */
export function writeSendControl(
  arena: BatchArena,
  slot: number,
  tos: number,
  ipv4: boolean,
  source: Uint8Array | null,
): void {
  const view = arena.controlView;
  const start = slot * CONTROL_SIZE;
  let at = start;
  if (tos >= 0) {
    view.setUint32(at + CMSGHDR_LEN, CMSG_INT_LEN, true); // a size_t: the high half stays 0
    view.setUint32(at + CMSGHDR_LEN + 4, 0, true);
    view.setInt32(at + CMSGHDR_LEVEL, ipv4 ? IPPROTO_IP : IPPROTO_IPV6, true);
    view.setInt32(at + CMSGHDR_TYPE, ipv4 ? IP_TOS : IPV6_TCLASS, true);
    view.setInt32(at + CMSGHDR_SIZE, tos, true);
    at += CMSG_INT_SPACE;
  }
  if (source !== null) {
    const { length, space } = source.length === 4 ? IN_PKTINFO : IN6_PKTINFO;
    view.setUint32(at + CMSGHDR_LEN, length, true);
    view.setUint32(at + CMSGHDR_LEN + 4, 0, true);
    view.setInt32(at + CMSGHDR_LEVEL, source.length === 4 ? IPPROTO_IP : IPPROTO_IPV6, true);
    view.setInt32(at + CMSGHDR_TYPE, source.length === 4 ? IP_PKTINFO : IPV6_PKTINFO, true);
    for (let i = CMSGHDR_SIZE; i < space; i++) view.setUint8(at + i, 0); // ifindex 0 and all
    const address = at + CMSGHDR_SIZE +
      (source.length === 4 ? IN_PKTINFO_SPEC_DST : IN6_PKTINFO_ADDR);
    for (let i = 0; i < source.length; i++) view.setUint8(address + i, source[i]);
    at += space;
  }
  arena.headerView.setUint32(slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, at - start, true);
}

/**
 * When datagram `slot` of the batch just read arrived (its SCM_TIMESTAMPNS, on the monotonic
 * clock), read without giving the slot its room back (readControl does that, later); when
 * the batch was read if it has none.
 */
export function peekArrival(arena: BatchArena, slot: number): number {
  const controlLength = arena.headerView.getUint32(slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, true);
  const view = arena.controlView;
  const start = slot * CONTROL_SIZE;
  for (let at = start; at + CMSGHDR_SIZE <= start + controlLength;) {
    const length = view.getUint32(at + CMSGHDR_LEN, true);
    if (length < CMSGHDR_SIZE || at + length > start + controlLength) break;
    if (
      view.getInt32(at + CMSGHDR_LEVEL, true) === SOL_SOCKET &&
      view.getInt32(at + CMSGHDR_TYPE, true) === SO_TIMESTAMPNS
    ) return monotonicOfRealtime(view, at + CMSGHDR_SIZE);
    at += (length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK;
  }
  return batchReadAt;
}
