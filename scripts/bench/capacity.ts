/**
 * `deno task bench`'s open-loop reflector capacity: `udp bench --rate max` against `udp serve
 * --raw echo`, Node's `node:dgram` echo and the bare loops, replies per second and the
 * server's CPU per reply.
 *
 * @module
 */

import type { BenchSummary } from "../../lib/probe/bench.ts";
import {
  FLOOR_FLAGS,
  medianBy,
  NATIVE_FLOOR_FLAGS,
  ratio,
  ROUNDS,
  type SectionReport,
  Server,
  startUdpServe,
  udpBench,
} from "./common.ts";

const NODE_ECHO = new URL("../node_echo_server.mjs", import.meta.url).pathname;

/** One load of 5 s against a server: what came back, and the server's CPU. */
export interface Capacity {
  summary: BenchSummary;
  cpuMs: number;
  cpuUsPerDatagram: number;
}

/** What the capacity section measured (each the round with the median replies/s). */
export interface CapacityFigures {
  udp: Capacity;
  node: Capacity;
  floor: Capacity;
  native: Capacity;
}

async function capacity(server: Server, port: number): Promise<Capacity> {
  const before = await server.cpuMs();
  const summary = await udpBench(port, "max", "5");
  const cpu = (await server.cpuMs()) - before;
  return {
    summary,
    cpuMs: cpu,
    cpuUsPerDatagram: (cpu * 1000) / Math.max(1, summary.received ?? 0),
  };
}

/** Runs the open-loop capacity section (about 40 s). */
export async function measureCapacity(): Promise<CapacityFigures> {
  const serve = await startUdpServe();
  const node = new Server("node", [NODE_ECHO], "piped");
  const nodePort = Number(await node.firstLine());
  const udpRounds: Capacity[] = [];
  const nodeRounds: Capacity[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    udpRounds.push(await capacity(serve.server, serve.port));
    nodeRounds.push(await capacity(node, nodePort));
  }
  await node.stop();
  await serve.server.stop();
  const floorEcho = new Server(Deno.execPath(), [...FLOOR_FLAGS, "echo"], "piped");
  const floor = await capacity(floorEcho, Number(await floorEcho.firstLine()));
  await floorEcho.stop();
  const nativeEcho = new Server(Deno.execPath(), [...NATIVE_FLOOR_FLAGS, "echo"], "piped");
  const native = await capacity(nativeEcho, Number(await nativeEcho.firstLine()));
  await nativeEcho.stop();
  return {
    // The round with the median replies per second, for each server.
    udp: medianBy(udpRounds, (c) => c.summary.achieved_pps),
    node: medianBy(nodeRounds, (c) => c.summary.achieved_pps),
    floor,
    native,
  };
}

/** The section's text, target rows and headline figures. */
export function capacityReport(f: CapacityFigures): SectionReport {
  const { udp, node, floor, native } = f;
  const lines = [
    "Load: `udp bench --rate max --duration 5 -s 20` against each server in turn. Replies/s is",
    "what came back to the load generator (udp serve's own count of replies, which it reports to",
    "udp bench, is in the text below); CPU is the server process's user + system time. The load",
    "generator and the server share the machine's cores as the kernel schedules them: the closed",
    "loop below pins each to its own.",
    "",
    "| Server | Sent (pps) | Replies (pps) | CPU (ms) | CPU per reply (µs) |",
    "| --- | ---: | ---: | ---: | ---: |",
  ];
  const rows: [string, Capacity][] = [
    ["`udp serve --raw echo`", udp],
    ["Node.js `node:dgram` echo", node],
    ["Deno floor: bare echo loop", floor],
    ["Native floor: bare recvfrom/sendto echo loop", native],
  ];
  for (const [name, c] of rows) {
    lines.push(
      `| ${name} | ${Math.round(c.summary.offered_pps)} | ${
        Math.round(c.summary.achieved_pps)
      } | ${c.cpuMs} | ${c.cpuUsPerDatagram.toFixed(1)} |`,
    );
  }
  const pps = (c: Capacity) => c.summary.achieved_pps;
  lines.push(
    "",
    `Ratio udp / Node replies per second: ${ratio(pps(udp), pps(node))} (target ≥ 2); CPU per ` +
      `reply udp / Node: ${ratio(udp.cpuUsPerDatagram, node.cpuUsPerDatagram)}; replies per ` +
      `second udp / Deno floor: ${ratio(pps(udp), pps(floor))}, udp / native floor: ${
        ratio(pps(udp), pps(native))
      }. udp serve counted ${udp.summary.server_received} datagrams received and ` +
      `${udp.summary.server_replied} replies sent (${
        Math.round((udp.summary.server_replied ?? 0) / udp.summary.duration_s)
      } per second of load).`,
    "",
  );
  return {
    markdown: lines,
    targets: [[
      "`udp serve` replies/s ≥ 2 × Node's `node:dgram` echo",
      ratio(pps(udp), pps(node)),
      pps(udp) >= 2 * pps(node),
      ratio(pps(native), pps(node)),
    ]],
    headlines: {
      "capacity.udp_replies_pps": pps(udp),
      "capacity.node_replies_pps": pps(node),
      "capacity.deno_floor_replies_pps": pps(floor),
      "capacity.native_floor_replies_pps": pps(native),
      "capacity.udp_cpu_us_per_reply": udp.cpuUsPerDatagram,
      "capacity.node_cpu_us_per_reply": node.cpuUsPerDatagram,
      "capacity.native_floor_cpu_us_per_reply": native.cpuUsPerDatagram,
      "capacity.ratio_udp_node": pps(udp) / pps(node),
      "capacity.ratio_native_floor_node": pps(native) / pps(node),
    },
  };
}
