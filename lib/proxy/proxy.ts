/**
 * The impairment proxy behind `udp proxy`: forwards datagrams between clients and a target,
 * one upstream socket per client, and loses, corrupts, duplicates, reorders, delays and
 * rate-limits them on purpose, each direction on its own seeded generator. Every datagram
 * gets one log record saying what was done to it, so tests can compare what a client reports
 * with what really happened.
 *
 * @module
 */

import {
  DeadlineQueue,
  formatAddress,
  monotonicMs,
  type PeerAddress,
  type ResolvedAddress,
  sameAddress,
  UdpSocket,
  wildcardFor,
} from "../net/mod.ts";
import { ImpairmentModel, type Impairments } from "./impairment.ts";
import {
  newRequestReading,
  type ProbeFormat,
  type RequestReading,
  udpFormat,
} from "../wire/mod.ts";
import { seededRandom } from "./random.ts";
import type {
  CopyRecord,
  Direction,
  DirectionStats,
  ProxyLogRecord,
  ProxyStats,
} from "./proxy_report.ts";

// What the proxy reports, also from here (where lib/cli imports it from).
export type * from "./proxy_report.ts";

/** Options of {@linkcode Proxy.listen}. */
export interface ProxyOptions {
  /** Address to listen on for clients (numeric). */
  listen: { hostname: string; port: number };
  /** Where to forward to. */
  target: ResolvedAddress;
  /** Impairments client → target. */
  up: Impairments;
  /** Impairments target → client. */
  down: Impairments;
  /** Seed of every random decision. */
  seed: number;
  /** The wire format whose frames the log names; default the `udp` frame format. */
  format?: ProbeFormat;
  /** A held datagram is released after this long even if nothing overtook it (default 100). */
  reorderHoldMs?: number;
  /** Upstream sockets of clients idle this long are closed (default 60 s). */
  idleMs?: number;
  /** The most clients at once; datagrams from further ones are dropped (default 1024). */
  maxClients?: number;
  /** Receives one record per datagram once its fate is final. */
  onLog?: (record: ProxyLogRecord) => void;
}

interface Client {
  address: PeerAddress;
  key: string;
  upstream: UdpSocket;
  loop: Promise<void>;
  lastActive: number;
}

interface InFlight {
  data: Uint8Array;
  client: Client;
  record: ProxyLogRecord;
  unresolved: number;
}

/** The pipeline of one direction: loss → corruption → duplication → reordering → delay →
 * rate limit → send. */
class Lane {
  readonly stats: DirectionStats = {
    received: 0,
    forwarded: 0,
    dropped: { loss: 0, "burst-loss": 0, "queue-full": 0, "too-many-clients": 0, shutdown: 0 },
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    sendErrors: 0,
  };
  readonly #direction: Direction;
  readonly #model: ImpairmentModel;
  readonly #config: Impairments;
  readonly #send: (item: InFlight) => Promise<number>;
  readonly #log: (record: ProxyLogRecord) => void;
  readonly #holdMs: number;
  readonly #started: number;
  readonly #format: ProbeFormat;
  readonly #reading: RequestReading = newRequestReading();
  #arrivals = 0;
  #sends = 0;
  #held: { item: InFlight; remaining: number; timer: ReturnType<typeof setTimeout> } | null = null;
  // Copies waiting for their send time (ties keep arrival order).
  readonly #scheduled = new DeadlineQueue<{ item: InFlight; copy: number; rated: boolean }>(
    (entry) => this.#release(entry),
  );
  #rateFreeAt = 0;
  #rateQueued = 0;

  constructor(
    direction: Direction,
    config: Impairments,
    seed: number,
    started: number,
    holdMs: number,
    format: ProbeFormat,
    send: (item: InFlight) => Promise<number>,
    log: (record: ProxyLogRecord) => void,
  ) {
    this.#direction = direction;
    this.#format = format;
    this.#config = config;
    this.#model = new ImpairmentModel(config, seededRandom(seed, direction === "up" ? 0 : 1));
    this.#started = started;
    this.#holdMs = holdMs;
    this.#send = send;
    this.#log = log;
  }

  /** A datagram arrived (its bytes already copied out of the receive buffer). */
  accept(data: Uint8Array, client: Client, now: number): void {
    this.stats.received++;
    const record = this.#record(data, client, now);
    const decision = this.#model.decide(data.length);
    if (decision.drop) {
      this.stats.dropped[decision.drop]++;
      record.action = "dropped";
      record.drop = decision.drop;
      this.#log(record);
      return;
    }
    if (decision.corrupt) {
      data[decision.corrupt.index] ^= decision.corrupt.mask;
      record.corrupted = decision.corrupt;
      this.stats.corrupted++;
    }
    if (decision.delaysMs.length > 1) {
      record.action = "duplicated";
      this.stats.duplicated++;
    }
    record.copies = decision.delaysMs.map((delay) => ({
      order: null,
      delay_ms: delay,
      dropped: null,
    }));
    const item: InFlight = { data, client, record, unresolved: record.copies.length };
    if (decision.hold && this.#held === null) {
      record.held = true;
      this.stats.reordered++;
      this.#held = {
        item,
        remaining: this.#config.reorderGap,
        timer: setTimeout(() => this.#releaseHeld(), this.#holdMs),
      };
      return;
    }
    this.#pass(item);
    if (this.#held !== null && --this.#held.remaining === 0) this.#releaseHeld();
  }

  /** A datagram that cannot be forwarded (too many clients) still gets its record. */
  refuse(data: Uint8Array, client: string, now: number): void {
    this.stats.received++;
    this.stats.dropped["too-many-clients"]++;
    const record = this.#record(data, null, now, client);
    record.action = "dropped";
    record.drop = "too-many-clients";
    this.#log(record);
  }

  /** Drops everything still held or scheduled, logging it as dropped at shutdown. */
  shutdown(): void {
    if (this.#held) {
      clearTimeout(this.#held.timer);
      const { item } = this.#held;
      this.#held = null;
      item.record.copies.forEach((_, copy) => this.#resolve(item, copy, null, "shutdown"));
    }
    for (const entry of this.#scheduled.takeAll()) {
      this.#resolve(entry.item, entry.copy, null, "shutdown");
    }
  }

  #record(data: Uint8Array, client: Client | null, now: number, key?: string): ProxyLogRecord {
    const reading = this.#reading;
    this.#format.readRequest(data, reading);
    // A valid frame: a request, or a reply (which a reflector would not answer).
    const header = reading.kind === "ping" || reading.kind === "stats" ||
        reading.kind === "unexpected"
      ? reading.header
      : null;
    return {
      t_ms: Number((now - this.#started).toFixed(3)),
      dir: this.#direction,
      client: client?.key ?? key ?? "",
      index: this.#arrivals++,
      bytes: data.length,
      frame: header === null ? null : {
        type: header.type,
        session: header.session,
        seq: header.sequence,
        attempt: header.attempt,
      },
      action: "forwarded",
      drop: null,
      corrupted: null,
      held: false,
      copies: [],
    };
  }

  #releaseHeld(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    clearTimeout(held.timer);
    this.#pass(held.item);
  }

  #pass(item: InFlight): void {
    const now = monotonicMs();
    item.record.copies.forEach((copy, index) => {
      if (copy.delay_ms > 0) this.#schedule(now + copy.delay_ms, item, index, false);
      else this.#rateLimit(item, index, now);
    });
  }

  #rateLimit(item: InFlight, copy: number, now: number): void {
    const rate = this.#config.rate;
    if (rate === null) return this.#transmit(item, copy);
    if (this.#rateQueued >= this.#config.queue) {
      this.stats.dropped["queue-full"]++;
      return this.#resolve(item, copy, null, "queue-full");
    }
    const serviceMs = rate.unit === "pps"
      ? 1000 / rate.value
      : (item.data.length * 8000) / rate.value;
    const departure = Math.max(now, this.#rateFreeAt);
    this.#rateFreeAt = departure + serviceMs;
    if (departure <= now) return this.#transmit(item, copy);
    this.#rateQueued++;
    this.#schedule(departure, item, copy, true);
  }

  #schedule(at: number, item: InFlight, copy: number, rated: boolean): void {
    this.#scheduled.add(at, { item, copy, rated });
  }

  #release(entry: { item: InFlight; copy: number; rated: boolean }): void {
    if (entry.rated) {
      this.#rateQueued--;
      this.#transmit(entry.item, entry.copy);
    } else {
      this.#rateLimit(entry.item, entry.copy, monotonicMs());
    }
  }

  #transmit(item: InFlight, copy: number): void {
    const order = this.#sends++;
    item.client.lastActive = monotonicMs();
    this.stats.forwarded++;
    // The record is final once the copy is handed to the socket; a refusal by the OS shows in
    // the sendErrors counter.
    this.#send(item).catch(() => this.stats.sendErrors++);
    this.#resolve(item, copy, order, null);
  }

  #resolve(
    item: InFlight,
    copy: number,
    order: number | null,
    dropped: CopyRecord["dropped"],
  ): void {
    const record = item.record.copies[copy];
    record.order = order;
    if (dropped !== null) record.dropped = dropped;
    if (dropped === "shutdown") this.stats.dropped.shutdown++;
    if (--item.unresolved === 0) {
      if (item.record.copies.every((c) => c.order === null)) item.record.action = "dropped";
      this.#log(item.record);
    }
  }
}

/**
 * A running impairment proxy.
 *
 * @example Forward unimpaired between a client and a reflector
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { Proxy, type ProxyLogRecord } from "./proxy.ts";
 * import { NO_IMPAIRMENTS } from "./impairment.ts";
 * import { ping } from "../probe/ping.ts";
 * import { Reflector } from "../reflector/reflector.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const log: ProxyLogRecord[] = [];
 * const proxy = Proxy.listen({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   up: NO_IMPAIRMENTS,
 *   down: NO_IMPAIRMENTS,
 *   seed: 1,
 *   onLog: (record) => log.push(record),
 * });
 * const { summary } = await ping({
 *   target: { hostname: "127.0.0.1", port: proxy.address.port, family: "ipv4" },
 *   count: 2,
 *   intervalMs: 0,
 * });
 * await proxy.close();
 * await reflector.close();
 * strictEqual(summary.received, 2);
 * assertEquals([proxy.stats.up.forwarded, proxy.stats.down.forwarded], [2, 2]);
 * assertEquals(log.map((record) => `${record.dir} ${record.frame?.type}`), [
 *   "up PING", "down PONG", "up PING", "down PONG",
 * ]);
 * ```
 */
export class Proxy {
  readonly #socket: UdpSocket;
  readonly #target: ResolvedAddress;
  readonly #clients = new Map<string, Client>();
  readonly #up: Lane;
  readonly #down: Lane;
  readonly #idleMs: number;
  readonly #maxClients: number;
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #loop: Promise<void>;
  readonly #loops = new Set<Promise<void>>();
  #foreign = 0;
  #clientsSeen = 0;
  #closed = false;

  private constructor(socket: UdpSocket, options: ProxyOptions) {
    this.#socket = socket;
    this.#target = options.target;
    this.#idleMs = options.idleMs ?? 60_000;
    this.#maxClients = options.maxClients ?? 1024;
    const started = monotonicMs();
    const log = options.onLog ?? (() => {});
    const holdMs = options.reorderHoldMs ?? 100;
    const format = options.format ?? udpFormat;
    this.#up = new Lane(
      "up",
      options.up,
      options.seed,
      started,
      holdMs,
      format,
      (item) => item.client.upstream.send(item.data, this.#target),
      log,
    );
    this.#down = new Lane(
      "down",
      options.down,
      options.seed,
      started,
      holdMs,
      format,
      (item) => this.#socket.send(item.data, item.client.address),
      log,
    );
    this.#sweeper = setInterval(() => this.#expireIdle(), Math.max(this.#idleMs / 2, 10));
    this.#loop = socket.receiveEach((data, from) => this.#fromClient(data, from));
  }

  /** Binds the client-facing socket and starts forwarding. Throws a NetError on bind errors. */
  static listen(options: ProxyOptions): Proxy {
    return new Proxy(UdpSocket.bind(options.listen.hostname, options.listen.port), options);
  }

  /** The client-facing address. */
  get address(): PeerAddress {
    return this.#socket.address;
  }

  /** Counters per direction, clients seen, and datagrams from strangers to upstreams. */
  get stats(): ProxyStats {
    return structuredClone({
      up: this.#up.stats,
      down: this.#down.stats,
      clients: this.#clientsSeen,
      foreign: this.#foreign,
    });
  }

  /** Stops: closes every socket; datagrams still held or delayed are logged as dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#socket.close();
    await this.#loop;
    this.#up.shutdown();
    this.#down.shutdown();
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    for (const client of clients) client.upstream.close();
    await Promise.all([...this.#loops]);
  }

  #fromClient(data: Uint8Array, from: PeerAddress): void {
    const now = monotonicMs();
    const key = formatAddress(from);
    let client = this.#clients.get(key);
    if (client === undefined) {
      if (this.#clients.size >= this.#maxClients) return this.#up.refuse(data, key, now);
      client = this.#openClient(from, key, now);
    }
    client.lastActive = now;
    this.#up.accept(data.slice(), client, now);
  }

  #openClient(address: PeerAddress, key: string, now: number): Client {
    const upstream = UdpSocket.bind(wildcardFor(this.#target.family), 0);
    const client: Client = { address, key, upstream, lastActive: now, loop: Promise.resolve() };
    client.loop = upstream.receiveEach((data, from) => {
      if (!sameAddress(from, this.#target)) {
        this.#foreign++;
        return;
      }
      const arrived = monotonicMs();
      client.lastActive = arrived;
      this.#down.accept(data.slice(), client, arrived);
    });
    this.#loops.add(client.loop);
    client.loop.finally(() => this.#loops.delete(client.loop));
    this.#clients.set(key, client);
    this.#clientsSeen++;
    return client;
  }

  #expireIdle(): void {
    const now = monotonicMs();
    for (const client of this.#clients.values()) {
      if (now - client.lastActive > this.#idleMs) {
        this.#clients.delete(client.key);
        client.upstream.close();
      }
    }
  }
}
