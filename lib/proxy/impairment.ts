/**
 * What `udp proxy` does to each datagram, decided from a seeded generator with no I/O and no
 * clock: loss (random and Gilbert–Elliott bursts), corruption, duplication, reordering and
 * delay with jitter. Rate limiting needs a clock and lives in the proxy.
 *
 * @module
 */

import type { Random } from "./random.ts";

/** The Gilbert–Elliott two-state loss model. Probabilities are 0..1. */
export interface BurstLoss {
  /** Chance per datagram of moving from the good to the bad state. */
  enter: number;
  /** Chance per datagram of moving from the bad back to the good state. */
  exit: number;
  /** Loss rate in the bad state (default 1). */
  badLoss: number;
  /** Loss rate in the good state (default 0). */
  goodLoss: number;
}

/** A rate limit: datagrams per second, or bits per second of UDP payload. */
export interface RateLimit {
  /** "pps" or "bps". */
  unit: "pps" | "bps";
  /** Datagrams or bits per second (> 0). */
  value: number;
}

/** The impairments of one direction. Probabilities are 0..1, times milliseconds. */
export interface Impairments {
  /** Independent random loss. */
  loss: number;
  /** Bursty loss, applied as well as `loss`. */
  burst: BurstLoss | null;
  /** Chance of flipping one random bit of one random byte. */
  corrupt: number;
  /** Chance of sending a datagram twice. */
  duplicate: number;
  /** Chance of holding a datagram back until `reorderGap` later ones have gone. */
  reorder: number;
  /** How many later datagrams overtake a held one (default 1). */
  reorderGap: number;
  /** Base delay added to every datagram. */
  delayMs: number;
  /** Each datagram's delay is delayMs + uniform(−jitterMs, +jitterMs), never below 0. */
  jitterMs: number;
  /** Optional rate limit with a bounded queue. */
  rate: RateLimit | null;
  /** The most datagrams waiting for the rate limit; more are dropped (default 1000). */
  queue: number;
}

/** No impairment at all. */
export const NO_IMPAIRMENTS: Impairments = {
  loss: 0,
  burst: null,
  corrupt: 0,
  duplicate: 0,
  reorder: 0,
  reorderGap: 1,
  delayMs: 0,
  jitterMs: 0,
  rate: null,
  queue: 1000,
};

/** Why a datagram was dropped. */
export type DropReason = "loss" | "burst-loss" | "queue-full";

/** The decision for one datagram. */
export interface Decision {
  /** Set when the datagram is dropped (the other fields are then empty). */
  drop: "loss" | "burst-loss" | null;
  /** The byte index flipped and the bit mask used, or null. */
  corrupt: { index: number; mask: number } | null;
  /** Whether it is held back for reordering. */
  hold: boolean;
  /** One delay per copy to send (two when duplicated). */
  delaysMs: number[];
}

/**
 * Decides the fate of each datagram of one direction, in arrival order.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
 * import { ImpairmentModel, NO_IMPAIRMENTS } from "./impairment.ts";
 * import { seededRandom } from "./random.ts";
 * const model = new ImpairmentModel({ ...NO_IMPAIRMENTS, loss: 0.5 }, seededRandom(1));
 * const decisions = Array.from({ length: 1000 }, () => model.decide(100));
 * const dropped = decisions.filter((d) => d.drop).length;
 * ok(dropped > 400 && dropped < 600); // about 500
 * const unimpaired = new ImpairmentModel(NO_IMPAIRMENTS, seededRandom(1));
 * assertEquals(unimpaired.decide(100), { drop: null, corrupt: null, hold: false, delaysMs: [0] });
 * ```
 */
export class ImpairmentModel {
  readonly #config: Impairments;
  readonly #random: Random;
  #bad = false;

  /** Creates a model applying `config`, drawing from `random`. */
  constructor(config: Impairments, random: Random) {
    this.#config = config;
    this.#random = random;
  }

  /** The configuration this model applies. */
  get config(): Impairments {
    return this.#config;
  }

  /** Decides what happens to the next datagram (of `size` bytes). */
  decide(size: number): Decision {
    const c = this.#config;
    const random = this.#random;
    // Every draw is made whether or not it matters, so one datagram's fate never shifts the
    // random numbers the next one sees: decisions stay comparable across configurations.
    const lossDraw = random();
    const burstDraw = random();
    const transitionDraw = random();
    const corruptDraw = random();
    const corruptIndex = random();
    const corruptBit = random();
    const duplicateDraw = random();
    const holdDraw = random();
    const jitterDraws = [random(), random()];
    let burstDropped = false;
    if (c.burst) {
      burstDropped = burstDraw < (this.#bad ? c.burst.badLoss : c.burst.goodLoss);
      if (this.#bad ? transitionDraw < c.burst.exit : transitionDraw < c.burst.enter) {
        this.#bad = !this.#bad;
      }
    }
    if (lossDraw < c.loss) return { drop: "loss", corrupt: null, hold: false, delaysMs: [] };
    if (burstDropped) return { drop: "burst-loss", corrupt: null, hold: false, delaysMs: [] };
    const corrupt = size > 0 && corruptDraw < c.corrupt
      ? { index: Math.floor(corruptIndex * size), mask: 1 << Math.floor(corruptBit * 8) }
      : null;
    const copies = duplicateDraw < c.duplicate ? 2 : 1;
    const delaysMs = jitterDraws.slice(0, copies).map((draw) =>
      Math.max(0, c.delayMs + (draw * 2 - 1) * c.jitterMs)
    );
    return { drop: null, corrupt, hold: holdDraw < c.reorder, delaysMs };
  }
}
