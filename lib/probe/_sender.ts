/**
 * What ping and bench share as senders of probes: the wire format, the session and the key,
 * the encoding of their requests, and the first checks of every datagram that comes back.
 *
 * @module
 */

import type { DontFragment, IcmpReport, PeerAddress, ResolvedAddress } from "../net/mod.ts";
import type { SendReceipt } from "../net/mod.ts";
import { sameAddress, UdpSocket, wildcardFor } from "../net/mod.ts";
import { measureRoundTrip, type RoundTrip } from "../stats/mod.ts";
import {
  FrameSealer,
  HEADER_SIZE,
  newReplyReading,
  NO_TIMESTAMP,
  type NotAReply,
  type ProbeFormat,
  type ProbeRequest,
  type QuotedRequest,
  type ReplyReading,
  type RequestType,
  type Timestamp,
  udpFormat,
} from "../wire/mod.ts";

/** Options of {@linkcode ProbeSender}. */
export interface SenderOptions {
  /** Where the reflector is. */
  target: ResolvedAddress;
  /** The wire format; default the `udp` frame format. */
  format?: ProbeFormat;
  /** Authenticated mode: requests are tagged, and only replies with a right tag count. */
  key?: CryptoKey;
  /** The session ID; random by default. */
  session?: number;
  /** Padding bytes of every probe. */
  payloadSize: number;
  /** The receive buffer to ask the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Told what the kernel granted for `receiveBuffer` (null: the backend cannot set it). */
  onReceiveBuffer?: (granted: number | null) => void;
  /** The IP TTL (IPv6: hop limit) of its datagrams; default the system's. */
  ttl?: number;
  /** The TOS byte (IPv6: traffic class) of its datagrams: DSCP and ECN; default the system's. */
  tos?: number;
  /** Don't-fragment (ping's `-M`); default the system's (`want` on Linux). */
  dontFragment?: DontFragment;
  /** The address to send from (ping's `-I`); default any of the target's family. */
  source?: string;
  /** The network interface to send through (`--interface`); default the routes' choice. */
  device?: string;
  /** Ask the reflector to report how each probe arrived (udp's PATH, where the padding has
   * room: {@linkcode ReplyReading.path}); formats without it ignore it. Default false. */
  path?: boolean;
  /** Ask for each probe's one reply after this many milliseconds, none at once (udp's
   * DELAYED: the padding needs 28 bytes). Default: at once. */
  delayMs?: number;
  /** Ask for no reply to each probe (udp's ONE_WAY: `udp bench --one-way`). Default false. */
  oneWay?: boolean;
}

/** Why a datagram that reached a sender is not a datagram of its session. */
export type Stranger = "wrong-source" | "corrupted" | NotAReply | "other-session";

/**
 * One run's side of the wire: encodes its requests and reads what comes back. It keeps one
 * reading, {@linkcode ProbeSender.reply}, for the datagram last read: a receive loop reads
 * the next datagram only once the handler of this one is done.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ProbeSender } from "./_sender.ts";
 * const target = { hostname: "127.0.0.1", port: 9, family: "ipv4" as const };
 * const sender = new ProbeSender({ target, session: 5, payloadSize: 8 });
 * const ping = sender.encode("ping", 0, 0, { seconds: 1, nanos: 0 });
 * strictEqual(ping.length, sender.datagramBytes);
 * const from = { transport: "udp" as const, hostname: "127.0.0.1", port: 9 };
 * strictEqual(sender.read(ping, from), null);
 * strictEqual(sender.reply.kind, "echo");
 * strictEqual(sender.read(ping, { ...from, port: 7 }), "wrong-source");
 * ```
 */
export class ProbeSender {
  /** The wire format. */
  readonly format: ProbeFormat;
  /** Where the reflector is. */
  readonly target: ResolvedAddress;
  /** The session every request names. */
  readonly session: number;
  /** The key, in authenticated mode. */
  readonly key: CryptoKey | null;
  /** The TTL asked for, if any ({@linkcode SenderOptions.ttl}). */
  readonly ttl: number;
  /** The TOS byte asked for, if any ({@linkcode SenderOptions.tos}). */
  readonly tos: number;
  /** Bytes of every probe, and of its reply. */
  readonly datagramBytes: number;
  /** The reading of the datagram last read by {@linkcode ProbeSender.read}. */
  readonly reply: ReplyReading = newReplyReading();
  readonly #options: SenderOptions;
  readonly #request: ProbeRequest;
  readonly #padding: Uint8Array;
  readonly #statsPadding: Uint8Array;
  /** Seals this sender's PINGs reading their header only (their padding never changes); made
   * from the first one, for the udp format's plain PINGs. */
  #sealer: FrameSealer | null = null;
  /** The signed requests' sends, chained (see {@linkcode ProbeSender.send}). */
  #outbox: Promise<void> = Promise.resolve();

  /** A sender for one run. */
  constructor(options: SenderOptions) {
    this.#options = options;
    this.format = options.format ?? udpFormat;
    this.target = options.target;
    this.session = options.session ?? randomSession(this.format.sessionLimit);
    this.key = options.key ?? null;
    this.ttl = options.ttl ?? -1;
    this.tos = options.tos ?? -1;
    this.#padding = new Uint8Array(options.payloadSize);
    this.#statsPadding = new Uint8Array(this.format.statsPadding);
    this.#request = {
      type: "ping",
      session: this.session,
      sequence: 0,
      attempt: 0,
      sentAt: NO_TIMESTAMP,
      padding: this.#padding,
      authenticated: this.key !== null,
      path: options.path,
      delayMs: options.delayMs,
      oneWay: options.oneWay,
    };
    this.datagramBytes = probeBytes(this.format, options.payloadSize, this.key !== null);
  }

  /** Whether the socket took the TTL asked for ({@linkcode SenderOptions.ttl}); false until
   * bound, and when none was asked for. */
  ttlSet = false;
  /** Whether the socket took the TOS asked for ({@linkcode SenderOptions.tos}). */
  tosSet = false;

  /** Binds the run's socket (any port, the target's address family) with the receive buffer
   * asked for. */
  bind(): UdpSocket {
    const { receiveBuffer, onReceiveBuffer, ttl, tos, dontFragment, source, device } =
      this.#options;
    const socket = UdpSocket.bind(source ?? wildcardFor(this.target.family), 0);
    try {
      if (device !== undefined) socket.bindToDevice(device);
      if (receiveBuffer !== undefined) onReceiveBuffer?.(socket.setReceiveBuffer(receiveBuffer));
      if (ttl !== undefined) this.ttlSet = socket.setTtl(ttl);
      if (tos !== undefined) this.tosSet = socket.setTos(tos);
      if (dontFragment !== undefined) socket.setDontFragment(dontFragment);
    } catch (error) {
      socket.close();
      throw error;
    }
    return socket;
  }

  /**
   * Which of this session's requests an ICMP error is about (see
   * {@linkcode ProbeFormat.readQuoted}); null when it is about another destination, another
   * session, or quotes too little to tell.
   */
  readQuoted(report: IcmpReport): QuotedRequest | null {
    if (!sameAddress(report.to, this.target)) return null;
    const quoted = this.format.readQuoted(report.quoted);
    if (quoted === null || (quoted.session !== null && quoted.session !== this.session)) {
      return null;
    }
    return quoted;
  }

  /** A request of this session, laid out for the key if there is one (then sign it), into
   * `into` or a new buffer. */
  encode(
    type: RequestType,
    sequence: number,
    attempt: number,
    sentAt: Timestamp,
    into?: Uint8Array,
  ): Uint8Array {
    const request = this.#request;
    request.type = type;
    request.sequence = sequence;
    request.attempt = attempt;
    request.sentAt = sentAt;
    request.padding = type === "stats" ? this.#statsPadding : this.#padding;
    const ping = type === "ping";
    request.sealer = ping ? this.#sealer ?? undefined : undefined;
    const bytes = this.format.encodeRequest(request, into);
    if (ping && this.#sealer === null && this.#sealable()) {
      this.#sealer = new FrameSealer(bytes, HEADER_SIZE);
    }
    return bytes;
  }

  /** Whether its PINGs are all alike after the header: the udp format's, without a tag (which
   * differs per frame), a path report's room or a delay. */
  #sealable(): boolean {
    const options = this.#options;
    return this.format.name === "udp" && this.key === null && !options.path &&
      options.delayMs === undefined;
  }

  /**
   * Sends a request to the target over `socket`, telling `receipt` (with `token`) what became
   * of it: at once, or, signed (asynchronous), after the requests before it, so that they leave
   * in the order they were made; a failure to sign is told as a failure to send.
   */
  send<T>(socket: UdpSocket, bytes: Uint8Array, receipt: SendReceipt<T>, token: T): void {
    const send = () => socket.sendCountedReply(bytes, this.target, -1, null, receipt, token);
    if (this.key === null) return void send();
    this.#outbox = this.#outbox.then(async () => {
      await this.sign(bytes);
      await send();
    }).catch((error) => receipt.failed(token, error));
  }

  /** Settles once every request given to {@linkcode ProbeSender.send} has left or failed. */
  get sent(): Promise<void> {
    return this.#outbox;
  }

  /** Tags a request with the key (authenticated mode only). */
  sign(datagram: Uint8Array): Promise<void> {
    return this.format.sign(datagram, this.key as CryptoKey);
  }

  /** Whether the datagram just read carries the key's right tag (authenticated mode only;
   * check {@linkcode ReplyReading.authenticated} first). */
  verify(datagram: Uint8Array): Promise<boolean> {
    return this.format.verify(datagram, this.key as CryptoKey);
  }

  /**
   * Reads a datagram from `from`: null when it is a reply, an echo or an error naming this
   * session ({@linkcode ProbeSender.reply} says which), else why not. Its tag is not checked.
   */
  read(data: Uint8Array, from: PeerAddress): Stranger | null {
    if (!sameAddress(from, this.target)) return "wrong-source";
    const reply = this.reply;
    this.format.readReply(data, reply);
    if (reply.kind === "corrupted") return "corrupted";
    if (reply.kind === "foreign") return reply.reason;
    // A reply that names no session (a STAMP reflector without RFC 8972) is matched by its
    // source and sequence alone.
    if (reply.session !== null && reply.session !== this.session) return "other-session";
    return null;
  }

  /** The round trip of the reply just read, to a request handed to the socket at `sentAt`
   * (monotonic milliseconds), the reply arriving at `arrivedAt`, handled `now`. */
  roundTrip(sentAt: number, arrivedAt: number, now: number): RoundTrip {
    const reply = this.reply;
    return measureRoundTrip(sentAt, arrivedAt, now, reply.receivedAt, reply.repliedAt);
  }
}

/** A random session number, 1 to `limit`. */
function randomSession(limit: number): number {
  const random = crypto.getRandomValues(new Uint32Array(1))[0];
  return limit >= 0xffff_ffff ? random : 1 + (random % limit);
}

/**
 * Bytes of a probe of `format` with `payloadSize` bytes of padding, as a sender sends it.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { stampFormat, udpFormat } from "../wire/mod.ts";
 * import { probeBytes } from "./_sender.ts";
 * strictEqual(probeBytes(udpFormat, 56, false), 104);
 * strictEqual(probeBytes(stampFormat(), 0, false), 44);
 * strictEqual(probeBytes(stampFormat(), 10, false), 58);
 * ```
 */
export function probeBytes(
  format: ProbeFormat,
  payloadSize: number,
  authenticated: boolean,
): number {
  return format.encodeRequest({
    type: "ping",
    session: 1,
    sequence: 0,
    attempt: 0,
    sentAt: NO_TIMESTAMP,
    padding: new Uint8Array(payloadSize),
    authenticated,
  }).length;
}
