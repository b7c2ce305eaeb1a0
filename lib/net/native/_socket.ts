/**
 * The native socket: a UDP socket through the C library's own `socket`, `sendto`, `sendmmsg`
 * and `recvmmsg` (via Deno's FFI), for the latency and rates `Deno.listenDatagram` cannot reach
 * (an async op per datagram each way, no batching). Sends are synchronous system calls, so
 * they leave in call order; receiving runs through the process's one reactor (_reactor.ts),
 * which reads what waits in batches of up to {@linkcode BATCH_SIZE} datagrams into one arena,
 * and awaits each batch's handlers before it reads the next, which keeps their data valid. Each
 * handler is told when its datagram arrived by the kernel's clock (`SO_TIMESTAMPNS`), not when
 * the process got round to it (an RTT should not include the reader's wake-up), its TTL and TOS
 * if asked (`IP_RECVTTL`, `IP_RECVTOS`, their IPv6 kin) and, bound to 0.0.0.0 or ::, where it was
 * sent to (`IP_PKTINFO`, `IPV6_PKTINFO`): a reply leaves from there, with a TOS of its own if set
 * (control messages), in order with the others.
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, datagramIn, fillSlot, SLOT_SIZE } from "./_arena.ts";
import { sendSlots } from "./_send_slots.ts";
import { promised, ReplyQueue } from "./_reply_queue.ts";
import { openSockets } from "./_open_sockets.ts";
import { readClocks } from "./_clock.ts";
import { control, readControl, slotMeta, writeSendControl } from "./_control.ts";
import { EAGAIN, EINTR, EMSGSIZE, osError } from "./_errno.ts";
import { native } from "./_ffi.ts";
import {
  AF_INET6,
  MMSGHDR_LEN,
  MMSGHDR_SIZE,
  MSG_DONTWAIT,
  MSGHDR_NAMELEN,
  SOCKADDR_SIZE,
} from "./_layout.ts";
import { checkTos } from "../_ip_header.ts";
import { askForTtlAndTos } from "./_options.ts";
import { bindSocket } from "./_bind.ts";
import { askForErrors, readErrorQueue } from "./_errqueue.ts";
import {
  enableGro,
  offloadSupport,
  packBatch,
  PackedBatch,
  refusesGso,
  segmentLength,
} from "./_offload.ts";
import type { IcmpHandler } from "../icmp.ts";
import { monotonicMs } from "../clock.ts";
import type { DatagramHandler, PeerAddress, ReceiveOptions, SendReceipt } from "../socket.ts";
import { tellReceipt } from "../socket.ts";
import { MICROTASK_ROUNDS } from "./_policy.ts";
import { policy, reactor, type ReactorSocket } from "./_reactor.ts";
import {
  type Destination,
  DestinationCache,
  NO_DESTINATION,
  PeerCache,
  SourceCache,
} from "./_sockaddr.ts";

/** A UDP peer address as Deno reports it (the socket interface's own type). */
export type NativePeerAddress = PeerAddress;

/** Called once per datagram, as the socket interface says (`arrivedAt` by the kernel's stamp). */
export type NativeDatagramHandler = DatagramHandler;

/**
 * A UDP socket on the native backend. Sends are synchronous system calls (so they leave in
 * call order); receiving runs through the shared reactor.
 *
 * @example Echo one datagram on loopback
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadNativeUdp, NativeUdpSocket } from "./mod.ts";
 * if (loadNativeUdp()) { // Linux on x86-64, with the FFI permission
 *   const server = NativeUdpSocket.bind("127.0.0.1", 0);
 *   const client = NativeUdpSocket.bind("127.0.0.1", 0);
 *   const served = server.receiveEach((data, from) => {
 *     server.sendNow(data, from);
 *     server.close();
 *   });
 *   const echoed = Promise.withResolvers<string>();
 *   const receiving = client.receiveEach((data) => echoed.resolve(new TextDecoder().decode(data)));
 *   strictEqual(client.sendNow(new TextEncoder().encode("hi"), server.address), 2);
 *   await served;
 *   strictEqual(await echoed.promise, "hi");
 *   client.close();
 *   await receiving;
 * }
 * ```
 */
export class NativeUdpSocket implements ReactorSocket {
  /** The socket's file descriptor. */
  readonly fd: number;
  /** The local address, with the real port when bound to port 0. */
  readonly address: NativePeerAddress;
  /** Whether its datagrams are handled the moment they come (receiveEach's `prompt`). */
  prompt = true;
  /** How many datagrams its last read found. */
  lastBatch = 0;
  readonly #destinations = new DestinationCache();
  #to: Destination = NO_DESTINATION; // the last destination, encoded
  readonly #peers = new PeerCache(); // by their sockaddr: a busy peer costs no string work
  #handler: NativeDatagramHandler | null = null;
  #onError: (error: unknown) => void = () => {};
  #finished: PromiseWithResolvers<void> | null = null;
  #closed = false;
  #concurrent = false; // the handlers of one batch may run together (receiveEach's option)
  #queueing = false; // they are running: sends go into the reply batch
  readonly #queued = new ReplyQueue({
    send: (arena, first, count) => this.#sendSlots(arena, first, count),
    closed: () => this.#closed,
    gso: () => this.#gso,
    refusedGso: () => this.#gso = false,
  });
  #kernelDrops: number | null; // the kernel's count of datagrams it dropped on this socket
  /** AF_INET or AF_INET6 (an IPv6 socket sets the IPv4 options too: _options.ts). */
  readonly family: number;
  #icmp: IcmpHandler | null = null; // told the ICMP errors of the error queue, if asked
  // Bound to 0.0.0.0 or ::: each datagram tells where it was sent to, and replies go from there.
  readonly #wildcard: boolean;
  readonly #sources = new SourceCache(); // reply sources, as bytes
  #gso: boolean; // a batch's runs leave as super-datagrams, until the kernel refuses one
  readonly #packed = new PackedBatch();
  #gro: boolean; // it reads coalesced messages (UDP_GRO) and splits them into datagrams

  private constructor(
    fd: number,
    family: number,
    address: NativePeerAddress,
    countsDrops: boolean,
    wildcard: boolean,
    offload: { gso: boolean; gro: boolean },
  ) {
    this.fd = fd;
    this.#gso = offload.gso;
    this.#gro = enableGro(fd, offload.gro);
    this.family = family;
    this.#wildcard = wildcard;
    this.address = address;
    this.#kernelDrops = countsDrops ? 0 : null;
  }

  /**
   * Binds a socket, with the offloads `offload` allows (by default those the process uses);
   * throws the error Deno would (see {@linkcode osError}).
   */
  static bind(
    hostname: string,
    port: number,
    offload: { gso: boolean; gro: boolean } = { gso: offloadSupport().gso, gro: false },
  ): NativeUdpSocket {
    const { fd, family, address, countsDrops, wildcard } = bindSocket(hostname, port);
    openSockets.count++;
    return new NativeUdpSocket(fd, family, address, countsDrops, wildcard, offload);
  }

  /**
   * How many datagrams the kernel dropped on this socket because its receive buffer was full,
   * as of the last datagram read (the kernel tells it with each one); null where it does not.
   */
  get kernelDrops(): number | null {
    return this.#gro ? null : this.#kernelDrops; // GRO: a coalesced message drops as one
  }

  /** Whether it reads coalesced messages (UDP_GRO); {@linkcode enableGro} turns it on. */
  get gro(): boolean {
    return this.#gro;
  }

  /** Reads coalesced datagrams from now on where the kernel can; whether it does. */
  enableGro(): boolean {
    return this.#gro ||= enableGro(this.fd, offloadSupport().gro);
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
    if (this.prompt) policy.noteSend(1); // a reply may come soon
    const name = this.#to.bytes;
    for (let retried = false;;) {
      const sent = symbols.sendto(this.fd, data, BigInt(data.byteLength), 0, name, length);
      if (sent >= 0) return sent;
      const code = errno();
      if (code === EINTR) continue;
      // Read whatever the failure queued (an ICMP error's, about an earlier datagram, or this
      // one's own); again once if the failure may not have been this datagram's.
      if (this.readErrors() === 0 || retried) throw osError(code);
      retried = true;
    }
  }

  /** Reads the error queue (on POLLERR, where ICMP errors were asked for): how many it held;
   * after a failed send or read, more than 0 means that error was one of them: call again. */
  readErrors(): number {
    return this.#icmp === null ? 0 : readErrorQueue(this.fd, this.#icmp);
  }

  /** sendSlots(), again once if the socket's pending error was an ICMP error's (see above). */
  #sendSlots(arena: BatchArena, first: number, count: number): number {
    const result = sendSlots(this.fd, arena, first, count);
    if (result >= 0 || this.readErrors() === 0) return result;
    const again = sendSlots(this.fd, arena, first, count);
    if (again < 0) this.readErrors(); // what this failure queued (too big for the interface)
    return again;
  }

  /** Encodes `to` into the destination buffer, unless it is there already; its length. */
  #encodeDestination(to: { hostname: string; port: number }): number {
    this.#to = this.#destinations.encode(to);
    return this.#to.length;
  }

  /** Whether a batch's runs of equal datagrams leave as GSO super-datagrams (see _offload.ts). */
  get gso(): boolean {
    return this.#gso;
  }

  /** Sends datagrams to one destination in as few calls as it can (`sendmmsg()` of up to
   * {@linkcode BATCH_SIZE} messages, runs of equal datagrams one each with GSO): how many were
   * sent, in order; throws the error Deno would if not even the first could be. */
  sendBatchNow(datagrams: readonly Uint8Array[], to: { hostname: string; port: number }): number {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    const arena = native().sendBatch;
    const nameLength = this.#encodeDestination(to);
    const packed = this.#packed;
    let sent = 0;
    while (sent < datagrams.length) {
      packBatch(arena, datagrams, sent, this.#to.bytes, nameLength, this.#gso, packed);
      if (packed.messages === 0) {
        if (sent === 0) throw osError(EMSGSIZE);
        return sent;
      }
      const result = this.#sendSlots(arena, 0, packed.messages);
      if (result < 0 && packed.segmented && refusesGso(-result)) {
        this.#gso = false; // this path cannot take them: the same datagrams, one by one
        continue;
      }
      if (result < 0) {
        if (sent === 0) throw osError(-result);
        return sent;
      }
      const count = packed.datagramsIn(result);
      sent += count;
      if (this.prompt) policy.noteSend(count); // a reply may come soon
      // Cut short: by an ICMP error's pending error (about one sent before), or by a
      // super-datagram the next call sees refused. Either way, the rest is sent again.
      if (result < packed.messages && this.readErrors() === 0 && !packed.segmented) return sent;
    }
    return sent;
  }

  /**
   * Calls `handler` for each datagram until the socket is closed; the promise settles then.
   * Only one receive loop per socket. With `concurrent`, the handlers of one received batch
   * start together and what they send leaves with one `sendmmsg()` (see
   * {@linkcode NativeUdpSocket.send}); with `ttlAndTos`, the kernel tells each one's TTL and TOS.
   */
  receiveEach(
    handler: NativeDatagramHandler,
    onError: (error: unknown) => void = () => {},
    options: ReceiveOptions = {},
  ): Promise<void> {
    if (this.#handler !== null) throw new Error("a receive loop is already running");
    if (this.#closed) return Promise.resolve();
    this.#handler = handler;
    this.#onError = onError;
    this.#concurrent = options.concurrent ?? false;
    this.prompt = options.prompt ?? true;
    if (options.ttlAndTos) askForTtlAndTos(this.fd, this.family);
    if (options.onIcmp !== undefined && askForErrors(this.fd, this.family)) {
      this.#icmp = options.onIcmp;
    }
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
   * Reads the datagrams waiting, up to {@linkcode BATCH_SIZE}, with one `recvmmsg()` that does
   * not wait, into the receive arena, where they stay until
   * {@linkcode NativeUdpSocket.handleBatch} is done with them (the reactor reads nothing else
   * meanwhile). Returns how many datagrams were read.
   */
  readBatch(): number {
    if (this.#closed) return 0;
    const { symbols, errno, receiveBatch: arena } = native();
    let count = symbols.recvmmsg(this.fd, arena.headers, BATCH_SIZE, MSG_DONTWAIT, null);
    // An ICMP error's pending error (not EAGAIN): the error queue, then what it hid.
    if (count < 0 && errno() !== EAGAIN && this.readErrors() > 0) {
      count = symbols.recvmmsg(this.fd, arena.headers, BATCH_SIZE, MSG_DONTWAIT, null);
    }
    if (count < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) this.#onError(osError(code));
      return 0;
    }
    if (count > 0) readClocks();
    this.lastBatch = count;
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
    const concurrent = this.#concurrent && (count > 1 || this.gro); // one message may hold many
    const started: Promise<void>[] = [];
    if (concurrent) this.#queueing = true;
    try {
      for (let i = 0; i < count && !this.#closed; i++) {
        const header = i * MMSGHDR_SIZE;
        const length = arena.headerView.getUint32(header + MMSGHDR_LEN, true);
        const peer = this.#peers.peerOf(arena.names, i * SOCKADDR_SIZE);
        arena.headerView.setUint32(header + MSGHDR_NAMELEN, SOCKADDR_SIZE, true); // next time
        readControl(arena, i);
        const arrivedAt = control.arrivedAt;
        if (control.drops >= 0) this.#kernelDrops = control.drops;
        // A coalesced message (GRO) holds several datagrams of one sender: each on its own.
        const segment = segmentLength(length, control.segment);
        for (let at = 0; at === 0 || (at < length && !this.#closed); at += segment) {
          if (this.prompt) policy.noteTraffic(); // soon another: linger for it
          const data = datagramIn(arena, i, at, segment, length);
          const pending = handler(data, peer, arrivedAt, slotMeta[i]);
          if (pending === undefined) continue;
          if (concurrent) started.push(pending);
          else await pending;
        }
      }
      if (concurrent) {
        // Let the handlers run up to their sends, send those with one sendmmsg(), then let
        // them finish. The batch's data stays valid until all are done: nothing is read
        // into the arena before this returns.
        if (started.length > 0) {
          for (let round = 0; round < MICROTASK_ROUNDS; round++) await null;
        }
        this.#queueing = false;
        this.#queued.flush();
        if (started.length > 0) await Promise.all(started);
      }
    } catch (error) {
      this.#stopLoop(error);
    } finally {
      this.#queueing = false;
      this.#queued.flush();
    }
  }

  /**
   * Sends one datagram: at once, or, while the handlers of a concurrent batch run, into the
   * reply batch, sent by one `sendmmsg()` when they have all had their turn; the promise
   * settles when it has really been sent (or failed), so that nothing is counted early.
   */
  send(data: Uint8Array, to: { hostname: string; port: number }): number | Promise<number> {
    if (!this.#queues(data)) return this.sendNow(data, to);
    return promised((receipt, sent) => this.#queue(data, to, -1, null, receipt, sent));
  }

  /** Whether a datagram sent now goes into the reply batch: while a batch's handlers run, unless
   * too long for a slot, so for any datagram (sendto() fails it at once, nothing leaves). */
  #queues(data: Uint8Array): boolean {
    return this.#queueing && !this.#closed && data.byteLength <= SLOT_SIZE;
  }

  /**
   * Sends one datagram as {@linkcode NativeUdpSocket.send} does, with TOS byte `tos` (IPv6:
   * traffic class) for it alone unless it is -1, and, on a socket bound to a wildcard address,
   * from `source` (the address its request was sent to, `meta.local`), by control messages:
   * at once, with a `sendmmsg()` of one, or into the reply batch of a concurrent batch's
   * handlers, so that it never overtakes what was sent before it. The peer then sees a reply
   * come from the address it asked, where the kernel would pick one by its routes. Throws a
   * RangeError for a TOS out of -1 to 255.
   */
  sendReply(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
  ): number | Promise<number> {
    if (tos !== -1) checkTos(tos);
    const from = this.#sourceBytes(source);
    if (from === null && tos === -1) return this.send(data, to);
    return this.#sendWithControl(data, to, tos, from);
  }

  /** {@linkcode NativeUdpSocket.sendReply}, telling `receipt` what became of the datagram
   * (see {@linkcode DatagramSocket.sendCountedReply}): among a batch's replies, no promise. */
  sendCountedReply<T>(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: string | null,
    receipt: SendReceipt<T>,
    token: T,
  ): void | Promise<void> {
    let sent: number | Promise<number>;
    try {
      if (this.#queues(data)) {
        if (tos !== -1) checkTos(tos);
        return this.#queue(data, to, tos, this.#sourceBytes(source), receipt, token);
      }
      receipt.sending?.(token, data, monotonicMs());
      sent = this.sendReply(data, to, tos, source);
    } catch (error) {
      return receipt.failed(token, error);
    }
    return tellReceipt(receipt, token, sent);
  }

  /** The bytes of reply source `source` (null: none, or not bound to a wildcard address). */
  #sourceBytes(source: string | null): Uint8Array | null {
    if (source === null || !this.#wildcard) return null;
    return this.#sources.bytesOf(source, this.family === AF_INET6);
  }

  /** Sends one datagram with control messages (its TOS, its source): at once or queued. */
  #sendWithControl(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: Uint8Array | null,
  ): number | Promise<number> {
    if (this.#closed) throw new Deno.errors.BadResource("the socket is closed");
    if (data.byteLength > SLOT_SIZE) throw osError(EMSGSIZE); // longer than any datagram can be
    if (this.#queueing) {
      return promised((receipt, sent) => this.#queue(data, to, tos, source, receipt, sent));
    }
    // The batch arena is free: sendBatchNow fills it and sends it within one call.
    const arena = native().sendBatch;
    const nameLength = this.#encodeDestination(to);
    fillSlot(arena, 0, data, this.#to.bytes, nameLength);
    writeSendControl(arena, 0, tos, this.#to.ipv4, source);
    if (this.prompt) policy.noteSend(1); // a reply may come soon
    const result = this.#sendSlots(arena, 0, 1);
    if (result < 0) throw osError(-result);
    return data.byteLength;
  }

  /** Puts a datagram into the reply batch, whose flush tells `receipt` (TOS -1: the socket's). */
  #queue<T>(
    data: Uint8Array,
    to: { hostname: string; port: number },
    tos: number,
    source: Uint8Array | null,
    receipt: SendReceipt<T>,
    token: T,
  ): void {
    const nameLength = this.#encodeDestination(to);
    if (this.prompt) policy.noteSend(1); // a reply may come soon
    this.#queued.add(data, this.#to.bytes, nameLength, this.#to.ipv4, tos, source, receipt, token);
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

  /**
   * Closes the socket. Its receive loop ends once the reactor has let go of it: at once, or
   * when a sleep of the reactor's that watched it ends, microseconds later (the port is bound
   * until then, since that `ppoll()` holds the socket). Safe to call more than once.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openSockets.count--;
    const released = reactor.remove(this);
    this.#queued.flush(); // rejects what is still queued: the socket is closed
    native().symbols.close(this.fd);
    const finished = this.#finished;
    if (finished !== null) released.then(() => finished.resolve());
  }

  /** Closes the socket at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}
