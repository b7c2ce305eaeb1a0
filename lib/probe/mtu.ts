/**
 * The path MTU search behind `udp mtu`: the largest datagram that makes the round trip to a
 * reflector with don't-fragment set. Probes leave with `IP_PMTUDISC_PROBE` (DF set, and sent
 * even when bigger than the path MTU the kernel learnt), one size at a time. A router that
 * cannot forward one says so with ICMP "fragmentation needed" (ICMPv6 "packet too big") and
 * the next-hop MTU: the search goes to that size at once (as tracepath does). A path that
 * drops them without a word (an ICMP filter: a black hole) is searched by bisection between a
 * size that came back and one that did not, each size tried twice so that one lost datagram
 * is not taken for a limit (as RFC 8899's packetization-layer search does). A reply is the
 * reflector's, the same size as its request: nothing is amplified.
 *
 * @module
 */

import type { IcmpKind, IcmpReport, PeerAddress, ResolvedAddress, UdpSocket } from "../net/mod.ts";
import { errorKind, formatAddress, monotonicMs, sameAddress } from "../net/mod.ts";
import { type ProbeFormat, timestampFromMs, udpFormat } from "../wire/mod.ts";
import { wallClockMs } from "../net/mod.ts";
import { probeBytes, ProbeSender } from "./_sender.ts";

/** Bytes of the IP and UDP headers before a datagram's payload, per family. */
export const HEADER_BYTES = { ipv4: 28, ipv6: 48 } as const;
/** The largest IP packet. */
export const MAX_MTU = 65535;
/** Tries per size before it counts as not getting through. */
export const TRIES_PER_SIZE = 2;
/** Probes per search at most (a bisection of 64 KiB takes 17 sizes). */
const MAX_PROBES = 64;

/** How one probe of a size ended. */
export type MtuProbeResult =
  | "reply"
  | "frag_needed"
  | "too_big_locally"
  | "timeout"
  | "icmp_error";

/** One probe of the search; `--json` prints each. */
export interface MtuProbeEvent {
  /** Always "probe". */
  type: "probe";
  /** The IP packet's size in bytes (the MTU it tests). */
  size: number;
  /** Its UDP payload: the datagram the reflector got. */
  payload_bytes: number;
  /** How it ended. */
  result: MtuProbeResult;
  /** A "fragmentation needed": the next-hop MTU it gave (or this host's own for too big
   * locally); else null. */
  mtu: number | null;
  /** Who said so: the router's address; null otherwise. */
  from: string | null;
  /** An ICMP error of another kind (port unreachable, ...): its kind; else null. */
  icmp_kind: IcmpKind | null;
  /** A reply's round trip in milliseconds; else null. */
  rtt_ms: number | null;
}

/** How the path MTU was found. */
export type MtuFoundBy = "icmp" | "search" | "local" | "max";

/** The result; `--json` prints it as its last line. */
export interface MtuSummary {
  /** Always "summary". */
  type: "summary";
  /** The target as HOST:PORT. */
  target: string;
  /** The largest IP packet that made the round trip; null when none did. */
  path_mtu: number | null;
  /** Its UDP payload (path_mtu minus the IP and UDP headers); null likewise. */
  max_payload: number | null;
  /**
   * "icmp": a router's "fragmentation needed" told it (and a probe of that size came back);
   * "search": larger sizes got neither a reply nor an ICMP error (a black hole), so bisection
   * found it; "local": this host's interface is the narrowest; "max": the largest size asked
   * for came back.
   */
  found_by: MtuFoundBy | null;
  /** Whether sizes above the path MTU vanished without an ICMP error (a black hole). */
  black_hole: boolean;
  /** The smallest next-hop MTU an ICMP error gave; null when none came. */
  icmp_mtu: number | null;
  /** Where that error came from. */
  icmp_from: string | null;
  /** This host's own limit (its interface's MTU), when a probe hit it; else null. */
  local_mtu: number | null;
  /** Probes sent. */
  probes: number;
  /** Why the search stopped short: an ICMP error of another kind than "fragmentation needed"
   * (nothing listens, the host is unreachable, a filter), e.g. "port_unreachable"; else null. */
  icmp_error: IcmpKind | null;
  /** Who sent that error. */
  icmp_error_from: string | null;
}

/** Options of {@linkcode findPathMtu}. */
export interface MtuOptions {
  /** Where the reflector is. */
  target: ResolvedAddress;
  /** The wire format; default udp's frames. */
  format?: ProbeFormat;
  /** The smallest size to try first, to see that the target answers (default 576 for IPv4,
   * 1280 for IPv6: what every path must carry). */
  minSize?: number;
  /** The largest size to try (default 65535). */
  maxSize?: number;
  /** Time to wait for each probe's reply. */
  timeoutMs: number;
  /** The address to send from. */
  source?: string;
  /** The network interface to send through. */
  device?: string;
  /** Told each probe as it ends. */
  onProbe?: (event: MtuProbeEvent) => void;
  /** Stops the search (Ctrl-C); the summary says what was found so far. */
  signal?: AbortSignal;
}

/** What is known so far: the largest size that came back, the smallest that cannot. */
interface Bounds {
  good: number; // largest size known to get through; 0: none yet
  bad: number; // smallest size known not to: one more than the largest that may
  icmpMtu: number | null;
  icmpFrom: string | null;
  localMtu: number | null;
  silent: boolean; // a size vanished without a word
  error: { kind: IcmpKind; from: string | null } | null; // an ICMP error that ends the search
}

/**
 * Finds the path MTU to a reflector.
 *
 * @example On loopback, where the interface allows 65,536 bytes
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/reflector.ts";
 * import { findPathMtu } from "./mtu.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const target = { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" as const };
 * const summary = await findPathMtu({ target, timeoutMs: 1000, maxSize: 9000 });
 * await reflector.close();
 * strictEqual(summary.path_mtu, 9000);
 * strictEqual(summary.max_payload, 8972);
 * strictEqual(summary.found_by, "max");
 * ```
 */
export async function findPathMtu(options: MtuOptions): Promise<MtuSummary> {
  const search = new MtuSearch(options);
  try {
    return await search.run();
  } finally {
    await search.close();
  }
}

class MtuSearch {
  readonly #options: MtuOptions;
  readonly #format: ProbeFormat;
  readonly #header: number;
  readonly #session: number;
  readonly #reader: ProbeSender; // reads the replies, whatever their size
  readonly #socket: UdpSocket;
  readonly #receiving: Promise<void>;
  #sequence = 0;
  #probes = 0;
  // The probe in flight: what ends it.
  #awaiting: { sequence: number; done: (outcome: Outcome) => void } | null = null;

  constructor(options: MtuOptions) {
    this.#options = options;
    this.#format = options.format ?? udpFormat;
    this.#header = HEADER_BYTES[options.target.family];
    this.#reader = this.#sender(0, undefined);
    this.#session = this.#reader.session;
    this.#socket = this.#reader.bind();
    if (!this.#socket.reportsIcmp || !this.#socket.setDontFragment("probe")) {
      this.#socket.close();
      throw new RangeError(
        "this socket cannot set don't-fragment or read ICMP errors (udp's native sockets can)",
      );
    }
    this.#receiving = this.#socket.receiveEach(
      (data, from, arrivedAt) => this.#onDatagram(data, from, arrivedAt),
      undefined,
      { onIcmp: (report) => this.#onIcmp(report) },
    );
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#receiving;
  }

  /** A sender of this search's session whose probes have `padding` bytes of padding. */
  #sender(padding: number, session: number | undefined = this.#session): ProbeSender {
    return new ProbeSender({
      target: this.#options.target,
      format: this.#format,
      session,
      payloadSize: padding,
      source: this.#options.source,
      device: this.#options.device,
    });
  }

  async run(): Promise<MtuSummary> {
    const { target } = this.#options;
    const least = this.#options.minSize ?? (target.family === "ipv6" ? 1280 : 576);
    const most = Math.min(this.#options.maxSize ?? MAX_MTU, MAX_MTU);
    const bounds: Bounds = {
      good: 0,
      bad: most + 1,
      icmpMtu: null,
      icmpFrom: null,
      localMtu: null,
      silent: false,
      error: null,
    };
    // First what every path carries: a target that does not answer that has no path MTU.
    if (await this.#trySize(least, bounds)) {
      let size = most;
      while (
        bounds.good + 1 < bounds.bad && bounds.error === null && this.#probes < MAX_PROBES &&
        !this.#stopped
      ) {
        await this.#trySize(size, bounds);
        size = this.#next(bounds);
      }
    }
    return this.#summary(bounds);
  }

  get #stopped(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  /** The next size: one an ICMP error named, else the largest not ruled out, else halfway. */
  #next(bounds: Bounds): number {
    const ceiling = bounds.bad - 1;
    if (bounds.icmpMtu !== null && bounds.icmpMtu <= ceiling && bounds.icmpMtu > bounds.good) {
      return bounds.icmpMtu;
    }
    if (bounds.localMtu !== null && bounds.localMtu <= ceiling && bounds.localMtu > bounds.good) {
      return bounds.localMtu;
    }
    return Math.ceil((bounds.good + ceiling) / 2);
  }

  /** Probes one size (twice, if the first vanished); whether it came back. */
  async #trySize(size: number, bounds: Bounds): Promise<boolean> {
    for (let attempt = 0; attempt < TRIES_PER_SIZE && !this.#stopped; attempt++) {
      const outcome = await this.#probe(size);
      if (outcome.result === "icmp_error") {
        bounds.error = { kind: outcome.kind!, from: outcome.from };
        return false;
      }
      if (outcome.result === "reply") {
        bounds.good = Math.max(bounds.good, size);
        return true;
      }
      if (outcome.result === "frag_needed" || outcome.result === "too_big_locally") {
        bounds.bad = Math.min(bounds.bad, size);
        const mtu = outcome.mtu;
        // The MTU it names rules out every size above it (unless it is no MTU at all).
        if (mtu === null || mtu <= 0 || mtu >= size) return false;
        bounds.bad = Math.min(bounds.bad, mtu + 1);
        if (outcome.result === "too_big_locally") bounds.localMtu = mtu;
        else if (bounds.icmpMtu === null || mtu < bounds.icmpMtu) {
          bounds.icmpMtu = mtu;
          bounds.icmpFrom = outcome.from;
        }
        return false;
      }
    }
    if (!this.#stopped) {
      bounds.bad = Math.min(bounds.bad, size);
      if (size > bounds.good) bounds.silent = true;
    }
    return false;
  }

  /** Sends one probe of `size` bytes (the IP packet) and waits for what ends it. */
  async #probe(size: number): Promise<Outcome> {
    const payloadBytes = size - this.#header;
    const sender = this.#sender(this.#paddingFor(payloadBytes));
    const sequence = this.#sequence++;
    const bytes = sender.encode("ping", sequence, 0, timestampFromMs(wallClockMs()));
    this.#probes++;
    const ended = Promise.withResolvers<Outcome>();
    const timer = setTimeout(() => ended.resolve(TIMED_OUT), this.#options.timeoutMs);
    this.#awaiting = { sequence, done: ended.resolve };
    const sentAt = monotonicMs();
    let outcome: Outcome;
    try {
      await this.#socket.send(bytes, this.#options.target);
      outcome = await ended.promise;
    } catch (error) {
      // EMSGSIZE: bigger than this host's interface lets out (its MTU came in the error queue).
      if (errorKind(error) !== "Message too long") throw error;
      outcome = { ...TIMED_OUT, result: "too_big_locally", mtu: this.#localMtu };
    } finally {
      clearTimeout(timer);
      this.#awaiting = null;
    }
    const rtt = outcome.result === "reply" ? Math.max(0, outcome.arrivedAt - sentAt) : null;
    this.#options.onProbe?.({
      type: "probe",
      size,
      payload_bytes: payloadBytes,
      result: outcome.result,
      mtu: outcome.mtu,
      from: outcome.from,
      icmp_kind: outcome.kind,
      rtt_ms: rtt,
    });
    return outcome;
  }

  #localMtu: number | null = null;

  /** The padding that makes a probe of the format exactly `payloadBytes` long. */
  #paddingFor(payloadBytes: number): number {
    let padding = Math.max(0, payloadBytes - this.#format.overhead(false));
    // STAMP's Extra Padding TLV adds its own header once there is padding.
    padding -= probeBytes(this.#format, padding, false) - payloadBytes;
    return Math.max(0, padding);
  }

  #onDatagram(data: Uint8Array, from: PeerAddress, arrivedAt: number): void {
    const awaiting = this.#awaiting;
    if (awaiting === null) return;
    const sender = this.#reader;
    if (sender.read(data, from) !== null) return;
    const reply = sender.reply;
    if (reply.kind !== "reply" && reply.kind !== "echo") return;
    if (reply.request !== "ping" || reply.sequence !== awaiting.sequence) return;
    awaiting.done({ ...TIMED_OUT, result: "reply", arrivedAt });
  }

  #onIcmp(report: IcmpReport): void {
    if (report.local) {
      if (report.mtu !== null) this.#localMtu = report.mtu;
      return;
    }
    const awaiting = this.#awaiting;
    if (awaiting === null || !sameAddress(report.to, this.#options.target)) return;
    const quoted = this.#reader.readQuoted(report);
    // A router may quote too little to name the probe: then it is about the one in flight.
    if (quoted !== null && quoted.sequence !== awaiting.sequence) return;
    const tooBig = report.kind === "frag_needed";
    awaiting.done({
      result: tooBig ? "frag_needed" : "icmp_error",
      mtu: report.mtu,
      from: report.from,
      kind: tooBig ? null : report.kind,
      arrivedAt: 0,
    });
  }

  #summary(bounds: Bounds): MtuSummary {
    const mtu = bounds.good > 0 ? bounds.good : null;
    const most = Math.min(this.#options.maxSize ?? MAX_MTU, MAX_MTU);
    let foundBy: MtuFoundBy | null = null;
    if (mtu !== null) {
      if (mtu === most) foundBy = "max";
      else if (bounds.icmpMtu === mtu) foundBy = "icmp";
      else if (bounds.silent) foundBy = "search";
      else if (bounds.localMtu === mtu) foundBy = "local";
      else foundBy = "search";
    }
    return {
      type: "summary",
      target: formatAddress(this.#options.target),
      path_mtu: mtu,
      max_payload: mtu === null ? null : mtu - this.#header,
      found_by: foundBy,
      black_hole: mtu !== null && bounds.silent && bounds.icmpMtu !== mtu,
      icmp_mtu: bounds.icmpMtu,
      icmp_from: bounds.icmpFrom,
      local_mtu: bounds.localMtu,
      probes: this.#probes,
      icmp_error: bounds.error?.kind ?? null,
      icmp_error_from: bounds.error?.from ?? null,
    };
  }
}

/** How a probe ended, as the search reads it. */
interface Outcome {
  result: MtuProbeResult;
  mtu: number | null;
  from: string | null;
  kind: IcmpKind | null;
  arrivedAt: number;
}

const TIMED_OUT: Outcome = { result: "timeout", mtu: null, from: null, kind: null, arrivedAt: 0 };
