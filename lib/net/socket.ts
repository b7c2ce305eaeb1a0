/**
 * UDP sockets for the rest of udp: one interface, {@linkcode DatagramSocket}, with one
 * implementation per backend, and {@linkcode UdpSocket.bind} to choose one and bind it with
 * one-line errors. The native backend (_native_socket.ts over native/: the C library's calls
 * through FFI, on Linux when the FFI permission is granted) batches its system calls and stamps
 * arrivals by the kernel's clock, tells the TTL and TOS byte each datagram arrived with when
 * asked, and sets those it sends with (for a socket, or a TOS for one datagram); Deno's
 * (_deno_socket.ts: `Deno.listenDatagram`) runs everywhere, without them. Either way a socket
 * has a single receive loop and sends in call order.
 *
 * @module
 */

import { formatAddress } from "./address.ts";
import { DenoDatagramSocket } from "./_deno_socket.ts";
import { NetError } from "./errors.ts";
import { NativeDatagramSocket } from "./_native_socket.ts";
import { loadNativeUdp, yieldToEventLoop } from "./native/mod.ts";
import type { IcmpHandler } from "./icmp.ts";

/**
 * Lets the event loop run (receive loops, timers, signals) from a loop that would otherwise
 * never wait: on the native backend a send completes at once, so a sender that only awaits
 * its sends would keep the thread, and the replies would go unread. Costs about 16 µs.
 */
export { yieldToEventLoop };

/** A UDP peer address as Deno reports it. */
export type PeerAddress = Deno.NetAddr;

/**
 * What the IP header of a received datagram said, where the backend can tell and was asked to
 * ({@linkcode ReceiveOptions.ttlAndTos}: the native one, where the kernel tells it with each
 * datagram); -1 otherwise (Deno's sockets cannot).
 */
export interface ReceiveMeta {
  /** The TTL it arrived with (IPv6: the hop limit), 0 to 255; -1: unknown. */
  readonly ttl: number;
  /**
   * The TOS byte it arrived with (IPv6: the traffic class), 0 to 255: the DSCP (`tos >> 2`)
   * and the ECN bits (`tos & 3`); -1: unknown.
   */
  readonly tos: number;
  /**
   * The address it was sent to, where the socket is bound to a wildcard address (0.0.0.0, ::)
   * and the backend tells it (the native one); null otherwise. A reply sent from it
   * ({@linkcode DatagramSocket.sendReply}) comes from the address the peer asked.
   */
  readonly local: string | null;
}

/**
 * Called once per datagram. `data` is a view into the socket's reused receive buffer and is
 * valid only until the returned promise settles (or, for a synchronous handler, until it
 * returns): copy what must outlive that. The next datagram is not read before then.
 * `arrivedAt` is when it reached the socket, on the monotonic clock (`performance.now()`): by
 * the kernel's timestamp on the native backend, else when `receive()` returned it. `meta` is
 * its TTL and TOS (see {@linkcode ReceiveOptions.ttlAndTos}): like `data`, an object the socket
 * reuses, valid for as long as `data` is (copy the fields to keep them).
 */
export type DatagramHandler = (
  data: Uint8Array,
  from: PeerAddress,
  arrivedAt: number,
  meta: ReceiveMeta,
) => void | Promise<void>;

/** Told what became of a reply sent with {@linkcode DatagramSocket.sendCountedReply}. */
export interface SendReceipt<T> {
  /** It left, `bytes` long. */
  sent(token: T, bytes: number): void;
  /** It did not leave, for this reason. */
  failed(token: T, error: unknown): void;
  /**
   * It is about to be handed to the kernel, at `now` (the monotonic clock, in ms on
   * `performance.now()`'s scale): the last moment to write the time it leaves into `data`,
   * whose bytes it may change but not its length. Among a concurrent batch's replies, which
   * leave together, `data` is its copy in the batch, and `now` one reading for all of them,
   * just before the batch is sent. On Deno's backend: as it is handed to Deno's send, which
   * may first wait for a send under way.
   */
  sending?(token: T, data: Uint8Array, now: number): void;
}

/**
 * Tells `receipt` how a send went: at once when `sent` is a number, else when it settles.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tellReceipt } from "./socket.ts";
 * const told: unknown[] = [];
 * const receipt = {
 *   sent: (token: string, bytes: number) => told.push([token, bytes]),
 *   failed: (token: string) => told.push([token, "failed"]),
 * };
 * tellReceipt(receipt, "a", 12);
 * await tellReceipt(receipt, "b", Promise.reject(new Error("down")));
 * deepStrictEqual(told, [["a", 12], ["b", "failed"]]);
 * ```
 */
export function tellReceipt<T>(
  receipt: SendReceipt<T>,
  token: T,
  sent: number | Promise<number>,
): void | Promise<void> {
  if (typeof sent === "number") return receipt.sent(token, sent);
  return sent.then((bytes) => receipt.sent(token, bytes), (error) => receipt.failed(token, error));
}

/** How a socket's receive loop runs ({@linkcode DatagramSocket.receiveEach}). */
export interface ReceiveOptions {
  /**
   * A handler that handles datagrams independently (a reflector) lets the native backend
   * start the handlers of one received batch together, without awaiting each before the next,
   * and send what they send with one `sendmmsg()` once all have had their turn: a send's
   * promise settles when the datagram has really left. Their data stays valid until all of
   * them are done. Replies leave in the order the handlers sent them, so a handler that awaits
   * something of varying length (a crypto operation) should not use it.
   */
  concurrent?: boolean;
  /**
   * Asks for each datagram's TTL and TOS (the handler's `meta`), where the backend can tell
   * (the native one); otherwise `meta` says -1 for both. Not by default: the kernel's two
   * control messages more per datagram make reading one about 15% dearer (0.2 µs).
   */
  ttlAndTos?: boolean;
  /**
   * False: the handler need not run the moment a datagram comes, since what it measures comes
   * from the kernel's arrival stamps (a monitor's replies). The native backend then reads the
   * socket when it wakes anyway (for a timer, at most 10 ms later, or another socket), one
   * batch for many datagrams, and before the timers due then, so that a timer (a probe's
   * timeout) never fires before a datagram that came before it; its datagrams do not keep it
   * awake after them. A socket whose reads find many is read at once while they do. True by
   * default.
   */
  prompt?: boolean;
  /**
   * Told each ICMP error about a datagram this socket sent (unreachable, filtered, too big,
   * TTL exceeded), synchronously, where the backend can tell ({@linkcode
   * DatagramSocket.reportsIcmp}: the native one, by the kernel's error queue); otherwise they
   * go untold, as silent loss. Asking also keeps them from failing the socket's later sends.
   */
  onIcmp?: IcmpHandler;
}

/**
 * Whether datagrams leave with IPv4's don't-fragment bit (IPv6: whether this host may
 * fragment them), as ping(8)'s `-M`: `do` always, `want` until a router says the path is
 * narrower (then this host fragments), `dont` never; `probe` always, and even when bigger
 * than the path MTU the kernel learnt (a search for it must send those).
 */
export type DontFragment = "do" | "want" | "dont" | "probe";

/** Which implementation carries a socket's datagrams. */
export type SocketBackend = "native" | "deno";

/**
 * The backend new sockets get: "native" on Linux when the program holds the FFI permission
 * (it loads the C library's socket calls on first use), otherwise "deno".
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { defaultBackend } from "./socket.ts";
 * strictEqual(["native", "deno"].includes(defaultBackend()), true);
 * ```
 */
export function defaultBackend(): SocketBackend {
  return loadNativeUdp() ? "native" : "deno";
}

/** A bound UDP socket: what every backend's socket does. */
export interface DatagramSocket extends Disposable {
  /** The backend carrying this socket's datagrams. */
  readonly backend: SocketBackend;

  /** The local address, with the real port when bound to port 0. */
  readonly address: PeerAddress;

  /** Whether {@linkcode DatagramSocket.close} was called. */
  readonly closed: boolean;

  /**
   * How many datagrams the kernel dropped on this socket because its receive buffer was full,
   * as of the last datagram received; null where the backend cannot tell (Deno's sockets), or
   * where the kernel coalesces what arrives ({@linkcode DatagramSocket.enableGro}).
   */
  readonly kernelDrops: number | null;

  /**
   * Has the kernel coalesce what arrives from one sender (Linux's UDP_GRO: fewer, larger reads
   * from a sender that uses GSO), each datagram still handled on its own; whether it does. Its
   * drop count is unknown from then on: the kernel counts a coalesced message dropped whole
   * once, whatever it held.
   */
  enableGro(): boolean;

  /**
   * Asks the kernel for a receive buffer of `bytes` and returns what it granted, as it reports
   * it (Linux doubles the request for its bookkeeping); null where the backend cannot set it
   * (Deno's sockets have no such option).
   */
  setReceiveBuffer(bytes: number): number | null;

  /**
   * Whether this socket can send with a TOS byte of its choice
   * ({@linkcode DatagramSocket.setTos}, {@linkcode DatagramSocket.sendWithTos}): true on the
   * native backend, false on Deno's.
   */
  readonly canSetTos: boolean;

  /**
   * Sends what the socket sends from now on with TTL `ttl` (IPv6: hop limit; on a dual-stack
   * socket both), 1 to 255; returns false where the backend cannot (Deno's sockets have no
   * such option). Throws a RangeError for another value, on every backend.
   */
  setTtl(ttl: number): boolean;

  /**
   * Sends what the socket sends from now on with TOS byte `tos` (IPv6: traffic class; on a
   * dual-stack socket both), 0 to 255, the ECN bits included: `dscp << 2 | ecn`. Returns false
   * where the backend cannot (Deno's sockets). Throws a RangeError for another value.
   */
  setTos(tos: number): boolean;

  /**
   * Whether the socket tells ICMP errors about what it sends ({@linkcode ReceiveOptions.onIcmp}):
   * true on the native backend, false on Deno's.
   */
  readonly reportsIcmp: boolean;

  /**
   * Sends what the socket sends from now on with don't-fragment as `mode` says (IPv4:
   * `IP_MTU_DISCOVER`; IPv6: `IPV6_MTU_DISCOVER`); false where the backend cannot (Deno's).
   */
  setDontFragment(mode: DontFragment): boolean;

  /**
   * Sends and receives through the network interface `name` only (`SO_BINDTODEVICE`); false
   * where the backend cannot (Deno's). Throws a {@linkcode NetError} saying why the kernel
   * refused (no such interface, not permitted).
   */
  bindToDevice(name: string): boolean;

  /**
   * Sends one datagram; resolves with the number of bytes sent. Sends leave in the order they
   * were called even when the caller does not await them (Deno runs concurrent sends in no
   * guaranteed order), so `data` must stay unchanged until the promise settles.
   */
  send(data: Uint8Array, to: { hostname: string; port: number }): Promise<number>;

  /**
   * Sends one datagram as {@linkcode DatagramSocket.send} does, but returns the number of bytes
   * itself when the datagram left at once (the native backend, outside a concurrent batch), so
   * that a caller counting its sends makes no promise per datagram; then a failure throws at
   * once too. Otherwise it returns `send`'s promise.
   */
  sendSoon(data: Uint8Array, to: { hostname: string; port: number }): number | Promise<number>;

  /**
   * Sends one datagram as {@linkcode DatagramSocket.send} does (in call order with the other
   * sends, in a concurrent batch's replies too), but with TOS byte `tos` for this datagram
   * alone (a reflector answering each request with the DSCP it asks for); the socket's own
   * stays for the others. Where {@linkcode DatagramSocket.canSetTos} is false the datagram
   * leaves with the socket's TOS: `tos` is not applied. A TOS out of 0 to 255 rejects with a
   * RangeError, on every backend.
   */
  sendWithTos(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
  ): Promise<number>;

  /**
   * Sends a reply to a datagram received, as {@linkcode DatagramSocket.sendSoon} does: with TOS
   * byte `tos` for it alone unless it is -1 (see {@linkcode DatagramSocket.sendWithTos}), and
   * from address `source` unless it is null: the request's `meta.local`, so that a socket
   * bound to a wildcard address answers from the address it was asked at, not from the one
   * the kernel would pick by its routes (on a host with several addresses, or 127.0.0.2 on
   * loopback, the peer would not know the reply). Where the backend cannot choose (Deno's),
   * neither is applied. A TOS out of -1 to 255 throws a RangeError.
   */
  sendReply(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
  ): number | Promise<number>;

  /**
   * Sends a reply as {@linkcode DatagramSocket.sendReply} does, but tells `receipt` (with
   * `token`) once it has left or failed: at once when it left at once; among a concurrent
   * batch's replies, when the batch's replies leave, with no promise per datagram (where
   * `sendReply` makes one); otherwise (Deno's backend) it returns a promise that settles once
   * the receipt has been told. Every error, a TOS out of range too, goes to `receipt.failed`.
   */
  sendCountedReply<T>(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
    receipt: SendReceipt<T>,
    token: T,
  ): void | Promise<void>;

  /**
   * Sends datagrams to one destination, in order, with as few system calls as the backend
   * allows (`sendmmsg()` on the native one); resolves with how many were sent, which is fewer
   * than asked only if sending failed part way. Rejects if not even the first could be sent.
   */
  sendBatch(
    datagrams: readonly Uint8Array[],
    to: { hostname: string; port: number },
  ): Promise<number>;

  /**
   * Runs the socket's single receive loop until the socket is closed, calling `handler` for
   * each datagram in arrival order. Receive errors other than closing (which a UDP socket can
   * see after an ICMP error, for instance) go to `onError` and the loop goes on.
   *
   * See {@linkcode ReceiveOptions} for `options`.
   */
  receiveEach(
    handler: DatagramHandler,
    onError?: (error: unknown) => void,
    options?: ReceiveOptions,
  ): Promise<void>;

  /**
   * Calls `fire` once the monotonic clock (`performance.now()`) reaches `at`; returns a
   * function that cancels it. On the native backend the reactor runs it, within tens of
   * microseconds, and waits for replies right after what it sends (an event loop timer would
   * add a turn of the loop, tens of microseconds, between a probe and the wait for its reply);
   * otherwise it is an event loop timer.
   */
  wakeAt(at: number, fire: () => void): () => void;

  /** Closes the socket; the receive loop ends. Safe to call more than once. */
  close(): void;

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void;
}

/** A bound UDP socket: the name the rest of udp knows a {@linkcode DatagramSocket} by. */
export type UdpSocket = DatagramSocket;

/**
 * Binds UDP sockets: `UdpSocket.bind(hostname, port, backend?)`.
 *
 * @example Echo one datagram on loopback
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { UdpSocket } from "./socket.ts";
 * const server = UdpSocket.bind("127.0.0.1", 0);
 * const client = UdpSocket.bind("127.0.0.1", 0);
 * const served = server.receiveEach(async (data, from) => {
 *   await server.send(data, from);
 *   server.close();
 * });
 * const echoed = Promise.withResolvers<string>();
 * const receiving = client.receiveEach((data) => echoed.resolve(new TextDecoder().decode(data)));
 * strictEqual(await client.send(new TextEncoder().encode("hi"), server.address), 2);
 * await served;
 * strictEqual(await echoed.promise, "hi");
 * client.close();
 * await receiving;
 * ```
 */
export const UdpSocket: {
  /**
   * Binds a socket. `hostname` must be a numeric address (resolve names first); port 0 picks
   * a free port. Throws a {@linkcode NetError} whose message says what went wrong and what to
   * do, with the system's error as its cause. `backend` defaults to
   * {@linkcode defaultBackend}; "native" where it is not available gets Deno's.
   */
  bind(hostname: string, port: number, backend?: SocketBackend): UdpSocket;
} = { bind };

function bind(hostname: string, port: number, backend = defaultBackend()): UdpSocket {
  try {
    if (backend === "native" && loadNativeUdp()) return NativeDatagramSocket.bind(hostname, port);
    return DenoDatagramSocket.bind(hostname, port);
  } catch (error) {
    throw new NetError(describeBindError(error, hostname, port), { cause: error });
  }
}

/**
 * Names a send or receive error briefly for counters and logs, e.g. "Message too long".
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { errorKind } from "./socket.ts";
 * strictEqual(errorKind(new Error("Message too long (os error 90)")), "Message too long");
 * ```
 */
export function errorKind(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = error.message.replace(/\s*\(os error \d+\)$/, "");
  return message || error.name;
}

function describeBindError(error: unknown, hostname: string, port: number): string {
  const where = formatAddress({ hostname, port });
  if (error instanceof Deno.errors.AddrInUse) {
    return `cannot listen on ${where}: the port is already in use; choose another with --port, or --port 0 for any free port`;
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `cannot listen on ${where}: network permission is missing (run with --allow-net)`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `cannot listen on ${where}: permission denied; ports below 1024 need privileges: use --port above 1023, or grant the program CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep)`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `cannot listen on ${where}: ${hostname} is not an address of this machine; use 127.0.0.1, ::1, 0.0.0.0, :: or one of its addresses`;
  }
  return `cannot listen on ${where}: ${errorKind(error)}`;
}
