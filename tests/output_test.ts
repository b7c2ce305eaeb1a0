import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { snakeCase, toJson } from "../lib/cli/output.ts";

Deno.test("toJson(): every key in snake_case, at any depth", () => {
  strictEqual(
    toJson({
      type: "stats",
      up: { sendErrors: 1, dropped: { "burst-loss": 2, "too-many-clients": 3 } },
      down: { reorderGap: 1, burst: { badLoss: 1, goodLoss: 0 } },
      copies: [{ delayMs: 1 }],
      kinds: { "unsupported-version": 4, ping: 5 },
    }),
    '{"type":"stats","up":{"send_errors":1,"dropped":{"burst_loss":2,"too_many_clients":3}},' +
      '"down":{"reorder_gap":1,"burst":{"bad_loss":1,"good_loss":0}},"copies":[{"delay_ms":1}],' +
      '"kinds":{"unsupported_version":4,"ping":5}}',
  );
  assertEquals(
    ["rtt_ms", "sendErrors", "too-short", "rate_pps", "ipv4"].map(snakeCase),
    ["rtt_ms", "send_errors", "too_short", "rate_pps", "ipv4"],
  );
});

Deno.test("toJson(): times rounded to the nanosecond, other numbers free of float noise", () => {
  const parsed = JSON.parse(toJson({
    rtt_ms: 0.5487010000000019,
    server_ms: null,
    round_trip_ms: { min: 0.45310100000000375, p50: 12.0000004999, max: 3 },
    copies: [{ order: 1, delay_ms: 17.46053539449349 }],
    end_s: 1.0000000004,
    start_s: 0.1234567894,
    loss_percent: 100 / 3,
    offered_pps: 0.1 + 0.2,
    loss: 1e-7,
    session: 2 ** 53 - 1,
    jitter_ms: 0.022187312499999647,
    delayMs: 1.23456789,
  }));
  assertEquals(parsed, {
    rtt_ms: 0.548701,
    server_ms: null,
    round_trip_ms: { min: 0.453101, p50: 12, max: 3 },
    copies: [{ order: 1, delay_ms: 17.460535 }],
    end_s: 1,
    start_s: 0.123456789,
    loss_percent: 33.3333333333333,
    offered_pps: 0.3,
    loss: 1e-7,
    session: 2 ** 53 - 1,
    jitter_ms: 0.022187,
    delay_ms: 1.234568,
  });
});
