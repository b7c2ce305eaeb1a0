/**
 * `udp monitor`'s counters as Prometheus metric families (the `/metrics` endpoint's), beside
 * the counters they are made of: names in base units, counters ending in `_total`, one
 * `target` label per target.
 *
 * @module
 */

import type { MetricFamily, Sample } from "../metrics/mod.ts";
import { ICMP_KINDS } from "../net/mod.ts";
import { RTT_BUCKETS_SECONDS, type TargetCounters } from "./_monitor_target.ts";

type CounterName = Exclude<
  keyof TargetCounters,
  | "label"
  | "address"
  | "protocol"
  | "inFlight"
  | "rttBuckets"
  | "rttSumSeconds"
  | "jitterMs"
  | "icmp"
>;

/** The counter families: metric name, help, and the field it reads. */
const COUNTERS: readonly [string, string, CounterName][] = [
  ["udp_probe_sent_total", "Probes handed to the socket.", "sent"],
  ["udp_probe_received_total", "Probes answered within the timeout.", "received"],
  [
    "udp_probe_lost_total",
    "Probes not answered within the timeout (a probe within it is neither received nor lost).",
    "lost",
  ],
  ["udp_probe_duplicates_total", "Second and later replies to one probe.", "duplicates"],
  [
    "udp_probe_reordered_total",
    "Replies that came after a reply to a later probe (RFC 4737).",
    "reordered",
  ],
  ["udp_probe_corrupted_total", "Replies from the target whose check failed.", "corrupted"],
  ["udp_probe_late_total", "Replies after their probe's timeout (it stays lost).", "late"],
  [
    "udp_probe_send_errors_total",
    "Probes the socket refused to send (neither received nor lost).",
    "sendErrors",
  ],
];

/**
 * The monitor's metric families for the targets' `counters` and the datagrams no target
 * claimed (`foreign`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { renderText } from "../metrics/mod.ts";
 * import { Monitor } from "./monitor.ts";
 * import { monitorMetrics } from "./monitor_metrics.ts";
 * import { udpFormat } from "../wire/mod.ts";
 * const monitor = new Monitor({ intervalMs: 1000, timeoutMs: 2000, payloadSize: 0 });
 * const address = { hostname: "127.0.0.1", port: 9, family: "ipv4" as const };
 * monitor.setTargets([{ label: "a", address, format: udpFormat }]);
 * const text = renderText(monitorMetrics(monitor.counters(), monitor.foreign));
 * strictEqual(text.includes('udp_probe_sent_total{target="a"} 0\n'), true);
 * strictEqual(text.includes('udp_probe_rtt_seconds_bucket{target="a",le="+Inf"} 0\n'), true);
 * strictEqual(text.includes('udp_probe_icmp_errors_total{target="a",kind="port_unreachable"} 0\n'), true);
 * ```
 */
export function monitorMetrics(
  counters: readonly TargetCounters[],
  foreign: number,
): MetricFamily[] {
  const labelled = (value: (target: TargetCounters) => number): Sample[] =>
    counters.map((target) => ({ labels: { target: target.label }, value: value(target) }));
  return [
    ...COUNTERS.map(([name, help, field]): MetricFamily => ({
      type: "counter",
      name,
      help,
      samples: labelled((target) => target[field]),
    })),
    {
      type: "counter",
      name: "udp_probe_icmp_errors_total",
      help: "ICMP errors about the probes, by kind (port_unreachable, ...): each probe lost.",
      samples: counters.flatMap((target) =>
        ICMP_KINDS.map((kind) => ({
          labels: { target: target.label, kind },
          value: target.icmp[kind],
        }))
      ),
    },
    {
      type: "gauge",
      name: "udp_probe_in_flight",
      help: "Probes sent and neither answered nor timed out yet.",
      samples: labelled((target) => target.inFlight),
    },
    {
      type: "histogram",
      name: "udp_probe_rtt_seconds",
      help: "Round-trip time of answered probes: the network's, the reflector's hold left out.",
      samples: counters.map((target) => ({
        labels: { target: target.label },
        bounds: RTT_BUCKETS_SECONDS,
        counts: target.rttBuckets,
        sum: target.rttSumSeconds,
      })),
    },
    {
      type: "gauge",
      name: "udp_probe_jitter_seconds",
      help: "RFC 3550 jitter of the round-trip times (absent until two replies).",
      samples: counters.filter((target) => target.jitterMs !== null).map((target) => ({
        labels: { target: target.label },
        value: (target.jitterMs as number) / 1000,
      })),
    },
    {
      type: "gauge",
      name: "udp_monitor_targets",
      help: "Targets being probed.",
      samples: [{ value: counters.length }],
    },
    {
      type: "counter",
      name: "udp_monitor_foreign_total",
      help: "Datagrams that reached the monitor's sockets and were no target's reply.",
      samples: [{ value: foreign }],
    },
  ];
}
