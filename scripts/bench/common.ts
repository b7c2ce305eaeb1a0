/**
 * What every section of `deno task bench` shares: running a command, a server subprocess,
 * `udp ping` and `udp bench` with the report's 64-byte datagrams, medians and ratios.
 *
 * @module
 */

import type { BenchSummary } from "../../lib/probe/bench.ts";
import type { PingSummary } from "../../lib/probe/ping.ts";
import { udpCommand } from "../flags.ts";

/** scripts/deno_floor.ts, the bare loops. */
export const DENO_FLOOR: string = new URL("../deno_floor.ts", import.meta.url).pathname;
/** `deno` arguments for the Deno-API floor (add its mode and arguments). */
export const FLOOR_FLAGS: string[] = [
  "run",
  "--quiet",
  "--unstable-net",
  "--allow-net",
  DENO_FLOOR,
];
/** `deno` arguments for the native (FFI) floor. */
export const NATIVE_FLOOR_FLAGS: string[] = [
  "run",
  "--quiet",
  "--allow-ffi",
  DENO_FLOOR,
  "--native",
];
/** udp's padding: with the 44-byte header, the 64-byte datagrams the comparisons use. */
export const PAYLOAD = 20;
/** The datagram size of the comparisons. */
export const DATAGRAM = 64;
/** Rounds of the comparisons that move most between runs; the report gives their medians. */
export const ROUNDS = 3;

/** What a command prints on stdout; throws with its stderr if it fails. */
export async function run(command: string, args: string[]): Promise<string> {
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

/** What `udp ARGS` prints. */
export async function udp(args: string[]): Promise<string> {
  const [command, argv] = udpCommand(args);
  return await run(command, argv);
}

/** The first line a command prints (its version), or "not found". */
export async function version(command: string, args: string[]): Promise<string> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return "not found";
  }
}

/** Whether `program` is on PATH. */
export function onPath(program: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${program}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** A server subprocess, stopped with SIGINT. */
export class Server {
  readonly process: Deno.ChildProcess;
  constructor(command: string, args: string[], stdout: "piped" | "null" = "null") {
    this.process = new Deno.Command(command, { args, stdout, stderr: "null" }).spawn();
  }
  /** The first line it prints (a port, a `--json` listening line). */
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

/** A free UDP port on 127.0.0.1 (for servers that cannot bind port 0 and say so). */
export function freePort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/** The port of a `udp serve --json` listening line. */
export function listeningPort(line: string): number {
  return Number(JSON.parse(line).address.split(":").at(-1));
}

/** `udp serve --port 0 --raw echo --json` on 127.0.0.1, and its port. */
export async function startUdpServe(): Promise<{ server: Server; port: number }> {
  const [command, argv] = udpCommand(["serve", "--port", "0", "--raw", "echo", "--json"]);
  const server = new Server(command, argv, "piped");
  return { server, port: listeningPort(await server.firstLine()) };
}

/** p50 and p99 of udp ping's RTT and of its whole round trip (the reflector's time in). */
export interface PingFigures {
  p50: number;
  p99: number;
  totalP50: number;
  totalP99: number;
}

/** Each figure's median over rounds. */
export function medianFigures(rounds: PingFigures[]): PingFigures {
  return {
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    totalP50: median(rounds.map((r) => r.totalP50)),
    totalP99: median(rounds.map((r) => r.totalP99)),
  };
}

/** `udp ping -q --json` to 127.0.0.1:PORT with 64-byte datagrams: its percentiles. */
export async function udpPing(port: number, interval: string, count: string): Promise<PingFigures> {
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
export async function udpBench(
  port: number,
  rate: string,
  durationS: string,
): Promise<BenchSummary> {
  const args = ["--rate", rate, "--duration", durationS, "-s", String(PAYLOAD), "-i", "0"];
  return JSON.parse(await udp(["bench", `127.0.0.1:${port}`, ...args, "--json"]));
}

/** a / b with two decimals. */
export const ratio = (a: number, b: number): string => (a / b).toFixed(2);
/** The median (the upper one of an even count). */
export const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[values.length >> 1];
/** The element whose `key` is the median of all. */
export const medianBy = <T>(items: T[], key: (item: T) => number): T =>
  [...items].sort((a, b) => key(a) - key(b))[items.length >> 1];
/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A row of the report's target table: target, udp's figure, met, a bare loop's. */
export type TargetRow = [string, string, boolean, string];

/** What a section gives the report: its text, its target rows and its headline figures. */
export interface SectionReport {
  /** The section's Markdown, without its heading. */
  markdown: string[];
  targets: TargetRow[];
  /** Headline figures by stable name (docs/performance-history.json keeps them). */
  headlines: Record<string, number | null>;
}
