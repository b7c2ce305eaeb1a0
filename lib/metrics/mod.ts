/**
 * `lib/metrics/`: Prometheus exposition, our own small writer. {@linkcode renderText} writes the
 * text format 0.0.4 and {@linkcode renderOpenMetrics} OpenMetrics 1.0, both pure;
 * {@linkcode MetricsServer} serves them on `/metrics`, in the format the scraper's Accept header
 * asks for ({@linkcode negotiate}). It imports nothing else in `lib/`: the folders above turn
 * their statistics into {@linkcode MetricFamily} values.
 *
 * @example A counter and a histogram, in the text format
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { renderText } from "./mod.ts";
 * const text = renderText([
 *   { type: "counter", name: "udp_sent_total", help: "Probes sent.", samples: [
 *     { labels: { target: "a" }, value: 3 },
 *   ] },
 *   { type: "histogram", name: "udp_rtt_seconds", help: "Round trips.", samples: [
 *     { bounds: [0.001, 0.01], counts: [1, 2, 0], sum: 0.012 },
 *   ] },
 * ]);
 * strictEqual(text, [
 *   "# HELP udp_sent_total Probes sent.",
 *   "# TYPE udp_sent_total counter",
 *   'udp_sent_total{target="a"} 3',
 *   "# HELP udp_rtt_seconds Round trips.",
 *   "# TYPE udp_rtt_seconds histogram",
 *   'udp_rtt_seconds_bucket{le="0.001"} 1',
 *   'udp_rtt_seconds_bucket{le="0.01"} 3',
 *   'udp_rtt_seconds_bucket{le="+Inf"} 3',
 *   "udp_rtt_seconds_sum 0.012",
 *   "udp_rtt_seconds_count 3",
 *   "",
 * ].join("\n"));
 * ```
 *
 * @module
 */

export {
  type HistogramSample,
  type Labels,
  type MetricFamily,
  negotiate,
  type Negotiated,
  OPENMETRICS_CONTENT_TYPE,
  renderOpenMetrics,
  renderText,
  type Sample,
  TEXT_CONTENT_TYPE,
} from "./exposition.ts";
export { MetricsServer, type MetricsServerOptions } from "./server.ts";
