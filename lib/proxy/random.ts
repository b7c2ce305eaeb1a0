/**
 * A small seeded pseudo-random generator, so that every impairment decision of `udp proxy`
 * can be reproduced from `--seed`.
 *
 * @module
 */

/** Random numbers in [0, 1). */
export type Random = () => number;

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counter), seeded through splitmix32 so that nearby
 * seeds give unrelated streams. `stream` selects an independent stream for the same seed
 * (one per proxy direction, so one direction's traffic never shifts the other's decisions).
 *
 * @example
 * ```ts
 * import { notStrictEqual, ok, strictEqual } from "node:assert/strict";
 * import { seededRandom } from "./random.ts";
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * const first = a();
 * strictEqual(first, b());
 * ok(first >= 0 && first < 1);
 * notStrictEqual(seededRandom(42, 1)(), first); // another stream
 * ```
 */
export function seededRandom(seed: number, stream = 0): Random {
  let state = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  const splitmix = () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/**
 * A fresh random seed for runs without `--seed` (printed, so the run can be repeated).
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { randomSeed } from "./random.ts";
 * const seed = randomSeed();
 * ok(Number.isInteger(seed) && seed >= 0 && seed <= 0xffff_ffff);
 * ```
 */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
