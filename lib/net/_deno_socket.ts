/**
 * The {@linkcode DatagramSocket} on Deno's own API (`Deno.listenDatagram`): everywhere the
 * native backend is not (another platform, or no FFI permission). One reused 64 KiB receive
 * buffer; sends chained so that they leave in call order. Deno's API neither tells the TTL or
 * TOS a datagram arrived with nor sets those a unicast one is sent with (its only TTL is
 * multicast's), so handlers get -1 for both and the setters say they cannot.
 *
 * @module
 */

import { canonicalHost } from "./address.ts";
import { eventLoopWakeAt, monotonicMs } from "./clock.ts";
import { checkTos, checkTtl } from "./_ip_header.ts";
import type {
  DatagramHandler,
  DatagramSocket,
  DontFragment,
  PeerAddress,
  ReceiveMeta,
  ReceiveOptions,
  SendReceipt,
  SocketBackend,
} from "./socket.ts";
import { tellReceipt } from "./socket.ts";

/** The receive buffer's size: more than the largest datagram. */
const RECEIVE_BUFFER_SIZE = 65536;

/** What every datagram's IP header said, as far as Deno's API tells: nothing. */
const UNKNOWN: ReceiveMeta = Object.freeze({ ttl: -1, tos: -1, local: null });

/** A bound socket of `Deno.listenDatagram`. */
export class DenoDatagramSocket implements DatagramSocket {
  readonly #conn: Deno.DatagramConn;
  readonly #buffer = new Uint8Array(RECEIVE_BUFFER_SIZE);
  #closed = false;
  #lastSend: Promise<unknown> = Promise.resolve();

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
  }

  /** Binds a socket; throws what `Deno.listenDatagram` throws. */
  static bind(hostname: string, port: number): DenoDatagramSocket {
    return new DenoDatagramSocket(Deno.listenDatagram({ transport: "udp", hostname, port }));
  }

  /** "deno". */
  get backend(): SocketBackend {
    return "deno";
  }

  /** The local address, with the real port when bound to port 0. */
  get address(): PeerAddress {
    const addr = this.#conn.addr as Deno.NetAddr;
    return { transport: "udp", hostname: canonicalHost(addr.hostname), port: addr.port };
  }

  /** Whether {@linkcode DenoDatagramSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Unknown: Deno's sockets cannot tell. */
  get kernelDrops(): number | null {
    return null;
  }

  enableGro(): boolean {
    return false; // Deno's sockets read one datagram at a time
  }

  /** Not possible: Deno's sockets have no such option. */
  setReceiveBuffer(_bytes: number): number | null {
    return null;
  }

  /** No: Deno's sockets have no such option. */
  get canSetTos(): boolean {
    return false;
  }

  /** Not possible (Deno's sockets have no unicast TTL); checks `ttl` all the same. */
  setTtl(ttl: number): boolean {
    checkTtl(ttl);
    return false;
  }

  /** Not possible (Deno's sockets have no TOS option); checks `tos` all the same. */
  setTos(tos: number): boolean {
    checkTos(tos);
    return false;
  }

  /** No: Deno's sockets do not read the error queue. */
  get reportsIcmp(): boolean {
    return false;
  }

  /** Not possible: Deno's sockets have no such option. */
  setDontFragment(_mode: DontFragment): boolean {
    return false;
  }

  /** Not possible: Deno's sockets have no such option. */
  bindToDevice(_name: string): boolean {
    return false;
  }

  /** Sends one datagram after those sent before it (Deno runs concurrent sends in any order). */
  send(data: Uint8Array, to: { hostname: string; port: number }): Promise<number> {
    const conn = this.#conn;
    const address: Deno.NetAddr = { transport: "udp", hostname: to.hostname, port: to.port };
    const sent = this.#lastSend.then(() => conn.send(data, address));
    this.#lastSend = sent.catch(() => {});
    return sent;
  }

  /** As {@linkcode DenoDatagramSocket.send}: a datagram never leaves at once here. */
  sendSoon(data: Uint8Array, to: { hostname: string; port: number }): Promise<number> {
    return this.send(data, to);
  }

  /**
   * As {@linkcode DenoDatagramSocket.sendSoon}: the datagram leaves with the socket's TOS and
   * from the address the kernel picks (Deno's API can choose neither).
   */
  sendReply(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    _source: string | null,
  ): number | Promise<number> {
    if (tos !== -1) checkTos(tos);
    return this.sendSoon(data, to);
  }

  /** As {@linkcode DenoDatagramSocket.sendReply}, telling `receipt` when it settles. */
  sendCountedReply<T>(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
    receipt: SendReceipt<T>,
    token: T,
  ): void | Promise<void> {
    try {
      receipt.sending?.(token, data, monotonicMs());
      return tellReceipt(receipt, token, this.sendReply(data, to, tos, source));
    } catch (error) {
      receipt.failed(token, error);
    }
  }

  /** As {@linkcode DenoDatagramSocket.send}: the datagram leaves with the socket's TOS. */
  sendWithTos(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
  ): Promise<number> {
    try {
      checkTos(tos);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.send(data, to);
  }

  /** Sends the datagrams one by one, in order; stops at the first that fails. */
  async sendBatch(
    datagrams: readonly Uint8Array[],
    to: { hostname: string; port: number },
  ): Promise<number> {
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
   * Receives into the one buffer, one datagram at a time; the options change nothing here (no
   * TTL or TOS to ask for: `meta` says -1 for both).
   */
  async receiveEach(
    handler: DatagramHandler,
    onError: (error: unknown) => void = () => {},
    _options: ReceiveOptions = {},
  ): Promise<void> {
    const conn = this.#conn;
    while (!this.#closed) {
      let datagram: [Uint8Array, Deno.Addr];
      try {
        datagram = await conn.receive(this.#buffer);
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        onError(error);
        continue;
      }
      await handler(datagram[0], datagram[1] as Deno.NetAddr, monotonicMs(), UNKNOWN);
    }
  }

  /** An event loop timer. */
  wakeAt(at: number, fire: () => void): () => void {
    return eventLoopWakeAt(at, fire);
  }

  /** Closes the socket; the receive loop ends. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}
