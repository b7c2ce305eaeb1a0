/**
 * `deno task bench`'s "reflector capacity, closed loop" section: replies per second with a
 * fixed window of 64 datagrams in flight (scripts/anchors/loadgen.c, sendmmsg/recvmmsg, every
 * reply checked), the generator pinned to CPU 0 and the server to CPU 1, for `udp serve` (raw
 * datagrams, answered `ack:` + the datagram, and PING frames), `udp serve --raw echo`, and two
 * anchors: a C recvmmsg/sendmmsg echo (scripts/anchors/echo.c) and the classic Python
 * recvfrom/sendto loop (scripts/anchors/echo.py).
 *
 * @module
 */

import { udpCommand } from "../flags.ts";
import {
  type Anchors,
  buildAnchors,
  ECHO_PY,
  loadgen,
  type LoadgenResult,
  removeAnchors,
} from "./anchors.ts";
import { listeningPort, median, medianBy, onPath, type SectionReport, Server } from "./common.ts";

/** Seconds of each measurement ($UDP_BENCH_CLOSED_LOOP_SECONDS for a quick look). */
const SECONDS = Number(Deno.env.get("UDP_BENCH_CLOSED_LOOP_SECONDS") ?? 5);
const ROUNDS = 3;
const WINDOW = 64;
const SIZE = 64;
const LOADGEN_CPU = 0;
const SERVER_CPU = 1;
/** A row whose rounds spread more than this (% of its median) marks the section noisy. */
const NOISY_SPREAD = 25;

/** One server and mode: every round's result, the median round and the server's CPU. */
export interface ClosedLoopRow {
  /** Stable name: udp_serve_ack, udp_serve_ping, c_echo_raw, c_echo_ping, python_raw, … */
  key: string;
  server: string;
  mode: "raw" | "ping";
  rounds: LoadgenResult[];
  median: LoadgenResult;
  /** The server's user + system CPU over the median round's seconds, % of one core. */
  serverCpuPercent: number;
}

/** What the section measured, or why it did not. */
export interface ClosedLoopFigures {
  skipped: string | null;
  seconds: number;
  rounds: number;
  window: number;
  size: number;
  rows: ClosedLoopRow[];
  /** Rows left out, and why (python3 missing). */
  notes: string[];
}

interface Config {
  key: string;
  server: string;
  mode: "raw" | "ping";
  process: string;
}

const CONFIGS: Config[] = [
  {
    key: "udp_serve_ack",
    server: "`udp serve` (raw, `ack:` replies)",
    mode: "raw",
    process: "udp",
  },
  { key: "udp_serve_ping", server: "`udp serve` (PING → PONG)", mode: "ping", process: "udp" },
  { key: "c_echo_raw", server: "C echo, recvmmsg/sendmmsg (raw)", mode: "raw", process: "c" },
  { key: "c_echo_ping", server: "C echo (PING frames, echoed)", mode: "ping", process: "c" },
  { key: "python_raw", server: "Python recvfrom/sendto loop (raw)", mode: "raw", process: "py" },
  {
    key: "udp_serve_echo",
    server: "`udp serve --raw echo` (raw)",
    mode: "raw",
    process: "udpEcho",
  },
];

/** Starts every server, pinned; each's port. */
async function startServers(anchors: Anchors, python: boolean) {
  const pin = (command: string, args: string[]) =>
    new Server("taskset", ["-c", String(SERVER_CPU), command, ...args], "piped");
  const servers = new Map<string, { server: Server; port: number }>();
  const [udp, udpArgs] = udpCommand(["serve", "--host", "127.0.0.1", "--port", "0", "--json"]);
  const serve = pin(udp, udpArgs);
  servers.set("udp", { server: serve, port: listeningPort(await serve.firstLine()) });
  const [, echoArgs] = udpCommand([
    ...["serve", "--host", "127.0.0.1", "--port", "0", "--raw", "echo", "--json"],
  ]);
  const serveEcho = pin(udp, echoArgs);
  servers.set("udpEcho", { server: serveEcho, port: listeningPort(await serveEcho.firstLine()) });
  const c = pin(anchors.echo, ["0"]);
  servers.set("c", { server: c, port: Number(await c.firstLine()) });
  if (python) {
    const py = pin("python3", [ECHO_PY, "0"]);
    servers.set("py", { server: py, port: Number(await py.firstLine()) });
  }
  return servers;
}

async function measureRows(anchors: Anchors, python: boolean): Promise<ClosedLoopRow[]> {
  const servers = await startServers(anchors, python);
  try {
    const configs = CONFIGS.filter((c) => servers.has(c.process));
    const options = (mode: "raw" | "ping", seconds: number) => ({
      mode,
      seconds,
      window: WINDOW,
      size: SIZE,
      cpu: LOADGEN_CPU,
    });
    // A second of each first: the JIT compiles udp serve's paths, caches warm.
    for (const c of configs) {
      await loadgen(anchors, servers.get(c.process)!.port, options(c.mode, 1));
    }
    const results = new Map<string, { result: LoadgenResult; cpuMs: number }[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of configs) {
        const { server, port } = servers.get(c.process)!;
        const before = await server.cpuMs();
        const result = await loadgen(anchors, port, options(c.mode, SECONDS));
        const cpuMs = (await server.cpuMs()) - before;
        results.set(c.key, [...results.get(c.key) ?? [], { result, cpuMs }]);
      }
    }
    return configs.map((c) => {
      const rounds = results.get(c.key)!;
      const mid = medianBy(rounds, (r) => r.result.replies_per_s);
      return {
        key: c.key,
        server: c.server,
        mode: c.mode,
        rounds: rounds.map((r) => r.result),
        median: mid.result,
        serverCpuPercent: mid.cpuMs / (mid.result.seconds * 1000) * 100,
      };
    });
  } finally {
    for (const { server } of servers.values()) await server.stop();
  }
}

/** Runs the section (about 100 s), or says why it cannot. */
export async function measureClosedLoop(): Promise<ClosedLoopFigures> {
  const figures: ClosedLoopFigures = {
    skipped: null,
    seconds: SECONDS,
    rounds: ROUNDS,
    window: WINDOW,
    size: SIZE,
    rows: [],
    notes: [],
  };
  if (!onPath("taskset")) return { ...figures, skipped: "taskset not found (util-linux)" };
  if (navigator.hardwareConcurrency < 2) {
    return { ...figures, skipped: "fewer than 2 CPUs: the generator and the server need one each" };
  }
  const python = onPath("python3");
  if (!python) figures.notes.push("The Python loop is left out: python3 not found.");
  const anchors = await buildAnchors();
  if (typeof anchors === "string") return { ...figures, skipped: anchors };
  try {
    figures.rows = await measureRows(anchors, python);
  } finally {
    await removeAnchors(anchors);
  }
  return figures;
}

/**
 * The targets: udp's row over an anchor's. Against the Python loop, `ceiling` is the C echo's
 * row in the same mode: what the fastest server of the section gets over the Python loop under
 * this generator, in the Targets table's last column (where it misses the target too, the
 * generator, not the server, is what bounds the ratio on this machine).
 */
const RATIO_TARGETS = [
  { key: "ratio_udp_ack_c", udp: "udp_serve_ack", anchor: "c_echo_raw", min: 0.9 },
  { key: "ratio_udp_ping_c", udp: "udp_serve_ping", anchor: "c_echo_ping", min: 0.9 },
  {
    key: "ratio_udp_ack_python",
    udp: "udp_serve_ack",
    anchor: "python_raw",
    min: 1.5,
    ceiling: "c_echo_raw",
  },
  {
    key: "ratio_udp_ping_python",
    udp: "udp_serve_ping",
    anchor: "python_raw",
    min: 1.5,
    ceiling: "c_echo_ping",
  },
] as const;

const TARGET_TEXT: Record<string, string> = {
  ratio_udp_ack_c: "`udp serve` raw (`ack:`) replies/s ≥ 0.9 × the C echo's, closed loop",
  ratio_udp_ping_c: "`udp serve` PING replies/s ≥ 0.9 × the C echo's (PINGs echoed), closed loop",
  ratio_udp_ack_python: "`udp serve` raw (`ack:`) replies/s ≥ 1.5 × the Python loop's, closed loop",
  ratio_udp_ping_python: "`udp serve` PING replies/s ≥ 1.5 × the Python loop's, closed loop",
};

/** The section's text, target rows and headline figures. */
export function closedLoopReport(f: ClosedLoopFigures): SectionReport {
  const headlines: Record<string, number | null> = {};
  for (const c of CONFIGS) headlines[`closed_loop.${c.key}_pps`] = null;
  for (const t of RATIO_TARGETS) headlines[`closed_loop.${t.key}`] = null;
  headlines["closed_loop.max_spread_percent"] = null;
  if (f.skipped !== null) {
    return {
      markdown: [`Skipped: ${f.skipped}.`, ""],
      targets: [],
      headlines,
    };
  }
  const byKey = new Map(f.rows.map((r) => [r.key, r]));
  const lines = [
    `scripts/anchors/loadgen.c keeps ${f.window} datagrams of ${f.size} bytes in flight (a new one`,
    "for each reply, or after 200 ms without one), sent with `sendmmsg()` and read with",
    "`recvmmsg()`, and checks every reply in full: raw, the datagram echoed or `ack:` + it (4",
    "bytes longer: `udp serve`'s default answer); PING frames, the CRC-32C of every reply, its",
    "type (PONG, or the PING echoed), session, sequence, send time and padding. The generator",
    `runs on CPU ${LOADGEN_CPU} and the server on CPU ${SERVER_CPU} (\`taskset -c\`), so neither`,
    `takes the other's processor. ${f.seconds} s per measurement after a second of warm-up each, ` +
    `the ${f.rounds} rounds alternated; the table has each one's median round. The anchors:`,
    "scripts/anchors/echo.c (a batch of up to 64 with `recvmmsg()`, sent back with one",
    "`sendmmsg()`, nothing else) and scripts/anchors/echo.py (the classic `recvfrom()`/`sendto()`",
    "loop), both built and started by the harness. The generator spins on a non-blocking read",
    "(it has its core to itself, and so never pays for waking up); it waited for the server the",
    "share of the run in the last column, with nothing to read: where that is low, the generator",
    "bounded the row, and the server could answer more. The column before it is the generator's",
    "busy time (the run less that wait) per reply: its own cost, which depends on the server, as",
    "it reads what came in each `recvmmsg()`: a server that answers in bursts (a `sendmmsg()`, a",
    "GSO super-datagram) costs it fewer system calls per reply than one that answers one at a time. So",
    "where the generator bounds the fast rows, the ratios to the Python loop are capped by it: the",
    "C echo's own ratio to the Python loop, in the Targets table's last column, is that cap in",
    "this run. Server CPU is its user + system time over the median round (100% is its core;",
    "`udp serve` looks for the next datagram without sleeping while it waits for one). The anchors only",
    "copy: `udp serve` does its whole job (a PONG: the PING's CRC-32C checked, two timestamps,",
    "the session's counts, a new CRC-32C; raw: 4 bytes more each way), which the targets allow",
    "for: 0.9 × the C echo, 1.5 × the Python loop.",
    "",
    "| Server | Mode | Replies/s | Rounds (replies/s) | Reply | Bad | Late | Timeouts | Server CPU (%) | Generator busy per reply (µs) | Generator waited (%) |",
    "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of f.rows) {
    const m = r.median;
    lines.push(
      `| ${r.server} | ${r.mode} | ${Math.round(m.replies_per_s)} | ${
        r.rounds.map((x) => Math.round(x.replies_per_s)).join(", ")
      } | ${m.reply_kind} | ${m.bad} | ${m.late} | ${m.timeouts} | ${
        r.serverCpuPercent.toFixed(0)
      } | ${generatorBusyUs(m).toFixed(2)} | ${(m.waited_s / m.seconds * 100).toFixed(0)} |`,
    );
    headlines[`closed_loop.${r.key}_pps`] = m.replies_per_s;
  }
  const targets: SectionReport["targets"] = [];
  const ratioTexts: string[] = [];
  for (const t of RATIO_TARGETS) {
    const udp = byKey.get(t.udp);
    const anchor = byKey.get(t.anchor);
    if (!udp || !anchor) continue;
    const value = udp.median.replies_per_s / anchor.median.replies_per_s;
    headlines[`closed_loop.${t.key}`] = value;
    const ceiling = "ceiling" in t ? byKey.get(t.ceiling) : undefined;
    const cap = ceiling === undefined
      ? ""
      : `${(ceiling.median.replies_per_s / anchor.median.replies_per_s).toFixed(2)} (C echo)`;
    targets.push([TARGET_TEXT[t.key], value.toFixed(2), value >= t.min, cap]);
    ratioTexts.push(`${t.udp} / ${t.anchor} = ${value.toFixed(2)} (target ≥ ${t.min})`);
  }
  lines.push("", `Ratios: ${ratioTexts.join("; ")}.`, ...f.notes, "");
  const bad = f.rows.reduce((sum, r) => sum + r.rounds.reduce((s, x) => s + x.bad, 0), 0);
  if (bad > 0) {
    lines.push(`**${bad} bad replies** over all rounds: a reflector answered wrongly.`, "");
  }
  lines.push(...spreadLines(f.rows));
  headlines["closed_loop.max_spread_percent"] = Math.max(...f.rows.map(spreadOf));
  return { markdown: lines, targets, headlines };
}

/** The generator's time per reply with something to read (its run less its wait), in µs. */
export function generatorBusyUs(result: LoadgenResult): number {
  return result.replies === 0 ? 0 : (result.seconds - result.waited_s) / result.replies * 1e6;
}

/** How far a row's rounds spread: highest − lowest, in % of their median. */
function spreadOf(row: ClosedLoopRow): number {
  const values = row.rounds.map((x) => x.replies_per_s);
  return (Math.max(...values) - Math.min(...values)) / median(values) * 100;
}

/** How far each row's rounds spread, and a warning when that makes the ratios meaningless. */
function spreadLines(rows: ClosedLoopRow[]): string[] {
  const lines: string[] = [];
  const spreads = rows.map((r) => [r.key, spreadOf(r)] as const);
  lines.push(
    "Spread of the rounds (highest − lowest, of the median): " +
      spreads.map(([key, spread]) => `${key} ${spread.toFixed(0)}%`).join(", ") + ".",
    "",
  );
  if (spreads.some(([, spread]) => spread > NOISY_SPREAD)) {
    lines.push(
      `**Noisy:** rounds of a row differ by more than ${NOISY_SPREAD}% of its median, so ` +
        "these ratios say more about the machine than about the servers (see the CPU time " +
        "stolen by the hypervisor, in the header); measure again on a quiet machine.",
      "",
    );
  }
  return lines;
}
