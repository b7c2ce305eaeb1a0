/**
 * The control messages `recvmmsg()` gives with each datagram, as the native sockets ask for
 * them: its arrival stamp (`SO_TIMESTAMPNS`) and the socket's drop count (`SO_RXQ_OVFL`).
 *
 * @module
 */

import { type BatchArena, CONTROL_SIZE } from "./_arena.ts";
import { batchReadAt, monotonicOfRealtime } from "./_clock.ts";
import {
  CMSG_ALIGN_MASK,
  CMSGHDR_LEN,
  CMSGHDR_LEVEL,
  CMSGHDR_SIZE,
  CMSGHDR_TYPE,
  MMSGHDR_SIZE,
  MSGHDR_CONTROLLEN,
  SO_RXQ_OVFL,
  SO_TIMESTAMPNS,
  SOL_SOCKET,
} from "./_layout.ts";

/** What the control messages of the datagram read last said (see {@linkcode readControl}). */
export const control = {
  /** When it arrived, on the monotonic clock. */
  arrivedAt: 0,
  /** The socket's drop count when it was queued (SO_RXQ_OVFL); -1 when not given. */
  drops: -1,
};

/**
 * Reads the control messages of datagram `slot` of the batch just read into
 * {@linkcode control}: its arrival by SCM_TIMESTAMPNS (without one, when the batch was read),
 * and the socket's drop count by SO_RXQ_OVFL (the kernel leaves it out while it is 0). Gives
 * the slot its room for control messages back, for the next batch.
 */
export function readControl(arena: BatchArena, slot: number): void {
  const header = slot * MMSGHDR_SIZE;
  const controlLength = arena.headerView.getUint32(header + MSGHDR_CONTROLLEN, true);
  arena.headerView.setUint32(header + MSGHDR_CONTROLLEN, CONTROL_SIZE, true); // room, next time
  const view = arena.controlView;
  const start = slot * CONTROL_SIZE;
  control.arrivedAt = batchReadAt;
  control.drops = -1;
  for (let at = start; at + CMSGHDR_SIZE <= start + controlLength;) {
    const length = view.getUint32(at + CMSGHDR_LEN, true); // a size_t: the high half is 0
    if (length < CMSGHDR_SIZE || at + length > start + controlLength) break;
    if (view.getInt32(at + CMSGHDR_LEVEL, true) === SOL_SOCKET) {
      const type = view.getInt32(at + CMSGHDR_TYPE, true);
      if (type === SO_TIMESTAMPNS) {
        control.arrivedAt = monotonicOfRealtime(view, at + CMSGHDR_SIZE);
      } else if (type === SO_RXQ_OVFL) {
        control.drops = view.getUint32(at + CMSGHDR_SIZE, true);
      }
    }
    at += (length + CMSG_ALIGN_MASK) & ~CMSG_ALIGN_MASK; // CMSG_ALIGN
  }
}
