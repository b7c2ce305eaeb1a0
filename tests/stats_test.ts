import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { Histogram } from "../lib/stats/histogram.ts";
import {
  EXACT_SAMPLE_LIMIT,
  JitterEstimator,
  LatencyStats,
  ReorderDetector,
} from "../lib/stats/latency.ts";

Deno.test("LatencyStats is empty before the first sample", () => {
  const stats = new LatencyStats();
  assertEquals([stats.min, stats.mean, stats.max, stats.deviation, stats.quantile(0.5)], [
    null,
    null,
    null,
    null,
    null,
  ]);
});

Deno.test("LatencyStats computes min/avg/max/mdev as ping(8) and exact nearest-rank quantiles", () => {
  const stats = new LatencyStats();
  const samples = [5, 1, 4, 2, 3, 10, 7, 6, 9, 8];
  for (const sample of samples) stats.record(sample);
  assertEquals([stats.min, stats.max], [1, 10]);
  assert(Math.abs((stats.mean as number) - 5.5) < 1e-12);
  const mean = 5.5;
  const expected = Math.sqrt(samples.reduce((sum, x) => sum + (x - mean) ** 2, 0) / samples.length);
  assert(Math.abs((stats.deviation as number) - expected) < 1e-12);
  assertEquals([stats.quantile(0.5), stats.quantile(0.9), stats.quantile(0.99)], [5, 9, 10]);
  assert(stats.exact);
});

Deno.test("LatencyStats switches to the histogram past the exact limit, within 0.2%", () => {
  const stats = new LatencyStats();
  const n = EXACT_SAMPLE_LIMIT * 3;
  // Values 0.010 ms .. 100 ms spread log-uniformly, recorded in a shuffled order.
  const values = Array.from({ length: n }, (_, i) => 0.01 * 10 ** (4 * i / (n - 1)));
  const shuffled = values.map((v, i) => [v, (i * 7919) % n] as const).sort((a, b) => a[1] - b[1]);
  for (const [value] of shuffled) stats.record(value);
  assert(!stats.exact);
  for (const q of [0.5, 0.9, 0.99]) {
    const truth = values[Math.ceil(q * n) - 1];
    const estimate = stats.quantile(q) as number;
    assert(Math.abs(estimate - truth) / truth <= 0.002, `q${q}: ${estimate} vs ${truth}`);
  }
  strictEqual(stats.quantile(1), values[n - 1]);
});

Deno.test("Histogram reads back single values within 0.2%, and sub-microsecond values", () => {
  for (const value of [0.001, 0.0456, 1, 3.3, 999, 123456]) {
    const histogram = new Histogram();
    histogram.record(value);
    const estimate = histogram.quantile(0.5) as number;
    assert(Math.abs(estimate - value) / value <= 0.002, `${value} read back as ${estimate}`);
  }
  // Each side of every power of two of microseconds (where an octave starts), past 2^32 µs
  // (71 minutes) too, and values drawn across the whole range.
  const values = [];
  for (let octave = 0; octave < 42; octave++) {
    const micros = 2 ** octave;
    values.push(micros * (1 - 1e-12), micros, micros * (1 + 1e-12), micros * 1.999);
  }
  for (let i = 0; i < 2000; i++) values.push(2 ** (Math.random() * 41));
  for (const micros of values.filter((value) => value >= 1)) {
    const histogram = new Histogram();
    histogram.record(micros / 1000);
    const estimate = (histogram.quantile(0.5) as number) * 1000;
    assert(Math.abs(estimate - micros) / micros <= 0.002, `${micros} µs read back as ${estimate}`);
  }
  const tiny = new Histogram();
  tiny.record(0.0001);
  tiny.record(-1);
  assert((tiny.quantile(1) as number) < 0.001);
  strictEqual(new Histogram().quantile(0.5), null);
});

Deno.test("JitterEstimator follows RFC 3550: J += (|D| - J) / 16", () => {
  const jitter = new JitterEstimator();
  jitter.update(10);
  strictEqual(jitter.value, null);
  jitter.update(26);
  strictEqual(jitter.value, 1);
  jitter.update(10);
  strictEqual(jitter.value, 1 + (16 - 1) / 16);
  const steady = new JitterEstimator();
  for (let i = 0; i < 10; i++) steady.update(5);
  strictEqual(steady.value, 0);
});

Deno.test("ReorderDetector follows RFC 4737's next-expected rule", () => {
  const detector = new ReorderDetector();
  const arrivals = [0, 1, 3, 2, 4, 7, 5, 6, 8];
  assertEquals(arrivals.map((i) => detector.observe(i)), [
    false,
    false,
    false,
    true,
    false,
    false,
    true,
    true,
    false,
  ]);
  strictEqual(detector.reordered, 3);
});
