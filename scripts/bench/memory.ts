/**
 * `deno task bench`'s memory section: the RSS of `udp serve` and of a bare Deno echo loop
 * after answering about 10 k, 500 k and 1 M datagrams at 50 k pps.
 *
 * @module
 */

import { FLOOR_FLAGS, type SectionReport, Server, startUdpServe, udpBench } from "./common.ts";

/** The RSS after each number of datagrams answered. */
export type RssPoints = { datagrams: number; rssKiB: number }[];

/** What the memory section measured. */
export interface MemoryFigures {
  udp: RssPoints;
  floor: RssPoints;
}

/** RSS of a reflector after answering about 10 k, 500 k and 1 M datagrams at 50 k pps. */
async function rssSeries(server: Server, port: number): Promise<RssPoints> {
  let served = 0;
  const points: RssPoints = [];
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

/** Runs the memory section (about 45 s). */
export async function measureMemory(): Promise<MemoryFigures> {
  const fresh = await startUdpServe();
  const udp = await rssSeries(fresh.server, fresh.port);
  await fresh.server.stop();
  const floorEcho = new Server(Deno.execPath(), [...FLOOR_FLAGS, "echo"], "piped");
  const floor = await rssSeries(floorEcho, Number(await floorEcho.firstLine()));
  await floorEcho.stop();
  return { udp, floor };
}

/** The growth in % of the RSS from point `from` to point `to`. */
export function growth(points: RssPoints, from: number, to: number): number {
  return (points[to].rssKiB / points[from].rssKiB - 1) * 100;
}

/** The section's text, target rows and headline figures. */
export function memoryReport(f: MemoryFigures): SectionReport {
  const lines = [
    "| Datagrams answered | `udp serve` RSS (KiB) | Deno floor echo RSS (KiB) |",
    "| ---: | ---: | ---: |",
  ];
  for (const [i, point] of f.udp.entries()) {
    lines.push(`| ${point.datagrams} | ${point.rssKiB} | ${f.floor[i].rssKiB} |`);
  }
  const text = (points: RssPoints, from: number, to: number) => growth(points, from, to).toFixed(1);
  lines.push(
    "",
    `udp serve: ${text(f.udp, 0, 2)}% from the first to the last point (target: flat within ` +
      `±10%), ${text(f.udp, 1, 2)}% from the second to the last. The bare Deno loop: ` +
      `${text(f.floor, 0, 2)}% and ${text(f.floor, 1, 2)}%.`,
    "",
  );
  const udpGrowth = growth(f.udp, 0, 2);
  return {
    markdown: lines,
    targets: [[
      "`udp serve` RSS flat (±10%) from 10 k to 1 M datagrams",
      `${udpGrowth.toFixed(1)}%`,
      Math.abs(udpGrowth) <= 10,
      `${text(f.floor, 0, 2)}% (Deno API)`,
    ]],
    headlines: {
      "memory.udp_rss_growth_percent": udpGrowth,
      "memory.udp_rss_last_kib": f.udp[2].rssKiB,
      "memory.deno_floor_rss_growth_percent": growth(f.floor, 0, 2),
    },
  };
}
