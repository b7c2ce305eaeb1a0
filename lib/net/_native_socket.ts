/**
 * The {@linkcode DatagramSocket} on the native backend (native/: the C library's calls through
 * FFI, on Linux on x86-64 when the FFI permission is granted): sends are system calls made at
 * once, receiving and timers run from the process's one reactor; the TTL and TOS are the
 * kernel's socket options and control messages.
 *
 * @module
 */

import { checkTos } from "./_ip_header.ts";
import { NetError } from "./errors.ts";
import { errorKind } from "./socket.ts";
import {
  bindToDevice,
  NativeUdpSocket,
  setDontFragment,
  setReceiveBuffer,
  setTos,
  setTtl,
} from "./native/mod.ts";
import type {
  DatagramHandler,
  DatagramSocket,
  DontFragment,
  PeerAddress,
  ReceiveOptions,
  SocketBackend,
} from "./socket.ts";

/** A bound native socket, as a {@linkcode DatagramSocket}. */
export class NativeDatagramSocket implements DatagramSocket {
  readonly #socket: NativeUdpSocket;

  private constructor(socket: NativeUdpSocket) {
    this.#socket = socket;
  }

  /** Binds a socket; throws the error Deno would (`Deno.errors.AddrInUse`, …). */
  static bind(hostname: string, port: number): NativeDatagramSocket {
    return new NativeDatagramSocket(NativeUdpSocket.bind(hostname, port));
  }

  /** "native". */
  get backend(): SocketBackend {
    return "native";
  }

  /** The local address, with the real port when bound to port 0 (a copy). */
  get address(): PeerAddress {
    return { ...this.#socket.address };
  }

  /** Whether {@linkcode NativeDatagramSocket.close} was called. */
  get closed(): boolean {
    return this.#socket.closed;
  }

  /** The kernel's drops on this socket, as of the last datagram read (SO_RXQ_OVFL). */
  get kernelDrops(): number | null {
    return this.#socket.kernelDrops;
  }

  enableGro(): boolean {
    return this.#socket.enableGro();
  }

  /** Asks for a receive buffer of `bytes`; what the kernel granted. */
  setReceiveBuffer(bytes: number): number | null {
    return setReceiveBuffer(this.#socket.fd, bytes);
  }

  /** Yes: the kernel's IP_TOS (IPV6_TCLASS), for the socket or for one datagram. */
  get canSetTos(): boolean {
    return true;
  }

  /** Sets IP_TTL (and IPV6_UNICAST_HOPS on an IPv6 socket); whether the kernel took it. */
  setTtl(ttl: number): boolean {
    return setTtl(this.#socket.fd, this.#socket.family, ttl);
  }

  /** Sets IP_TOS (and IPV6_TCLASS on an IPv6 socket); whether the kernel took it. */
  setTos(tos: number): boolean {
    return setTos(this.#socket.fd, this.#socket.family, tos);
  }

  /** Yes: IP_RECVERR (IPV6_RECVERR) and the socket's error queue. */
  get reportsIcmp(): boolean {
    return true;
  }

  /** Sets IP_MTU_DISCOVER (and IPV6_MTU_DISCOVER); whether the kernel took it. */
  setDontFragment(mode: DontFragment): boolean {
    return setDontFragment(this.#socket.fd, this.#socket.family, mode);
  }

  /** Sets SO_BINDTODEVICE; throws a NetError saying why the kernel refused. */
  bindToDevice(name: string): boolean {
    try {
      bindToDevice(this.#socket.fd, name);
      return true;
    } catch (error) {
      throw new NetError(describeDeviceError(error, name), { cause: error });
    }
  }

  /** Sends one datagram at once (or into a concurrent batch's replies); a failure rejects. */
  send(data: Uint8Array, to: { hostname: string; port: number }): Promise<number> {
    try {
      return Promise.resolve(this.#socket.send(data, to));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends one datagram; the number of bytes itself when it left at once, else a promise. */
  sendSoon(data: Uint8Array, to: { hostname: string; port: number }): number | Promise<number> {
    return this.#socket.send(data, to);
  }

  /** Sends one datagram with its own TOS, by a control message, in order; a failure rejects. */
  sendWithTos(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
  ): Promise<number> {
    try {
      checkTos(tos);
      return Promise.resolve(this.#socket.sendReply(data, to, tos, null));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends a reply with its TOS and from its request's address, by control messages. */
  sendReply(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
  ): number | Promise<number> {
    return this.#socket.sendReply(data, to, tos, source);
  }

  /** As {@linkcode NativeDatagramSocket.sendReply}, telling `receipt` when it has left. */
  readonly sendCountedReply: DatagramSocket["sendCountedReply"] = (...reply) =>
    this.#socket.sendCountedReply(...reply);

  /** Sends the datagrams with `sendmmsg()`, up to a batch at a time; a failure rejects. */
  sendBatch(
    datagrams: readonly Uint8Array[],
    to: { hostname: string; port: number },
  ): Promise<number> {
    try {
      return Promise.resolve(this.#socket.sendBatchNow(datagrams, to));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Runs the socket's receive loop on the reactor. */
  async receiveEach(
    handler: DatagramHandler,
    onError: (error: unknown) => void = () => {},
    options: ReceiveOptions = {},
  ): Promise<void> {
    return await this.#socket.receiveEach(handler, onError, options);
  }

  /** A timer of the reactor's. */
  wakeAt(at: number, fire: () => void): () => void {
    return this.#socket.wakeAt(at, fire);
  }

  /** Closes the socket; the receive loop ends. Safe to call more than once. */
  close(): void {
    this.#socket.close();
  }

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function describeDeviceError(error: unknown, name: string): string {
  if (error instanceof Deno.errors.NotFound) {
    return `no network interface is named '${name}': \`ip link\` lists them; give one to --interface`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `cannot send through interface '${name}': not permitted (binding a socket to an ` +
      "interface needs CAP_NET_RAW here); run with it, or leave --interface out";
  }
  return `cannot send through interface '${name}': ${errorKind(error)}`;
}
