/**
 * The prober behind `udp monitor`: probes many targets continuously, each once an interval,
 * their probes spread over the interval, from one socket per address family and wire format
 * (a reply is matched to its target by its source address, then as ping matches it). Each
 * target's counters (monitor_target.ts) live as long as its label does, across reloads.
 *
 * @module
 */

import type { DontFragment, PeerAddress, UdpSocket } from "../net/mod.ts";
import { DeadlineHeap, familyOf, monotonicMs, wildcardFor } from "../net/mod.ts";
import { UdpSocket as Socket } from "../net/mod.ts";
import {
  addressKey,
  type IntervalRtt,
  type MonitorTarget,
  type TargetCounters,
  TargetProbes,
} from "./_monitor_target.ts";

export { type IntervalRtt, type MonitorTarget, RTT_BUCKETS_SECONDS } from "./_monitor_target.ts";
export type { TargetCounters } from "./_monitor_target.ts";

/** Options of {@linkcode Monitor}. */
export interface MonitorOptions {
  /** Time between two probes of one target (ms). */
  intervalMs: number;
  /** Time a probe waits for its reply before it is lost (ms). */
  timeoutMs: number;
  /** Padding bytes of each probe. */
  payloadSize: number;
  /** Authenticated mode: probes tagged, replies without a valid tag not counted. */
  key?: CryptoKey;
  /** The TTL of the probes (STAMP probes: 255 unless given, so hops can be told). */
  ttl?: number;
  /** The TOS byte of the probes. */
  tos?: number;
  /** The receive buffer each socket asks the kernel for, in bytes. */
  receiveBuffer?: number;
  /** Don't-fragment (`-M`); default the system's. */
  dontFragment?: DontFragment;
  /** The address the probes of its family leave from (`-I`); default any. */
  source?: string;
  /** The network interface the probes leave through (`--interface`). */
  device?: string;
  /** Told of each target once an interval, as it sends its next probe: its counters, and the
   * RTTs of the interval that ended. */
  onInterval?: (counters: TargetCounters, rtt: IntervalRtt) => void;
}

/**
 * The schedule's grain: first probes are spread over the interval on multiples of it, so that
 * the probes of a thousand targets leave in fifty bursts a second, one wake-up each, not in
 * a thousand. The same wake-up reads the replies that came since (one batch: their RTTs are
 * the kernel's arrival stamps) and declares lost the probes whose timeout has passed (each at
 * most a tick after it).
 */
export const SEND_TICK_MS = 20;

interface Timeout {
  probes: TargetProbes;
  sequence: number;
}

interface SocketEntry {
  socket: UdpSocket;
  receiving: Promise<void>;
}

/**
 * Probes a set of targets until stopped; the set can be replaced while it runs.
 *
 * @example Two targets, one of them silent
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/mod.ts";
 * import { udpFormat } from "../wire/mod.ts";
 * import { Monitor } from "./monitor.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const address = (port: number) => ({ hostname: "127.0.0.1", port, family: "ipv4" as const });
 * const enough = Promise.withResolvers<void>();
 * const monitor = new Monitor({
 *   intervalMs: 10,
 *   timeoutMs: 50,
 *   payloadSize: 8,
 *   onInterval: (counters) => counters.sent >= 5 && enough.resolve(),
 * });
 * monitor.setTargets([
 *   { label: "up", address: address(reflector.address.port), format: udpFormat },
 *   { label: "down", address: address((silent.addr as Deno.NetAddr).port), format: udpFormat },
 * ]);
 * monitor.start();
 * await enough.promise;
 * await monitor.stop(true); // drained: every probe sent is received or lost
 * silent.close();
 * await reflector.close();
 * const [up, down] = monitor.counters();
 * strictEqual(up.received > 0 && up.lost === 0 && up.inFlight === 0, true);
 * strictEqual(down.received === 0 && down.lost === down.sent, true);
 * ```
 */
export class Monitor {
  readonly #options: MonitorOptions;
  readonly #window: number;
  #byLabel = new Map<string, TargetProbes>();
  #byAddress = new Map<string, TargetProbes>();
  readonly #sockets = new Map<string, SocketEntry>();
  readonly #sends = new DeadlineHeap<TargetProbes>((probes) => !probes.removed);
  readonly #timeouts = new DeadlineHeap<Timeout>(({ probes }) => !probes.removed);
  #drained: (() => void) | null = null;
  #cancelWake: (() => void) | null = null;
  #wakeAt = Infinity;
  #running = false;
  #foreign = 0;

  /** A monitor with no targets yet. */
  constructor(options: MonitorOptions) {
    if (!(options.intervalMs > 0)) throw new RangeError("the interval must be above 0");
    this.#options = options;
    // A probe is remembered until its timeout, so the ring holds that many intervals.
    const needed = Math.ceil(options.timeoutMs / options.intervalMs) + 2;
    this.#window = 2 ** Math.max(2, Math.ceil(Math.log2(needed)));
  }

  /** How many targets it probes. */
  get size(): number {
    return this.#byLabel.size;
  }

  /** Datagrams that reached its sockets and were no target's reply. */
  get foreign(): number {
    return this.#foreign;
  }

  /**
   * Probes these targets from now on. A label it already probes keeps its counters (and its
   * probes in flight, if its address and protocol are unchanged); labels not listed are
   * dropped; new ones start at zero, their first probes spread over an interval. Throws a
   * RangeError, changing nothing, when two targets share a label or a reflector.
   */
  setTargets(targets: readonly MonitorTarget[]): void {
    const byLabel = new Map<string, TargetProbes>();
    const byAddress = new Map<string, TargetProbes>();
    const labels = new Set<string>();
    const addresses = new Map<string, string>();
    for (const target of targets) {
      if (labels.has(target.label)) {
        throw new RangeError(`target "${target.label}" is listed twice`);
      }
      labels.add(target.label);
      const where = `${addressKey(target.address)} ${target.format.name}`;
      const other = addresses.get(where);
      if (other !== undefined) {
        throw new RangeError(
          `targets "${other}" and "${target.label}" are the same reflector: list it once`,
        );
      }
      addresses.set(where, target.label);
    }
    const { payloadSize, key } = this.#options;
    const now = monotonicMs();
    let fresh = 0;
    const newcomers = targets.filter((target) => !this.#byLabel.has(target.label)).length;
    for (const target of targets) {
      let probes = this.#byLabel.get(target.label);
      if (probes === undefined) {
        probes = new TargetProbes(target, this.#window, payloadSize, key);
        probes.nextSendAt = now + this.#phase(fresh++, newcomers);
        this.#sends.add(probes.nextSendAt, probes);
      } else if (
        addressKey(probes.target.address) !== addressKey(target.address) ||
        probes.target.format.name !== target.format.name
      ) {
        probes.retarget(target, payloadSize, key);
      }
      byLabel.set(target.label, probes);
      byAddress.set(`${addressKey(target.address)} ${socketKey(target)}`, probes);
    }
    for (const [label, probes] of this.#byLabel) if (!byLabel.has(label)) probes.removed = true;
    this.#byLabel = byLabel;
    this.#byAddress = byAddress;
    if (this.#running) {
      for (const target of targets) this.#socketFor(target);
      this.#arm();
    }
  }

  /** When the `index`th of `count` new targets first sends, from now: spread over an
   * interval, on the schedule's grain. */
  #phase(index: number, count: number): number {
    const tick = this.#tick;
    return Math.floor((index / count) * this.#options.intervalMs / tick) * tick;
  }

  /** The schedule's grain ({@linkcode SEND_TICK_MS}, less for intervals under 80 ms). */
  get #tick(): number {
    return Math.min(SEND_TICK_MS, this.#options.intervalMs / 4);
  }

  /** Starts probing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const probes of this.#byLabel.values()) this.#socketFor(probes.target);
    this.#arm();
  }

  /**
   * Stops probing and closes its sockets. With `drain`, it first waits for the probes in
   * flight to be answered or to time out (at most the timeout), so that every probe sent is
   * counted received or lost; without, they stay in flight.
   */
  async stop(drain = false): Promise<void> {
    this.#running = false;
    this.#disarm();
    if (drain && this.#sockets.size > 0) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#drained = resolve;
      this.#checkDrained();
      this.#arm(); // for the timeouts alone now
      await promise;
      this.#disarm();
    }
    this.#timeouts.takeAll();
    const entries = [...this.#sockets.values()];
    this.#sockets.clear();
    for (const { socket } of entries) socket.close();
    await Promise.all(entries.map(({ receiving }) => receiving));
  }

  /** Cancels the wake-up set. */
  #disarm(): void {
    this.#cancelWake?.();
    this.#cancelWake = null;
    this.#wakeAt = Infinity;
  }

  /** Ends a drain once no probe is in flight. */
  #checkDrained(): void {
    if (this.#drained === null) return;
    for (const probes of this.#byLabel.values()) if (probes.inFlight > 0) return;
    this.#drained();
    this.#drained = null;
  }

  /** Every target's counters and the RTTs of its interval so far (which then starts anew):
   * the last report, at the end of a run. */
  finalReport(): { counters: TargetCounters; rtt: IntervalRtt }[] {
    return [...this.#byLabel.values()].map((probes) => ({
      counters: probes.counters(),
      rtt: probes.takeInterval(),
    }));
  }

  /** Every target's counters, in the order they were listed. */
  counters(): TargetCounters[] {
    return [...this.#byLabel.values()].map((probes) => probes.counters());
  }

  /** The socket a target's probes leave from (bound on first use). */
  #socketFor(target: MonitorTarget): UdpSocket {
    const name = socketKey(target);
    const existing = this.#sockets.get(name);
    if (existing !== undefined) return existing.socket;
    const { receiveBuffer, ttl, tos, dontFragment, source, device } = this.#options;
    const family = target.address.family;
    const socket = Socket.bind(
      source !== undefined && familyOf(source) === family ? source : wildcardFor(family),
      0,
    );
    if (device !== undefined) socket.bindToDevice(device);
    if (dontFragment !== undefined) socket.setDontFragment(dontFragment);
    if (receiveBuffer !== undefined) socket.setReceiveBuffer(receiveBuffer);
    const stamp = target.format.name === "stamp";
    if (ttl !== undefined || stamp) socket.setTtl(ttl ?? 255);
    if (tos !== undefined) socket.setTos(tos);
    const receiving = socket.receiveEach(
      (data, from, arrivedAt) => this.#onDatagram(name, data, from, arrivedAt),
      undefined,
      {
        prompt: false, // read on the next tick: RTTs are the kernel's arrival stamps
        onIcmp: (report) => {
          this.#byAddress.get(`${addressKey(report.to)} ${name}`)?.onIcmp(report);
          this.#checkDrained();
        },
      },
    );
    this.#sockets.set(name, { socket, receiving });
    return socket;
  }

  /**
   * Sets the one wake-up: for the next probe due, or for the next timeout where no tick comes
   * within a tick after it (a drain at the end, a timeout shorter than the interval).
   */
  #arm(): void {
    const heap = this.#sends;
    while (heap.size > 0 && heap.peek().removed) heap.pop();
    const timeouts = this.#timeouts;
    while (timeouts.size > 0 && timeouts.peek().probes.removed) timeouts.pop();
    const send = this.#running ? heap.nextAt : Infinity;
    const timeout = timeouts.nextAt;
    const at = send <= timeout + this.#tick ? send : timeout;
    if (!(this.#running || this.#drained !== null) || at === this.#wakeAt || at === Infinity) {
      return;
    }
    this.#cancelWake?.();
    this.#wakeAt = at;
    const socket = this.#sockets.values().next().value?.socket;
    this.#cancelWake = socket?.wakeAt(at, () => this.#sendDue()) ?? null;
  }

  #sendDue(): void {
    this.#wakeAt = Infinity;
    this.#cancelWake = null;
    const now = monotonicMs();
    const timeouts = this.#timeouts;
    while (timeouts.nextAt <= now) {
      const { probes, sequence } = timeouts.pop();
      probes.timedOut(sequence);
    }
    this.#checkDrained();
    if (!this.#running) return this.#arm();
    const heap = this.#sends;
    const { intervalMs, timeoutMs, onInterval } = this.#options;
    while (heap.nextAt <= now) {
      const probes = heap.pop();
      if (probes.removed) continue;
      if (probes.started) onInterval?.(probes.counters(), probes.takeInterval());
      probes.started = true;
      const sequence = this.#send(probes);
      const sentAt = monotonicMs();
      this.#timeouts.add(sentAt + timeoutMs, { probes, sequence });
      // Behind (a stalled event loop, or this loop held up)? The probes missed are not sent
      // late in a burst: the next is half an interval after this one at least, the replies
      // read first, so that each interval's reply is its own.
      do probes.nextSendAt += intervalMs; while (probes.nextSendAt - sentAt < intervalMs / 2);
      heap.add(probes.nextSendAt, probes);
    }
    this.#arm();
  }

  /** Sends the target's next probe; returns its sequence. */
  #send(probes: TargetProbes): number {
    const { sequence, bytes } = probes.nextProbe();
    const socket = this.#socketFor(probes.target);
    const address = probes.target.address;
    const unsent = () => {
      probes.unsent(sequence);
      this.#checkDrained();
    };
    if (probes.sender.key === null) {
      probes.handedOver(sequence, monotonicMs());
      socket.send(bytes, address).catch(unsent);
      return sequence;
    }
    probes.sender.sign(bytes).then(() => {
      probes.handedOver(sequence, monotonicMs());
      return socket.send(bytes, address);
    }).catch(unsent);
    return sequence;
  }

  async #onDatagram(
    socketName: string,
    data: Uint8Array,
    from: PeerAddress,
    arrivedAt: number,
  ): Promise<void> {
    const now = monotonicMs();
    const probes = this.#byAddress.get(`${addressKey(from)} ${socketName}`);
    if (probes === undefined) {
      this.#foreign++;
      return;
    }
    const sender = probes.sender;
    const stranger = sender.read(data, from);
    if (stranger === "corrupted") return probes.onCorrupted();
    if (stranger !== null) {
      this.#foreign++;
      return;
    }
    if (sender.key !== null && !(sender.reply.authenticated && await sender.verify(data))) {
      this.#foreign++;
      return;
    }
    if (!probes.onReply(data.length, arrivedAt, now)) this.#foreign++;
    this.#checkDrained();
  }
}

/** Which socket a target's probes leave from: one per address family and wire format. */
function socketKey(target: MonitorTarget): string {
  return `${target.address.family} ${target.format.name}`;
}
