/**
 * Token buckets for `udp serve --rate-limit` and `--global-limit`, with bounded state.
 *
 * @module
 */

/**
 * A token bucket: `rate` tokens per second, holding at most `burst`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { TokenBucket } from "./ratelimit.ts";
 * const bucket = new TokenBucket(10, 2, 0);
 * assertEquals([bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, false]);
 * strictEqual(bucket.take(100), true); // one token refilled after 100 ms
 * ```
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  /** Creates a full bucket at time `nowMs` (milliseconds, any monotonic origin). */
  constructor(ratePerSecond: number, burst: number, nowMs: number) {
    this.#perMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = nowMs;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket is full again (so forgetting it changes nothing). */
  isFull(nowMs: number): boolean {
    this.#refill(nowMs);
    return this.#tokens >= this.#burst;
  }

  #refill(nowMs: number): void {
    if (nowMs > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (nowMs - this.#last) * this.#perMs);
      this.#last = nowMs;
    }
  }
}

/** Options of {@linkcode SourceLimiter}. */
export interface SourceLimiterOptions {
  /** Datagrams per second per source address. */
  rate: number;
  /** Datagrams a source may send at once. */
  burst: number;
  /** The most sources tracked; beyond it, new sources share one bucket (default 65,536). */
  maxSources?: number;
}

/**
 * One token bucket per source address. Buckets that have refilled are forgotten (they hold no
 * information); when the table is still full, new sources share a single overflow bucket, so
 * a flood of spoofed addresses can neither grow memory nor lock out known sources.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
 * import { SourceLimiter } from "./ratelimit.ts";
 * const limiter = new SourceLimiter({ rate: 1, burst: 1 });
 * assertEquals([limiter.allow("10.0.0.1", 0), limiter.allow("10.0.0.1", 0)], [true, false]);
 * strictEqual(limiter.allow("10.0.0.2", 0), true);
 * strictEqual(limiter.size, 2);
 * ```
 */
export class SourceLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxSources: number;
  readonly #buckets = new Map<string, TokenBucket>();
  #overflow: TokenBucket | null = null;
  #lastSweep = -Infinity;

  /** Creates a limiter with no source known yet. */
  constructor(options: SourceLimiterOptions) {
    this.#rate = options.rate;
    this.#burst = options.burst;
    this.#maxSources = options.maxSources ?? 65_536;
  }

  /** Whether a datagram from `source` at `nowMs` is within its limit. */
  allow(source: string, nowMs: number): boolean {
    let bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      // Sweeping costs one pass over the table, so it runs at most once a second.
      if (this.#buckets.size >= this.#maxSources && nowMs - this.#lastSweep >= 1000) {
        this.#lastSweep = nowMs;
        this.#forgetFull(nowMs);
      }
      if (this.#buckets.size >= this.#maxSources) {
        this.#overflow ??= new TokenBucket(this.#rate, this.#burst, nowMs);
        return this.#overflow.take(nowMs);
      }
      bucket = new TokenBucket(this.#rate, this.#burst, nowMs);
      this.#buckets.set(source, bucket);
    }
    return bucket.take(nowMs);
  }

  /** Sources tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  #forgetFull(nowMs: number): void {
    for (const [source, bucket] of this.#buckets) {
      if (bucket.isFull(nowMs)) this.#buckets.delete(source);
    }
  }
}
