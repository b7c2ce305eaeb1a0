/**
 * docs/performance.md as `deno task bench` writes it after a full run: the header (how it was
 * measured, the machine), the target table, every section, what limits udp here, and the
 * History table; and the shorter text a `--only` run prints instead.
 *
 * @module
 */

import { ratio, type SectionReport, type TargetRow } from "./common.ts";
import type { CapacityFigures } from "./capacity.ts";
import type { LatencyFigures } from "./latency.ts";
import { type MachineFacts, machineLines } from "./machine.ts";
import type { SenderFigures } from "./sender.ts";
import { type HistoryRun, historyTable } from "./history.ts";

/** A section's result, with its heading. */
export interface RanSection {
  title: string;
  report: SectionReport;
}

const INTRODUCTION = [
  "Written by `deno task bench` (scripts/bench/mod.ts); every figure below comes from one full",
  "run of it. Only a full run writes this file: `deno task bench --only NAME[,NAME]` runs some",
  "sections (`--help` lists them), prints their text to stdout and adds their figures to",
  "docs/performance-history.json, whose runs the History table at the end shows side by side.",
  "Everything runs on loopback (127.0.0.1) with 64-byte datagrams (a 44-byte header and 20",
  'bytes of padding for udp), each comparison back to back in the same run. The "Deno floor"',
  "rows are scripts/deno_floor.ts: the same job as a bare Deno loop (one `receive()` and one",
  "`send()` per datagram, nothing else), the best a program can do with Deno's datagram API.",
  'The "native floor" rows are the same script with `--native`: blocking `recvfrom()` and',
  "`sendto()` of the C library through FFI, nothing else on the thread: the floor for udp's",
  "native backend (lib/net/), which udp uses here (`udp --version` says which). The closed",
  "loop's anchors are a C echo and the classic Python loop (scripts/anchors/).",
  "",
];

const TARGETS_INTRODUCTION = [
  "Each ratio is from this run; `udp ping` at both intervals, sockperf, irtt, the native",
  "floor's ping-pong and the reflector capacities are medians of 3 alternated rounds, since",
  "this machine's speed drifts. The last column is what a bare loop achieves in the same run",
  "(the native floor, or, for the sender, the bare send loop): where it misses a target too, no",
  "program doing that job this way on this machine would meet it.",
  "",
];

function targetTable(rows: TargetRow[]): string[] {
  return [
    "| Target | udp | Met | A bare loop |",
    "| --- | ---: | --- | ---: |",
    ...rows.map(([target, value, met, floor]) =>
      `| ${target} | ${value} | ${met ? "yes" : "**no**"} | ${floor} |`
    ),
    "",
  ];
}

function header(date: string, facts: MachineFacts): string[] {
  return [`- Date: ${date}`, ...machineLines(facts), ""];
}

/** What the report's closing section needs: the figures of three sections. */
export interface LimitFigures {
  latency: LatencyFigures;
  capacity: CapacityFigures;
  sender: SenderFigures;
}

/** "What limits udp here", with this run's figures, so every report carries it. */
function limits({ latency: l, capacity: c, sender: s }: LimitFigures): string[] {
  const paragraphs = [
    "**Deno's datagram API.** With `Deno.listenDatagram` every datagram costs an async op each " +
    "way (no batching, no way to wait in the kernel): the Deno floor's round trip here is " +
    `${ratio(l.floorRtt.p50_ms, l.sockperfP50)}× sockperf's and its send rate ` +
    `${ratio(s.floorPps, s.iperfPps)}× iperf3's. udp therefore moves datagrams with the C ` +
    "library's calls through FFI on Linux x86-64 (lib/net/): `recvmmsg()` and " +
    "`sendmmsg()` batches into memory laid out once, a `ppoll()` that does not wait to find " +
    "the ready sockets, and, when none is, a `ppoll()` on another thread (Deno's non-blocking " +
    "FFI call) to sleep in, so that the event loop runs meanwhile. The FFI permission is given " +
    "up at start (docs/security.md).",
    "**A system call costs about a microsecond on this machine** (1.05 µs for `getppid()` in a " +
    "C loop, measured on 2026-12-02), so the native floor's echo (one `recvfrom()` and one " +
    `\`sendto()\` per datagram) spends ${c.native.cpuUsPerDatagram.toFixed(1)} µs of ` +
    "CPU per reply, and every call saved shows. udp serve reads a burst with one `recvmmsg()`, " +
    "handles its datagrams together and sends their replies with one `sendmmsg()` (each " +
    "counted only once it has left; a run of equal replies to one sender as one GSO " +
    "super-datagram), and on top does its protocol work (decoding, per-session " +
    "counts, the PONG's timestamps, rate limits) and its share of the event loop (a whole " +
    "turn at least each millisecond, so that timers, signals and a scrape of /metrics run): " +
    `${c.udp.cpuUsPerDatagram.toFixed(1)} µs per reply in this run. With a key, replies ` +
    "are sent one by one (the checks take a varying time, and batching would let replies " +
    "overtake each other).",
    "**Checks.** Every frame ends in a CRC-32C, which a reflector verifies on each PING and " +
    "writes into each PONG, and a receiver verifies on each datagram: in JavaScript (slicing " +
    "by 16, 1.1 to 1.7 ns a byte here) a 1,448-byte frame's check took 2 µs, 60% of what " +
    "`udp serve` spent on it in a one-way run, and more than the kernel's part. udp computes it " +
    "with the processor's `crc32` instruction where there is one (SSE4.2; `udp --version` " +
    "says which: `checks:`), about 0.3 µs for the same frame in one lane, 0.2 µs in three " +
    "(the instruction takes three cycles but starts one a cycle: three lanes at once, joined " +
    "by carry-less multiplications, for frames of 384 bytes and more), through one page of " +
    "machine code set up at start (lib/net/native/_crc32c.ts, docs/security.md).",
    "**Waking up costs more than the path.** A thread asleep in the kernel runs some " +
    "microseconds after its datagram arrives (more from an idle virtual CPU), and a round trip " +
    "pays that on both sides: the native floor, and sockperf's client, block in `recvfrom()`. " +
    "udp's socket loop looks for an awaited reply without sleeping for twice as long as replies " +
    "took lately (0.05 to 0.5 ms; when that finds nothing it backs off, so a slow or silent peer " +
    "costs a spin now and then), and a reflector answering a client that sends the next probe " +
    "at once sees its next datagram that soon too: at `-i 0` neither side sleeps, and udp " +
    `ping's round trip p50 here is ${l.pingFast.totalP50.toFixed(4)} ms against sockperf's ` +
    `${l.sockperfP50.toFixed(4)} ms and the native floor's ${l.nativeRtt.p50_ms.toFixed(4)} ms. ` +
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
    `is the path. In this run: udp's RTT ${l.pingSlow.p50.toFixed(4)} ms, its round trip with ` +
    `the reflector's time ${l.pingSlow.totalP50.toFixed(4)} ms, the native floor (stamped in the ` +
    `process, asleep on both sides) ${l.nativeRttSlow.p50_ms.toFixed(4)} ms, irtt ` +
    `${l.irttMedian.toFixed(4)} ms (stamped in its processes, behind Go's scheduler). Making the ` +
    "wake-ups themselves shorter was tried and left out: being awake for a periodic client's " +
    "next probe (predicting when it arrives) saw the gaps between `udp ping -i 0.01` probes vary " +
    "by ±0.1 ms (quartiles) and ±0.4 ms (5th to 95th percentile) here, so windows wide enough " +
    "to catch most probes would cost a reflector 5–10% of a processor per client.",
    "**Two cores.** In the open-loop capacity figures the load generator and the server share " +
    "the machine's two cores as the kernel schedules them; the kernel drops what a busy " +
    "server's socket cannot hold (udp bench reports it as loss on the way there, from the " +
    "server's own count), so replies per second depend on how bursty the load is as much as on " +
    "the server. The closed loop pins each to a core of its own and keeps a fixed window in " +
    "flight, which measures the server alone.",
  ];
  return paragraphs.flatMap((p) => [p, ""]);
}

/** docs/performance.md after a full run. */
export function fullReport(
  date: string,
  facts: MachineFacts,
  sections: RanSection[],
  figures: LimitFigures,
  history: HistoryRun[],
): string {
  const lines = ["# Performance", "", ...INTRODUCTION, ...header(date, facts)];
  lines.push("## Targets", "", ...TARGETS_INTRODUCTION);
  lines.push(...targetTable(sections.flatMap((s) => s.report.targets)));
  for (const [i, section] of sections.entries()) {
    lines.push(`## ${i + 1}. ${section.title}`, "", ...section.report.markdown);
  }
  lines.push("## What limits udp here", "", ...limits(figures));
  lines.push("## History", "");
  lines.push(
    "Headline figures of the latest runs in docs/performance-history.json (a column a run, the",
    "latest at the right; runs of `--only` have figures of their sections alone; a run seeded",
    "from an older report has what that report said, and unknown machine facts):",
    "",
    ...historyTable(history),
    "",
  );
  return lines.join("\n");
}

/** What a `--only` run prints: its header, targets and sections, and the History table. */
export function partialReport(
  date: string,
  facts: MachineFacts,
  sections: RanSection[],
  history: HistoryRun[],
): string {
  const lines = [`# deno task bench --only (not written to docs/performance.md)`, ""];
  lines.push(...header(date, facts));
  const targets = sections.flatMap((s) => s.report.targets);
  if (targets.length > 0) lines.push("## Targets", "", ...targetTable(targets));
  for (const section of sections) lines.push(`## ${section.title}`, "", ...section.report.markdown);
  lines.push("## History", "", ...historyTable(history), "");
  return lines.join("\n");
}
