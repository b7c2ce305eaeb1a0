/**
 * `deno task bench`'s round-trip section: `udp ping -i 0` against sockperf's ping-pong, `udp
 * ping -i 0.01` against irtt and the kernel-stamped C floor (scripts/anchors/
 * stamped_pingpong.c), and the bare loops of scripts/deno_floor.ts at both.
 *
 * @module
 */

import {
  DATAGRAM,
  FLOOR_FLAGS,
  freePort,
  median,
  medianFigures,
  NATIVE_FLOOR_FLAGS,
  type PingFigures,
  ratio,
  ROUNDS,
  run,
  type SectionReport,
  Server,
  sleep,
  startUdpServe,
  udpPing,
} from "./common.ts";
import { buildAnchors, removeAnchors, type StampedPingpong, stampedPingpong } from "./anchors.ts";

/** A bare loop's ping-pong percentiles (ms). */
export interface FloorRtt {
  p50_ms: number;
  p99_ms: number;
}

/** What the round-trip section measured. */
export interface LatencyFigures {
  pingFast: PingFigures;
  sockperfP50: number;
  sockperfP99: number;
  irttMedians: number[];
  irttMedian: number;
  pingSlowRounds: PingFigures[];
  pingSlow: PingFigures;
  /** The kernel-stamped C floor's RTT at one probe every 10 ms, by round; or why it could not
   * be built (gcc missing, its errors). */
  stampedRounds: FloorRtt[] | string;
  stampedFloor: FloorRtt | null;
  floorRtt: FloorRtt;
  floorRttSlow: FloorRtt;
  nativeRtt: FloorRtt;
  nativeRttSlow: FloorRtt;
}

/** sockperf ping-pong for 3 s: its round trip (latency × 2) p50 and p99 in ms. */
async function sockperfRound(port: number): Promise<{ p50: number; p99: number }> {
  const out = await run("sockperf", [
    ...["ping-pong", "-i", "127.0.0.1", "-p", String(port), "-t", "3", "-m", String(DATAGRAM)],
  ]);
  const percentile = (p: string) =>
    Number(new RegExp(`percentile ${p} =\\s+([\\d.]+)`).exec(out)![1]);
  // sockperf reports one-way latency as RTT / 2: doubled here to compare RTTs.
  return { p50: (2 * percentile("50.000")) / 1000, p99: (2 * percentile("99.000")) / 1000 };
}

/** irtt at one probe every 10 ms for 5 s: its RTT median in ms. */
async function irttRound(port: number): Promise<number> {
  const out = await run("irtt", [
    ...["client", "-i", "10ms", "-d", "5s", "-l", String(DATAGRAM), "-Q", "-o", "-"],
    `127.0.0.1:${port}`,
  ]);
  return JSON.parse(out).stats.rtt.median / 1e6;
}

/** udp ping against sockperf and irtt, alternated ROUNDS times, and the floors. */
async function measureTools(port: number) {
  const sockperfPort = freePort();
  const sockperf = new Server("sockperf", [
    "server",
    "-i",
    "127.0.0.1",
    "-p",
    String(sockperfPort),
  ]);
  await sleep(500); // sockperf prints no ready line
  // Alternated: the machine's speed drifts, and each round compares like moments.
  const pingRounds: PingFigures[] = [];
  const sockperfRounds: { p50: number; p99: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    pingRounds.push(await udpPing(port, "0", "20000"));
    sockperfRounds.push(await sockperfRound(sockperfPort));
  }
  await sockperf.stop();
  const irttPort = freePort();
  const irtt = new Server("irtt", ["server", "-b", `127.0.0.1:${irttPort}`]);
  await sleep(500);
  // irtt's RTT leaves out the time its server says it took (server_processing_time), as udp's
  // does; both at one probe every 10 ms for 5 s, alternated as above.
  const irttMedians: number[] = [];
  const pingSlowRounds: PingFigures[] = [];
  // The floor of udp's RTT: the same stamps (just before each sendto(), arrivals by the kernel,
  // the server's hold left out) in the shortest C that makes them.
  const anchors = await buildAnchors();
  const floor = typeof anchors === "string"
    ? null
    : new Server(anchors.stampedPingpong, ["server", "0"], "piped");
  const stampedRounds: FloorRtt[] = [];
  try {
    const floorPort = floor === null ? 0 : Number(await floor.firstLine());
    for (let round = 0; round < ROUNDS; round++) {
      irttMedians.push(await irttRound(irttPort));
      pingSlowRounds.push(await udpPing(port, "0.01", "500"));
      if (typeof anchors !== "string") {
        stampedRounds.push(floorRttOf(await stampedPingpong(anchors, floorPort, 500, 10)));
      }
    }
  } finally {
    await irtt.stop();
    await floor?.stop();
    if (typeof anchors !== "string") await removeAnchors(anchors);
  }
  return {
    pingFast: medianFigures(pingRounds),
    sockperfP50: median(sockperfRounds.map((r) => r.p50)),
    sockperfP99: median(sockperfRounds.map((r) => r.p99)),
    irttMedians,
    irttMedian: median(irttMedians),
    pingSlowRounds,
    pingSlow: medianFigures(pingSlowRounds),
    stampedRounds: typeof anchors === "string" ? anchors : stampedRounds,
    stampedFloor: typeof anchors === "string" ? null : {
      p50_ms: median(stampedRounds.map((r) => r.p50_ms)),
      p99_ms: median(stampedRounds.map((r) => r.p99_ms)),
    },
  };
}

/** The stamped floor's client result as percentiles; throws when nothing came back. */
function floorRttOf(result: StampedPingpong): FloorRtt {
  if (result.p50_ms === null || result.p99_ms === null) {
    throw new Error(`stamped_pingpong: none of ${result.probes} probes came back`);
  }
  return { p50_ms: result.p50_ms, p99_ms: result.p99_ms };
}

/** The floors' ping-pong: the Deno API's and the native one's, at once and every 10 ms. */
async function measureFloors() {
  const deno = Deno.execPath();
  const floorEcho = new Server(deno, [...FLOOR_FLAGS, "echo"], "piped");
  const floorPort = await floorEcho.firstLine();
  const floorRtt = JSON.parse(await run(deno, [...FLOOR_FLAGS, "pingpong", floorPort, "20000"]));
  const floorRttSlow = JSON.parse(
    await run(deno, [...FLOOR_FLAGS, "pingpong", floorPort, "500", "10"]),
  );
  await floorEcho.stop();
  // The native floor: blocking recvfrom()/sendto() through FFI, nothing else on the thread.
  const nativeEcho = new Server(deno, [...NATIVE_FLOOR_FLAGS, "echo"], "piped");
  const nativePort = await nativeEcho.firstLine();
  const rounds: FloorRtt[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rounds.push(JSON.parse(
      await run(deno, [...NATIVE_FLOOR_FLAGS, "pingpong", nativePort, "20000"]),
    ));
  }
  const nativeRtt = {
    p50_ms: median(rounds.map((r) => r.p50_ms)),
    p99_ms: median(rounds.map((r) => r.p99_ms)),
  };
  const nativeRttSlow = JSON.parse(
    await run(deno, [...NATIVE_FLOOR_FLAGS, "pingpong", nativePort, "500", "10"]),
  );
  await nativeEcho.stop();
  return { floorRtt, floorRttSlow, nativeRtt, nativeRttSlow };
}

/** Runs the round-trip section (about a minute). */
export async function measureLatency(): Promise<LatencyFigures> {
  const serve = await startUdpServe();
  try {
    const tools = await measureTools(serve.port);
    return { ...tools, ...await measureFloors() };
  } finally {
    await serve.server.stop();
  }
}

const EXPLANATION = [
  "What each figure counts differs, so each is compared with the one that counts the same:",
  "",
  "- udp ping's **RTT** runs from the probe's hand-over to the kernel to its reply's arrival",
  "  at the socket (the kernel's timestamp, as ping(8) uses), minus the time the reflector says",
  "  it held the probe (udp serve stamps its arrival by the kernel too, so its wake-up and",
  "  queue count as held): the network's part, as irtt and TWAMP (RFC 5357) count it.",
  "- udp ping's **round trip** is the same with the reflector's time left in.",
  "- sockperf's figure (its one-way latency × 2) is a whole round trip, stamped in its own",
  "  process on both ends: compared with udp's round trip.",
  "- irtt's RTT leaves out its server's processing time, as udp's does, but is stamped in its",
  "  processes, after each wakes up: compared with udp's RTT. The extra accuracy of kernel",
  "  arrival stamps is one of udp's advantages here, and is in the ratio.",
  "- The floors (bare loops) stamp in their own process, everything included: compared with",
  "  udp's round trip; but the C floor of udp's RTT (scripts/anchors/stamped_pingpong.c) stamps",
  "  as udp does (each probe and reply just before its sendto(), arrivals by the kernel, the",
  "  server's hold left out): compared with udp's RTT.",
  "",
];

/** The section's text, target rows and headline figures. */
export function latencyReport(f: LatencyFigures): SectionReport {
  const { pingFast, pingSlow, sockperfP50, irttMedian } = f;
  const lines = [...EXPLANATION];
  lines.push("| Measurement | p50 (ms) | p99 (ms) | Ratio | Target |");
  lines.push("| --- | ---: | ---: | ---: | --- |");
  const row = (name: string, p50: number, p99: number | null, ratioText = "", target = "") =>
    lines.push(
      `| ${name} | ${p50.toFixed(4)} | ${
        p99 === null ? "" : p99.toFixed(4)
      } | ${ratioText} | ${target} |`,
    );
  /** A floor's row: compared with udp's round trip, since a bare loop stamps everything in. */
  const floorRow = (name: string, floor: FloorRtt, udp: PingFigures) =>
    row(
      name,
      floor.p50_ms,
      floor.p99_ms,
      `udp round trip/floor = ${ratio(udp.totalP50, floor.p50_ms)}`,
    );
  row("`udp ping -i 0 -c 20000`, round trip", pingFast.totalP50, pingFast.totalP99);
  row("`udp ping -i 0 -c 20000`, RTT", pingFast.p50, pingFast.p99);
  row(
    "`sockperf ping-pong -t 3 -m 64` (its latency × 2)",
    sockperfP50,
    f.sockperfP99,
    `udp round trip/sockperf = ${ratio(pingFast.totalP50, sockperfP50)}`,
    "≤ 1.15",
  );
  floorRow("Deno floor: bare send/receive ping-pong", f.floorRtt, pingFast);
  floorRow("Native floor: bare recvfrom/sendto ping-pong", f.nativeRtt, pingFast);
  row("`udp ping -i 0.01 -c 500`, RTT", pingSlow.p50, pingSlow.p99);
  row("`udp ping -i 0.01 -c 500`, round trip", pingSlow.totalP50, pingSlow.totalP99);
  row(
    "`irtt client -i 10ms -d 5s -l 64` (median)",
    irttMedian,
    null,
    `udp RTT/irtt = ${ratio(pingSlow.p50, irttMedian)}; udp round trip/irtt = ${
      ratio(pingSlow.totalP50, irttMedian)
    }`,
    "≤ 0.35 (RTT)",
  );
  if (f.stampedFloor !== null) {
    row(
      "C floor of the RTT: stamped_pingpong.c, one probe every 10 ms",
      f.stampedFloor.p50_ms,
      f.stampedFloor.p99_ms,
      `udp RTT/floor = ${ratio(pingSlow.p50, f.stampedFloor.p50_ms)}`,
    );
  }
  floorRow("Deno floor: bare ping-pong, one probe every 10 ms", f.floorRttSlow, pingSlow);
  floorRow("Native floor: the same, one probe every 10 ms", f.nativeRttSlow, pingSlow);
  lines.push(
    "",
    `irtt's medians, round by round: ${f.irttMedians.map((m) => m.toFixed(4)).join(", ")} ms;`,
    `udp ping -i 0.01 RTT p50s: ${f.pingSlowRounds.map((r) => r.p50.toFixed(4)).join(", ")} ms${
      typeof f.stampedRounds === "string"
        ? ` (the C floor was not built: ${f.stampedRounds}).`
        : `; the C floor's: ${f.stampedRounds.map((r) => r.p50_ms.toFixed(4)).join(", ")} ms.`
    }`,
    "",
  );
  return {
    markdown: lines,
    targets: [
      [
        "`udp ping -i 0` round trip p50 ≤ 1.15 × sockperf's (both with the reflector's time)",
        ratio(pingFast.totalP50, sockperfP50),
        pingFast.totalP50 <= 1.15 * sockperfP50,
        ratio(f.nativeRtt.p50_ms, sockperfP50),
      ],
      [
        "`udp ping -i 0.01` RTT p50 ≤ 0.35 × irtt's median (both without it)",
        ratio(pingSlow.p50, irttMedian),
        pingSlow.p50 <= 0.35 * irttMedian,
        f.stampedFloor === null ? "" : `${ratio(f.stampedFloor.p50_ms, irttMedian)} (C, stamped)`,
      ],
    ],
    headlines: latencyHeadlines(f),
  };
}

/** The section's headline figures, by their names in the history. */
function latencyHeadlines(f: LatencyFigures): Record<string, number> {
  const { pingFast, pingSlow, sockperfP50, irttMedian } = f;
  return {
    "rtt_fast.udp_round_trip_p50_ms": pingFast.totalP50,
    "rtt_fast.udp_rtt_p50_ms": pingFast.p50,
    "rtt_fast.sockperf_p50_ms": sockperfP50,
    "rtt_fast.deno_floor_p50_ms": f.floorRtt.p50_ms,
    "rtt_fast.native_floor_p50_ms": f.nativeRtt.p50_ms,
    "rtt_fast.ratio_udp_sockperf": pingFast.totalP50 / sockperfP50,
    "rtt_fast.ratio_native_floor_sockperf": f.nativeRtt.p50_ms / sockperfP50,
    "rtt_10ms.udp_rtt_p50_ms": pingSlow.p50,
    "rtt_10ms.udp_round_trip_p50_ms": pingSlow.totalP50,
    "rtt_10ms.irtt_median_ms": irttMedian,
    "rtt_10ms.native_floor_p50_ms": f.nativeRttSlow.p50_ms,
    "rtt_10ms.ratio_udp_irtt": pingSlow.p50 / irttMedian,
    "rtt_10ms.ratio_native_floor_irtt": f.nativeRttSlow.p50_ms / irttMedian,
    ...(f.stampedFloor === null ? {} : {
      "rtt_10ms.stamped_floor_p50_ms": f.stampedFloor.p50_ms,
      "rtt_10ms.ratio_stamped_floor_irtt": f.stampedFloor.p50_ms / irttMedian,
    }),
  };
}
