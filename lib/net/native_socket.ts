/**
 * The native datagram backend: UDP sockets through the C library's own `socket`, `recvmmsg`,
 * `sendto`, `sendmmsg` and `ppoll` (Linux on x86-64, via Deno's FFI), for the latency and rates
 * `Deno.listenDatagram` cannot reach (an async op per datagram each way, no batching). Used by
 * {@linkcode UdpSocket} when the program holds the FFI permission; docs/performance.md says what
 * it buys and docs/security.md what the permission costs and how it is given up again.
 *
 * All native sockets of a process share one reactor, a loop on the main thread:
 * - it reads what waits in batches (`recvmmsg()`: one system call for up to
 *   {@linkcode BATCH_SIZE} datagrams), into one arena: each handler is awaited before the next
 *   batch is read, which keeps every handler's data valid until it is done;
 * - it tells each handler when its datagram arrived, by the kernel's clock (`SO_TIMESTAMPNS`,
 *   stamped as the datagram reached the socket), not when the process got round to it: an
 *   RTT should not include how long the reader took to wake up, or its queue;
 * - it waits for datagrams in `recvmmsg()` itself when exactly one reply is due (a ping: one
 *   system call per datagram), after looking for it without sleeping for about as long as
 *   replies have taken lately (a sleeping thread wakes microseconds late, in every RTT), and
 *   otherwise in `ppoll()` on every socket at once (its timeout is exact: the kernel rounds
 *   `SO_RCVTIMEO` up to clock ticks of several milliseconds);
 * - it runs timers of its own ({@linkcode NativeUdpSocket.wakeAt}) between its waits, so that
 *   a probe sent on a schedule is followed at once by the wait for its reply;
 * - it waits at most a slice ({@linkcode ACTIVE_SLICE_MS}, or {@linkcode IDLE_SLICE_MS} after a
 *   second without traffic), then lets the event loop turn (timers, signals) through a
 *   `MessageChannel` round trip, microseconds where `setTimeout(0)` costs a millisecond; so a
 *   timer fires at most one slice late, while a datagram is read the moment it arrives;
 * - before it sleeps it lets a few rounds of promise jobs run, so that what a handler set off
 *   (the next probe) goes out first; and it does not sleep at all while code that yielded with
 *   {@linkcode yieldToEventLoop} is ready to run (a sender loop sharing the thread).
 *
 * No function here takes a raw pointer from JavaScript after loading: calls pass typed arrays,
 * and the structures with pointers (the batches) are laid out once, at load. So
 * the FFI permission can be revoked right after {@linkcode loadNativeUdp}
 * ({@linkcode giveUpFfiPermission}).
 *
 * @module
 */

import { canonicalHost } from "./address.ts";
import { monotonicMs } from "./clock.ts";
import { DeadlineHeap } from "./deadlines.ts";

/** A UDP peer address as Deno reports it. */
export type NativePeerAddress = Deno.NetAddr;

/**
 * Called once per datagram; `data` is valid until the handler (or its promise) is done.
 * `arrivedAt` is when the datagram reached the socket, on the monotonic clock
 * ({@linkcode monotonicMs}), by the kernel's timestamp.
 */
export type NativeDatagramHandler = (
  data: Uint8Array,
  from: NativePeerAddress,
  arrivedAt: number,
) => void | Promise<void>;

/** How long the reactor sleeps in `ppoll()` at a time while there is traffic. */
export const ACTIVE_SLICE_MS = 1;
/** How long it sleeps at a time after {@linkcode IDLE_AFTER_MS} without any. */
export const IDLE_SLICE_MS = 20;
const IDLE_AFTER_MS = 1000;
/** The longest the reactor looks for an awaited reply before it sleeps (see the spin). */
export const SPIN_MAX_MS = 0.5;
/** The shortest spin, while replies come at once. */
const SPIN_MIN_MS = 0.05;
/** The most waits it skips spinning for after spins that found nothing. */
const SPIN_BACKOFF_MAX = 64;
/** Rounds of promise jobs run before the reactor sleeps (see the loop). */
const MICROTASK_ROUNDS = 16;

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_WAITFORONE = 0x10000;
const POLLIN = 0x001;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33; // past net.core.rmem_max, with CAP_NET_ADMIN
const SO_TIMESTAMPNS = 35; // its control message, SCM_TIMESTAMPNS, has the same number
const SO_RXQ_OVFL = 40; // each datagram's control messages then say how many the socket dropped
const CLOCK_REALTIME = 0; // the clock SO_TIMESTAMPNS stamps with
const EINTR = 4;
const EAGAIN = 11;
const EMSGSIZE = 90;
const SOCKADDR_SIZE = 28; // sockaddr_in6, the larger of the two

// ssize_t results are read as i32 (the low half holds every length and -1): a 64-bit result
// would be a BigInt, allocated on every call. The structures (sockaddr, msghdr, mmsghdr,
// iovec, timeval) are laid out for Linux on x86-64, the one platform this is used and tested on.
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  ppoll: { parameters: ["buffer", "usize", "buffer", "pointer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

interface NativeUdp {
  symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** errno of the main thread, read through memcpy so no pointer view (and permission) is needed. */
  errno(): number;
  /** Where batches are sent from; its pointers are set once, while the permission is held. */
  sendBatch: BatchArena;
  /** Where batches are received into (one at a time: the reactor finishes one first). */
  receiveBatch: BatchArena;
  /** Where a concurrent batch's replies wait for their sendmmsg(), one address each. */
  replyBatch: BatchArena;
}

/**
 * Memory laid out for `sendmmsg()` or `recvmmsg()`: {@linkcode BATCH_SIZE} slots of data (64 KiB,
 * the largest datagram), their `iovec`s, their `mmsghdr`s, their addresses and, to receive,
 * room for each one's arrival timestamp (a control message). Its internal pointers are written
 * once, at load, so a batch later needs no pointer (and no FFI permission): only the slots'
 * bytes and lengths change. Off the V8 heap (megabytes), so it never moves.
 */
interface BatchArena {
  data: Uint8Array;
  headers: Uint8Array;
  headerView: DataView;
  iovecView: DataView;
  names: Uint8Array;
  controlView: DataView;
}

/** Datagrams per `sendmmsg()` call. */
export const BATCH_SIZE = 64;
const SLOT_SIZE = 65536;
const MMSGHDR_SIZE = 64; // struct mmsghdr on x86-64: a 56-byte msghdr, msg_len, padding
const IOVEC_SIZE = 16;
// Room for two control messages, each a cmsghdr (length, level, type: 16 bytes) and its data
// padded to 8 bytes: the arrival timestamp (a struct timespec, 16 bytes) and the socket's drop
// count (a u32).
const CONTROL_SIZE = 64;
const CMSG_HEADER_SIZE = 16;

function makeBatchArena(purpose: "send" | "receive"): BatchArena {
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
    iovecView.setBigUint64(i * IOVEC_SIZE, dataAt + BigInt(i * SLOT_SIZE), true); // iov_base
    iovecView.setBigUint64(i * IOVEC_SIZE + 8, BigInt(SLOT_SIZE), true); // iov_len
    const header = i * MMSGHDR_SIZE;
    headerView.setBigUint64(header, namesAt + BigInt(i * SOCKADDR_SIZE), true); // msg_name
    headerView.setUint32(header + 8, SOCKADDR_SIZE, true); // msg_namelen
    headerView.setBigUint64(header + 16, iovecsAt + BigInt(i * IOVEC_SIZE), true); // msg_iov
    headerView.setBigUint64(header + 24, 1n, true); // msg_iovlen
    if (purpose === "receive") {
      const controlAt = base + BigInt(controls.byteOffset + i * CONTROL_SIZE);
      headerView.setBigUint64(header + 32, controlAt, true); // msg_control
      headerView.setBigUint64(header + 40, BigInt(CONTROL_SIZE), true); // msg_controllen
    }
  }
  return { data, headers, headerView, iovecView, names, controlView };
}

/** Puts a datagram and its destination (a sockaddr of `nameLength` bytes) into a slot. */
function fillSlot(
  arena: BatchArena,
  slot: number,
  datagram: Uint8Array,
  name: Uint8Array,
  nameLength: number,
): void {
  arena.data.set(datagram, slot * SLOT_SIZE);
  arena.names.set(name.subarray(0, nameLength), slot * SOCKADDR_SIZE);
  arena.iovecView.setUint32(slot * IOVEC_SIZE + 8, datagram.byteLength, true); // iov_len
  arena.headerView.setUint32(slot * MMSGHDR_SIZE + 8, nameLength, true); // msg_namelen
}

/**
 * `sendmmsg()` of `count` slots from `first`, again if a signal interrupts it: how many left
 * (it stops at the first that fails), or minus the errno if not even the first did.
 */
function sendSlots(fd: number, arena: BatchArena, first: number, count: number): number {
  const { symbols, errno } = native();
  const headers = first === 0 ? arena.headers : arena.headers.subarray(first * MMSGHDR_SIZE);
  for (;;) {
    const sent = symbols.sendmmsg(fd, headers, count, 0);
    if (sent >= 0) return sent;
    const code = errno();
    if (code !== EINTR) return -code;
  }
}

let loaded: NativeUdp | null | undefined;

// Both clocks, read together as a batch is read: the kernel stamps arrivals on the real-time
// clock, RTTs are measured on the monotonic one. Each arrival is converted through its age
// (how long before this reading it came), so the clocks' offset, which drifts while NTP slews
// the real-time one, never enters.
const realNow = new DataView(new ArrayBuffer(16)); // struct timespec
const realNowBytes = new Uint8Array(realNow.buffer);
let monotonicNow = 0;

function readClocks(): void {
  native().symbols.clock_gettime(CLOCK_REALTIME, realNowBytes);
  monotonicNow = monotonicMs();
}

/** A 64-bit field of a struct timespec, without a BigInt (both fit in 53 bits). */
function int64At(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getInt32(offset + 4, true) * 2 ** 32;
}

/** What the control messages of the datagram read last said (see readControl). */
const control = {
  /** When it arrived, on the monotonic clock. */
  arrivedAt: 0,
  /** The socket's drop count when it was queued (SO_RXQ_OVFL); -1 when not given. */
  drops: -1,
};

/**
 * Reads the control messages of datagram `slot` of the batch just read into `control`: its
 * arrival by SCM_TIMESTAMPNS (without one, when the batch was read), and the socket's drop
 * count by SO_RXQ_OVFL (the kernel leaves it out while it is 0).
 */
function readControl(arena: BatchArena, slot: number): void {
  const header = slot * MMSGHDR_SIZE;
  const controlLength = arena.headerView.getUint32(header + 40, true); // msg_controllen
  arena.headerView.setUint32(header + 40, CONTROL_SIZE, true); // room again, next time
  const view = arena.controlView;
  const start = slot * CONTROL_SIZE;
  control.arrivedAt = monotonicNow;
  control.drops = -1;
  for (let at = start; at + CMSG_HEADER_SIZE <= start + controlLength;) {
    const length = view.getUint32(at, true); // cmsg_len (a size_t: the high half is 0)
    if (length < CMSG_HEADER_SIZE || at + length > start + controlLength) break;
    if (view.getInt32(at + 8, true) === SOL_SOCKET) {
      const type = view.getInt32(at + 12, true);
      if (type === SO_TIMESTAMPNS) {
        // Seconds and nanoseconds apart: as one number of milliseconds each would lose a µs.
        const ageMs = (int64At(realNow, 0) - int64At(view, at + 16)) * 1000 +
          (int64At(realNow, 8) - int64At(view, at + 24)) / 1e6;
        // A real-time clock stepped back since the arrival would make the age negative.
        control.arrivedAt = monotonicNow - Math.max(0, ageMs);
      } else if (type === SO_RXQ_OVFL) {
        control.drops = view.getUint32(at + CMSG_HEADER_SIZE, true);
      }
    }
    at += (length + 7) & ~7; // CMSG_ALIGN
  }
}

/**
 * Loads the C library's socket functions once, if this platform and the FFI permission allow;
 * returns whether the native backend is available. Call it before revoking the FFI permission.
 *
 * @example
 * ```ts
 * import { loadNativeUdp } from "./native_socket.ts";
 * console.log(typeof loadNativeUdp()); // "boolean"
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
    errno() {
      library.symbols.memcpy(errnoValue, errnoLocation, 4n);
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
 * import { giveUpFfiPermission } from "./native_socket.ts";
 * giveUpFfiPermission();
 * console.log(Deno.permissions.querySync({ name: "ffi" }).state === "granted"); // false
 * ```
 */
export function giveUpFfiPermission(): void {
  loadNativeUdp();
  Deno.permissions.revokeSync({ name: "ffi" });
}

function native(): NativeUdp {
  if (!loadNativeUdp()) throw new Error("the native UDP backend is not available");
  return loaded as NativeUdp;
}

// errno values and the texts Deno (Rust's io::Error) gives them, so both backends fail alike.
const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  11: "Resource temporarily unavailable",
  13: "Permission denied",
  22: "Invalid argument",
  90: "Message too long",
  97: "Address family not supported by protocol",
  98: "Address already in use",
  99: "Cannot assign requested address",
  100: "Network is down",
  101: "Network is unreachable",
  105: "No buffer space available",
  111: "Connection refused",
  113: "No route to host",
};

/**
 * The error Deno would throw for an errno: the same class (`Deno.errors.AddrInUse`, …) and
 * message ("Address already in use (os error 98)"), so callers need not know the backend.
 *
 * @example
 * ```ts
 * import { osError } from "./native_socket.ts";
 * console.log(osError(90).message); // "Message too long (os error 90)"
 * console.log(osError(98) instanceof Deno.errors.AddrInUse); // true
 * ```
 */
export function osError(errno: number): Error {
  const message = `${ERRNO_TEXT[errno] ?? "Unknown error"} (os error ${errno})`;
  switch (errno) {
    case 1:
    case 13:
      return new Deno.errors.PermissionDenied(message);
    case 98:
      return new Deno.errors.AddrInUse(message);
    case 99:
      return new Deno.errors.AddrNotAvailable(message);
    case 111:
      return new Deno.errors.ConnectionRefused(message);
    default:
      return new Error(message);
  }
}

/**
 * Writes a numeric IPv4 or IPv6 address and a port into `into` as a `sockaddr_in` or
 * `sockaddr_in6`; returns its length. `into` must hold 28 bytes.
 *
 * @example
 * ```ts
 * import { encodeSockaddr } from "./native_socket.ts";
 * const bytes = new Uint8Array(28);
 * console.log(encodeSockaddr("127.0.0.1", 9999, bytes)); // 16
 * console.log(bytes.subarray(0, 8).toHex()); // "0200270f7f000001"
 * ```
 */
export function encodeSockaddr(hostname: string, port: number, into: Uint8Array): number {
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  into.fill(0, 0, SOCKADDR_SIZE);
  view.setUint16(2, port, false);
  const v4 = parseIpv4(hostname);
  if (v4 !== null) {
    view.setUint16(0, AF_INET, true);
    into.set(v4, 4);
    return 16;
  }
  const v6 = parseIpv6(hostname);
  if (v6 === null) throw new TypeError(`not a numeric IP address: ${hostname}`);
  view.setUint16(0, AF_INET6, true);
  into.set(v6, 8);
  return 28;
}

/**
 * Reads a `sockaddr_in` or `sockaddr_in6` back into a hostname (canonical text, IPv4-mapped
 * IPv6 shown as IPv4, as Deno reports peers) and a port.
 *
 * @example
 * ```ts
 * import { decodeSockaddr } from "./native_socket.ts";
 * const bytes = Uint8Array.fromHex("0200270f7f0000010000000000000000");
 * console.log(decodeSockaddr(bytes)); // { hostname: "127.0.0.1", port: 9999 }
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): { hostname: string; port: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const port = view.getUint16(2, false);
  if (view.getUint16(0, true) === AF_INET) {
    return { hostname: `${bytes[4]}.${bytes[5]}.${bytes[6]}.${bytes[7]}`, port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(8 + 2 * i, false).toString(16));
  return { hostname: canonicalHost(groups.join(":")), port };
}

function parseIpv4(hostname: string): Uint8Array | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  if (!match) return null;
  const bytes = match.slice(1).map(Number);
  return bytes.every((byte) => byte <= 255) ? new Uint8Array(bytes) : null;
}

function parseIpv6(hostname: string): Uint8Array | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(hostname)) return null;
  let text = hostname;
  const embedded = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (embedded) {
    const v4 = parseIpv4(embedded[1]);
    if (v4 === null) return null;
    const high = ((v4[0] << 8) | v4[1]).toString(16);
    const low = ((v4[2] << 8) | v4[3]).toString(16);
    text = `${text.slice(0, -embedded[1].length)}${high}:${low}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9A-Fa-f]{1,4}$/.test(groups[i])) return null;
    const value = parseInt(groups[i], 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 255;
  }
  return bytes;
}

/**
 * A UDP socket on the native backend. Sends are synchronous system calls (so they leave in
 * call order); receiving runs through the shared {@linkcode Reactor}.
 *
 * @example Echo one datagram on loopback
 * ```ts ignore
 * import { NativeUdpSocket } from "./native_socket.ts";
 * const server = NativeUdpSocket.bind("127.0.0.1", 0);
 * const client = NativeUdpSocket.bind("127.0.0.1", 0);
 * const served = server.receiveEach((data, from) => {
 *   server.sendNow(data, from);
 *   server.close();
 * });
 * client.sendNow(new TextEncoder().encode("hi"), server.address);
 * await served;
 * client.close();
 * ```
 */
export class NativeUdpSocket {
  readonly fd: number;
  readonly address: NativePeerAddress;
  // The last destination, encoded: most sockets send to one peer, or answer the last one.
  readonly #to = new Uint8Array(SOCKADDR_SIZE);
  #toHost = "";
  #toPort = -1;
  #toLength = 0;
  // Peers by their sockaddr bytes, so a busy peer costs no string work per datagram.
  readonly #peers = new Map<string | number, NativePeerAddress>();
  #handler: NativeDatagramHandler | null = null;
  #onError: (error: unknown) => void = () => {};
  #finished: PromiseWithResolvers<void> | null = null;
  #closed = false;
  #concurrent = false; // the handlers of one batch may run together (receiveEach's option)
  #queueing = false; // they are running: sends go into the reply batch
  #queued: { length: number; sent: PromiseWithResolvers<number> }[] = [];
  #receiveTimeoutMs = 0; // SO_RCVTIMEO as last set; 0: none (a waiting read would never end)
  #kernelDrops: number | null; // the kernel's count of datagrams it dropped on this socket

  private constructor(fd: number, address: NativePeerAddress, countsDrops: boolean) {
    this.fd = fd;
    this.address = address;
    this.#kernelDrops = countsDrops ? 0 : null;
  }

  /** Binds a socket; throws the error Deno would (see {@linkcode osError}). */
  static bind(hostname: string, port: number): NativeUdpSocket {
    const { symbols, errno } = native();
    const sockaddr = new Uint8Array(SOCKADDR_SIZE);
    const length = encodeSockaddr(hostname, port, sockaddr);
    const fd = symbols.socket(length === 16 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw osError(errno());
    if (symbols.bind(fd, sockaddr, length) !== 0) {
      const error = osError(errno());
      symbols.close(fd);
      throw error;
    }
    // Arrival timestamps (see readControl): without them RTTs would still be right, only less
    // exact, so a refusal is not an error.
    const one = new Uint8Array(new Int32Array([1]).buffer);
    symbols.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, one, 4);
    // The kernel's drops (receive buffer full) told with each datagram: loss that is this
    // host's, not the network's, and that no other counter of the socket shows.
    const countsDrops = symbols.setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, one, 4) === 0;
    const bound = new Uint8Array(SOCKADDR_SIZE);
    const boundLength = new Uint32Array([SOCKADDR_SIZE]);
    symbols.getsockname(fd, bound, new Uint8Array(boundLength.buffer));
    const { hostname: boundHost, port: boundPort } = decodeSockaddr(bound);
    openSockets++;
    const address: NativePeerAddress = { transport: "udp", hostname: boundHost, port: boundPort };
    return new NativeUdpSocket(fd, address, countsDrops);
  }

  /**
   * How many datagrams the kernel dropped on this socket because its receive buffer was full,
   * as of the last datagram read (the kernel tells it with each one); null where it does not.
   */
  get kernelDrops(): number | null {
    return this.#kernelDrops;
  }

  /**
   * Asks for a receive buffer of `bytes` (past `net.core.rmem_max` where the process may) and
   * returns what the kernel granted, as it reports it (Linux doubles the request for its own
   * bookkeeping); throws the error Deno would.
   */
  setReceiveBuffer(bytes: number): number {
    const { symbols, errno } = native();
    const value = new Uint8Array(new Int32Array([bytes]).buffer);
    if (symbols.setsockopt(this.fd, SOL_SOCKET, SO_RCVBUFFORCE, value, 4) !== 0) {
      if (symbols.setsockopt(this.fd, SOL_SOCKET, SO_RCVBUF, value, 4) !== 0) {
        throw osError(errno());
      }
    }
    const granted = new Int32Array(1);
    const length = new Uint32Array([4]);
    const status = symbols.getsockopt(
      this.fd,
      SOL_SOCKET,
      SO_RCVBUF,
      new Uint8Array(granted.buffer),
      new Uint8Array(length.buffer),
    );
    if (status !== 0) throw osError(errno());
    return granted[0];
  }

  /** Whether {@linkcode NativeUdpSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one datagram now; returns the bytes sent or throws the error Deno would. */
  sendNow(data: Uint8Array, to: { hostname: string; port: number }): number {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    const { symbols, errno } = native();
    const length = this.#encodeDestination(to);
    reactor.noteSend(1);
    for (;;) {
      const sent = symbols.sendto(this.fd, data, BigInt(data.byteLength), 0, this.#to, length);
      if (sent >= 0) return sent;
      const code = errno();
      if (code !== EINTR) throw osError(code);
    }
  }

  /** Encodes `to` into the destination buffer, unless it is there already; its length. */
  #encodeDestination(to: { hostname: string; port: number }): number {
    if (to.hostname !== this.#toHost || to.port !== this.#toPort) {
      this.#toLength = encodeSockaddr(to.hostname, to.port, this.#to);
      this.#toHost = to.hostname;
      this.#toPort = to.port;
    }
    return this.#toLength;
  }

  /**
   * Sends datagrams to one destination with as few system calls as it can: `sendmmsg()` for
   * up to {@linkcode BATCH_SIZE} at a time. Returns how many were sent, in order; throws the
   * error Deno would if not even the first could be.
   */
  sendBatchNow(datagrams: readonly Uint8Array[], to: { hostname: string; port: number }): number {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    const arena = native().sendBatch;
    const nameLength = this.#encodeDestination(to);
    let sent = 0;
    while (sent < datagrams.length) {
      let count = 0;
      for (; count < BATCH_SIZE && sent + count < datagrams.length; count++) {
        const datagram = datagrams[sent + count];
        if (datagram.byteLength > SLOT_SIZE) break; // longer than any datagram can be
        fillSlot(arena, count, datagram, this.#to, nameLength);
      }
      if (count === 0) {
        if (sent === 0) throw osError(EMSGSIZE);
        return sent;
      }
      const result = sendSlots(this.fd, arena, 0, count);
      if (result < 0) {
        if (sent === 0) throw osError(-result);
        return sent;
      }
      sent += result;
      reactor.noteSend(result);
      if (result < count) return sent;
    }
    return sent;
  }

  /**
   * Calls `handler` for each datagram until the socket is closed; the promise settles then.
   * Only one receive loop per socket.
   */
  receiveEach(
    handler: NativeDatagramHandler,
    onError: (error: unknown) => void = () => {},
    options: { concurrent?: boolean } = {},
  ): Promise<void> {
    if (this.#handler !== null) throw new Error("a receive loop is already running");
    if (this.#closed) return Promise.resolve();
    this.#handler = handler;
    this.#onError = onError;
    this.#concurrent = options.concurrent ?? false;
    this.#finished = Promise.withResolvers<void>();
    reactor.add(this);
    return this.#finished.promise;
  }

  /** Ends the receive loop because its handler failed: the loop's promise rejects. */
  #stopLoop(error: unknown): void {
    reactor.remove(this);
    this.#handler = null;
    this.#finished?.reject(error);
  }

  /**
   * Reads the datagrams waiting, up to {@linkcode BATCH_SIZE}, with one `recvmmsg()`, into the
   * receive arena, where they stay until {@linkcode NativeUdpSocket.handleBatch} is done with
   * them (the reactor reads nothing else meanwhile). With `waitMs` > 0 it first waits up to
   * that long for one, in `recvmmsg()` itself: one system call, but the kernel rounds the wait
   * up to clock ticks (several milliseconds), so the reactor waits this way only when a reply
   * is due at once. Returns how many datagrams were read.
   */
  readBatch(waitMs: number): number {
    if (this.#closed) return 0;
    const { symbols, errno, receiveBatch: arena } = native();
    if (waitMs > 0 && waitMs !== this.#receiveTimeoutMs) {
      // struct timeval { time_t tv_sec; suseconds_t tv_usec; }, both 64-bit on x86-64
      const timeval = new BigInt64Array([
        BigInt(Math.floor(waitMs / 1000)),
        BigInt((waitMs % 1000) * 1000),
      ]);
      const timevalBytes = new Uint8Array(timeval.buffer);
      if (symbols.setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, timevalBytes, 16) !== 0) {
        return 0; // cannot happen with a valid timeout; never risk waiting for ever
      }
      this.#receiveTimeoutMs = waitMs;
    }
    const flags = waitMs > 0 ? MSG_WAITFORONE : MSG_DONTWAIT;
    const count = symbols.recvmmsg(this.fd, arena.headers, BATCH_SIZE, flags, null);
    if (count < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) this.#onError(osError(code));
      return 0;
    }
    if (count > 0) readClocks();
    return count;
  }

  /**
   * Hands the `count` datagrams {@linkcode NativeUdpSocket.readBatch} just read to the handler,
   * in turn (awaiting each, so its data stays valid), or, for a concurrent receive loop,
   * together (see {@linkcode NativeUdpSocket.receiveEach}).
   */
  async handleBatch(count: number): Promise<void> {
    const arena = native().receiveBatch;
    const handler = this.#handler as NativeDatagramHandler;
    const concurrent = this.#concurrent && count > 1;
    const started: Promise<void>[] = [];
    if (concurrent) this.#queueing = true;
    try {
      for (let i = 0; i < count && !this.#closed; i++) {
        const header = i * MMSGHDR_SIZE;
        const length = arena.headerView.getUint32(header + 56, true); // msg_len
        const name = arena.names.subarray(i * SOCKADDR_SIZE, (i + 1) * SOCKADDR_SIZE);
        const peer = this.#peer(name);
        arena.headerView.setUint32(header + 8, SOCKADDR_SIZE, true); // msg_namelen, next time
        readControl(arena, i);
        const arrivedAt = control.arrivedAt;
        if (control.drops >= 0) this.#kernelDrops = control.drops;
        reactor.noteTraffic();
        const data = arena.data.subarray(i * SLOT_SIZE, i * SLOT_SIZE + length);
        const pending = handler(data, peer, arrivedAt);
        if (pending === undefined) continue;
        if (concurrent) started.push(pending);
        else await pending;
      }
      if (concurrent) {
        // Let the handlers run up to their sends, send those with one sendmmsg(), then let
        // them finish. The batch's data stays valid until all are done: nothing is read
        // into the arena before this returns.
        for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
        this.#queueing = false;
        this.#flushQueued();
        await Promise.all(started);
      }
    } catch (error) {
      this.#stopLoop(error);
    } finally {
      this.#queueing = false;
      this.#flushQueued();
    }
  }

  /**
   * Sends one datagram: at once, or, while the handlers of a concurrent batch run, into the
   * reply batch, sent by one `sendmmsg()` when they have all had their turn; the promise
   * settles when it has really been sent (or failed), so that nothing is counted early.
   */
  send(data: Uint8Array, to: { hostname: string; port: number }): number | Promise<number> {
    // Too long for a slot, so for any datagram: sendto() fails it at once, and nothing leaves.
    if (!this.#queueing || this.#closed || data.byteLength > SLOT_SIZE) {
      return this.sendNow(data, to);
    }
    if (this.#queued.length === BATCH_SIZE) this.#flushQueued(); // full: keep the order
    const nameLength = this.#encodeDestination(to);
    fillSlot(native().replyBatch, this.#queued.length, data, this.#to, nameLength);
    const sent = Promise.withResolvers<number>();
    this.#queued.push({ length: data.byteLength, sent });
    reactor.noteSend(1);
    return sent.promise;
  }

  /** Sends the queued replies, in order, and settles each one's promise. */
  #flushQueued(): void {
    const queued = this.#queued;
    if (queued.length === 0) return;
    this.#queued = [];
    const arena = native().replyBatch;
    let done = 0;
    while (done < queued.length) {
      if (this.#closed) {
        queued[done++].sent.reject(new Deno.errors.BadResource("the socket is closed"));
        continue;
      }
      const result = sendSlots(this.fd, arena, done, queued.length - done);
      if (result < 0) {
        queued[done++].sent.reject(osError(-result)); // then the rest
        continue;
      }
      for (let k = 0; k < result; k++, done++) queued[done].sent.resolve(queued[done].length);
    }
  }

  #peer(from: Uint8Array): NativePeerAddress {
    // IPv4: address and port fit one exact number; IPv6: the 24 meaningful bytes as hex.
    const key = from[0] === AF_INET && from[1] === 0
      ? ((from[4] * 256 + from[5]) * 256 + from[6]) * 256 * 65536 + from[7] * 65536 +
        from[2] * 256 + from[3]
      : from.subarray(2, 24).toHex();
    let peer = this.#peers.get(key);
    if (peer === undefined) {
      if (this.#peers.size >= 4096) this.#peers.clear();
      peer = { transport: "udp", ...decodeSockaddr(from) };
      this.#peers.set(key, peer);
    }
    return peer;
  }

  /**
   * Calls `fire` once `performance.now()` reaches `at`, from the reactor, precisely (to tens of
   * microseconds) and with nothing between what it sends and the reactor's wait for a reply,
   * where an event loop timer costs a turn of the loop (tens of microseconds) after its send.
   * Returns a function that cancels it. Once no socket is open, the event loop's timers take
   * over, so it always fires.
   */
  wakeAt(at: number, fire: () => void): () => void {
    return reactor.schedule(at, fire);
  }

  /** Closes the socket; its receive loop ends. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openSockets--;
    reactor.remove(this);
    this.#flushQueued(); // rejects what is still queued: the socket is closed
    native().symbols.close(this.fd);
    this.#finished?.resolve();
  }

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// Deno's resource sanitizer cannot see these file descriptors, so the tests count them.
let openSockets = 0;

/**
 * How many native sockets are open: the tests check it is back to 0, as Deno's resource
 * sanitizer does for its own sockets.
 *
 * @example
 * ```ts
 * import { openNativeSockets } from "./native_socket.ts";
 * console.log(openNativeSockets()); // 0
 * ```
 */
export function openNativeSockets(): number {
  return openSockets;
}

/**
 * An event loop timer that fires once `performance.now()` reaches `at`: the delay is rounded
 * up to whole milliseconds, as a timer given a fraction fires up to a millisecond early.
 *
 * @example
 * ```ts
 * import { eventLoopTimerAt } from "./native_socket.ts";
 * const at = performance.now() + 1.5;
 * await new Promise<void>((resolve) => eventLoopTimerAt(at, resolve));
 * console.log(performance.now() >= at); // true
 * ```
 */
export function eventLoopTimerAt(at: number, fire: () => void): ReturnType<typeof setTimeout> {
  return setTimeout(fire, Math.max(0, Math.ceil(at - performance.now())));
}

/** A callback the reactor runs at a given time (see {@linkcode NativeUdpSocket.wakeAt}). */
interface ReactorTimer {
  at: number;
  fire: () => void;
  /** Cancelled, or fired: skipped when it comes out of the heap. */
  done: boolean;
  /** Set once the reactor has stopped (no socket left): the event loop's timer took over. */
  handle?: ReturnType<typeof setTimeout>;
}

/**
 * The kernel rounds `SO_RCVTIMEO` up to clock ticks: a 1 ms receive timeout was seen to last
 * 6 to 8.4 ms. The reactor waits in `recvmmsg()` only when no timer of its own is due sooner.
 */
const RECEIVE_TIMEOUT_OVERSHOOT_MS = 10;

// How the reactor's spins for replies went, for the tests (see Reactor's spin).
const spins = { found: 0, missed: 0 };

/**
 * How many times the reactor, looking for an awaited reply before sleeping, found it, and how
 * many times it gave up and slept: the tests check that it spins when replies come soon and
 * stops spinning when they do not.
 *
 * @example
 * ```ts
 * import { spinCounts } from "./native_socket.ts";
 * const { found, missed } = spinCounts();
 * console.log(found >= 0 && missed >= 0); // true
 * ```
 */
export function spinCounts(): { found: number; missed: number } {
  return { ...spins };
}

/**
 * The loop that serves every native socket of the process: `ppoll()` on all of them, drain the
 * ready ones, run the timers that are due, let the event loop run, repeat; it ends when the
 * last socket closes.
 */
class Reactor {
  readonly #sockets = new Set<NativeUdpSocket>();
  // Due timers fire in deadline order (ties in the order added), from the one heap every
  // timer of the process uses; a cancelled one stays in it, marked, until it comes out.
  readonly #timers = new DeadlineHeap<ReactorTimer>((timer) => !timer.done);
  #pollfds = new Uint8Array(0);
  #order: NativeUdpSocket[] = [];
  #pollCount = 0n;
  // struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit words, written as 32-bit halves
  // (a timeout is far below 2^31 s) so that no BigInt is made per wait.
  readonly #timeout = new Int32Array(4);
  readonly #timeoutBytes = new Uint8Array(this.#timeout.buffer);
  #running = false;
  #lastTraffic = 0;
  #trafficSeen = false;
  #expected = 0; // datagrams sent since as many were received: replies may be on their way
  #readyCode = 0; // code that yielded to the event loop and is ready to go on: never block it
  #spinBackoff = 0; // waits to skip after the next spin that finds nothing
  #spinSkips = 0; // waits left to skip before the reactor spins again
  #replyDelay = 0; // how long awaited replies took lately, ms (moving average)

  add(socket: NativeUdpSocket): void {
    this.#sockets.add(socket);
    this.#rebuild();
    if (!this.#running) {
      this.#running = true;
      this.#run().finally(() => this.#running = false);
    }
  }

  remove(socket: NativeUdpSocket): void {
    if (!this.#sockets.delete(socket)) return;
    this.#rebuild();
    if (this.#sockets.size > 0) return;
    // The loop ends: nothing is awaited any more, and what it would have run, the event
    // loop's timers run instead.
    this.#expected = 0;
    this.#replyDelay = 0;
    this.#spinBackoff = this.#spinSkips = 0;
    for (const timer of this.#timers.takeAll()) if (!timer.done) this.#handOver(timer);
  }

  /** Gives a timer to the event loop's timers: the loop is not running to fire it. */
  #handOver(timer: ReactorTimer): void {
    timer.handle = eventLoopTimerAt(timer.at, () => {
      if (timer.done) return;
      timer.done = true;
      timer.fire();
    });
  }

  /**
   * Runs `fire` once `performance.now()` reaches `at`: from the loop, to within its wait's
   * precision (tens of microseconds), while any socket is open, so that a send it makes is
   * followed at once by the wait for the reply; from the event loop's timers otherwise.
   * Returns a function that cancels it.
   */
  schedule(at: number, fire: () => void): () => void {
    const timer: ReactorTimer = { at, fire, done: false };
    if (this.#sockets.size === 0) this.#handOver(timer);
    else this.#timers.add(at, timer);
    return () => {
      timer.done = true;
      clearTimeout(timer.handle);
    };
  }

  /**
   * Runs the timers due by `now`, earliest first (ties in the order added); whether any was.
   * One that a timer sets for `now` or before runs in the same call, after those already due.
   */
  #fireDue(now: number): boolean {
    let fired = false;
    const timers = this.#timers;
    while (timers.nextAt <= now) {
      const timer = timers.pop();
      if (timer.done) continue;
      timer.done = true;
      fired = true;
      timer.fire();
    }
    return fired;
  }

  /** When the next of the loop's live timers is due (Infinity: none). */
  #nextTimer(): number {
    const timers = this.#timers;
    while (timers.size > 0 && timers.peek().done) timers.pop(); // cancelled ones
    return timers.nextAt;
  }

  #rebuild(): void {
    this.#order = [...this.#sockets];
    this.#pollCount = BigInt(this.#order.length); // nfds_t: computed here, not per ppoll()
    // struct pollfd { int fd; short events; short revents; }
    this.#pollfds = new Uint8Array(8 * this.#order.length);
    const view = new DataView(this.#pollfds.buffer);
    this.#order.forEach((socket, i) => {
      view.setInt32(8 * i, socket.fd, true);
      view.setInt16(8 * i + 4, POLLIN, true);
    });
  }

  /** ppoll() on every socket for up to `waitMs` (to the nanosecond, unlike poll()'s ms). */
  #poll(waitMs: number): number {
    const seconds = Math.floor(waitMs / 1000);
    this.#timeout[0] = seconds;
    this.#timeout[2] = Math.round((waitMs - seconds * 1000) * 1e6);
    return native().symbols.ppoll(this.#pollfds, this.#pollCount, this.#timeoutBytes, null);
  }

  async #run(): Promise<void> {
    const channel = new MessageChannel();
    let wake: (() => void) | null = null;
    channel.port1.onmessage = () => wake?.();
    const yieldToEventLoop = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        channel.port2.postMessage(null);
      });
    try {
      let lastYield = performance.now();
      while (this.#sockets.size > 0) {
        // Let what the last datagrams set off run: a few rounds of promise jobs (a reply's
        // handler sending the next probe, say) cost next to nothing. The event loop itself
        // (timers, signals, other I/O) gets a turn once a slice, and at once when code is
        // ready to run (a sender loop that yielded, see yieldToEventLoop).
        for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
        let now = performance.now();
        if (this.#readyCode > 0 || now - lastYield >= ACTIVE_SLICE_MS) {
          await yieldToEventLoop();
          lastYield = now = performance.now();
        }
        if (this.#sockets.size === 0) break;
        if (this.#timers.size > 0 && this.#fireDue(now)) {
          // After the event loop's turn, not before it: what the timers send (a probe) is
          // followed at once by the wait for its reply, with nothing else in between.
          for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
          now = performance.now();
          if (this.#sockets.size === 0) break;
        }
        if (this.#trafficSeen) {
          this.#lastTraffic = now;
          this.#trafficSeen = false;
        }
        const pollfds = this.#pollfds;
        const order = this.#order;
        const slice = now - this.#lastTraffic > IDLE_AFTER_MS ? IDLE_SLICE_MS : ACTIVE_SLICE_MS;
        const someoneReady = this.#readyCode > 0;
        const untilTimer = this.#timers.size > 0 ? this.#nextTimer() - now : Infinity;
        if (order.length === 1 && !someoneReady && this.#expected === 1) {
          await this.#awaitReply(order[0], now, slice, untilTimer);
        } else if (this.#poll(someoneReady ? 0 : Math.max(0, Math.min(slice, untilTimer))) > 0) {
          // ppoll()'s timeout is exact, so timers stay on time; it does not wait at all when
          // code is ready to run (a sender loop that yielded), which gets the thread back
          // after one batch per socket, so one busy socket cannot starve the others either.
          for (let i = 0; i < order.length; i++) {
            if (pollfds[8 * i + 6] === 0 && pollfds[8 * i + 7] === 0) continue; // no revents
            const count = order[i].readBatch(0);
            if (count > 0) await order[i].handleBatch(count);
          }
        } else if (!someoneReady) {
          // A wait with nothing at all: the replies once sent for are late or lost, so the
          // next single request is awaited as such (spin, recvmmsg()) and not as one of many.
          this.#expected = 0;
        }
      }
    } finally {
      channel.port1.close();
      channel.port2.close();
    }
  }

  /**
   * Waits up to a slice for the one reply due on the only socket (a ping) and hands it on:
   * looks for it without sleeping first, if replies come soon (see the spin), then sleeps for
   * it in recvmmsg() itself, one system call where ppoll() and a read are two, unless a timer
   * is due before the kernel's rounded-up receive timeout (~8 ms) would end; if the reply is
   * lost, that happens once.
   */
  async #awaitReply(
    socket: NativeUdpSocket,
    now: number,
    slice: number,
    untilTimer: number,
  ): Promise<void> {
    let count = this.#spinFor(socket, now, untilTimer);
    if (count === 0 && untilTimer > RECEIVE_TIMEOUT_OVERSHOOT_MS) {
      count = socket.readBatch(slice);
    } else if (count === 0 && this.#poll(Math.max(0, Math.min(slice, untilTimer))) > 0) {
      count = socket.readBatch(0);
    }
    if (count === 0) {
      this.#expected = 0; // late or lost: await nothing in particular
      return;
    }
    this.#replyDelay += (performance.now() - now - this.#replyDelay) / 4;
    await socket.handleBatch(count);
  }

  /**
   * Before it sleeps for a reply, the reactor looks for it without sleeping, for twice as long
   * as replies have taken lately (a moving average), up to {@linkcode SPIN_MAX_MS}: a thread
   * woken from sleep starts some microseconds after the datagram came (8 µs of a 27 µs round
   * trip on the development machine, more from an idle processor), time that would count in
   * every RTT. Not when replies take longer than that (a real network), nor past a timer; and
   * when a spin ends empty-handed (a reply lost or late) it skips the next 1, 2, 4 … up to
   * {@linkcode SPIN_BACKOFF_MAX} waits, so a slow or quiet peer costs a spin now and then.
   * Returns how many datagrams it read.
   */
  #spinFor(socket: NativeUdpSocket, now: number, untilTimer: number): number {
    if (this.#replyDelay > SPIN_MAX_MS / 2) return 0;
    if (this.#spinSkips > 0) {
      this.#spinSkips--;
      return 0;
    }
    const until = now +
      Math.min(SPIN_MAX_MS, untilTimer, Math.max(SPIN_MIN_MS, 2 * this.#replyDelay));
    do {
      const count = socket.readBatch(0);
      if (count > 0) {
        this.#spinBackoff = 0;
        spins.found++;
        return count;
      }
    } while (performance.now() < until && !socket.closed);
    spins.missed++;
    this.#spinBackoff = Math.min(SPIN_BACKOFF_MAX, Math.max(1, 2 * this.#spinBackoff));
    this.#spinSkips = this.#spinBackoff;
    return 0;
  }

  /** Notes code ready to run as soon as the event loop turns (+1), or run (-1). */
  noteReadyCode(delta: number): void {
    this.#readyCode += delta;
  }

  /** Notes a datagram received: traffic (so short slices), and one expected reply less. */
  noteTraffic(): void {
    this.#trafficSeen = true; // timed by the loop, which reads the clock anyway
    if (this.#expected > 0) this.#expected--;
  }

  /**
   * Notes datagrams sent: traffic (so short slices), and as many replies perhaps expected.
   */
  noteSend(count: number): void {
    this.#trafficSeen = true;
    this.#expected += count;
  }
}

const reactor = new Reactor();

/**
 * Lets the event loop run from code that is ready to go on at once (a sender loop): unlike a
 * plain `MessageChannel` round trip, it also tells the reactor not to sleep in `ppoll()` first.
 *
 * @example
 * ```ts
 * import { yieldToEventLoop } from "./native_socket.ts";
 * let ran = false;
 * setTimeout(() => ran = true, 0);
 * while (!ran) await yieldToEventLoop();
 * console.log(ran); // true
 * ```
 */
export function yieldToEventLoop(): Promise<void> {
  reactor.noteReadyCode(1);
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      reactor.noteReadyCode(-1);
      resolve();
    };
    port2.postMessage(null);
    port2.close();
  });
}

// Loaded when the module is: the library stays open for the life of the process (Deno's test
// sanitizer would otherwise see it as a resource leaked by whichever test loaded it first).
loadNativeUdp();
