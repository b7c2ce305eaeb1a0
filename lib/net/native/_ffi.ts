/**
 * The C library's calls the native backend makes, bound through Deno's FFI once (with the
 * batch arenas, whose pointers are written then), and the FFI permission given up afterwards.
 *
 * No function bound here takes a raw pointer from JavaScript after loading: calls pass typed
 * arrays, and the structures with pointers (the batches) are laid out at load. So the FFI
 * permission can be revoked right after {@linkcode loadNativeUdp}
 * ({@linkcode giveUpFfiPermission}). The page of machine code of _crc32c.ts is written and made
 * executable then too.
 *
 * @module
 */

import { type BatchArena, makeBatchArena } from "./_arena.ts";
import { CRC_SYMBOLS, type HardwareCrc32c, loadHardwareCrc32c } from "./_crc32c.ts";

// ssize_t results are read as i32 (the low half holds every length and -1): a 64-bit result
// would be a BigInt, allocated on every call. The structures (sockaddr, msghdr, mmsghdr,
// iovec, timespec) are laid out for Linux on x86-64 (see _layout.ts).
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  ppoll: { parameters: ["buffer", "usize", "buffer", "pointer"], result: "i32" },
  // The same call on a thread of Deno's own, the main thread free meanwhile: how the reactor
  // sleeps, so that timers, signals and other I/O (an HTTP scrape) run while it does.
  ppollInBackground: {
    name: "ppoll",
    parameters: ["buffer", "usize", "buffer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  adjtimex: { parameters: ["buffer"], result: "i32" },
  ...CRC_SYMBOLS,
} as const;

/** The bound calls and the memory laid out with them. */
export interface NativeUdp {
  /** The C library's functions. */
  symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** errno of the main thread, read through memcpy so no pointer view (and permission) is needed. */
  errno(): number;
  /** Where batches are sent from; its pointers are set once, while the permission is held. */
  sendBatch: BatchArena;
  /** Where batches are received into (one at a time: the reactor finishes one first). */
  receiveBatch: BatchArena;
  /** Where a concurrent batch's replies wait for their sendmmsg(), one address each. */
  replyBatch: BatchArena;
  /** CRC-32C by the CPU's instruction (_crc32c.ts), set up with the rest; null without one. */
  crc32c: HardwareCrc32c | null;
}

/** `sizeof(errno)`: an int. */
const ERRNO_SIZE = 4n;

let loaded: NativeUdp | null | undefined;

/**
 * Loads the C library's socket functions once, if this platform and the FFI permission allow;
 * returns whether the native backend is available. Call it before revoking the FFI permission.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadNativeUdp } from "./mod.ts";
 * strictEqual(typeof loadNativeUdp(), "boolean");
 * strictEqual(loadNativeUdp(), loadNativeUdp()); // loaded once: the answer never changes
 * ```
 */
export function loadNativeUdp(): boolean {
  if (loaded !== undefined) return loaded !== null;
  loaded = null;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return false;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return false;
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return false; // not glibc (musl names its library otherwise): Deno's API it is
  }
  const errnoLocation = library.symbols.__errno_location();
  const errnoValue = new Int32Array(1);
  loaded = {
    symbols: library.symbols,
    sendBatch: makeBatchArena("send"),
    receiveBatch: makeBatchArena("receive"),
    replyBatch: makeBatchArena("send"),
    crc32c: loadHardwareCrc32c(library.symbols),
    errno() {
      library.symbols.memcpy(errnoValue, errnoLocation, ERRNO_SIZE);
      return errnoValue[0];
    },
  };
  return true;
}

/**
 * Loads the native backend if it can be, then revokes the FFI permission for the rest of the
 * process: the socket calls already bound keep working (they take typed arrays, no pointers),
 * while opening another library or reading memory through a pointer is refused from then on.
 * The `udp` binary does this first thing, so holding `--allow-ffi` does not leave it with
 * the power of `--allow-all`.
 *
 * @example
 * ```ts ignore
 * import { strictEqual } from "node:assert/strict";
 * import { giveUpFfiPermission } from "./mod.ts";
 * giveUpFfiPermission();
 * strictEqual(Deno.permissions.querySync({ name: "ffi" }).state === "granted", false);
 * ```
 */
export function giveUpFfiPermission(): void {
  loadNativeUdp();
  Deno.permissions.revokeSync({ name: "ffi" });
}

/** The bound calls; throws where {@linkcode loadNativeUdp} could not bind them. */
export function native(): NativeUdp {
  if (!loadNativeUdp()) throw new Error("the native UDP backend is not available");
  return loaded as NativeUdp;
}

// Loaded when the module is: the library stays open for the life of the process (Deno's test
// sanitizer would otherwise see it as a resource leaked by whichever test loaded it first).
loadNativeUdp();
