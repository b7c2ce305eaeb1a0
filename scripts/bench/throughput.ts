/**
 * `deno task bench`'s throughput section: 1400-byte datagrams as fast as they go, `udp bench
 * --one-way` and reflected against what iperf3's UDP mode gets through (`-u -b 0 -l 1400`), each
 * the median of 3 alternated rounds; what arrived, not what was offered, is compared.
 *
 * @module
 */

import type { BenchSummary } from "../../lib/probe/bench.ts";
import {
  freePort,
  listeningPort,
  median,
  medianBy,
  ratio,
  ROUNDS,
  run,
  type SectionReport,
  Server,
  sleep,
  udp,
} from "./common.ts";
import { udpCommand } from "../flags.ts";

/** What the throughput section measured. */
export interface ThroughputFigures {
  /** iperf3's received bit/s of UDP payload, per round. */
  iperfBps: number[];
  /** `udp bench --one-way -s 1400 --rate max`, the median round by received bit/s. */
  oneWay: BenchSummary;
  /** `udp bench -s 1400 --rate max` (reflected), the median round by bit/s back. */
  reflected: BenchSummary;
  /** Every round's received bit/s, one-way and reflected. */
  oneWayBps: number[];
  reflectedBps: number[];
}

const SECONDS = "5";

/** Runs the throughput section (about 1.5 min). */
export async function measureThroughput(): Promise<ThroughputFigures> {
  const [command, argv] = udpCommand(["serve", "--port", "0", "--gro", "--json"]);
  const serve = new Server(command, argv, "piped");
  const port = listeningPort(await serve.firstLine());
  const iperfBps: number[] = [];
  const oneWays: BenchSummary[] = [];
  const reflecteds: BenchSummary[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      iperfBps.push(await iperf());
      oneWays.push(await bench(port, ["--one-way"]));
      reflecteds.push(await bench(port, []));
    }
  } finally {
    await serve.stop();
  }
  return {
    iperfBps,
    oneWay: medianBy(oneWays, (s) => s.achieved_bps),
    reflected: medianBy(reflecteds, (s) => s.achieved_bps),
    oneWayBps: oneWays.map((s) => s.achieved_bps),
    reflectedBps: reflecteds.map((s) => s.achieved_bps),
  };
}

async function bench(port: number, mode: string[]): Promise<BenchSummary> {
  const args = ["--rate", "max", "-s", "1400", "--duration", SECONDS, "-i", "0", "--json"];
  return JSON.parse(await udp(["bench", `127.0.0.1:${port}`, ...mode, ...args]));
}

/** One `iperf3 -u -b 0 -l 1400` run: the bit/s its server received. */
async function iperf(): Promise<number> {
  const port = freePort();
  const server = new Server("iperf3", ["-s", "-1", "-B", "127.0.0.1", "-p", String(port)]);
  await sleep(500);
  try {
    const json = JSON.parse(
      await run("iperf3", [
        ...["-c", "127.0.0.1", "-p", String(port), "-u", "-b", "0", "-l", "1400"],
        ...["-t", SECONDS, "-J"],
      ]),
    );
    // The receiver's figure (iperf3 3.12 has it as sum_received; older ones only the sum,
    // whose lost_percent says what did not arrive).
    const received = json.end.sum_received?.bits_per_second;
    const sum = json.end.sum;
    return received ?? sum.bits_per_second * (1 - (sum.lost_percent ?? 0) / 100);
  } finally {
    await server.stop();
  }
}

/** The section's text, target rows and headline figures. */
export function throughputReport(f: ThroughputFigures): SectionReport {
  const iperf = median(f.iperfBps);
  const gbit = (bps: number) => (bps / 1e9).toFixed(2);
  const line = (s: BenchSummary) =>
    `${gbit(s.achieved_bps)} | ${Math.round(s.achieved_pps)} | ${
      s.loss_percent === null ? "-" : s.loss_percent.toFixed(1)
    }% | ${gbit(s.offered_bps)}`;
  const rounds = (values: number[]) => values.map(gbit).join(", ");
  return {
    markdown: [
      "Loopback, 5 s each, medians of 3 alternated rounds. `udp serve --gro` is the reflector " +
      "(udp bench sends with GSO; with GRO the reflector reads what it coalesces, and reports " +
      "its kernel drops as unknown). udp's datagrams are 1448 bytes (`-s` is the padding after " +
      "the 48 bytes of header and check), iperf3's 1400: each tool's received bit/s of UDP " +
      "payload as it counts it.",
      "",
      "| Run | Received (Gbit/s) | Received (pps) | Loss | Offered (Gbit/s) |",
      "| --- | ---: | ---: | ---: | ---: |",
      `| \`udp bench --one-way -s 1400 --rate max\` | ${line(f.oneWay)} |`,
      `| \`udp bench -s 1400 --rate max\` (reflected: back) | ${line(f.reflected)} |`,
      `| \`iperf3 -u -b 0 -l 1400\` (its server's) | ${gbit(iperf)} | | | |`,
      "",
      `Rounds (Gbit/s received): one-way ${rounds(f.oneWayBps)}; reflected ${
        rounds(f.reflectedBps)
      }; iperf3 ${rounds(f.iperfBps)}. One-way / iperf3: ${
        ratio(f.oneWay.achieved_bps, iperf)
      }; reflected / iperf3: ${ratio(f.reflected.achieved_bps, iperf)}.`,
      "",
    ],
    targets: [
      [
        "`udp bench --one-way -s 1400 --rate max` received ≥ 2 × iperf3's",
        ratio(f.oneWay.achieved_bps, iperf),
        f.oneWay.achieved_bps >= 2 * iperf,
        "",
      ],
      [
        "`udp bench -s 1400 --rate max` (reflected) ≥ 1 × iperf3's",
        ratio(f.reflected.achieved_bps, iperf),
        f.reflected.achieved_bps >= iperf,
        "",
      ],
    ],
    headlines: {
      "throughput.iperf3_received_bps": iperf,
      "throughput.one_way_received_bps": f.oneWay.achieved_bps,
      "throughput.reflected_received_bps": f.reflected.achieved_bps,
      "throughput.ratio_one_way_iperf3": f.oneWay.achieved_bps / iperf,
      "throughput.ratio_reflected_iperf3": f.reflected.achieved_bps / iperf,
    },
  };
}
