/**
 * Sending what a send arena's slots hold, with one `sendmmsg()`.
 *
 * @module
 */

import type { BatchArena } from "./_arena.ts";
import { EINTR } from "./_errno.ts";
import { native } from "./_ffi.ts";
import { MMSGHDR_SIZE } from "./_layout.ts";

/**
 * `sendmmsg()` of `count` slots from `first`, again if a signal interrupts it: how many left
 * (it stops at the first that fails), or minus the errno if not even the first did.
 */
export function sendSlots(fd: number, arena: BatchArena, first: number, count: number): number {
  const { symbols, errno } = native();
  const headers = first === 0 ? arena.headers : arena.headers.subarray(first * MMSGHDR_SIZE);
  for (;;) {
    const sent = symbols.sendmmsg(fd, headers, count, 0);
    if (sent >= 0) return sent;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}
