/**
 * Replay protection for authenticated frames: a frame is accepted once, and only while its
 * timestamp is within a window of the server's clock. Memory is bounded however many clients
 * there are.
 *
 * @module
 */

import { type Timestamp, timestampDiffMs } from "../wire/mod.ts";

/** Why a frame was refused. */
export type ReplayVerdict = "ok" | "stale" | "replayed" | "full";

/** Options of {@linkcode ReplayGuard}. */
export interface ReplayGuardOptions {
  /** How far a frame's timestamp may be from the server's clock, either way. */
  windowMs: number;
  /** The most frames remembered per generation (three generations are kept). */
  capacity?: number;
}

/**
 * Remembers the (session, sequence, attempt) of every frame accepted in the last two to three
 * windows, in three generations of at most `capacity` entries each. A frame outside the time
 * window is stale; one seen before is a replay. Because a frame older than one window is
 * refused anyway, remembering two full windows catches every replay the time check lets
 * through. When the current generation is full, new frames are refused ("full") rather than
 * forgetting ones that could still be replayed.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ReplayGuard } from "./replay.ts";
 * const guard = new ReplayGuard({ windowMs: 30_000 });
 * const now = { seconds: 1_700_000_000, nanos: 0 };
 * strictEqual(guard.check(1, 2, 0, now, now), "ok");
 * strictEqual(guard.check(1, 2, 0, now, now), "replayed");
 * strictEqual(guard.check(1, 3, 0, { seconds: 1_699_999_000, nanos: 0 }, now), "stale");
 * ```
 */
export class ReplayGuard {
  readonly #windowMs: number;
  readonly #capacity: number;
  #generations: Set<string>[] = [new Set(), new Set(), new Set()];
  #generationStart: number | null = null;

  /** Creates an empty guard. */
  constructor(options: ReplayGuardOptions) {
    this.#windowMs = options.windowMs;
    this.#capacity = options.capacity ?? 65_536;
  }

  /** Checks a frame received at `now` and remembers it when accepted. `session` is the
   * reflector's key for its session (with its source, where the format needs it). */
  check(
    session: number | string,
    sequence: number,
    attempt: number,
    sentAt: Timestamp,
    now: Timestamp,
  ): ReplayVerdict {
    if (Math.abs(timestampDiffMs(now, sentAt)) > this.#windowMs) return "stale";
    this.#rotate(now);
    const key = `${session}.${sequence}.${attempt}`;
    if (this.#generations.some((generation) => generation.has(key))) return "replayed";
    const current = this.#generations[0];
    if (current.size >= this.#capacity) return "full";
    current.add(key);
    return "ok";
  }

  /** How many frames are remembered now. */
  get size(): number {
    return this.#generations.reduce((sum, generation) => sum + generation.size, 0);
  }

  #rotate(now: Timestamp): void {
    const nowMs = now.seconds * 1000 + now.nanos / 1e6;
    if (this.#generationStart === null) this.#generationStart = nowMs;
    while (nowMs - this.#generationStart >= this.#windowMs) {
      this.#generations = [new Set(), this.#generations[0], this.#generations[1]];
      this.#generationStart += this.#windowMs;
      if (nowMs - this.#generationStart >= 3 * this.#windowMs) this.#generationStart = nowMs;
    }
  }
}
