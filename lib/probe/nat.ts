/**
 * The NAT prober behind `udp nat`: what a NAT between this host and a `udp serve` does. A
 * first probe learns the address and port the reflector sees (as STUN reports it, so that
 * port preservation shows); then trials, each on a fresh socket (a fresh mapping), ask for one
 * reply after T seconds of silence, in parallel rounds (`_nat_search.ts`), so that the run
 * takes about the longest T it needs, and the longest T whose reply still came is the
 * mapping's idle lifetime. Trials leave 100 ms apart and never hold more than the reflector's
 * per-source cap of delayed replies at once (docs/protocol.md, "Delayed replies").
 *
 * @module
 */

import { formatAddress, monotonicMs, type ResolvedAddress } from "../net/mod.ts";
import { DELAYED_PER_SOURCE, MAX_DELAY_MS, type PathReport } from "../wire/mod.ts";
import { BindingSearch } from "./_nat_search.ts";
import { runTrial, type TrialOutcome } from "./_nat_trial.ts";
import type { NatEvent, NatResult, NatStopReason, NatSummary } from "./nat_report.ts";

export type * from "./nat_report.ts";
export { LADDER_S, MAX_ROUNDS } from "./_nat_search.ts";

/** Default of {@linkcode NatOptions.maxS}. */
export const DEFAULT_NAT_MAX_S = 120;
/** The longest delay a reflector grants (10 minutes), the most {@linkcode NatOptions.maxS}. */
export const MAX_NAT_S = MAX_DELAY_MS / 1000;
/** Default of {@linkcode NatOptions.waitMs}. */
export const DEFAULT_NAT_WAIT_MS = 2000;
/** Default of {@linkcode NatOptions.resolutionS}. */
export const DEFAULT_NAT_RESOLUTION_S = 1;
/** Time between two trials' requests, so that a reflector's rate limit of 10 a second or more
 * never refuses one (a refusal would look like an expiry). */
export const NAT_SPACING_MS = 100;
/** How long after its delay a request may still be held by the reflector (one-way time). */
const HOLD_SLACK_MS = 1000;

/** Options of {@linkcode nat}. */
export interface NatOptions {
  /** Where the reflector (a `udp serve`) is. */
  target: ResolvedAddress;
  /** The longest silence to try, in seconds (1 to 600). Default 120. */
  maxS?: number;
  /** How long to wait for a reply past its delay. Default 2000 ms. */
  waitMs?: number;
  /** How close the search closes in, in seconds. Default 1. */
  resolutionS?: number;
  /** Authenticated mode (the reflector's key). */
  key?: CryptoKey;
  /** Stops the run (as Ctrl-C does); the summary is still produced. */
  signal?: AbortSignal;
  /** Receives every event as it happens. */
  onEvent?: (event: NatEvent) => void;
}

/**
 * Runs the probe and resolves with what it found.
 *
 * @example Against a local reflector (no NAT), up to 1 s
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/mod.ts";
 * import { nat } from "./nat.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const { summary } = await nat({
 *   target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
 *   maxS: 1,
 *   waitMs: 500,
 * });
 * await reflector.close();
 * strictEqual(summary.binding_outcome, "at-least-max");
 * strictEqual(summary.port_preserved, true);
 * ```
 */
export function nat(options: NatOptions): Promise<NatResult> {
  return new NatRun(options).run();
}

class NatRun {
  readonly #options: NatOptions;
  readonly #maxS: number;
  readonly #waitMs: number;
  readonly #search: BindingSearch;
  readonly #emit: (event: NatEvent) => void;
  /** When each request sent may stop being held by the reflector (monotonic). */
  readonly #holds: number[] = [];
  /** The run's trials in flight, to stop them all at once. */
  readonly #running = new Set<AbortController>();
  #nextSend = 0;
  #stopReason: NatStopReason = "done";
  #error: string | null = null;
  #mapping: TrialOutcome | null = null;
  #portPreserved: boolean | null = null;
  #trials = 0;
  #replied = 0;
  #cancelled = 0;

  constructor(options: NatOptions) {
    this.#options = options;
    this.#maxS = options.maxS ?? DEFAULT_NAT_MAX_S;
    if (!(this.#maxS > 0 && this.#maxS <= MAX_NAT_S)) {
      throw new RangeError(`maxS ${this.#maxS} is not in (0, ${MAX_NAT_S}]`);
    }
    this.#waitMs = options.waitMs ?? DEFAULT_NAT_WAIT_MS;
    this.#search = new BindingSearch(this.#maxS, options.resolutionS ?? DEFAULT_NAT_RESOLUTION_S);
    this.#emit = options.onEvent ?? (() => {});
  }

  async run(): Promise<NatResult> {
    const started = monotonicMs();
    const signal = this.#options.signal;
    const onAbort = () => this.#stop("interrupted", null);
    signal?.addEventListener("abort", onAbort);
    try {
      if (signal?.aborted) this.#stop("interrupted", null);
      else if (await this.#map()) await this.#searchRounds();
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return {
      summary: this.#summary(monotonicMs() - started),
      stopReason: this.#stopReason,
      error: this.#error,
    };
  }

  /** The first probe, answered at once: the mapping. False when the run cannot go on. */
  async #map(): Promise<boolean> {
    const outcome = await this.#trial(null, new AbortController());
    if (this.#stopped) return false;
    if (outcome.error !== null) return this.#stop("protocol-error", outcome.error.message);
    if (!outcome.replied) return this.#stop("no-reply", null);
    const report = outcome.report;
    if (report?.address == null || report.port === null) {
      return this.#stop(
        "protocol-error",
        "sent no path report: it is not a udp serve that writes one (an older version?)",
      );
    }
    this.#mapping = outcome;
    const local = localAddress(outcome);
    const mapped = mappedAddress(report)!;
    this.#emit({
      type: "mapping",
      local_address: local,
      mapped_address: mapped,
      nat: local === null ? null : local !== mapped,
      port_preserved: report.port === outcome.localPort,
    });
    return true;
  }

  async #searchRounds(): Promise<void> {
    for (let round = 1; !this.#stopped; round++) {
      const now = monotonicMs();
      const held = this.#holds.filter((until) => until > now);
      const trials = this.#search.nextRound(DELAYED_PER_SOURCE - held.length);
      if (trials === null) return;
      if (trials.length === 0) {
        // The reflector still holds as many of ours as it takes: wait for the first to go.
        await this.#idle(Math.min(...held));
        round--;
        continue;
      }
      await this.#round(round, trials);
    }
  }

  /** One round's trials, in parallel; a failure stops the longer ones (they would fail). */
  async #round(round: number, delays: number[]): Promise<void> {
    const controllers = delays.map(() => new AbortController());
    await Promise.all(delays.map(async (delayS, i) => {
      const outcome = await this.#trial(Math.round(delayS * 1000), controllers[i]);
      if (this.#stopped) return;
      if (outcome.error !== null) return this.#stop("protocol-error", outcome.error.message);
      if (outcome.cancelled || outcome.sendError !== null) {
        this.#cancelled++;
        return;
      }
      if (outcome.replied && outcome.elapsedMs! < delayS * 500) {
        return this.#stop(
          "protocol-error",
          `answered a request for a reply after ${delayS} s at once: it does not do ` +
            "delayed replies (a udp serve older than the DELAYED flag?)",
        );
      }
      this.#count(round, delayS, outcome);
      if (outcome.replied) return;
      delays.forEach((other, j) => {
        if (!this.#search.worthWaiting(other)) controllers[j].abort();
      });
    }));
  }

  #count(round: number, delayS: number, outcome: TrialOutcome): void {
    this.#search.record(delayS, outcome.replied);
    this.#trials++;
    const report = outcome.report;
    if (outcome.replied) {
      this.#replied++;
      if (report?.port != null) {
        this.#portPreserved = (this.#portPreserved ?? true) && report.port === outcome.localPort;
      }
    }
    this.#emit({
      type: "trial",
      round,
      delay_s: delayS,
      replied: outcome.replied,
      local_port: outcome.localPort,
      mapped_address: report === null ? null : mappedAddress(report),
      elapsed_s: outcome.elapsedMs === null ? null : outcome.elapsedMs / 1000,
      held_s: outcome.heldMs === null ? null : outcome.heldMs / 1000,
    });
  }

  /** Runs a trial (delay null: a reply at once), its request paced after the run's last. */
  async #trial(delayMs: number | null, controller: AbortController): Promise<TrialOutcome> {
    const notBefore = Math.max(monotonicMs(), this.#nextSend);
    this.#nextSend = notBefore + NAT_SPACING_MS;
    this.#running.add(controller);
    try {
      const outcome = await runTrial({
        target: this.#options.target,
        delayMs,
        waitMs: this.#waitMs,
        key: this.#options.key ?? null,
        notBefore,
      }, controller.signal);
      if (outcome.sentAt !== null && delayMs !== null) {
        this.#holds.push(outcome.sentAt + delayMs + HOLD_SLACK_MS);
      }
      return outcome;
    } finally {
      this.#running.delete(controller);
    }
  }

  /** Waits until `until` (monotonic), or until the run stops. */
  async #idle(until: number): Promise<void> {
    const controller = new AbortController();
    this.#running.add(controller);
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, Math.max(0, until - monotonicMs()));
    controller.signal.addEventListener("abort", () => resolve(), { once: true });
    try {
      await promise;
    } finally {
      clearTimeout(timer);
      this.#running.delete(controller);
    }
  }

  get #stopped(): boolean {
    return this.#stopReason !== "done";
  }

  #stop(reason: NatStopReason, error: string | null): false {
    if (this.#stopped) return false;
    this.#stopReason = reason;
    if (error !== null) {
      const message = `${formatAddress(this.#options.target)} ${error}`;
      this.#error = message;
      this.#emit({ type: "error", message });
    }
    for (const controller of this.#running) controller.abort();
    return false;
  }

  #summary(elapsedMs: number): NatSummary {
    const mapping = this.#mapping;
    const local = mapping === null ? null : localAddress(mapping);
    const mapped = mapping?.report ? mappedAddress(mapping.report) : null;
    const searched = mapping !== null && this.#stopReason === "done";
    const result = this.#search.result();
    const preserved = mapping?.report?.port == null
      ? this.#portPreserved
      : (this.#portPreserved ?? true) && mapping.report.port === mapping.localPort;
    return {
      type: "summary",
      target: formatAddress(this.#options.target),
      local_address: local,
      mapped_address: mapped,
      nat: local === null || mapped === null ? null : local !== mapped,
      port_preserved: preserved,
      binding_timeout_s: searched && result.outcome === "found" ? result.lo : null,
      binding_outcome: searched ? result.outcome : "not-searched",
      expired_s: result.hi,
      longest_replied_s: result.lo,
      max_s: this.#maxS,
      tried: result.tried,
      trials: this.#trials,
      replied: this.#replied,
      lost: result.lost,
      cancelled: this.#cancelled,
      time_ms: Math.round(elapsedMs),
    };
  }
}

/** This host's address and port for a trial, when its socket told the address. */
function localAddress(outcome: TrialOutcome): string | null {
  const address = outcome.localAddress;
  return address === null ? null : formatAddress({ hostname: address, port: outcome.localPort });
}

/** The address and port a report says the reflector saw. */
function mappedAddress(report: PathReport): string | null {
  if (report.address === null || report.port === null) return null;
  return formatAddress({ hostname: report.address, port: report.port });
}
