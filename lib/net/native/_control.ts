/**
 * The control messages: those `recvmmsg()` gives with each datagram, as the native sockets ask
 * for them (its arrival stamp, `SO_TIMESTAMPNS`; the socket's drop count, `SO_RXQ_OVFL`; the
 * TTL or hop limit and the TOS byte or traffic class it arrived with, `IP_RECVTTL`,
 * `IP_RECVTOS`, `IPV6_RECVHOPLIMIT`, `IPV6_RECVTCLASS`), and the one a datagram may be sent
 * with, its TOS (`IP_TOS` or `IPV6_TCLASS`).
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, CONTROL_SIZE } from "./_arena.ts";
import { batchReadAt, monotonicOfRealtime } from "./_clock.ts";
import {
  CMSG_ALIGN_MASK,
  CMSG_INT_LEN,
  CMSG_INT_SPACE,
  CMSGHDR_LEN,
  CMSGHDR_LEVEL,
  CMSGHDR_SIZE,
  CMSGHDR_TYPE,
  IP_TOS,
  IP_TTL,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_HOPLIMIT,
  IPV6_TCLASS,
  MMSGHDR_SIZE,
  MSGHDR_CONTROLLEN,
  SO_RXQ_OVFL,
  SO_TIMESTAMPNS,
  SOL_SOCKET,
} from "./_layout.ts";
import type { ReceiveMeta } from "../socket.ts";

/** What the control messages of the datagram read last said (see {@linkcode readControl}). */
export const control = {
  /** When it arrived, on the monotonic clock. */
  arrivedAt: 0,
  /** The socket's drop count when it was queued (SO_RXQ_OVFL); -1 when not given. */
  drops: -1,
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
  () => ({ ttl: -1, tos: -1 }),
);

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
  meta.ttl = -1;
  meta.tos = -1;
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
    } else if (level === IPPROTO_IPV6) {
      if (type === IPV6_HOPLIMIT) meta.ttl = view.getInt32(data, true);
      else if (type === IPV6_TCLASS) meta.tos = view.getInt32(data, true);
    }
    at += (length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK; // CMSG_ALIGN
  }
}

/**
 * Gives the datagram in `slot` of a send arena (put there by fillSlot, which clears it) a
 * control message that sends it with TOS byte `tos`: IP_TOS for an IPv4 destination (an
 * IPv4-mapped one too, which an IPv6 socket sends as IPv4), IPV6_TCLASS for an IPv6 one.
 */
export function writeTosControl(arena: BatchArena, slot: number, tos: number, ipv4: boolean): void {
  const view = arena.controlView;
  const at = slot * CONTROL_SIZE;
  view.setUint32(at + CMSGHDR_LEN, CMSG_INT_LEN, true); // a size_t: the high half stays 0
  view.setInt32(at + CMSGHDR_LEVEL, ipv4 ? IPPROTO_IP : IPPROTO_IPV6, true);
  view.setInt32(at + CMSGHDR_TYPE, ipv4 ? IP_TOS : IPV6_TCLASS, true);
  view.setInt32(at + CMSGHDR_SIZE, tos, true);
  arena.headerView.setUint32(slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, CMSG_INT_SPACE, true);
}
