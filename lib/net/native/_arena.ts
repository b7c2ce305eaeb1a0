/**
 * The batch arenas: memory laid out once for `sendmmsg()` and `recvmmsg()`, so that a batch
 * later needs no pointer (and no FFI permission), only its slots' bytes and lengths.
 *
 * @module
 */

import {
  IOVEC_BASE,
  IOVEC_LEN,
  IOVEC_SIZE,
  MMSGHDR_SIZE,
  MSGHDR_CONTROL,
  MSGHDR_CONTROLLEN,
  MSGHDR_IOV,
  MSGHDR_IOVLEN,
  MSGHDR_NAME,
  MSGHDR_NAMELEN,
  SOCKADDR_SIZE,
} from "./_layout.ts";

/** Datagrams per `sendmmsg()` or `recvmmsg()` call. */
export const BATCH_SIZE = 64;
/** The room for one datagram: 64 KiB, more than the largest one. */
export const SLOT_SIZE = 65536;
/**
 * Room for each datagram's control messages: up to six, each a cmsghdr (16 bytes) and its
 * data padded to 8 bytes: the arrival timestamp (a struct timespec, 16 bytes), the socket's
 * drop count (a u32), the TTL or hop limit (an int), the TOS byte or traffic class (a byte
 * or an int), on a socket bound to a wildcard address, where it was sent to (a struct
 * in6_pktinfo, 20 bytes, at most), and a coalesced message's segment size (UDP_GRO, an int),
 * 168 bytes in all, rounded up. A datagram sent gets at most two, its TOS and its source
 * address, or one, the segment size of a super-datagram (UDP_SEGMENT).
 */
export const CONTROL_SIZE = 192;

/**
 * Memory laid out for `sendmmsg()` or `recvmmsg()`: {@linkcode BATCH_SIZE} slots of data (64 KiB,
 * the largest datagram), their `iovec`s, their `mmsghdr`s, their addresses and room for each
 * one's control messages (its arrival timestamp and more; a TOS to send it with). Its internal
 * pointers are written once, at load, so a batch later needs no pointer (and no FFI
 * permission): only the slots' bytes and lengths change. Off the V8 heap (megabytes), so it
 * never moves.
 */
export interface BatchArena {
  /** The slots' data, {@linkcode SLOT_SIZE} bytes each. */
  data: Uint8Array;
  /** The `mmsghdr`s, one per slot: what `sendmmsg()` and `recvmmsg()` are given. */
  headers: Uint8Array;
  /** The same bytes, to read and write their fields. */
  headerView: DataView;
  /** The `iovec`s, one per slot. */
  iovecView: DataView;
  /** The peers' sockaddrs, {@linkcode SOCKADDR_SIZE} bytes each. */
  names: Uint8Array;
  /**
   * The control messages, {@linkcode CONTROL_SIZE} bytes each: what the kernel wrote (receive
   * arenas), or none (`msg_controllen` 0) unless a datagram is sent with one (see fillSlot).
   */
  controlView: DataView;
  /** The last view made of each datagram place in each slot (see {@linkcode datagramIn}). */
  views: (Uint8Array | undefined)[];
}

/** Lays out an arena; needs the FFI permission (it takes the memory's address). */
export function makeBatchArena(purpose: "send" | "receive"): BatchArena {
  // One allocation (far too large for the V8 heap, so it never moves), cut into its parts.
  const dataSize = BATCH_SIZE * SLOT_SIZE;
  const headersSize = BATCH_SIZE * MMSGHDR_SIZE;
  const iovecsSize = BATCH_SIZE * IOVEC_SIZE;
  const namesSize = BATCH_SIZE * SOCKADDR_SIZE;
  const controlsSize = BATCH_SIZE * CONTROL_SIZE;
  const memory = new ArrayBuffer(dataSize + headersSize + iovecsSize + namesSize + controlsSize);
  const data = new Uint8Array(memory, 0, dataSize);
  const headers = new Uint8Array(memory, dataSize, headersSize);
  const iovecs = new Uint8Array(memory, dataSize + headersSize, iovecsSize);
  const names = new Uint8Array(memory, dataSize + headersSize + iovecsSize, namesSize);
  const controls = new Uint8Array(memory, names.byteOffset + namesSize, controlsSize);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(memory)));
  const [dataAt, iovecsAt, namesAt] = [data, iovecs, names].map((part) =>
    base + BigInt(part.byteOffset)
  );
  const headerView = new DataView(memory, headers.byteOffset, headersSize);
  const iovecView = new DataView(memory, iovecs.byteOffset, iovecsSize);
  const controlView = new DataView(memory, controls.byteOffset, controlsSize);
  for (let i = 0; i < BATCH_SIZE; i++) {
    const iovec = i * IOVEC_SIZE;
    iovecView.setBigUint64(iovec + IOVEC_BASE, dataAt + BigInt(i * SLOT_SIZE), true);
    iovecView.setBigUint64(iovec + IOVEC_LEN, BigInt(SLOT_SIZE), true);
    const header = i * MMSGHDR_SIZE;
    headerView.setBigUint64(header + MSGHDR_NAME, namesAt + BigInt(i * SOCKADDR_SIZE), true);
    headerView.setUint32(header + MSGHDR_NAMELEN, SOCKADDR_SIZE, true);
    headerView.setBigUint64(header + MSGHDR_IOV, iovecsAt + BigInt(iovec), true);
    headerView.setBigUint64(header + MSGHDR_IOVLEN, 1n, true);
    // Every arena has the room: a datagram sent may need one (its TOS), and a pointer cannot
    // be written later, once the FFI permission is given up. A send slot's length stays 0.
    const controlAt = base + BigInt(controls.byteOffset + i * CONTROL_SIZE);
    headerView.setBigUint64(header + MSGHDR_CONTROL, controlAt, true);
    const controlLength = purpose === "receive" ? CONTROL_SIZE : 0;
    headerView.setBigUint64(header + MSGHDR_CONTROLLEN, BigInt(controlLength), true);
  }
  const views = new Array<Uint8Array | undefined>(BATCH_SIZE * VIEWS_PER_SLOT);
  return { data, headers, headerView, iovecView, names, controlView, views };
}

/** Views kept per slot: a coalesced message (UDP_GRO) holds at most 64 datagrams. */
const VIEWS_PER_SLOT = 64;

/**
 * The datagram at `at` in slot `slot` of a receive arena holding a message of `length` bytes
 * cut into datagrams of `segment` bytes (the last one may be shorter), as a view valid until the
 * slot is read into again. The view made last for that place is used again when it still fits:
 * under load datagrams are mostly of one length, and making a view costs more than reading a
 * PING's header.
 */
export function datagramIn(
  arena: BatchArena,
  slot: number,
  at: number,
  segment: number,
  length: number,
): Uint8Array {
  const start = slot * SLOT_SIZE + at;
  const end = start + Math.min(segment, length - at);
  const place = at / segment;
  if (place >= VIEWS_PER_SLOT) return arena.data.subarray(start, end);
  const key = slot * VIEWS_PER_SLOT + place;
  const last = arena.views[key];
  if (last !== undefined && last.byteOffset === start && last.length === end - start) return last;
  const view = arena.data.subarray(start, end);
  arena.views[key] = view;
  return view;
}

/**
 * Puts a datagram and its destination (a sockaddr of `nameLength` bytes) into a slot, with no
 * control message (a TOS of the slot's last datagram must not stay; writeTosControl adds one).
 */
export function fillSlot(
  arena: BatchArena,
  slot: number,
  datagram: Uint8Array,
  name: Uint8Array,
  nameLength: number,
): void {
  arena.data.set(datagram, slot * SLOT_SIZE);
  // All of a sockaddr's room when it is that long (the kernel reads nameLength): no view made.
  const whole = name.length === SOCKADDR_SIZE;
  arena.names.set(whole ? name : name.subarray(0, nameLength), slot * SOCKADDR_SIZE);
  arena.iovecView.setUint32(slot * IOVEC_SIZE + IOVEC_LEN, datagram.byteLength, true);
  arena.headerView.setUint32(slot * MMSGHDR_SIZE + MSGHDR_NAMELEN, nameLength, true);
  arena.headerView.setUint32(slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, 0, true); // low half: 0
}
