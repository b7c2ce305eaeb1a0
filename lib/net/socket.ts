/**
 * UDP sockets for the rest of udp: binding with one-line errors, a single receive loop per
 * socket, and sending in call order. Two backends sit behind one class: the native one
 * (lib/native_socket.ts: the C library's calls through FFI, on Linux when the FFI permission
 * is granted), and `Deno.listenDatagram` (everywhere else, with a reused 64 KiB buffer).
 *
 * @module
 */

import { canonicalHost, formatAddress } from "./address.ts";
import { monotonicMs } from "./clock.ts";
import { UsageError } from "../cli/errors.ts";
import {
  eventLoopTimerAt,
  loadNativeUdp,
  NativeUdpSocket,
  yieldToEventLoop,
} from "./native_socket.ts";

/**
 * Lets the event loop run (receive loops, timers, signals) from a loop that would otherwise
 * never wait: on the native backend a send completes at once, so a sender that only awaits
 * its sends would keep the thread, and the replies would go unread. Costs about 16 µs.
 */
export { yieldToEventLoop };

/** A UDP peer address as Deno reports it. */
export type PeerAddress = Deno.NetAddr;

/**
 * Called once per datagram. `data` is a view into the socket's reused receive buffer and is
 * valid only until the returned promise settles (or, for a synchronous handler, until it
 * returns): copy what must outlive that. The next datagram is not read before then.
 * `arrivedAt` is when it reached the socket, on the monotonic clock (`performance.now()`): by
 * the kernel's timestamp on the native backend, else when `receive()` returned it.
 */
export type DatagramHandler = (
  data: Uint8Array,
  from: PeerAddress,
  arrivedAt: number,
) => void | Promise<void>;

const RECEIVE_BUFFER_SIZE = 65536;

/** Which implementation carries a socket's datagrams. */
export type SocketBackend = "native" | "deno";

/**
 * The backend new sockets get: "native" on Linux when the program holds the FFI permission
 * (it loads the C library's socket calls on first use), otherwise "deno".
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./socket.ts";
 * console.log(["native", "deno"].includes(defaultBackend())); // true
 * ```
 */
export function defaultBackend(): SocketBackend {
  return loadNativeUdp() ? "native" : "deno";
}

/**
 * A bound UDP socket.
 *
 * @example Echo one datagram on loopback
 * ```ts
 * import { UdpSocket } from "./socket.ts";
 * const server = UdpSocket.bind("127.0.0.1", 0);
 * const client = UdpSocket.bind("127.0.0.1", 0);
 * const served = server.receiveEach(async (data, from) => {
 *   await server.send(data, from);
 *   server.close();
 * });
 * await client.send(new TextEncoder().encode("hi"), server.address);
 * await served;
 * client.close();
 * ```
 */
export class UdpSocket {
  readonly #conn: Deno.DatagramConn | null;
  readonly #native: NativeUdpSocket | null;
  readonly #buffer: Uint8Array;
  #closed = false;
  #lastSend: Promise<unknown> = Promise.resolve();

  private constructor(conn: Deno.DatagramConn | null, native: NativeUdpSocket | null) {
    this.#conn = conn;
    this.#native = native;
    this.#buffer = conn === null ? new Uint8Array(0) : new Uint8Array(RECEIVE_BUFFER_SIZE);
  }

  /**
   * Binds a socket. `hostname` must be a numeric address (resolve names first); port 0 picks
   * a free port. Throws a UsageError whose message says what went wrong and what to do.
   * `backend` defaults to {@linkcode defaultBackend}.
   */
  static bind(hostname: string, port: number, backend = defaultBackend()): UdpSocket {
    try {
      if (backend === "native" && loadNativeUdp()) {
        return new UdpSocket(null, NativeUdpSocket.bind(hostname, port));
      }
      return new UdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port }), null);
    } catch (error) {
      throw new UsageError(describeBindError(error, hostname, port));
    }
  }

  /** The backend carrying this socket's datagrams. */
  get backend(): SocketBackend {
    return this.#native === null ? "deno" : "native";
  }

  /** The local address, with the real port when bound to port 0. */
  get address(): PeerAddress {
    if (this.#native !== null) return { ...this.#native.address };
    const addr = (this.#conn as Deno.DatagramConn).addr as Deno.NetAddr;
    return { transport: "udp", hostname: canonicalHost(addr.hostname), port: addr.port };
  }

  /** Whether {@linkcode UdpSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * How many datagrams the kernel dropped on this socket because its receive buffer was full,
   * as of the last datagram received; null where the backend cannot tell (Deno's sockets).
   */
  get kernelDrops(): number | null {
    return this.#native?.kernelDrops ?? null;
  }

  /**
   * Asks the kernel for a receive buffer of `bytes` and returns what it granted, as it reports
   * it (Linux doubles the request for its bookkeeping); null where the backend cannot set it
   * (Deno's sockets have no such option).
   */
  setReceiveBuffer(bytes: number): number | null {
    return this.#native?.setReceiveBuffer(bytes) ?? null;
  }

  /**
   * Sends one datagram; resolves with the number of bytes sent. Sends leave in the order they
   * were called even when the caller does not await them (Deno runs concurrent sends in no
   * guaranteed order), so `data` must stay unchanged until the promise settles.
   */
  send(data: Uint8Array, to: { hostname: string; port: number }): Promise<number> {
    if (this.#native !== null) {
      try {
        return Promise.resolve(this.sendSoon(data, to));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const conn = this.#conn as Deno.DatagramConn;
    const address: Deno.NetAddr = { transport: "udp", hostname: to.hostname, port: to.port };
    const sent = this.#lastSend.then(() => conn.send(data, address));
    this.#lastSend = sent.catch(() => {});
    return sent;
  }

  /**
   * Sends one datagram as {@linkcode UdpSocket.send} does, but returns the number of bytes
   * itself when the datagram left at once (the native backend, outside a concurrent batch), so
   * that a caller counting its sends makes no promise per datagram; then a failure throws at
   * once too. Otherwise it returns `send`'s promise.
   */
  sendSoon(data: Uint8Array, to: { hostname: string; port: number }): number | Promise<number> {
    if (this.#native !== null) return this.#native.send(data, to);
    return this.send(data, to);
  }

  /**
   * Sends datagrams to one destination, in order, with as few system calls as the backend
   * allows (`sendmmsg()` on the native one); resolves with how many were sent, which is fewer
   * than asked only if sending failed part way. Rejects if not even the first could be sent.
   */
  async sendBatch(
    datagrams: readonly Uint8Array[],
    to: { hostname: string; port: number },
  ): Promise<number> {
    if (this.#native !== null) return this.#native.sendBatchNow(datagrams, to);
    let sent = 0;
    for (const datagram of datagrams) {
      try {
        await this.send(datagram, to);
      } catch (error) {
        if (sent === 0) throw error;
        return sent;
      }
      sent++;
    }
    return sent;
  }

  /**
   * Runs the socket's single receive loop until the socket is closed, calling `handler` for
   * each datagram in arrival order. Receive errors other than closing (which a UDP socket can
   * see after an ICMP error, for instance) go to `onError` and the loop goes on.
   *
   * With `concurrent`, a handler that handles datagrams independently (a reflector) lets the
   * native backend start the handlers of one received batch together, without awaiting each
   * before the next, and send what they send with one `sendmmsg()` once all have had their
   * turn: a send's promise settles when the datagram has really left. Their data stays valid
   * until all of them are done. Replies leave in the order the handlers sent them, so a
   * handler that awaits something of varying length (a crypto operation) should not use it.
   */
  async receiveEach(
    handler: DatagramHandler,
    onError: (error: unknown) => void = () => {},
    options: { concurrent?: boolean } = {},
  ): Promise<void> {
    if (this.#native !== null) return await this.#native.receiveEach(handler, onError, options);
    const conn = this.#conn as Deno.DatagramConn;
    while (!this.#closed) {
      let datagram: [Uint8Array, Deno.Addr];
      try {
        datagram = await conn.receive(this.#buffer);
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        onError(error);
        continue;
      }
      await handler(datagram[0], datagram[1] as Deno.NetAddr, monotonicMs());
    }
  }

  /**
   * Calls `fire` once the monotonic clock (`performance.now()`) reaches `at`; returns a
   * function that cancels it. On the native backend the reactor runs it, within tens of
   * microseconds, and waits for replies right after what it sends (an event loop timer would
   * add a turn of the loop, tens of microseconds, between a probe and the wait for its reply);
   * otherwise it is an event loop timer.
   */
  wakeAt(at: number, fire: () => void): () => void {
    if (this.#native !== null) return this.#native.wakeAt(at, fire);
    const timer = eventLoopTimerAt(at, fire);
    return () => clearTimeout(timer);
  }

  /** Closes the socket; the receive loop ends. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native?.close();
    this.#conn?.close();
  }

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Names a send or receive error briefly for counters and logs, e.g. "Message too long".
 *
 * @example
 * ```ts
 * import { errorKind } from "./socket.ts";
 * console.log(errorKind(new Error("Message too long (os error 90)"))); // "Message too long"
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
    return `cannot listen on ${where}: permission denied; ports below 1024 need privileges, use a higher --port`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `cannot listen on ${where}: ${hostname} is not an address of this machine; use 127.0.0.1, ::1, 0.0.0.0, :: or one of its addresses`;
  }
  return `cannot listen on ${where}: ${errorKind(error)}`;
}
