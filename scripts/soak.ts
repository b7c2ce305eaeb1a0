/**
 * `deno task soak`: a bounded soak run of `udp ping` through `udp proxy` into `udp serve`
 * (the real CLI as subprocesses; the pinger in this process). Prints RSS and counters as it
 * goes and fails (exit 1) if any datagram is unaccounted for or if any process's RSS grows by
 * more than 5% between the first sample after warm-up and the end.
 *
 *   deno task soak [--duration SEC] [--rate PPS] [--sample SEC] [--warmup SEC] [--loss P%]
 *                  [--dup P%] [--reorder P%]
 *
 * Memory growth is measured after a warm-up (default: the first quarter of the run, while V8
 * grows its heaps to their steady size under the load): the mean RSS of the later half of the
 * remaining samples against the mean of the earlier half, so that one garbage-collection cycle
 * neither hides nor fakes a trend.
 *
 * Defaults: 60 s at 2,000 datagrams/s with 1% loss, 0.5% duplication and 0.5% reordering each
 * way. Traffic stays on 127.0.0.1.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ping, type PingEvent } from "../lib/probe/ping.ts";
import { runtimeFlags } from "./flags.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "60" },
    rate: { type: "string", default: "2000" },
    sample: { type: "string", default: "10" },
    warmup: { type: "string" },
    loss: { type: "string", default: "1%" },
    dup: { type: "string", default: "0.5%" },
    reorder: { type: "string", default: "0.5%" },
  },
});
const durationS = Number(values.duration);
const rate = Number(values.rate);
const sampleS = Number(values.sample);
const warmupS = values.warmup === undefined ? durationS / 4 : Number(values.warmup);
if (!(durationS > 0 && durationS <= 86400 && rate > 0 && rate <= 100_000 && sampleS > 0)) {
  console.error("soak: --duration 1..86400 s, --rate 1..100000 pps, --sample > 0 s");
  Deno.exit(2);
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A `udp` subprocess whose stdout lines are collected. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #done: Promise<void>;
  #firstLine = Promise.withResolvers<string>();

  constructor(args: string[]) {
    const binary = Deno.env.get("UDP_BIN");
    this.process = new Deno.Command(binary ?? Deno.execPath(), {
      args: binary ? args : ["run", "--quiet", ...runtimeFlags(), MAIN, ...args],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const stdout = this.process.stdout;
    this.#done = (async () => {
      let pending = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (this.lines.length === 0) this.#firstLine.resolve(line);
          this.lines.push(line);
        }
      }
    })();
  }

  firstLine(): Promise<string> {
    return this.#firstLine.promise;
  }

  async stop(): Promise<Record<string, unknown>> {
    this.process.kill("SIGINT");
    await this.process.status;
    await this.#done;
    return JSON.parse(this.lines.at(-1) as string);
  }

  async rssKiB(): Promise<number> {
    const output = await new Deno.Command("ps", {
      args: ["-o", "rss=", "-p", String(this.process.pid)],
      stdout: "piped",
    }).output();
    return Number(new TextDecoder().decode(output.stdout).trim());
  }
}

const serve = new Child(["serve", "--port", "0", "--json"]);
const servePort = JSON.parse(await serve.firstLine()).address.split(":").at(-1);
const proxy = new Child([
  "proxy",
  "--listen",
  "127.0.0.1:0",
  "--to",
  `127.0.0.1:${servePort}`,
  "--loss",
  values.loss,
  "--dup",
  values.dup,
  "--reorder",
  values.reorder,
  "--seed",
  "2026",
  "--json",
]);
const proxyPort = Number(JSON.parse(await proxy.firstLine()).address.split(":").at(-1));

/** The kernel's count of UDP datagrams dropped because a socket's receive buffer was full
 * (all sockets of the machine: run the soak on an otherwise quiet machine). */
async function kernelReceiveBufferDrops(): Promise<number> {
  const output = await new Deno.Command("cat", { args: ["/proc/net/snmp"], stdout: "piped" })
    .output();
  const lines = new TextDecoder().decode(output.stdout).split("\n");
  const [names, values] = lines.filter((line) => line.startsWith("Udp: "));
  const index = names.split(/\s+/).indexOf("RcvbufErrors");
  return Number(values.split(/\s+/)[index]);
}

const count = Math.round(durationS * rate);
const dropsBefore = await kernelReceiveBufferDrops();
const counters: Record<string, number> = {};
const onEvent = (event: PingEvent) => counters[event.type] = (counters[event.type] ?? 0) + 1;
console.log(
  `soak: ${count} probes at ${rate}/s for ${durationS} s: ping -> proxy 127.0.0.1:${proxyPort}` +
    ` (loss ${values.loss}, dup ${values.dup}, reorder ${values.reorder}) -> serve 127.0.0.1:${servePort}`,
);
console.log("elapsed_s  serve_rss_kib  proxy_rss_kib  ping_rss_kib  replies  timeouts  duplicates");
const samples: { at: number; serve: number; proxy: number; ping: number }[] = [];
const started = performance.now();
const sampler = setInterval(async () => {
  const sample = {
    at: (performance.now() - started) / 1000,
    serve: await serve.rssKiB(),
    proxy: await proxy.rssKiB(),
    ping: Math.round(Deno.memoryUsage().rss / 1024),
  };
  samples.push(sample);
  console.log(
    [
      ((performance.now() - started) / 1000).toFixed(0).padStart(9),
      String(sample.serve).padStart(14),
      String(sample.proxy).padStart(14),
      String(sample.ping).padStart(13),
      String(counters.reply ?? 0).padStart(8),
      String(counters.timeout ?? 0).padStart(9),
      String(counters.duplicate ?? 0).padStart(11),
    ].join(" "),
  );
}, sampleS * 1000);

const result = await ping({
  target: { hostname: "127.0.0.1", port: proxyPort, family: "ipv4" },
  count,
  intervalMs: 1000 / rate,
  timeoutMs: 1000,
  lingerMs: 1500,
  onEvent,
});
clearInterval(sampler);
const proxyStats = await proxy.stop() as {
  up: { received: number; forwarded: number };
  down: { received: number; forwarded: number };
};
const serveStats = await serve.stop() as { received: number; replied: number };
const s = result.summary;
const kernelDrops = await kernelReceiveBufferDrops() - dropsBefore;
console.log(JSON.stringify(s));

const failures: string[] = [];
const arrivals = s.received + s.duplicates + s.late + result.redundant + s.foreign;
// Each hop: what one side sent and the other received. A difference is a datagram the kernel
// dropped from a full socket receive buffer (counted in /proc/net/snmp), or one unaccounted for.
const hops: [string, number, number][] = [
  ["ping -> proxy", s.transmitted, proxyStats.up.received],
  ["proxy -> serve", proxyStats.up.forwarded, serveStats.received],
  ["serve -> proxy", serveStats.replied, proxyStats.down.received],
  ["proxy -> ping", proxyStats.down.forwarded, arrivals],
];
let missing = 0;
for (const [hop, sent, received] of hops) {
  missing += sent - received;
  console.log(`     ${hop}: ${sent} sent, ${received} received, ${sent - received} missing`);
}
const accounted = missing === kernelDrops;
console.log(
  `${accounted ? "ok  " : "FAIL"} missing datagrams ${missing} = kernel receive-buffer drops ` +
    `${kernelDrops} (Udp RcvbufErrors)`,
);
if (!accounted) failures.push("datagrams unaccounted for");
const outcomes = s.received + s.lost + s.in_flight;
const complete = outcomes === s.transmitted;
console.log(
  `${
    complete ? "ok  " : "FAIL"
  } ping: ${s.transmitted} sent = received + lost + in flight (${outcomes})`,
);
if (!complete) failures.push("ping outcomes");

const measured = samples.filter((sample) => sample.at >= warmupS - 0.5);
if (measured.length >= 4) {
  const half = Math.floor(measured.length / 2);
  const mean = (list: typeof samples, name: "serve" | "proxy" | "ping") =>
    list.reduce((sum, sample) => sum + sample[name], 0) / list.length;
  const earlier = measured.slice(0, half);
  const later = measured.slice(measured.length - half);
  const span = (list: typeof samples) => `${list[0].at.toFixed(0)}-${list.at(-1)!.at.toFixed(0)} s`;
  for (const name of ["serve", "proxy", "ping"] as const) {
    const before = mean(earlier, name);
    const after = mean(later, name);
    const growth = (after - before) / before * 100;
    const ok = growth <= 5;
    console.log(
      `${ok ? "ok  " : "FAIL"} ${name} RSS mean ${before.toFixed(0)} KiB (${span(earlier)}) -> ` +
        `${after.toFixed(0)} KiB (${span(later)}): ${growth.toFixed(1)}%, limit +5%`,
    );
    if (!ok) failures.push(`${name} RSS`);
  }
} else {
  console.log("FAIL fewer than 4 samples after the warm-up: run longer or sample more often");
  failures.push("memory not checked");
}
console.log(failures.length ? `soak FAILED: ${failures.join(", ")}` : "soak passed");
Deno.exit(failures.length ? 1 : 0);
