/**
 * The network layer, `lib/net/`: UDP sockets (one interface, {@linkcode DatagramSocket}, with a
 * native implementation and one on Deno's API), addresses, clocks, deadlines, and the error it
 * throws, {@linkcode NetError}. This is the folder's face: what the rest of udp, and the
 * library, may use of it.
 *
 * @example Resolve an address, bind a socket, and echo one datagram
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatAddress, resolveHost, UdpSocket } from "./mod.ts";
 * const target = await resolveHost("127.0.0.1", 0);
 * using server = UdpSocket.bind(target.hostname, target.port);
 * using client = UdpSocket.bind("127.0.0.1", 0);
 * const served = server.receiveEach(async (data, from) => {
 *   await server.send(data, from);
 *   server.close();
 * });
 * const echoed = Promise.withResolvers<string>();
 * const receiving = client.receiveEach((data) => echoed.resolve(new TextDecoder().decode(data)));
 * await client.send(new TextEncoder().encode("hi"), server.address);
 * await served;
 * strictEqual(await echoed.promise, "hi");
 * strictEqual(formatAddress(server.address).startsWith("127.0.0.1:"), true);
 * client.close();
 * await receiving;
 * ```
 *
 * @module
 */

export {
  canonicalHost,
  CanonicalPeers,
  DEFAULT_LISTEN_HOST,
  DEFAULT_PORT,
  type Family,
  familyOf,
  formatAddress,
  type HostPort,
  parseHostPort,
  parsePort,
  type ResolvedAddress,
  resolveHost,
  resolveListenAddress,
  type ResolveOptions,
  sameAddress,
  validateHost,
  wildcardFor,
} from "./address.ts";
export {
  eventLoopTimerAt,
  eventLoopWakeAt,
  monotonicMs,
  wallClockAt,
  wallClockMs,
} from "./clock.ts";
export { type ClockState, localClockQuality } from "./clock_sync.ts";
export { DeadlineHeap, DeadlineQueue } from "./deadlines.ts";
export { NetError } from "./errors.ts";
export {
  ICMP_KINDS,
  type IcmpCounts,
  type IcmpHandler,
  type IcmpKind,
  icmpKind,
  type IcmpReport,
  icmpWords,
  noIcmpCounts,
} from "./icmp.ts";
export {
  type Crc32cShift,
  type Crc32cUpdate,
  giveUpFfiPermission,
  hardwareCrc32c,
  type OffloadSupport,
  offloadSupport as udpOffload,
} from "./native/mod.ts";
export {
  type DatagramHandler,
  type DatagramSocket,
  defaultBackend,
  type DontFragment,
  errorKind,
  type PeerAddress,
  type ReceiveMeta,
  type ReceiveOptions,
  type SendReceipt,
  type SocketBackend,
  tellReceipt,
  UdpSocket,
  yieldToEventLoop,
} from "./socket.ts";
