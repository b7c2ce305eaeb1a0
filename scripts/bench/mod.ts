/**
 * `deno task bench`: measures udp against the tools people use, on loopback, each comparison
 * in one run so that the ratio holds on a noisy machine. A full run writes docs/performance.md
 * and appends its figures to docs/performance-history.json; `--only NAME[,NAME]` runs some
 * sections, prints them and appends them to the history alone.
 *
 * It installs nothing: it needs sockperf, irtt and iperf3 (Debian packages of those names),
 * Node.js, and for the closed loop gcc, taskset and python3, on PATH. Every server binds
 * 127.0.0.1 on a free port; every run is bounded.
 *
 * @module
 */

import { type CapacityFigures, capacityReport, measureCapacity } from "./capacity.ts";
import { closedLoopReport, measureClosedLoop } from "./closed_loop.ts";
import { codecReport, measureCodec } from "./codec.ts";
import type { SectionReport } from "./common.ts";
import { measureDaemons } from "./daemons.ts";
import { daemonsReport } from "./daemons_report.ts";
import { appendRun, type HistoryRun, readHistory } from "./history.ts";
import { type LatencyFigures, latencyReport, measureLatency } from "./latency.ts";
import { finishFacts, machineFacts } from "./machine.ts";
import { measureMemory, memoryReport } from "./memory.ts";
import { fullReport, partialReport, type RanSection } from "./report.ts";
import { measureSender, type SenderFigures, senderReport } from "./sender.ts";
import { measureThroughput, throughputReport } from "./throughput.ts";

const REPORT = new URL("../../docs/performance.md", import.meta.url);

/** The figures the closing paragraphs need, filled in as their sections run. */
interface Kept {
  latency?: LatencyFigures;
  capacity?: CapacityFigures;
  sender?: SenderFigures;
}

interface Section {
  name: string;
  title: string;
  about: string;
  run: (kept: Kept) => Promise<SectionReport>;
}

/** Every section, in the report's order. */
const SECTIONS: Section[] = [
  {
    name: "latency",
    title: "Round-trip time",
    about: "udp ping -i 0 vs sockperf, -i 0.01 vs irtt, and the floors (~1.5 min)",
    run: async (kept) => latencyReport(kept.latency = await measureLatency()),
  },
  {
    name: "capacity",
    title: "Reflector capacity",
    about: "udp serve vs node:dgram echo under udp bench --rate max, open loop (~45 s)",
    run: async (kept) => capacityReport(kept.capacity = await measureCapacity()),
  },
  {
    name: "capacity-closed-loop",
    title: "Reflector capacity, closed loop",
    about: "udp serve vs a C echo and a Python loop, loadgen.c, pinned cores (~2 min)",
    run: async () => closedLoopReport(await measureClosedLoop()),
  },
  {
    name: "sender",
    title: "Sender rate",
    about: "udp bench --rate max vs iperf3 -u -b 0, and pacing at 10k (~20 s)",
    run: async (kept) => senderReport(kept.sender = await measureSender()),
  },
  {
    name: "throughput",
    title: "Throughput, 1400-byte datagrams",
    about: "udp bench --one-way and reflected at -s 1400 --rate max vs iperf3 -l 1400 (~1.5 min)",
    run: async () => throughputReport(await measureThroughput()),
  },
  {
    name: "memory",
    title: "udp serve memory",
    about: "RSS of udp serve and a bare loop from 10 k to 1 M datagrams (~45 s)",
    run: async () => memoryReport(await measureMemory()),
  },
  {
    name: "codec",
    title: "Codec",
    about: "deno bench of the frame codec (~10 s)",
    run: async () => codecReport(await measureCodec()),
  },
  {
    name: "daemons",
    title: "Daemons",
    about: "idle cost, hold time, /metrics under load, udp monitor at 1,000 targets (~4 min)",
    run: async () => daemonsReport(await measureDaemons()),
  },
];

const USAGE = `Usage: deno task bench [--only NAME[,NAME...]] [--label TEXT] [--no-history]

Without --only: every section, then docs/performance.md is rewritten and the run is appended
to docs/performance-history.json. With --only: those sections alone, printed to stdout (the
report is left as it is) and appended to the history, unless --no-history.
  --label TEXT   a label for the run in the history (what it was for: "before", a commit...)
  --no-history   do not append the run to docs/performance-history.json

Sections:
${SECTIONS.map((s) => `  ${s.name.padEnd(22)}${s.about}`).join("\n")}

Environment: UDP_BENCH_CLOSED_LOOP_SECONDS (default 5) shortens the closed loop's runs.`;

interface Options {
  only: Section[] | null;
  label: string | null;
  history: boolean;
}

function usageError(message: string): never {
  console.error(`bench: ${message} (deno task bench --help)`);
  Deno.exit(2);
}

function parseArgs(args: string[]): Options {
  const options: Options = { only: null, label: null, history: true };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => args[++i] ?? usageError(`${arg} needs a value`);
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (arg === "--only") {
      const names = value().split(",").filter((n) => n !== "");
      const unknown = names.filter((n) => !SECTIONS.some((s) => s.name === n));
      if (unknown.length > 0 || names.length === 0) {
        usageError(
          `unknown section '${unknown.join(",")}'; the sections: ${
            SECTIONS.map((s) => s.name).join(", ")
          }`,
        );
      }
      options.only = SECTIONS.filter((s) => names.includes(s.name));
    } else if (arg === "--label") {
      options.label = value();
    } else if (arg === "--no-history") {
      options.history = false;
    } else {
      usageError(`unknown argument '${arg}'`);
    }
  }
  return options;
}

const options = parseArgs(Deno.args);
const sections = options.only ?? SECTIONS;
const date = new Date().toISOString();
const facts = await machineFacts();
const kept: Kept = {};
const ran: RanSection[] = [];
for (const [i, section] of sections.entries()) {
  console.error(`${i + 1}/${sections.length} ${section.name}: ${section.about}`);
  ran.push({ title: section.title, report: await section.run(kept) });
}
await finishFacts(facts);
const run: HistoryRun = {
  date,
  label: options.label,
  full: options.only === null,
  sections: sections.map((s) => s.name),
  machine: facts,
  figures: Object.assign({}, ...ran.map((s) => s.report.headlines)),
};
const history = options.history ? await appendRun(run) : [...await readHistory(), run];
if (options.only === null) {
  const { latency, capacity, sender } = kept;
  const text = fullReport(date, facts, ran, {
    latency: latency!,
    capacity: capacity!,
    sender: sender!,
  }, history);
  await Deno.writeTextFile(REPORT, text);
  // The check gate formats docs too.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", REPORT.pathname] }).output();
  console.error(`wrote ${REPORT.pathname}`);
} else {
  console.log(partialReport(date, facts, ran, history));
}
if (options.history) console.error(`appended the run to docs/performance-history.json`);
