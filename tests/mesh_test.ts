/**
 * The fleet-monitoring mesh, in network namespaces, with the kernel as the oracle: three hosts
 * on one bridge (a "switch" namespace of its own), each running `udp serve` and a `udp monitor`
 * of the other two, and a real Prometheus in the root namespace scraping all six endpoints
 * through a seventh port of the bridge. nftables on the bridge drops a share of one host's
 * probes to another (one direction of one pair) and counts them; Prometheus's
 * `udp_probe_lost_total` for that pair must equal the kernel's drop count, every other pair
 * must show no loss, and what each monitor sent and each reflector received and answered must
 * equal the kernel's counts of the datagrams that crossed the bridge.
 *
 * The drops are on the bridge, between the hosts, not in the sender's output hook: a datagram
 * dropped there fails its sendmsg() with EPERM, so the monitor rightly counts it as a send
 * error, neither sent nor lost.
 *
 * Needs root (network namespaces, nftables), `ip` and `nft`, and Prometheus' binaries; skipped,
 * saying why, without them (in CI a missing program fails, being non-root or refused network
 * namespaces still skips; tests/netns.ts says which).
 */

import { ok as assert, strictEqual } from "node:assert/strict";
import { run, runSync, tryRun } from "./helpers.ts";
import {
  cleanly,
  type Json,
  type Namespace,
  Namespaces,
  netnsSkipReason,
  NsProcess,
  ONE_SEGMENT,
} from "./netns.ts";
import { prometheusMissing, type PrometheusServer, startPrometheus } from "./prometheus.ts";

const HOSTS = ["a", "b", "c"] as const;
type Host = typeof HOSTS[number];
/** The lossy direction: `FROM`'s probes to `TO`. */
const FROM: Host = "a";
const TO: Host = "b";
const SERVE_PORT = 9999;
const SERVE_METRICS_PORT = 9861;
const MONITOR_METRICS_PORT = 9862;
const INTERVAL_MS = 50;
const TIMEOUT_MS = 1000;
/** Probes from FROM to TO sent through the lossy rule before it is deleted. */
const LOSSY_PROBES = 100;
const DROP_PERCENT = 20;
/** Past its timeout, the time a probe's timer is given to fire before its count is final. */
const FINAL_MARGIN_MS = 500;
const SCRAPE_INTERVAL_MS = 250;
const TABLE = "udpmesh";

/** Why the mesh test cannot run here, or null. Tried once, at module load. */
function skipReason(): string | null {
  if (prometheusMissing()) return "Prometheus's binaries are missing";
  return netnsSkipReason((probe) => {
    const entered = runSync("ip", ["netns", "exec", probe, "nft", "add", "table", "bridge", "t"]);
    if (entered.code === 0) return null;
    const why = `nftables' bridge family does not work in a network namespace here ` +
      `(ip netns exec ... nft add table bridge t: ${entered.stderr.trim()})`;
    if (Deno.env.get("CI") === "true") throw new Error(why);
    return why;
  });
}

const SKIP = skipReason();
if (SKIP !== null) console.log(`skipping the mesh test: ${SKIP}`);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `attempt` every 100 ms until it returns a value (not undefined); throws after
 * `timeoutMs`, with what `describe()` says of the last attempt.
 */
async function eventually<T>(
  what: string,
  timeoutMs: number,
  attempt: () => Promise<T | undefined>,
  describe: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms; last: ${describe()}`);
    }
    await sleep(100);
  }
}

/** The first /24 of a few candidates, derived from the process ID, that no route of the root
 * namespace covers or lies in (so the root's veth hijacks nothing and is ambiguous nowhere). */
async function freeSubnet(): Promise<string> {
  const routes: { dst: string }[] = JSON.parse(
    await run("ip", ["-j", "-4", "route", "show", "table", "all"]),
  );
  const toNumber = (dotted: string) =>
    dotted.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const prefixes = routes.filter((route) => route.dst !== "default").map((route) => {
    const [address, length] = route.dst.split("/");
    return { network: toNumber(address), length: length === undefined ? 32 : Number(length) };
  });
  for (let attempt = 0; attempt < 64; attempt++) {
    const second = 100 + ((Deno.pid >> 8) + attempt * 37) % 150;
    const third = (Deno.pid + attempt) % 256;
    const subnet = `10.${second}.${third}`;
    const network = toNumber(`${subnet}.0`);
    const overlaps = prefixes.some(({ network: other, length }) => {
      const bits = Math.min(24, length);
      const shift = 2 ** (32 - bits);
      return bits === 0 || Math.floor(network / shift) === Math.floor(other / shift);
    });
    if (!overlaps) return subnet;
  }
  throw new Error("no free 10.x.y.0/24 among 64 candidates: the root namespace routes them all");
}

/** The namespaces and links of one run: names unique to this process. */
class Mesh {
  readonly #namespaces = new Namespaces("udpmesh");
  /** The root namespace's end of the veth to the bridge (15 characters at most). */
  readonly rootLink = `udpm${Deno.pid}`;
  #switch: Namespace | null = null;

  constructor(readonly subnet: string) {}

  ns(host: Host): string {
    return this.#namespaces.nameOf(host);
  }

  address(host: Host): string {
    return `${this.subnet}.${HOSTS.indexOf(host) + 1}`;
  }

  get rootAddress(): string {
    return `${this.subnet}.254`;
  }

  /** The switch's namespace, once up() has made it. */
  get switch(): Namespace {
    if (this.#switch === null) throw new Error("the mesh is not up");
    return this.#switch;
  }

  /** The bridge, the hosts on it with their addresses, and the root namespace's port. */
  async up(): Promise<void> {
    const sw = (this.#switch = await this.#namespaces.add("sw")).name;
    await run("ip", ["-n", sw, "link", "add", "br0", "type", "bridge"]);
    await run("ip", ["-n", sw, "link", "set", "br0", "up"]);
    for (const host of HOSTS) {
      const ns = (await this.#namespaces.add(host)).name;
      const port = `p${host}`;
      await run("ip", [
        ...["link", "add", "eth0", "netns", ns, "type", "veth"],
        ...["peer", "name", port, "netns", sw],
      ]);
      await run("ip", ["-n", ns, "addr", "add", `${this.address(host)}/24`, "dev", "eth0"]);
      await run("ip", ["-n", ns, "link", "set", "eth0", ...ONE_SEGMENT, "up"]);
      await run("ip", ["-n", sw, "link", "set", port, ...ONE_SEGMENT, "master", "br0", "up"]);
    }
    await run("ip", [
      ...["link", "add", this.rootLink, "type", "veth"],
      ...["peer", "name", "proot", "netns", sw],
    ]);
    await run("ip", ["-n", sw, "link", "set", "proot", ...ONE_SEGMENT, "master", "br0", "up"]);
    await run("ip", ["addr", "add", `${this.rootAddress}/24`, "dev", this.rootLink]);
    await run("ip", ["link", "set", this.rootLink, ...ONE_SEGMENT, "up"]);
  }

  /** Removes everything; returns what could not be removed. Deleting a namespace removes its
   * veths only once the kernel has destroyed it (asynchronously), so the root's veth is
   * deleted by name first, and its absence checked. */
  async down(): Promise<string[]> {
    const problems: string[] = [];
    const link = await tryRun("ip", ["link", "del", this.rootLink]);
    if (link.code !== 0 && !/Cannot find device/.test(link.stderr)) {
      problems.push(`ip link del ${this.rootLink}: ${link.stderr.trim()}`);
    }
    problems.push(...await this.#namespaces.down());
    if ((await tryRun("ip", ["link", "show", this.rootLink])).code === 0) {
      problems.push(`${this.rootLink} is still in the root namespace`);
    }
    return problems;
  }

  /** Runs nft in the switch's namespace. */
  nft(args: string[], stdin?: string): Promise<string> {
    return this.switch.nft(args, stdin);
  }
}

const label = (host: Host) => host.toUpperCase();
const pairs = HOSTS.flatMap((from) =>
  HOSTS.filter((to) => to !== from).map((to) => ({ from, to }))
);
const probeCounter = (from: Host, to: Host) => `probe_${from}_${to}`;
const replyCounter = (from: Host, to: Host) => `reply_${from}_${to}`;

/**
 * The bridge's table: a named counter for every host's probes to every other and for every
 * reply, counted as they cross the bridge. The lossy rule is added apart, for its handle.
 */
function tableText(mesh: Mesh): string {
  const rules = pairs.flatMap(({ from, to }) => {
    const path = `ip saddr ${mesh.address(from)} ip daddr ${mesh.address(to)}`;
    return [
      `${path} udp dport ${SERVE_PORT} counter name ${probeCounter(from, to)}`,
      `${path} udp sport ${SERVE_PORT} counter name ${replyCounter(from, to)}`,
    ];
  });
  const counters = pairs.flatMap(({ from, to }) => [
    `counter ${probeCounter(from, to)} {}`,
    `counter ${replyCounter(from, to)} {}`,
  ]);
  return `table bridge ${TABLE} {
  counter drops {}
  ${counters.join("\n  ")}
  chain forward {
    type filter hook forward priority 0; policy accept;
    ${rules.join("\n    ")}
  }
}
`;
}

/** The table's named counters: name to packets. */
function counters(mesh: Mesh): Promise<Map<string, number>> {
  return mesh.switch.counters("bridge", TABLE);
}

/** The six `udp` processes of one run, on a mesh, and the Prometheus scraping them. */
class Fleet {
  readonly serves = new Map<Host, NsProcess>();
  readonly monitors = new Map<Host, NsProcess>();

  constructor(readonly mesh: Mesh, readonly prometheus: PrometheusServer) {}

  serveTarget(host: Host): string {
    return `${this.mesh.address(host)}:${SERVE_METRICS_PORT}`;
  }

  monitorTarget(host: Host): string {
    return `${this.mesh.address(host)}:${MONITOR_METRICS_PORT}`;
  }

  get processes(): NsProcess[] {
    return [...this.serves.values(), ...this.monitors.values()];
  }

  /** Every host's reflector, listening, then every host's monitor of the two others. Every
   * reflector listens before any monitor probes it: a probe to a closed port is lost. */
  async start(): Promise<void> {
    for (const host of HOSTS) {
      this.serves.set(
        host,
        new NsProcess(`serve ${label(host)}`, this.mesh.ns(host), [
          ...["serve", "--host", "0.0.0.0", "--port", String(SERVE_PORT)],
          ...["--metrics", this.serveTarget(host), "--json"],
        ]),
      );
    }
    for (const [host, serve] of this.serves) {
      const listening = await serve.waitFor("listening", (l) => l.type === "listening", 20_000);
      strictEqual(listening.address, `0.0.0.0:${SERVE_PORT}`);
      strictEqual(listening.metrics, `http://${this.serveTarget(host)}/metrics`);
    }
    for (const host of HOSTS) {
      const peers = HOSTS.filter((peer) => peer !== host)
        .map((peer) => `${label(peer)}=${this.mesh.address(peer)}:${SERVE_PORT}`);
      this.monitors.set(
        host,
        new NsProcess(`monitor ${label(host)}`, this.mesh.ns(host), [
          ...["monitor", ...peers, "-i", String(INTERVAL_MS / 1000)],
          ...["-W", String(TIMEOUT_MS / 1000), "--metrics", this.monitorTarget(host), "--json"],
        ]),
      );
    }
    for (const [host, monitor] of this.monitors) {
      const start = await monitor.waitFor("start", (l) => l.type === "start", 20_000);
      strictEqual(start.metrics, `http://${this.monitorTarget(host)}/metrics`);
    }
  }

  /** An instant query's samples by (instance, target), once it has one for every pair. */
  async byPair(expr: string): Promise<Map<string, number>> {
    const expected = pairs.map(({ from, to }) => pairKey(this.monitorTarget(from), label(to)));
    let last = "";
    return await eventually(`${expr} for all ${pairs.length} pairs`, 10_000, async () => {
      const samples = await this.prometheus.queryVector(expr);
      last = JSON.stringify(samples);
      const values = new Map(
        samples.map((s) => [pairKey(s.metric.instance, s.metric.target), s.value]),
      );
      const complete = expected.every((key) => values.has(key)) &&
        values.size === expected.length;
      return complete ? values : undefined;
    }, () => last);
  }
}

function pairKey(instance: string, target: string): string {
  return `${instance} ${target}`;
}

/** What the lossy phase measured. */
interface Drops {
  /** Datagrams the kernel dropped (the nft counter). */
  drops: number;
  /** FROM's probes to TO that had crossed the bridge when the rule was deleted. */
  crossed: number;
  /** FROM's monitor's final count of probes to TO lost (its --json line). */
  lost: number;
  /** Prometheus's `udp_probe_lost_total` for the pair. */
  scraped: number;
}

/**
 * Drops a share of FROM's probes to TO on the bridge until FROM's monitor has sent
 * LOSSY_PROBES of them, deletes the rule, reads the kernel's drop count, waits until the
 * monitor's count of lost probes is final and Prometheus has it: both must be the kernel's.
 */
async function lossyPhase(fleet: Fleet): Promise<Drops> {
  const { mesh, prometheus } = fleet;
  const lossy = `ip saddr ${mesh.address(FROM)} ip daddr ${mesh.address(TO)} ` +
    `udp dport ${SERVE_PORT} numgen random mod 100 < ${DROP_PERCENT} counter name drops drop`;
  const echoed = await mesh.nft(["-e", "-a", "add", "rule", "bridge", TABLE, "forward", lossy]);
  const handle = echoed.match(/# handle (\d+)/)?.[1];
  assert(handle !== undefined, `no handle in nft's echo: ${echoed}`);
  await fleet.start();
  const monitor = fleet.monitors.get(FROM) as NsProcess;
  const toTarget = (sent: number) => (line: Json) =>
    line.type === "interval" && line.target === label(TO) && line.sent >= sent;
  // Enough probes through the lossy rule, and every endpoint scraped; then no more drops.
  await Promise.all([
    monitor.waitFor(`${LOSSY_PROBES} probes to ${label(TO)}`, toTarget(LOSSY_PROBES), 20_000),
    prometheus.waitForScrapes(2),
  ]);
  await mesh.nft(["delete", "rule", "bridge", TABLE, "forward", "handle", handle]);
  const kernel = await counters(mesh);
  const drops = kernel.get("drops") as number;
  const crossed = kernel.get(probeCounter(FROM, TO)) as number;
  assert(drops > 0 && drops < crossed, `${drops} of ${crossed} probes dropped`);

  // Every dropped probe is one of the first `crossed` the bridge saw (a veth and a bridge
  // keep the order, the monitor sends in sequence order), so one of the first `crossed` the
  // monitor sent. A --json line is printed as its target's next probe leaves, with the counts
  // before it: the line with `sent` = crossed + k comes at least k intervals after probe
  // `crossed - 1` left (a late send is never caught up in a burst). Once k intervals exceed
  // the timeout and a margin, every dropped probe has timed out: that line's `lost` is final.
  // No clock is read: a line read late from the pipe is still as late as its count says.
  const finalAt = crossed + Math.ceil((TIMEOUT_MS + FINAL_MARGIN_MS) / INTERVAL_MS);
  const final = await monitor.waitFor(
    `a line with ${finalAt} probes sent to ${label(TO)}`,
    toTarget(finalAt),
    20_000,
  );
  strictEqual(final.send_errors, 0, JSON.stringify(final));
  const lost: number = final.lost;

  // Prometheus catches up with it (a counter: never past it), and it is the kernel's count.
  const series = `udp_probe_lost_total{job="monitor",instance="${fleet.monitorTarget(FROM)}",` +
    `target="${label(TO)}"}`;
  let seen: number | null = null;
  const scraped = await eventually(`Prometheus's ${series} = ${lost}`, 10_000, async () => {
    seen = await prometheus.queryValue(series);
    if (seen !== null && seen > lost) {
      throw new Error(`${series} is ${seen}, above the monitor's final ${lost}`);
    }
    return seen === lost ? seen : undefined;
  }, () => String(seen));
  strictEqual(lost, drops, `${FROM}'s monitor lost ${lost} probes to ${TO}, nft dropped ${drops}`);
  strictEqual(scraped, drops);
  return { drops, crossed, lost, scraped };
}

/** In Prometheus, while the fleet runs: every other pair answered and lost nothing, every
 * median RTT is a veth's; no reflector refused or failed anything. Returns the medians. */
async function checkPairs(fleet: Fleet, drops: number): Promise<Map<string, number>> {
  const lost = await fleet.byPair(`udp_probe_lost_total{job="monitor"}`);
  const received = await fleet.byPair(`udp_probe_received_total{job="monitor"}`);
  const sendErrors = await fleet.byPair(`udp_probe_send_errors_total{job="monitor"}`);
  const medians = await fleet.byPair(
    "histogram_quantile(0.5, sum by (instance, target, le) " +
      `(rate(udp_probe_rtt_seconds_bucket{job="monitor"}[30s])))`,
  );
  for (const { from, to } of pairs) {
    const key = pairKey(fleet.monitorTarget(from), label(to));
    strictEqual(lost.get(key), droppedOn(from, to, drops), `lost, ${key}`);
    assert((received.get(key) as number) > 0, `received, ${key}`);
    strictEqual(sendErrors.get(key), 0, `send errors, ${key}`);
    const median = medians.get(key) as number;
    assert(Number.isFinite(median) && median > 0 && median < 0.01, `median RTT, ${key}: ${median}`);
  }
  for (const family of ["udp_serve_refused_total", "udp_serve_errors_total"]) {
    const nonzero = await fleet.prometheus.queryVector(`${family}{job="serve"} > 0`);
    strictEqual(nonzero.length, 0, `${family}: ${JSON.stringify(nonzero)}`);
  }
  return medians;
}

function droppedOn(from: Host, to: Host, drops: number): number {
  return from === FROM && to === TO ? drops : 0;
}

/**
 * Stops the monitors, then the reflectors: each monitor sent exactly what crossed the bridge
 * and lost exactly what the kernel dropped; each reflector received every probe that reached
 * it and answered each one, as the bridge saw (in Prometheus, and in its own final counts).
 * Returns the monitors' summaries by "host TARGET".
 */
async function reconcile(fleet: Fleet, drops: number): Promise<Map<string, Json>> {
  const summaries = new Map<string, Json>();
  for (const [host, monitor] of fleet.monitors) {
    const stopped = await monitor.stop();
    strictEqual(stopped.code, 0, stopped.stderr);
    strictEqual(stopped.stderr, "");
    for (const line of monitor.lines.filter((l) => l.type === "summary")) {
      summaries.set(`${host} ${line.target}`, line);
    }
  }
  strictEqual(summaries.size, pairs.length);
  const summary = (from: Host, to: Host) => summaries.get(`${from} ${label(to)}`) as Json;
  // What the monitors sent may still be crossing: the counters only grow, so wait (bounded)
  // until they add up, then check each one.
  const addsUp = (kernel: Map<string, number>) =>
    pairs.every(({ from, to }) => {
      const probes = kernel.get(probeCounter(from, to)) as number;
      return probes === summary(from, to).sent &&
        kernel.get(replyCounter(to, from)) === probes - droppedOn(from, to, drops);
    });
  let kernel = new Map<string, number>();
  await eventually("the bridge's counters to add up", 5_000, async () => {
    kernel = await counters(fleet.mesh);
    return addsUp(kernel) ? true : undefined;
  }, () => JSON.stringify(Object.fromEntries(kernel)));
  strictEqual(kernel.get("drops"), drops, "no drop after the rule's deletion");
  for (const { from, to } of pairs) {
    const line = summary(from, to);
    const what = `${label(from)} -> ${label(to)}: ${JSON.stringify(line)}`;
    strictEqual(line.sent, kernel.get(probeCounter(from, to)), what);
    strictEqual(line.lost, droppedOn(from, to, drops), what);
    strictEqual(line.received + line.lost + line.in_flight, line.sent, what);
    for (const field of ["late", "duplicates", "corrupted", "send_errors"]) {
      strictEqual(line[field], 0, `${field}, ${what}`);
    }
  }
  const reached = (to: Host) =>
    HOSTS.filter((from) => from !== to).reduce(
      (sum, from) =>
        sum + (kernel.get(probeCounter(from, to)) as number) - droppedOn(from, to, drops),
      0,
    );
  for (const [host, serve] of fleet.serves) {
    const expected = reached(host);
    const instance = `job="serve",instance="${fleet.serveTarget(host)}"`;
    const query = (family: string) => fleet.prometheus.queryValue(`${family}{${instance}}`);
    let received: number | null = null;
    await eventually(
      `Prometheus: ${label(host)}'s serve received ${expected}`,
      10_000,
      async () => {
        received = await query("udp_serve_datagrams_received_total");
        return received !== null && received >= expected ? true : undefined;
      },
      () => String(received),
    );
    strictEqual(received, expected, `${label(host)}'s serve: datagrams received`);
    strictEqual(await query("udp_serve_replies_total"), expected, `${label(host)}'s replies`);

    const stopped = await serve.stop();
    strictEqual(stopped.code, 0, stopped.stderr);
    const notice = stopped.stderr.trim().split("\n");
    assert(
      notice.length === 1 && /^udp serve: notice: 0\.0\.0\.0:9999 is reachable/.test(notice[0]),
      stopped.stderr,
    );
    const stats = serve.lines.find((l) => l.type === "stats") as Json;
    const what = `${label(host)}'s serve: ${JSON.stringify(stats)}`;
    strictEqual(stats.received, expected, what);
    strictEqual(stats.replied, expected, what);
    strictEqual(stats.kinds.ping, expected, what);
    for (const counts of [stats.refused, stats.malformed, stats.errors]) {
      for (const [reason, n] of Object.entries(counts)) strictEqual(n, 0, `${reason}, ${what}`);
    }
    assert(stats.kernel_drops === 0 || stats.kernel_drops === null, what);
  }
  return summaries;
}

Deno.test({
  name: "mesh: in network namespaces, Prometheus's loss for the one lossy pair is the kernel's " +
    "drop count, and no other pair loses anything",
  ignore: SKIP !== null,
  async fn() {
    const began = Date.now();
    const mesh = new Mesh(await freeSubnet());
    let prometheus: PrometheusServer | null = null;
    let fleet: Fleet | null = null;
    await cleanly(async () => {
      const metrics = (port: number) => HOSTS.map((host) => `${mesh.address(host)}:${port}`);
      // Prometheus starts (and waits out its first discovery) while the mesh is built.
      const [started, built] = await Promise.allSettled([
        startPrometheus({
          scrapeTargets: {
            serve: metrics(SERVE_METRICS_PORT),
            monitor: metrics(MONITOR_METRICS_PORT),
          },
          scrapeIntervalMs: SCRAPE_INTERVAL_MS,
        }),
        mesh.up(),
      ]);
      if (started.status === "fulfilled") prometheus = started.value;
      if (started.status === "rejected") throw started.reason;
      if (built.status === "rejected") throw built.reason;
      await mesh.switch.loadNft(tableText(mesh));
      fleet = new Fleet(mesh, prometheus as PrometheusServer);

      const { drops, crossed, lost, scraped } = await lossyPhase(fleet);
      const medians = await checkPairs(fleet, drops);
      const summaries = await reconcile(fleet, drops);

      const rtts = [...medians.values()].map((median) => (median * 1000).toFixed(3));
      const seconds = ((Date.now() - began) / 1000).toFixed(1);
      console.log(
        `mesh: nft dropped ${drops} of ${crossed} probes ${label(FROM)} -> ${label(TO)} ` +
          `(${summaries.get(`${FROM} ${label(TO)}`)?.sent} sent in all); ${label(FROM)}'s ` +
          `monitor lost ${lost}, Prometheus ${scraped}; median RTTs ${rtts.join(", ")} ms; ` +
          `${seconds} s`,
      );
    }, async () => {
      const problems: string[] = [];
      try {
        await Promise.all((fleet?.processes ?? []).map((process) => process.stop("SIGKILL")));
        await prometheus?.close();
      } catch (error) {
        problems.push(`stopping the fleet and Prometheus: ${error}`);
      }
      return [...problems, ...await mesh.down()];
    });
  },
});
