/**
 * UDP segmentation offload (GSO: `UDP_SEGMENT`) and receive coalescing (GRO: `UDP_GRO`), in
 * the native backend only, invisible above it. A batch sent to one destination packs each run
 * of equal-sized datagrams (the last may be shorter) into one super-datagram that the kernel
 * cuts into them, so the run costs one trip through the IP stack, not one per datagram; a
 * socket with GRO may read several datagrams of one sender as one message, which
 * {@linkcode segmentLength} cuts back into the datagrams they were. Support is asked of the
 * kernel once per process; `UDP_OFFLOAD=off` in the environment (where the process may read
 * it) turns both off. A socket whose GSO send the kernel refuses (a device that cannot, or a
 * segment too big for its MTU) sends without it from then on.
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, CONTROL_SIZE, SLOT_SIZE } from "./_arena.ts";
import { loadNativeUdp, native } from "./_ffi.ts";
import {
  AF_INET,
  CMSGHDR_LEN,
  CMSGHDR_LEVEL,
  CMSGHDR_SIZE,
  CMSGHDR_TYPE,
  IOVEC_LEN,
  IOVEC_SIZE,
  MMSGHDR_SIZE,
  MSGHDR_CONTROLLEN,
  MSGHDR_NAMELEN,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCKADDR_SIZE,
} from "./_layout.ts";

/** `SOL_UDP`: the level of the UDP options and of their control messages. */
export const SOL_UDP = 17;
/** `UDP_SEGMENT`: the segment size of a GSO send (a u16 control message, or an int option). */
export const UDP_SEGMENT = 103;
/** `UDP_GRO`: coalesce what arrives (an int option); its control message, the segment size. */
export const UDP_GRO = 104;
/** The most datagrams packed into one super-datagram (the kernel's UDP_MAX_SEGMENTS, at least). */
export const GSO_MAX_SEGMENTS = 64;
/** The most bytes of one: the largest UDP payload over IPv4. */
export const GSO_MAX_BYTES = 65507;

const ENOPROTOOPT = 92;
const EINVAL = 22;
const EIO = 5;

/** `CMSG_LEN(sizeof(u16))` and `CMSG_SPACE` of it: the UDP_SEGMENT control message sent. */
const SEGMENT_CMSG_LEN = CMSGHDR_SIZE + 2;
const SEGMENT_CMSG_SPACE = CMSGHDR_SIZE + 8;

/** Which offloads this process's native sockets use, and why not, when not. */
export interface OffloadSupport {
  /** Sends of a batch pack runs of equal datagrams into one (UDP_SEGMENT). */
  readonly gso: boolean;
  /** Sockets read coalesced datagrams and split them (UDP_GRO). */
  readonly gro: boolean;
  /** Why neither or only one is used (`UDP_OFFLOAD=off`, the kernel's refusal); null if both are. */
  readonly reason: string | null;
}

let support: OffloadSupport | null = null;

/** Where GRO is used (see {@linkcode offloadSupport}). */
const GRO_WHERE = "GRO where asked for: udp serve --gro, udp bench's own sockets";

/** Whether `UDP_OFFLOAD=off` is set and the process may read it. */
function turnedOff(): boolean {
  const permission = Deno.permissions.querySync({ name: "env", variable: "UDP_OFFLOAD" });
  return permission.state === "granted" && Deno.env.get("UDP_OFFLOAD") === "off";
}

/** Sets an int option at level SOL_UDP; 0, or the errno of the refusal. */
function setUdpOption(fd: number, name: number, value: number): number {
  const { symbols, errno } = native();
  const bytes = new Uint8Array(new Int32Array([value]).buffer);
  return symbols.setsockopt(fd, SOL_UDP, name, bytes, bytes.byteLength) === 0 ? 0 : errno();
}

/** Why the kernel refused option `name`, in words. */
function refusal(name: string, code: number): string {
  return code === ENOPROTOOPT || code === EINVAL
    ? `kernel lacks ${name}`
    : `${name} refused (os error ${code})`;
}

/**
 * Which offloads the kernel gives the native sockets: asked once per process, on a socket of
 * its own (an option it does not know is refused with ENOPROTOOPT, or EINVAL); none where the
 * native backend is not available. GSO is used by every socket (one whose GSO send is refused
 * stops alone), GRO by those that ask ({@linkcode enableGro}); the reason says which are not
 * used and why, and where GRO is.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { offloadSupport } from "./mod.ts";
 * const { gso, gro, reason } = offloadSupport();
 * ok(reason !== null); // where GRO is used, or why an offload is not
 * ok(gro || !reason.includes("GRO where asked for"));
 * ok(gso || /UDP_SEGMENT|UDP_OFFLOAD|no native|no socket/.test(reason));
 * ```
 */
export function offloadSupport(): OffloadSupport {
  if (support !== null) return support;
  if (!loadNativeUdp()) return { gso: false, gro: false, reason: "no native sockets" };
  if (turnedOff()) return support = { gso: false, gro: false, reason: "UDP_OFFLOAD=off" };
  const { symbols, errno } = native();
  const fd = symbols.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return { gso: false, gro: false, reason: `no socket to ask (os error ${errno()})` };
  const segment = setUdpOption(fd, UDP_SEGMENT, 0); // 0: no segmentation, only the question
  const gro = setUdpOption(fd, UDP_GRO, 0);
  symbols.close(fd);
  // GRO is the kernel's, but a socket turns it on only when asked (enableGro): its drop count
  // (SO_RXQ_OVFL) counts a coalesced message dropped whole as one drop (5,452 counted for
  // 174,000 lost in a run here), so a socket with GRO reports its drops as unknown.
  const groText = gro === 0 ? GRO_WHERE : refusal("UDP_GRO", gro);
  const reasons = [segment && refusal("UDP_SEGMENT", segment), groText];
  return support = {
    gso: segment === 0,
    gro: gro === 0,
    reason: reasons.filter(Boolean).join(", "),
  };
}

/**
 * Turns GRO on for socket `fd` where the process uses it; whether it did. Its receive slots
 * ({@linkcode SLOT_SIZE}, 64 KiB) hold the largest message GRO makes, so none is cut short.
 */
export function enableGro(fd: number, wanted: boolean): boolean {
  return wanted && SLOT_SIZE >= 65536 && setUdpOption(fd, UDP_GRO, 1) === 0;
}

/** Whether a GSO send's errno says this socket's path cannot take it (never try again). */
export function refusesGso(code: number): boolean {
  return code === EIO || code === EINVAL;
}

/**
 * Where datagram `start` on of a batch went: `messages` slots of a send arena, slot `i`
 * holding `segments[i]` datagrams (more than one: a GSO super-datagram).
 */
export class PackedBatch {
  /** Slots filled. */
  messages = 0;
  /** Datagrams in each. */
  readonly segments: Uint8Array = new Uint8Array(BATCH_SIZE);
  /** Whether any slot is a super-datagram. */
  segmented = false;

  /** How many datagrams the first `messages` slots hold (what a `sendmmsg()` of them sent). */
  datagramsIn(messages: number): number {
    let datagrams = 0;
    for (let i = 0; i < messages; i++) datagrams += this.segments[i];
    return datagrams;
  }
}

/** How many datagrams from `start` form one run: equal length, the last perhaps shorter. */
function runLength(datagrams: readonly Uint8Array[], start: number): number {
  const size = datagrams[start].byteLength;
  if (size === 0) return 1; // an empty datagram has no segment size
  let count = 1;
  let bytes = size;
  while (count < GSO_MAX_SEGMENTS && start + count < datagrams.length) {
    const next = datagrams[start + count].byteLength;
    if (next > size || next === 0 || bytes + next > GSO_MAX_BYTES) break;
    count++;
    bytes += next;
    if (next < size) break; // a shorter one ends the run
  }
  return count;
}

/**
 * Fills a send arena's slots with the datagrams from `start` on, all to the destination
 * `name` (`nameLength` bytes), into `packed`: with `gso`, each run of two or more becomes one
 * super-datagram with a UDP_SEGMENT control message. Stops at a full arena, or before a
 * datagram longer than a slot (none was filled then if it is the first).
 */
export function packBatch(
  arena: BatchArena,
  datagrams: readonly Uint8Array[],
  start: number,
  name: Uint8Array,
  nameLength: number,
  gso: boolean,
  packed: PackedBatch,
): void {
  packed.messages = 0;
  packed.segmented = false;
  let next = start;
  while (packed.messages < BATCH_SIZE && next < datagrams.length) {
    if (datagrams[next].byteLength > SLOT_SIZE) break; // longer than any datagram can be
    const slot = packed.messages;
    const count = gso ? runLength(datagrams, next) : 1;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const datagram = datagrams[next + i];
      arena.data.set(datagram, slot * SLOT_SIZE + bytes);
      bytes += datagram.byteLength;
    }
    arena.names.set(name.subarray(0, nameLength), slot * SOCKADDR_SIZE);
    arena.iovecView.setUint32(slot * IOVEC_SIZE + IOVEC_LEN, bytes, true);
    const header = slot * MMSGHDR_SIZE;
    arena.headerView.setUint32(header + MSGHDR_NAMELEN, nameLength, true);
    markSegmented(arena, slot, count > 1 ? datagrams[next].byteLength : 0);
    if (count > 1) packed.segmented = true;
    packed.segments[slot] = count;
    packed.messages++;
    next += count;
  }
}

/**
 * Makes slot `slot` of a send arena a super-datagram of `size`-byte segments (its UDP_SEGMENT
 * control message, alone), or, with size 0, a datagram without control messages.
 */
function markSegmented(arena: BatchArena, slot: number, size: number): void {
  const header = slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN;
  arena.headerView.setUint32(header, size > 0 ? SEGMENT_CMSG_SPACE : 0, true);
  if (size > 0) writeSegmentControl(arena, slot * CONTROL_SIZE, size);
}

/**
 * Adds a UDP_SEGMENT control message (`size`-byte segments) after the control messages slot
 * `slot` of a send arena has (its TOS, its source), making it a super-datagram; with `size` 0,
 * takes the one it added back.
 */
export function addSegmentControl(arena: BatchArena, slot: number, size: number): void {
  const header = slot * MMSGHDR_SIZE + MSGHDR_CONTROLLEN;
  const length = arena.headerView.getUint32(header, true);
  if (size === 0) {
    arena.headerView.setUint32(header, length - SEGMENT_CMSG_SPACE, true);
    return;
  }
  writeSegmentControl(arena, slot * CONTROL_SIZE + length, size);
  arena.headerView.setUint32(header, length + SEGMENT_CMSG_SPACE, true);
}

/** A UDP_SEGMENT control message at `at` of a send arena's control room: `size`-byte segments. */
function writeSegmentControl(arena: BatchArena, at: number, size: number): void {
  const view = arena.controlView;
  view.setUint32(at + CMSGHDR_LEN, SEGMENT_CMSG_LEN, true); // a size_t: the high half is 0
  view.setUint32(at + CMSGHDR_LEN + 4, 0, true);
  view.setInt32(at + CMSGHDR_LEVEL, SOL_UDP, true);
  view.setInt32(at + CMSGHDR_TYPE, UDP_SEGMENT, true);
  view.setUint16(at + CMSGHDR_SIZE, size, true);
}

/**
 * The length of each datagram a message of `length` bytes holds, told by its UDP_GRO control
 * message as `segment` (0: none, a single datagram): the message itself unless it is longer.
 */
export function segmentLength(length: number, segment: number): number {
  return segment > 0 && segment < length ? segment : Math.max(length, 1);
}
