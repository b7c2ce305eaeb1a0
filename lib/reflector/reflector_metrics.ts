/**
 * `udp serve`'s counters as Prometheus metric families (`udp serve --metrics`), beside
 * {@linkcode ReflectorStats}: the same counts `--json` prints on exit, under Prometheus's names.
 *
 * @module
 */

import type { MetricFamily, Sample } from "../metrics/mod.ts";
import type { ReflectorStats } from "./reflector_stats.ts";

function byReason(counts: Record<string, number>, label: string): Sample[] {
  return Object.entries(counts).map(([reason, value]) => ({ labels: { [label]: reason }, value }));
}

/**
 * The reflector's metric families. The kernel's drop count is given only where the sockets
 * can tell it (absent, not 0, where they cannot).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { renderText } from "../metrics/mod.ts";
 * import { emptyStats } from "./reflector_stats.ts";
 * import { reflectorMetrics } from "./reflector_metrics.ts";
 * import { udpFormat } from "../wire/mod.ts";
 * const text = renderText(reflectorMetrics({ ...emptyStats(udpFormat), received: 3 }));
 * strictEqual(text.includes("udp_serve_datagrams_received_total 3\n"), true);
 * strictEqual(text.includes('udp_serve_refused_total{reason="rate-limit"} 0\n'), true);
 * strictEqual(text.includes("udp_serve_kernel_drops_total"), true); // HELP and TYPE only
 * strictEqual(text.includes("udp_serve_kernel_drops_total 0"), false);
 * ```
 */
export function reflectorMetrics(stats: ReflectorStats): MetricFamily[] {
  const counter = (name: string, help: string, samples: Sample[]): MetricFamily => ({
    type: "counter",
    name,
    help,
    samples,
  });
  return [
    counter("udp_serve_datagrams_received_total", "Datagrams received.", [
      { value: stats.received },
    ]),
    counter("udp_serve_bytes_received_total", "Bytes received (UDP payload).", [
      { value: stats.bytesReceived },
    ]),
    counter("udp_serve_replies_total", "Replies sent.", [{ value: stats.replied }]),
    counter("udp_serve_bytes_replied_total", "Bytes sent in replies (UDP payload).", [
      { value: stats.bytesReplied },
    ]),
    counter(
      "udp_serve_datagrams_total",
      "Datagrams received, by what the wire format made of them.",
      byReason(stats.kinds, "kind"),
    ),
    counter(
      "udp_serve_refused_total",
      "Datagrams refused without a reply, by reason (rate limits, authentication, replays).",
      byReason(stats.refused, "reason"),
    ),
    counter(
      "udp_serve_malformed_total",
      "Malformed requests, by the wire format's reason.",
      byReason(stats.malformed, "reason"),
    ),
    counter(
      "udp_serve_errors_total",
      "Errors: replies that could not be sent, receive errors, internal errors.",
      byReason(stats.errors, "kind"),
    ),
    counter(
      "udp_serve_delayed_replies_total",
      "Delayed replies (DELAYED PINGs accepted), by outcome: held, then sent, failed or dropped.",
      byReason(
        {
          held: stats.delayed.held,
          sent: stats.delayed.sent,
          failed: stats.delayed.failed,
          dropped: stats.delayed.dropped,
        },
        "outcome",
      ),
    ),
    {
      type: "gauge",
      name: "udp_serve_delayed_replies_pending",
      help: "Delayed replies waiting for their delay.",
      samples: [{ value: stats.delayed.pending }],
    },
    counter(
      "udp_serve_kernel_drops_total",
      "Datagrams the kernel dropped on the socket before they were read (receive buffer full).",
      stats.kernelDrops === null ? [] : [{ value: stats.kernelDrops }],
    ),
  ];
}
