/**
 * `udp proxy`: a seeded impairment proxy between UDP clients and a target.
 *
 * @module
 */

import { proxyStatsJson } from "../../proxy/mod.ts";
import {
  formatAddress,
  type HostPort,
  parseHostPort,
  type ResolvedAddress,
  resolveHost,
} from "../../net/address.ts";
import { NetError } from "../../net/mod.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { type Impairments, NO_IMPAIRMENTS } from "../../proxy/impairment.ts";
import {
  flag,
  type HelpRow,
  helpRow,
  label,
  type Option,
  option,
  type OptionValues,
  type RawValues,
  section,
  text,
} from "../options.ts";
import { printJson, printLine, toJson } from "../output.ts";
import {
  parseBurst,
  parseMs,
  parsePercent,
  parseRate,
  parseSeconds,
  parseWholeNumber,
} from "../parse.ts";
import { type DirectionStats, Proxy, type ProxyLogRecord } from "../../proxy/proxy.ts";
import { randomSeed } from "../../proxy/random.ts";
import { jsonOption } from "../shared_options.ts";
import { interrupted } from "../signals.ts";

/** The two directions: up from the clients to the target, down from the target back. */
type Direction = "up" | "down";

/** An impairment's value in each direction (undefined: not given for it). */
type PerDirection<T> = { readonly [D in Direction]: T | undefined };

/**
 * An impairment option: `--NAME` for both directions, and `--up-NAME` and `--down-NAME`
 * (accepted, not listed in the help) for one, which take precedence. `parse` is given the
 * option the value came from, for its message.
 */
function impairment<T>(
  name: string,
  value: string,
  help: string,
  parse: (option: string, text: string) => T,
): Option<PerDirection<T>> {
  const row: HelpRow = helpRow(label(name, undefined, value), help);
  const read = (raw: RawValues, dir: Direction) => {
    const specific = raw[`${dir}-${name}`];
    const given = specific ?? raw[name];
    if (typeof given !== "string") return undefined;
    return parse(specific !== undefined ? `--${dir}-${name}` : `--${name}`, given);
  };
  return {
    flags: ["", "up-", "down-"].map((prefix) => ({ long: prefix + name, type: "string" })),
    rows: [row],
    read: (raw) => ({ up: read(raw, "up"), down: read(raw, "down") }),
  };
}

const OPTIONS = {
  listen: option({
    long: "listen",
    value: "HOST:PORT",
    help: "where clients send to (port 0 picks a free one)",
    // No default port: -1 marks an address given without one (port 0 is a choice here).
    parse: (text) => parseHostPort(text, -1, true),
    required: true,
  }),
  to: option({
    long: "to",
    value: "HOST:PORT",
    help: "the target datagrams are forwarded to",
    parse: (text) => parseHostPort(text, -1),
    required: true,
  }),
  seed: option({
    long: "seed",
    value: "N",
    help: "seed of every random decision (default: random, printed)",
    parse: (text) => parseWholeNumber("seed", text, 0, 0xffff_ffff),
  }),
  log: option({
    long: "log",
    value: "FILE",
    help: `write one NDJSON line per datagram with what was done to it, to
a new FILE (an existing one is refused unless --append)`,
    parse: text,
  }),
  append: flag({ long: "append", help: "add to the end of an existing --log FILE" }),
  json: jsonOption("print the start line and the final counters as NDJSON"),
  idleMs: option({
    long: "idle",
    value: "SEC",
    help: "close a client's upstream socket after SEC idle (default 60)",
    parse: (text) => parseSeconds("idle", text, false),
    default: 60_000,
  }),
  maxClients: option({
    long: "max-clients",
    value: "N",
    help: "clients at once; datagrams from more are dropped (default 1024)",
    parse: (text) => parseWholeNumber("max-clients", text, 1, 1_000_000),
    default: 1024,
  }),
};

const IMPAIRMENTS = {
  loss: impairment("loss", "P%", "drop datagrams at random", parsePercent),
  burst: impairment(
    "burst-loss",
    "ENTER%,EXIT%[,BAD%[,GOOD%]]",
    `Gilbert-Elliott bursts: chance per datagram of entering and
leaving the bad state, loss in the bad (default 100%) and
good (default 0%) states`,
    parseBurst,
  ),
  duplicate: impairment("dup", "P%", "send datagrams twice", parsePercent),
  reorder: impairment(
    "reorder",
    "P%",
    "hold a datagram back until the next one(s) have gone",
    parsePercent,
  ),
  reorderGap: impairment(
    "reorder-gap",
    "N",
    "how many later datagrams overtake a held one (default 1)",
    (option, text) => parseWholeNumber(option, text, 1, 1000),
  ),
  reorderHoldMs: option({
    long: "reorder-hold",
    value: "MS",
    help: "release a held datagram after MS anyway (default 100)",
    parse: (text) => parseMs("reorder-hold", text),
    default: 100,
  }),
  delayMs: impairment("delay", "MS", "delay every datagram", parseMs),
  jitterMs: impairment("jitter", "MS", "add uniform(-MS, +MS) to each datagram's delay", parseMs),
  corrupt: impairment("corrupt", "P%", "flip one random bit of one random byte", parsePercent),
  rate: impairment(
    "rate",
    "R",
    `limit to R datagrams/s (1000, 5k, 1000pps) or bits/s of
payload (10mbit, 512kbit, 64000bit)`,
    parseRate,
  ),
  queue: impairment(
    "queue",
    "N",
    `datagrams that may wait for --rate; more are dropped
(default 1000)`,
    (option, text) => parseWholeNumber(option, text, 1, 1_000_000),
  ),
};

type ProxyValues = OptionValues<typeof OPTIONS & typeof IMPAIRMENTS>;

/** The `udp proxy` command. */
export const proxyCommand = defineCommand({
  name: "proxy",
  summary: "forward datagrams and impair them: loss, bursts, duplication, reordering, delay",
  help: [
    `Usage: udp proxy --listen HOST:PORT --to HOST:PORT [impairments] [--seed N]
                 [--log FILE [--append]] [--json]

Forward datagrams both ways between clients and a target, and impair them on purpose: one
upstream socket per client address; idle ones expire. Every random decision comes from --seed,
each direction from its own stream, so a run can be repeated exactly.`,
    section("Options:", OPTIONS, 27),
    section(
      `Impairments (each applies to both directions; --up-NAME / --down-NAME set one direction and
take precedence):`,
      IMPAIRMENTS,
      36,
      false,
    ),
    "Ctrl-C or SIGTERM prints the counters per direction and exits 0. Exit 2 on bad options.",
  ],
  options: { ...OPTIONS, ...IMPAIRMENTS },
  async run(options, _positionals, context) {
    const { listen, target } = await addresses(options.listen, options.to);
    const up = impairmentsFor(options, "up");
    const down = impairmentsFor(options, "down");
    const seed = options.seed ?? randomSeed();
    if (options.append && options.log === undefined) {
      throw new UsageError("--append goes with --log FILE");
    }
    const log = options.log === undefined ? null : LogFile.open(options.log, options.append);
    let proxy: Proxy;
    try {
      proxy = Proxy.listen({
        listen,
        target,
        up,
        down,
        seed,
        idleMs: options.idleMs,
        maxClients: options.maxClients,
        reorderHoldMs: options.reorderHoldMs,
        onLog: log ? (record) => log.write(record) : undefined,
      });
    } catch (error) {
      log?.discard();
      throw adviseListen(error);
    }
    // At once (no await since the bind): nothing has been received yet. Giving up file access
    // after the bind, not before, lets a failed bind remove the log it has just created.
    context.filesOpened();
    // Before the start line: a supervisor may send SIGTERM as soon as it reads it.
    const stop = interrupted();
    printStart(options.json, proxy, { target: formatAddress(target), seed, up, down });
    await stop.promise;
    stop.dispose();
    await proxy.close();
    log?.close();
    printStats(options.json, proxy);
    return 0;
  },
});

/** `--listen` and `--to`, which must have a port, resolved. */
async function addresses(
  listen: HostPort,
  to: HostPort,
): Promise<{ listen: ResolvedAddress; target: ResolvedAddress }> {
  if (to.port === -1) throw new UsageError("--to needs a port, e.g. 127.0.0.1:9999");
  if (listen.port === -1) {
    throw new UsageError("--listen needs a port, e.g. 127.0.0.1:9998 (0 for any free one)");
  }
  const target = await resolveHost(to.host, to.port);
  return { target, listen: await resolveHost(listen.host, listen.port) };
}

/** The impairments of one direction: its own options, else those for both, else none. */
function impairmentsFor(options: ProxyValues, dir: Direction): Impairments {
  return {
    ...NO_IMPAIRMENTS,
    loss: options.loss[dir] ?? NO_IMPAIRMENTS.loss,
    burst: options.burst[dir] ?? NO_IMPAIRMENTS.burst,
    duplicate: options.duplicate[dir] ?? NO_IMPAIRMENTS.duplicate,
    reorder: options.reorder[dir] ?? NO_IMPAIRMENTS.reorder,
    reorderGap: options.reorderGap[dir] ?? NO_IMPAIRMENTS.reorderGap,
    delayMs: options.delayMs[dir] ?? NO_IMPAIRMENTS.delayMs,
    jitterMs: options.jitterMs[dir] ?? NO_IMPAIRMENTS.jitterMs,
    corrupt: options.corrupt[dir] ?? NO_IMPAIRMENTS.corrupt,
    rate: options.rate[dir] ?? NO_IMPAIRMENTS.rate,
    queue: options.queue[dir] ?? NO_IMPAIRMENTS.queue,
  };
}

/** The start line: where, to where, the seed and the impairments each way. */
function printStart(
  json: boolean,
  proxy: Proxy,
  start: { target: string; seed: number; up: Impairments; down: Impairments },
): void {
  const where = formatAddress(proxy.address);
  if (json) {
    printJson({ type: "listening", address: where, ...start });
  } else {
    printLine(`Proxying ${where} -> ${start.target} (seed ${start.seed})`);
    printLine(`up:   ${describeImpairments(start.up)}`);
    printLine(`down: ${describeImpairments(start.down)}`);
  }
}

/** The final counters, per direction. */
function printStats(json: boolean, proxy: Proxy): void {
  const stats = proxy.stats;
  if (json) {
    printJson(proxyStatsJson(stats));
  } else {
    printLine(
      [
        "",
        "--- udp proxy statistics ---",
        `up:   ${describeStats(stats.up)}`,
        `down: ${describeStats(stats.down)}`,
        `clients: ${stats.clients}; datagrams from others to upstream sockets: ${stats.foreign}`,
      ].join("\n"),
    );
  }
}

/** The socket layer's advice for a port in use names serve's --port; the proxy's is --listen. */
function adviseListen(error: unknown): unknown {
  if (!(error instanceof UsageError || error instanceof NetError)) return error;
  const advice = error.message
    .replace(
      /choose another with --port, or --port 0 for any free port$/,
      "choose another with --listen HOST:PORT, or port 0 for any free one (e.g. --listen 127.0.0.1:0)",
    )
    .replace(/use a higher --port$/, "use a higher port in --listen HOST:PORT");
  return advice === error.message ? error : new UsageError(advice);
}

function describeImpairments(i: Impairments): string {
  const parts: string[] = [];
  const pct = (p: number) => `${Number((p * 100).toPrecision(4))}%`;
  if (i.loss) parts.push(`loss ${pct(i.loss)}`);
  if (i.burst) {
    parts.push(
      `burst-loss enter ${pct(i.burst.enter)} exit ${pct(i.burst.exit)} bad ${
        pct(i.burst.badLoss)
      } good ${pct(i.burst.goodLoss)}`,
    );
  }
  if (i.duplicate) parts.push(`dup ${pct(i.duplicate)}`);
  if (i.reorder) parts.push(`reorder ${pct(i.reorder)} gap ${i.reorderGap}`);
  if (i.delayMs || i.jitterMs) parts.push(`delay ${i.delayMs} ms ± ${i.jitterMs} ms`);
  if (i.corrupt) parts.push(`corrupt ${pct(i.corrupt)}`);
  if (i.rate) {
    parts.push(
      `rate ${i.rate.value} ${i.rate.unit === "pps" ? "datagrams/s" : "bit/s"} queue ${i.queue}`,
    );
  }
  return parts.length ? parts.join(", ") : "no impairment";
}

function describeStats(s: DirectionStats): string {
  const dropped = Object.entries(s.dropped).filter(([, n]) => n > 0);
  const total = dropped.reduce((sum, [, n]) => sum + n, 0);
  return `${s.received} received, ${s.forwarded} forwarded, ${total} dropped` +
    (dropped.length ? ` (${dropped.map(([why, n]) => `${why} ${n}`).join(", ")})` : "") +
    `, ${s.duplicated} duplicated, ${s.reordered} reordered, ${s.corrupted} corrupted` +
    (s.sendErrors ? `, ${s.sendErrors} send errors` : "");
}

/** The --log file: NDJSON lines (lib/output.ts's JSON style), written in batches. */
class LogFile {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #created: boolean;
  readonly #encoder = new TextEncoder();
  #lines: string[] = [];
  readonly #timer: ReturnType<typeof setInterval>;

  private constructor(file: Deno.FsFile, path: string, created: boolean) {
    this.#file = file;
    this.#path = path;
    this.#created = created;
    this.#timer = setInterval(() => this.flush(), 200);
  }

  /** Creates `path`, which must not exist; with `append`, adds to it when it does. */
  static open(path: string, append: boolean): LogFile {
    try {
      try {
        return new LogFile(Deno.openSync(path, { write: true, createNew: true }), path, true);
      } catch (error) {
        if (!(append && error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      return new LogFile(Deno.openSync(path, { append: true }), path, false);
    } catch (error) {
      const why = error instanceof Deno.errors.AlreadyExists
        ? "it exists already: add --append to add to it, or name a new file"
        : describeFileError(error, "write");
      throw new UsageError(`cannot write --log '${path}': ${why}`);
    }
  }

  /** Closes the file and removes it if this run created it (for a run that never started). */
  discard(): void {
    this.close();
    if (!this.#created) return;
    try {
      Deno.removeSync(this.#path);
    } catch {
      // Nothing was written to it; an empty file left behind is harmless.
    }
  }

  write(record: ProxyLogRecord): void {
    this.#lines.push(toJson(record));
    if (this.#lines.length >= 1024) this.flush();
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    const bytes = this.#encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
    this.#file.close();
  }
}
