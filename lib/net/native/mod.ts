/**
 * The native datagram backend: UDP sockets through the C library's own `socket`, `recvmmsg`,
 * `sendto`, `sendmmsg` and `ppoll` (Linux on x86-64, via Deno's FFI), for the latency and rates
 * `Deno.listenDatagram` cannot reach (an async op per datagram each way, no batching). The
 * socket interface (../socket.ts) uses it when the program holds the FFI permission;
 * docs/performance.md says what it buys and docs/security.md what the permission costs and how
 * it is given up again. Its parts, each a module of this folder:
 *
 * - `_ffi.ts`: the C library's calls, bound once, and the FFI permission given up;
 * - `_layout.ts`: the C structures' offsets and sizes, and the constants of the calls;
 * - `_arena.ts`: the batch arenas, laid out once for `sendmmsg()` and `recvmmsg()`;
 * - `_sockaddr.ts`: numeric addresses to and from `sockaddr_in` and `sockaddr_in6`, the
 *   peers a socket decoded;
 * - `_errno.ts`: errno values and the errors Deno throws for them;
 * - `_clock.ts`: the kernel's real-time arrival stamps on the monotonic clock, and that clock
 *   read by `clock_gettime()`;
 * - `_crc32c.ts`: CRC-32C by the CPU's `crc32` instruction (a page of machine code);
 * - `_timex.ts`: whether the kernel says the clock is synchronized, and its error;
 * - `_control.ts`: the control messages read with each datagram (`SO_TIMESTAMPNS`,
 *   `SO_RXQ_OVFL`, the TTL and TOS it arrived with, where it was sent to), and those a datagram
 *   is sent with (its TOS, its source address);
 * - `_options.ts`: the socket options (what to tell with each datagram, the receive buffer,
 *   the TTL and TOS to send with, don't-fragment, the interface);
 * - `_errqueue.ts`: the error queue, where the kernel puts ICMP errors about what was sent;
 * - `_send_slots.ts`: one `sendmmsg()` of a send arena's slots;
 * - `_reply_queue.ts`: a concurrent batch's replies, waiting for their one `sendmmsg()`;
 * - `_open_sockets.ts`: how many native sockets are open (for the tests);
 * - `_offload.ts`: UDP GSO and GRO (`UDP_SEGMENT`, `UDP_GRO`): support, packing, splitting;
 * - `_bind.ts`: a socket opened and bound, with the options every one has;
 * - `_socket.ts`: the native socket;
 * - `_reactor.ts`: the one loop over `ppoll()` and `recvmmsg()` that serves every socket, and
 *   sleeps off the main thread;
 * - `_doorbell.ts`: the eventfd that ends the reactor's sleep when the main thread needs it;
 * - `_policy.ts`: the reactor's scheduling policy (turns of the event loop, spins for a reply, back-off);
 * - `_turns.ts`: turns of the event loop by message, over one channel while the reactor runs.
 *
 * This module is the folder's face: nothing outside it imports the others.
 *
 * @module
 */

import { loadNativeUdp as loadLibrary, native } from "./_ffi.ts";
import type { Crc32cShift, Crc32cUpdate } from "./_crc32c.ts";
import { useNativeClock } from "./_clock.ts";

/**
 * Loads the native backend if it can be (see _ffi.ts): whether it did. With it, the monotonic
 * clock is read by `clock_gettime()` (_clock.ts).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadNativeUdp } from "./mod.ts";
 * strictEqual(typeof loadNativeUdp(), "boolean");
 * ```
 */
export function loadNativeUdp(): boolean {
  const loaded = loadLibrary();
  if (loaded) useNativeClock();
  return loaded;
}

export { BATCH_SIZE } from "./_arena.ts";
export type { Crc32cShift, Crc32cUpdate } from "./_crc32c.ts";
export { osError } from "./_errno.ts";
export { giveUpFfiPermission } from "./_ffi.ts";
export { BUSY_TURN_MS, SPIN_MAX_MS, spinCounts } from "./_policy.ts";
export { LAZY_READ_MS, type ReactorSleeps, reactorSleeps, yieldToEventLoop } from "./_reactor.ts";
export { kernelClockState } from "./_timex.ts";
export { decodeSockaddr, encodeSockaddr } from "./_sockaddr.ts";
export { bindToDevice, setDontFragment, setReceiveBuffer, setTos, setTtl } from "./_options.ts";
export { type NativeDatagramHandler, type NativePeerAddress, NativeUdpSocket } from "./_socket.ts";
export { openNativeSockets } from "./_open_sockets.ts";
export { type OffloadSupport, offloadSupport } from "./_offload.ts";

/**
 * CRC-32C by the CPU's `crc32` instruction (_crc32c.ts), as lib/wire's `crc32cUpdate` computes
 * it; null where the native backend or the instruction is missing. Given `shift` (lib/wire's
 * `crc32cShift`), a long range is read as three lanes at once and joined by it. lib/wire's
 * `useCrc32cUpdate()` takes it (the executable does so at start).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { hardwareCrc32c } from "./mod.ts";
 * const update = hardwareCrc32c();
 * if (update !== null) {
 *   const check = (update(-1, new TextEncoder().encode("123456789"), 0, 9) ^ -1) >>> 0;
 *   strictEqual(check, 0xe3069283);
 * }
 * ```
 */
export function hardwareCrc32c(shift?: Crc32cShift): Crc32cUpdate | null {
  const hardware = loadLibrary() ? native().crc32c : null;
  return hardware === null ? null : hardware(shift);
}
