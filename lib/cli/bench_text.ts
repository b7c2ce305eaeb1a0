/**
 * `udp bench`'s text: interval lines, a stream's line of several, and the summary.
 *
 * @module
 */

import type { BenchInterval, BenchSummary } from "../probe/bench.ts";
import { formatStat, icmpLine } from "./format.ts";

/** A percentage to three significant digits, e.g. "0.125%". */
export function formatPercent(percent: number): string {
  return `${Number(percent.toPrecision(3))}%`;
}

function formatBits(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${(bps / 1e3).toFixed(2)} kbit/s`;
}

/** An interval's line: its span (and stream, of several), what was sent and received, and
 * what went missing, came late or twice, with the jitter and (reflected) the median RTT. */
export function intervalLine(
  report: BenchInterval,
  datagramBytes: number,
  streams: boolean,
): string {
  const span = `[${report.start_s.toFixed(1).padStart(5)}-${
    report.end_s.toFixed(1).padStart(5)
  } s]`;
  const stream = !streams ? "" : report.stream === 0 ? " [SUM]" : ` [${report.stream}]`;
  const direction = report.direction === "reflected" ? "" : ` ${report.direction}:`;
  // The reflector says how many its stream sent at the end only.
  const sent = report.sent === null && report.direction === "back"
    ? ""
    : report.sent === null
    ? " sent ?,"
    : ` sent ${report.sent} (${Math.round(report.sent_pps ?? 0)} pps, ${
      formatBits((report.sent_pps ?? 0) * datagramBytes * 8)
    }),`;
  if (report.received === null) {
    return `${span}${stream}${direction}${sent} received ? (the reflector's counts for ` +
      "this interval did not come)";
  }
  const rtt = report.rtt_p50_ms === null ? "" : `, rtt p50 ${formatStat(report.rtt_p50_ms)} ms`;
  const jitter = report.jitter_ms === null ? "" : `, jitter ${formatStat(report.jitter_ms)} ms`;
  return `${span}${stream}${direction}${sent} received ${report.received} (${
    formatBits(report.received_bps ?? 0)
  }), lost ${report.lost}, late ${report.late}, dup ${report.duplicates}${rtt}${jitter}`;
}

/** A stream's own summary line, of several (`-P`). */
export function streamLine(s: BenchSummary): string {
  const loss = s.loss_percent === null ? "-" : formatPercent(s.loss_percent);
  return `[${s.stream}] sent ${s.sent}, received ${s.received ?? "?"} (${
    formatBits(s.achieved_bps)
  }), loss ${loss}` + (s.jitter_ms === null ? "" : `, jitter ${formatStat(s.jitter_ms)} ms`);
}

function lossLine(s: BenchSummary): string {
  const loss = `loss ${s.loss_percent === null ? "-" : formatPercent(s.loss_percent)}`;
  if (s.echo_server) return `${loss} (an echo server: no per-direction split)`;
  if (oneWay(s) && s.received === null) {
    return `${loss} (the reflector's counts did not arrive, or it predates one-way mode: what ` +
      "arrived is not known)";
  }
  if (oneWay(s)) {
    const refused = refusedWords(s);
    return `${loss}: ${refused}${s.loss_up} lost on the way there (server received ` +
      `${s.server_received}, ${s.duplicates} of them again)`;
  }
  if (s.server_refused === null && s.loss_up !== null && s.loss_down !== null) {
    // STAMP: no STATS, but the reflector's own sequence numbers (or Direct Measurement).
    return `${loss}: ${s.loss_up} lost on the way there, ${s.loss_down} on the way back, up to ` +
      "the last datagram answered (the STAMP reflector's counts)";
  }
  if (s.loss_up === null || s.loss_down === null || s.server_refused === null) {
    return `${loss} (no per-direction split: the server's counts did not arrive, or a ` +
      "stateless STAMP reflector without --tlv direct-measurement)";
  }
  return `${loss}: ${
    refusedWords(s)
  }${s.loss_up} lost on the way there, ${s.loss_down} on the way ` +
    `back (server received ${s.server_received}, replied ${s.server_replied})`;
}

/** The reflector's stream (`-R`, `--bidir`) as it arrived. */
function backLines(back: NonNullable<BenchSummary["back"]>): string[] {
  if (back.refused !== null && back.received === 0) return [`back: no stream: ${back.refused}`];
  const loss = back.sent === null || back.sent === 0
    ? "loss - (the reflector's count of what it sent did not arrive)"
    : `loss ${formatPercent(((back.sent - back.received) / back.sent) * 100)}: ${back.lost} ` +
      `of the reflector's ${back.sent} lost on the way back`;
  const granted = back.granted_pps === null || back.granted_pps === back.requested_pps
    ? ""
    : ` (${back.granted_pps} pps granted of ${back.requested_pps} asked)`;
  const lines = [
    `back     ${back.achieved_pps} pps, ${formatBits(back.achieved_bps)} (${back.received} ` +
    `datagrams from the reflector)${granted}`,
    `back ${loss}; ${back.late} late, ${back.duplicates} duplicates` +
    (back.jitter_ms === null ? "" : `, one-way jitter ${formatStat(back.jitter_ms)} ms`),
  ];
  if (back.corrupted > 0) lines.push(`back: ${back.corrupted} corrupted (not counted)`);
  if (back.refused !== null) lines.push(`back: ${back.refused}`);
  return lines;
}

/** Whether the way there was one way (`--one-way`, `--bidir`): no replies, the reflector's
 * counts. */
function oneWay(s: BenchSummary): boolean {
  return s.mode === "one-way" || s.mode === "bidir";
}

/** "N refused by the server (rate-limit N, …), " or "" when it refused none. */
function refusedWords(s: BenchSummary): string {
  const reasons = Object.entries(s.server_refused ?? {}).filter(([, count]) => count > 0);
  const refusedTotal = reasons.reduce((sum, [, count]) => sum + count, 0);
  return refusedTotal === 0
    ? ""
    : `${refusedTotal} refused by the server (${
      reasons.map(([reason, count]) => `${reason.replace("_", "-")} ${count}`).join(", ")
    }), `;
}

/**
 * The text summary of a bench run.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { bench } from "../probe/bench.ts";
 * import { Reflector } from "../reflector/reflector.ts";
 * import { summaryText } from "./bench_text.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = reflector.address.port;
 * const summary = await bench({
 *   target: { hostname: "127.0.0.1", port, family: "ipv4" },
 *   rate: 100,
 *   durationMs: 100,
 *   payloadSize: 56,
 *   graceMs: 100,
 * });
 * await reflector.close();
 * const lines = summaryText(summary).split("\n");
 * const heading = `--- 127.0.0.1:${port} udp bench (104-byte datagrams, `;
 * strictEqual(lines[1].startsWith(heading), true); // then the time it took, e.g. "0.101 s) ---"
 * strictEqual(lines.at(-1), "0 duplicates, 0 reordered");
 * ```
 */
export function summaryText(s: BenchSummary): string {
  const lines = [
    "",
    `--- ${s.target} udp bench (${s.datagram_bytes}-byte datagrams, ${s.duration_s} s${
      s.streams > 1 ? `, ${s.streams} streams` : ""
    }${s.mode === "reflected" ? "" : `, ${s.mode}`}) ---`,
  ];
  if (s.mode === "reverse" && s.back !== null) {
    lines.push(...backLines(s.back));
    const icmp = icmpLine(s.icmp, s.errors, "request");
    if (icmp !== null) lines.push(icmp);
    return lines.join("\n");
  }
  lines.push(
    `offered  ${s.offered_pps} pps, ${formatBits(s.offered_bps)} (${s.sent} datagrams` +
      (s.requested_pps === null
        ? ", as fast as possible)"
        : `, ${Math.round(s.requested_pps)} pps requested)`),
    oneWay(s)
      ? `received ${s.achieved_pps} pps, ${formatBits(s.achieved_bps)} (${
        s.received ?? "?"
      } datagrams, by the reflector's count)`
      : `achieved ${s.achieved_pps} pps, ${formatBits(s.achieved_bps)} (${s.received} replies)`,
    lossLine(s),
  );
  if (s.one_way_answered > 0) {
    lines.push(
      `the reflector answered ${s.one_way_answered} one-way PINGs: it predates one-way mode, ` +
        "so the way back was not idle",
    );
  }
  if (s.server_kernel_drops !== null && s.server_kernel_drops > 0) {
    lines.push(
      `the server's kernel dropped ${s.server_kernel_drops} datagrams during the run (all ` +
        "sources: its receive buffer was full; see udp serve --rcvbuf)",
    );
  }
  if (s.back !== null) lines.push(...backLines(s.back));
  const icmp = icmpLine(s.icmp, s.errors, "datagram");
  if (icmp !== null) lines.push(icmp);
  if (s.corrupted > 0) {
    lines.push(`${s.corrupted} corrupted replies (failed their check: not counted as received)`);
  }
  if (oneWay(s) && s.jitter_ms !== null) {
    lines.push(`one-way jitter ${formatStat(s.jitter_ms)} ms (RFC 3550, by the reflector)`);
  }
  if (!oneWay(s) && (s.received ?? 0) > 0) {
    lines.push(
      `rtt min/avg/max = ${formatStat(s.rtt_ms.min)}/${formatStat(s.rtt_ms.avg)}/${
        formatStat(s.rtt_ms.max)
      } ms, ` +
        `p50/p90/p99 = ${formatStat(s.rtt_ms.p50)}/${formatStat(s.rtt_ms.p90)}/${
          formatStat(s.rtt_ms.p99)
        } ms` +
        (s.jitter_ms === null ? "" : `, jitter ${formatStat(s.jitter_ms)} ms`),
    );
  }
  lines.push(`${s.duplicates} duplicates, ${s.reordered} reordered`);
  return lines.join("\n");
}
