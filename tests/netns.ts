/**
 * Network namespaces for the tests, with the kernel as the oracle: a set of namespaces that is
 * always deleted, a `udp` process in a namespace with its NDJSON output, nftables rules and
 * their named counters, sysctls, and a line topology of client, routers and server
 * (`withLine()`). The generic process helpers (runSync, tryRun, run) are in helpers.ts.
 *
 * The line is isolated: no link reaches the root namespace, so its addresses (10.N.x.0/24 and
 * fd00:N:x::/64) can clash with nothing and no datagram of a test leaves its namespaces.
 * Every address is usable at once (no duplicate address detection: `nodad`, and no tentative
 * link-local address either) and every neighbour is a permanent entry, so that neither DAD nor
 * ARP or neighbour discovery takes time or drops a first datagram: nothing waits or sleeps
 * for the network to settle. ICMP errors are not rate-limited in the line's namespaces (the
 * rate masks are empty), so every datagram that draws one gets one.
 *
 * Tests using it skip, saying why (`netnsSkipReason()`), when not root or refused network
 * namespaces; in CI (CI=true) a missing program fails instead.
 *
 * @module
 */

import { formatAddress } from "../lib/net/address.ts";
import { childEnv, missing, run, runSync, tryRun, udpArgv } from "./helpers.ts";

/**
 * For every veth of the tests: one datagram a packet. nftables counts what the kernel carries
 * as it carries it, and a GSO super-datagram (udp serve answers a burst from one peer as one) is
 * one packet until a device segments it; with at most one segment a packet, the stack segments
 * it before the veth, as a NIC would on the wire, so every counter counts datagrams.
 */
export const ONE_SEGMENT = ["gso_max_segs", "1"];

/** `promise`, or "timeout" after `ms` (the timer always cleared). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Why tests in network namespaces cannot run here, or null: a program missing (`ip`, `nft`;
 * in CI an error instead), not root, or `ip netns add` refused. `check`, if given,
 * is asked in a namespace made for the question (deleted after) for a reason of its own.
 */
export function netnsSkipReason(check?: (namespace: string) => string | null): string | null {
  for (const program of ["ip", "nft"]) {
    if (missing(program)) return `${program} is not installed`;
  }
  const uid = runSync("id", ["-u"]).stdout.trim();
  if (uid !== "0") {
    return `not root (uid ${uid}): network namespaces, veths and nftables need root`;
  }
  const probe = `udpns-${Deno.pid}-probe`;
  const added = runSync("ip", ["netns", "add", probe]);
  if (added.code !== 0) {
    return `ip netns add is refused (${added.stderr.trim()}): no CAP_SYS_ADMIN here, ` +
      "e.g. an unprivileged container";
  }
  try {
    return check?.(probe) ?? null;
  } finally {
    runSync("ip", ["netns", "del", probe]);
  }
}

/** A line of a `--json` output (a line that is not JSON is kept as `{ type: "text" }`). */
// deno-lint-ignore no-explicit-any
export type Json = Record<string, any>;

/** How long a process is given to exit after a signal before it is killed. */
const PROCESS_STOP_MS = 10_000;

/** A `udp` subprocess in a network namespace, its stdout read into `lines` (and `text`) as it
 * comes (so that a full pipe never stalls it), its stderr collected. */
export class NsProcess {
  /** Its stdout's lines, parsed. */
  readonly lines: Json[] = [];
  /** Its stdout's lines as printed. */
  readonly text: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #status: Promise<Deno.CommandStatus>;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;
  #exit: Deno.CommandStatus | null = null;
  #stdoutDone = false;
  #changed = Promise.withResolvers<void>();
  #stopped: Promise<{ code: number; stderr: string }> | null = null;

  constructor(readonly name: string, namespace: string, args: string[]) {
    const [command, argv] = udpArgv(args);
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", namespace, command, ...argv],
      clearEnv: true,
      env: childEnv(),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status.then((status) => {
      this.#exit = status;
      this.#notify();
      return status;
    });
    this.#stdout = this.#pump();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  async #pump(): Promise<void> {
    let pending = "";
    const push = (line: string) => {
      this.text.push(line);
      try {
        this.lines.push(JSON.parse(line));
      } catch {
        this.lines.push({ type: "text", text: line });
      }
    };
    for await (const text of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += text;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      this.#notify();
    }
    if (pending !== "") push(pending);
    this.#stdoutDone = true;
    this.#notify();
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  #lastLines(): string {
    return this.text.slice(-8).join("\n");
  }

  /** The first line (from the start of its output) that `match`es; fails after `timeoutMs`
   * or at the end of its output. */
  async waitFor(what: string, match: (line: Json) => boolean, timeoutMs: number): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    let index = 0;
    while (true) {
      for (; index < this.lines.length; index++) {
        if (match(this.lines[index])) return this.lines[index];
      }
      const fail = (why: string) =>
        new Error(`${this.name}: ${why} before ${what}; its last lines:\n${this.#lastLines()}`);
      if (this.#stdoutDone) throw fail(`output ended (exit ${this.#exit?.code ?? "?"})`);
      const changed = this.#changed.promise;
      if (await within(changed, deadline - Date.now()) === "timeout") {
        throw fail(`${timeoutMs} ms passed`);
      }
    }
  }

  /** Sends `signal` (unless it has exited), SIGKILL if it lingers; waits for its exit and
   * the end of its output. Once only: later calls return the first one's result. */
  stop(signal: Deno.Signal = "SIGTERM"): Promise<{ code: number; stderr: string }> {
    return this.#stopped ??= (async () => {
      if (this.#exit === null) {
        try {
          this.#child.kill(signal);
        } catch {
          // it has exited already
        }
        if (await within(this.#status, PROCESS_STOP_MS) === "timeout") {
          this.#child.kill("SIGKILL");
        }
      }
      const status = await this.#status;
      await this.#stdout;
      return { code: status.code, stderr: await this.#stderr };
    })();
  }

  /** Waits for it to exit of itself and for the end of its output; kills it and fails when it
   * is still running after `timeoutMs`. */
  async exited(timeoutMs: number): Promise<{ code: number; stderr: string }> {
    if (await within(this.#status, timeoutMs) === "timeout") {
      const { stderr } = await this.stop("SIGKILL");
      throw new Error(
        `${this.name}: still running after ${timeoutMs} ms; its last lines:\n` +
          `${this.#lastLines()}\nstderr: ${stderr}`,
      );
    }
    return await this.stop();
  }
}

/** An nftables family. */
export type NftFamily = "ip" | "ip6" | "inet" | "bridge" | "netdev" | "arp";

/** One network namespace of ours: commands, nftables, sysctls and `udp` processes in it. */
export class Namespace {
  readonly #processes: NsProcess[] = [];

  constructor(readonly name: string) {}

  /** Runs `ip -n NAME ARGS`; throws when it fails. */
  ip(args: string[]): Promise<string> {
    return run("ip", ["-n", this.name, ...args]);
  }

  /** Runs a program in the namespace; throws when it fails. */
  exec(command: string, args: string[], stdin?: string): Promise<string> {
    return run("ip", ["netns", "exec", this.name, command, ...args], stdin);
  }

  /** Runs nft in the namespace. */
  nft(args: string[], stdin?: string): Promise<string> {
    return this.exec("nft", args, stdin);
  }

  /** Loads a ruleset (tables, chains, counters, rules), as `nft -f -` reads it. */
  async loadNft(ruleset: string): Promise<void> {
    await this.nft(["-f", "-"], ruleset);
  }

  /** A table's named counters: name to packets. */
  async counters(family: NftFamily, table: string): Promise<Map<string, number>> {
    return packetCounts(await this.nft(["-j", "list", "counters", "table", family, table]));
  }

  /** One named counter's packets, exactly as the kernel counted them. */
  async counter(family: NftFamily, table: string, name: string): Promise<number> {
    const counts = packetCounts(await this.nft(["-j", "list", "counter", family, table, name]));
    const packets = counts.get(name);
    if (packets === undefined) throw new Error(`no counter ${name} in ${family} ${table}`);
    return packets;
  }

  /** Sets a sysctl of the namespace (`net.…` keys are the namespace's own): writes its file
   * under /proc/sys from inside the namespace, as `sysctl -w` does. */
  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec("tee", [`/proc/sys/${key.replaceAll(".", "/")}`], `${value}\n`);
  }

  /** Starts `udp ARGS` in the namespace; it is killed, if still running, when the namespace
   * is deleted. */
  spawnUdp(label: string, args: string[]): NsProcess {
    const process = new NsProcess(label, this.name, args);
    this.#processes.push(process);
    return process;
  }

  /** Kills what `spawnUdp()` started and still runs, and waits for each to end. */
  async killProcesses(): Promise<void> {
    await Promise.all(this.#processes.splice(0).map((process) => process.stop("SIGKILL")));
  }
}

function packetCounts(listed: string): Map<string, number> {
  const json: { nftables: { counter?: { name: string; packets: number } }[] } = JSON.parse(listed);
  return new Map(
    json.nftables.flatMap((entry) =>
      entry.counter ? [[entry.counter.name, entry.counter.packets]] : []
    ),
  );
}

/** Namespaces named `PREFIX-PID-…`, unique to this process, deleted together. */
export class Namespaces {
  readonly #created: Namespace[] = [];

  /** `prefix` and this process's ID begin every name. */
  constructor(readonly prefix: string) {}

  /** The name a namespace `suffix` gets. */
  nameOf(suffix: string): string {
    return `${this.prefix}-${Deno.pid}-${suffix}`;
  }

  /** Adds a namespace, its loopback up. */
  async add(suffix: string): Promise<Namespace> {
    const namespace = new Namespace(this.nameOf(suffix));
    await run("ip", ["netns", "add", namespace.name]);
    this.#created.push(namespace);
    await namespace.ip(["link", "set", "lo", "up"]);
    return namespace;
  }

  /** Kills their processes and deletes them (their veths go with them); returns what could
   * not be removed, `ip netns list` having the last word. */
  async down(): Promise<string[]> {
    const problems: string[] = [];
    const created = this.#created.splice(0).reverse();
    await Promise.all(created.map((namespace) => namespace.killProcesses()));
    for (const { name } of created) {
      const deleted = await tryRun("ip", ["netns", "del", name]);
      if (deleted.code !== 0) problems.push(`ip netns del ${name}: ${deleted.stderr.trim()}`);
    }
    const left = (await run("ip", ["netns", "list"])).split("\n")
      .filter((line) => line.startsWith(this.nameOf("")));
    if (left.length > 0) problems.push(`namespaces left: ${left.join(", ")}`);
    return problems;
  }
}

/**
 * Runs `body`, then `cleanup` whatever happened: `body`'s failure is thrown (with what
 * cleanup could not remove on stderr), else cleanup's problems fail it.
 */
export async function cleanly<T>(
  body: () => Promise<T>,
  cleanup: () => Promise<string[]>,
): Promise<T> {
  let result: { value: T } | { failure: unknown };
  try {
    result = { value: await body() };
  } catch (failure) {
    result = { failure };
  }
  const problems = await cleanup();
  const cleanupText = `cleanup: ${problems.join("; ")}`;
  if ("failure" in result) {
    if (problems.length > 0) console.error(cleanupText);
    throw result.failure;
  }
  if (problems.length > 0) throw new Error(cleanupText);
  return result.value;
}

/** An address family. */
export type Family = "ipv4" | "ipv6";

/** One end of a link: its namespace, device and addresses. */
export interface LinkEnd {
  node: Namespace;
  device: string;
  mac: string;
  ipv4: string;
  ipv6: string;
}

/** A veth pair between two neighbours of the line, `left` the one nearer the client. */
export interface Link {
  /** 1 for the client's link, up to the number of routers plus one (the server's). */
  number: number;
  left: LinkEnd;
  right: LinkEnd;
}

/** What a line is built of. */
export interface LineOptions {
  /** Routers between client and server (1 or more). */
  routers: number;
  /** MTUs by link number (1 is the client's link); the others keep the veth's 1500. */
  mtu?: Record<number, number>;
}

/** A side of a router: the link towards the client or the one towards the server. */
export type Side = "client" | "server";

/** Lines built by this process so far: the next one's K. */
let built = 0;

/**
 * client — router 1 — … — router N — server, each in a namespace of its own
 * (`udpline-PID-K-client`, `…-r1`, `…-server`). Link x (1 is the client's) is 10.K.x.0/24 and
 * fd00:K:x::/64, device `linkX` at both ends, the end nearer the client `.1` and the other
 * `.2`. The routers forward both families; each namespace has a route to every subnet of the
 * line through its neighbour towards it.
 */
export class LineTopology {
  readonly client: Namespace;
  readonly routers: Namespace[];
  readonly server: Namespace;
  /** client, routers, server, in order along the line. */
  readonly nodes: Namespace[];
  /** The links in order: `links[0]` is link 1, the client's. */
  readonly links: Link[];
  readonly #namespaces: Namespaces;
  readonly #serial: number;

  private constructor(namespaces: Namespaces, serial: number, nodes: Namespace[]) {
    this.#namespaces = namespaces;
    this.#serial = serial;
    this.nodes = nodes;
    this.client = nodes[0];
    this.server = nodes[nodes.length - 1];
    this.routers = nodes.slice(1, -1);
    this.links = nodes.slice(1).map((right, index) => this.#link(index + 1, nodes[index], right));
  }

  #link(number: number, left: Namespace, right: Namespace): Link {
    const k = this.#serial;
    const end = (node: Namespace, host: number): LinkEnd => ({
      node,
      device: `link${number}`,
      mac: `02:00:00:${hex(k)}:${hex(number)}:${hex(host)}`,
      ipv4: `10.${k}.${number}.${host}`,
      ipv6: `fd00:${k.toString(16)}:${number.toString(16)}::${host}`,
    });
    return { number, left: end(left, 1), right: end(right, 2) };
  }

  /** Builds a line; on failure, deletes what it made. */
  static async create(options: LineOptions): Promise<LineTopology> {
    if (!Number.isInteger(options.routers) || options.routers < 1 || options.routers > 8) {
      throw new Error(`a line has 1 to 8 routers, not ${options.routers}`);
    }
    const serial = built = built % 250 + 1;
    const namespaces = new Namespaces(`udpline-${serial}`);
    try {
      const suffixes = [
        "client",
        ...Array.from({ length: options.routers }, (_, i) => `r${i + 1}`),
        "server",
      ];
      const nodes: Namespace[] = [];
      for (const suffix of suffixes) nodes.push(await namespaces.add(suffix));
      const line = new LineTopology(namespaces, serial, nodes);
      await line.#up(options);
      return line;
    } catch (error) {
      const problems = await namespaces.down();
      if (problems.length > 0) console.error(`line cleanup: ${problems.join("; ")}`);
      throw error;
    }
  }

  async #up(options: LineOptions): Promise<void> {
    for (const node of this.nodes) {
      // Before any link exists, so that no address of the namespace is ever tentative.
      await node.sysctl("net.ipv6.conf.default.accept_dad", 0);
      await node.sysctl("net.ipv6.conf.all.accept_dad", 0);
      await node.sysctl("net.ipv4.icmp_ratemask", 0);
      await node.sysctl("net.ipv6.icmp.ratemask", "");
    }
    for (const router of this.routers) {
      await router.sysctl("net.ipv4.ip_forward", 1);
      await router.sysctl("net.ipv6.conf.all.forwarding", 1);
    }
    for (const link of this.links) await this.#addLink(link, options.mtu?.[link.number]);
    for (const [index, node] of this.nodes.entries()) await this.#addRoutes(index, node);
    for (const node of this.nodes) {
      const unusable = await node.ip(["-6", "addr", "show", "tentative"]) +
        await node.ip(["-6", "addr", "show", "dadfailed"]);
      if (unusable.trim() !== "") {
        throw new Error(`${node.name} has addresses not yet usable:\n${unusable}`);
      }
    }
  }

  async #addLink(link: Link, mtu: number | undefined): Promise<void> {
    const { left, right } = link;
    await run("ip", [
      ...["link", "add", left.device, "netns", left.node.name, "type", "veth"],
      ...["peer", "name", right.device, "netns", right.node.name],
    ]);
    for (const [end, peer] of [[left, right], [right, left]]) {
      const { node, device } = end;
      await node.ip(["link", "set", device, "address", end.mac]);
      await node.ip(["addr", "add", `${end.ipv4}/24`, "dev", device]);
      await node.ip(["addr", "add", `${end.ipv6}/64`, "dev", device, "nodad"]);
      for (const address of [peer.ipv4, peer.ipv6]) {
        await node.ip([
          ...["neigh", "replace", address, "lladdr", peer.mac],
          ...["dev", device, "nud", "permanent"],
        ]);
      }
      await node.ip(["link", "set", device, ...ONE_SEGMENT, "up"]);
    }
    if (mtu !== undefined) await this.setMtu(link.number, mtu);
  }

  async #addRoutes(index: number, node: Namespace): Promise<void> {
    // Node i is the right end of link i and the left end of link i + 1.
    for (const link of this.links) {
      const towards = link.number <= index - 1
        ? this.links[index - 1].left
        : link.number >= index + 2
        ? this.links[index].right
        : null;
      if (towards === null) continue;
      const device = link.number <= index - 1 ? `link${index}` : `link${index + 1}`;
      const subnet = (family: Family) =>
        family === "ipv4"
          ? `10.${this.#serial}.${link.number}.0/24`
          : `fd00:${this.#serial.toString(16)}:${link.number.toString(16)}::/64`;
      await node.ip(["-4", "route", "add", subnet("ipv4"), "via", towards.ipv4, "dev", device]);
      await node.ip(["-6", "route", "add", subnet("ipv6"), "via", towards.ipv6, "dev", device]);
    }
  }

  /** Sets link `number`'s MTU, at both its ends. */
  async setMtu(number: number, mtu: number): Promise<void> {
    const link = this.links[number - 1];
    if (link === undefined) throw new Error(`no link ${number}: the line has ${this.links.length}`);
    for (const { node, device } of [link.left, link.right]) {
      await node.ip(["link", "set", device, "mtu", String(mtu)]);
    }
  }

  /**
   * `node`'s address in `family`: the client's and the server's only one; a router's on its
   * link towards `side` (by default the client's side: where its ICMP errors to the client
   * come from).
   */
  address(node: Namespace, family: Family, side: Side = "client"): string {
    const index = this.nodes.indexOf(node);
    if (index < 0) throw new Error(`${node.name} is not on this line`);
    const towardsClient = index === this.nodes.length - 1 || (index > 0 && side === "client");
    const end = towardsClient ? this.links[index - 1].right : this.links[index].left;
    return end[family];
  }

  /** `HOST:PORT` (IPv6: `[HOST]:PORT`) of the server, for a client's command line. */
  serverTarget(family: Family, port: number): string {
    return formatAddress({ hostname: this.address(this.server, family), port });
  }

  /** Deletes the line; returns what could not be removed. */
  down(): Promise<string[]> {
    return this.#namespaces.down();
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Builds a line, runs `body` on it, and deletes the line whatever happened (see
 * {@linkcode cleanly}). */
export async function withLine<T>(
  options: LineOptions,
  body: (line: LineTopology) => Promise<T>,
): Promise<T> {
  const line = await LineTopology.create(options);
  return await cleanly(() => body(line), () => line.down());
}
