/**
 * `deno task bench`'s sender section: `udp bench --rate max` against iperf3's UDP send rate
 * and the Deno API's bare send loop, and how closely `udp bench --rate 10k` paces.
 *
 * @module
 */

import type { BenchSummary } from "../../lib/probe/bench.ts";
import {
  DATAGRAM,
  FLOOR_FLAGS,
  freePort,
  ratio,
  run,
  type SectionReport,
  Server,
  sleep,
  startUdpServe,
  udpBench,
} from "./common.ts";

/** What the sender section measured. */
export interface SenderFigures {
  udp: BenchSummary;
  iperfPps: number;
  iperfBps: number;
  floorPps: number;
  /** `udp bench --rate 10k --duration 5`. */
  pacing: BenchSummary;
}

/** Runs the sender section (about 25 s). */
export async function measureSender(): Promise<SenderFigures> {
  const serve = await startUdpServe();
  const udp = await udpBench(serve.port, "max", "5");
  const iperfPort = freePort();
  const iperfServer = new Server("iperf3", [
    "-s",
    "-1",
    "-B",
    "127.0.0.1",
    "-p",
    String(iperfPort),
  ]);
  await sleep(500);
  const iperf = JSON.parse(
    await run("iperf3", [
      ...["-c", "127.0.0.1", "-p", String(iperfPort), "-u", "-b", "0", "-l", String(DATAGRAM)],
      ...["-t", "5", "-J"],
    ]),
  );
  await iperfServer.stop();
  const floorEcho = new Server(Deno.execPath(), [...FLOOR_FLAGS, "echo"], "piped");
  const floorPort = await floorEcho.firstLine();
  const floor = JSON.parse(
    await run(Deno.execPath(), [...FLOOR_FLAGS, "flood", floorPort, "5"]),
  );
  await floorEcho.stop();
  // Pacing: the rate asked for against the rate sent (target: within 1% at 10,000 pps).
  const pacing = await udpBench(serve.port, "10k", "5");
  await serve.server.stop();
  return {
    udp,
    iperfPps: iperf.end.sum.packets / iperf.end.sum.seconds,
    iperfBps: iperf.end.sum.bits_per_second,
    floorPps: floor.pps,
    pacing,
  };
}

/** The section's text (the pacing paragraph included), target rows and headline figures. */
export function senderReport(f: SenderFigures): SectionReport {
  const pacingError = (f.pacing.offered_pps / 10_000 - 1) * 100;
  const mbit = (bps: number) => (bps / 1e6).toFixed(1);
  return {
    markdown: [
      "| Sender | Datagrams/s | Mbit/s |",
      "| --- | ---: | ---: |",
      `| \`udp bench --rate max -s 20\` | ${Math.round(f.udp.offered_pps)} | ${
        mbit(f.udp.offered_bps)
      } |`,
      `| \`iperf3 -u -b 0 -l 64\` | ${Math.round(f.iperfPps)} | ${mbit(f.iperfBps)} |`,
      `| Deno floor: bare send loop | ${Math.round(f.floorPps)} | ${
        mbit(f.floorPps * DATAGRAM * 8)
      } |`,
      "",
      `Ratio udp / iperf3: ${ratio(f.udp.offered_pps, f.iperfPps)} (target ≥ 0.8); udp / Deno ` +
      `floor: ${ratio(f.udp.offered_pps, f.floorPps)}.`,
      "",
      `**Pacing.** \`udp bench --rate 10k --duration 5\`: ${f.pacing.sent} datagrams in ` +
      `${f.pacing.duration_s} s, ${f.pacing.offered_pps} pps offered, ${pacingError.toFixed(2)}% ` +
      "from the rate asked for (target: within 1%).",
      "",
    ],
    targets: [
      [
        "`udp bench --rate max` ≥ 0.8 × iperf3's send rate",
        ratio(f.udp.offered_pps, f.iperfPps),
        f.udp.offered_pps >= 0.8 * f.iperfPps,
        ratio(f.floorPps, f.iperfPps) + " (Deno API)",
      ],
      [
        "`udp bench --rate 10k` within 1% of the rate",
        `${pacingError.toFixed(2)}%`,
        Math.abs(pacingError) <= 1,
        "",
      ],
    ],
    headlines: {
      "sender.udp_pps": f.udp.offered_pps,
      "sender.iperf3_pps": f.iperfPps,
      "sender.deno_floor_pps": f.floorPps,
      "sender.ratio_udp_iperf3": f.udp.offered_pps / f.iperfPps,
      "pacing.error_percent": pacingError,
    },
  };
}
