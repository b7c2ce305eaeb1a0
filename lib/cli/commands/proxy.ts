/**
 * `udp proxy`: a seeded impairment proxy between UDP clients and a target.
 *
 * @module
 */

import { formatAddress, parseHostPort, resolveHost } from "../../net/address.ts";
import { parseCommandArgs, type ParsedArgs, parseSeconds, parseWholeNumber } from "../args.ts";
import { expectPositionals } from "../args.ts";
import { UsageError } from "../errors.ts";
import { describeFileError } from "../files.ts";
import { type Impairments, NO_IMPAIRMENTS, type RateLimit } from "../../proxy/impairment.ts";
import { printJson, printLine, toJson } from "../output.ts";
import { type DirectionStats, Proxy, type ProxyLogRecord } from "../../proxy/proxy.ts";
import { randomSeed } from "../../proxy/random.ts";
import { interrupted } from "../signals.ts";
import type { Command, RunContext } from "./command.ts";

const HELP = `Usage: udp proxy --listen HOST:PORT --to HOST:PORT [impairments] [--seed N]
                 [--log FILE [--append]] [--json]

Forward datagrams both ways between clients and a target, and impair them on purpose: one
upstream socket per client address; idle ones expire. Every random decision comes from --seed,
each direction from its own stream, so a run can be repeated exactly.

Options:
      --listen HOST:PORT   where clients send to (port 0 picks a free one)
      --to HOST:PORT       the target datagrams are forwarded to
      --seed N             seed of every random decision (default: random, printed)
      --log FILE           write one NDJSON line per datagram with what was done to it, to
                           a new FILE (an existing one is refused unless --append)
      --append             add to the end of an existing --log FILE
      --json               print the start line and the final counters as NDJSON
      --idle SEC           close a client's upstream socket after SEC idle (default 60)
      --max-clients N      clients at once; datagrams from more are dropped (default 1024)
  -h, --help               show this help

Impairments (each applies to both directions; --up-NAME / --down-NAME set one direction and
take precedence):
      --loss P%                     drop datagrams at random
      --burst-loss ENTER%,EXIT%[,BAD%[,GOOD%]]
                                    Gilbert-Elliott bursts: chance per datagram of entering and
                                    leaving the bad state, loss in the bad (default 100%) and
                                    good (default 0%) states
      --dup P%                      send datagrams twice
      --reorder P%                  hold a datagram back until the next one(s) have gone
      --reorder-gap N               how many later datagrams overtake a held one (default 1)
      --reorder-hold MS             release a held datagram after MS anyway (default 100)
      --delay MS                    delay every datagram
      --jitter MS                   add uniform(-MS, +MS) to each datagram's delay
      --corrupt P%                  flip one random bit of one random byte
      --rate R                      limit to R datagrams/s (1000, 5k, 1000pps) or bits/s of
                                    payload (10mbit, 512kbit, 64000bit)
      --queue N                     datagrams that may wait for --rate; more are dropped
                                    (default 1000)

Ctrl-C or SIGTERM prints the counters per direction and exits 0. Exit 2 on bad options.`;

const IMPAIRMENT_OPTIONS = [
  "loss",
  "burst-loss",
  "dup",
  "reorder",
  "reorder-gap",
  "delay",
  "jitter",
  "corrupt",
  "rate",
  "queue",
] as const;

type ImpairmentOption = typeof IMPAIRMENT_OPTIONS[number];

/** The `udp proxy` command. */
export const proxyCommand: Command = {
  name: "proxy",
  summary: "forward datagrams and impair them: loss, bursts, duplication, reordering, delay",
  help: HELP,
  async run(args: string[], context: RunContext): Promise<number> {
    const options: Record<string, { type: "string" | "boolean" }> = {
      listen: { type: "string" },
      to: { type: "string" },
      seed: { type: "string" },
      log: { type: "string" },
      append: { type: "boolean" },
      json: { type: "boolean" },
      idle: { type: "string" },
      "max-clients": { type: "string" },
      "reorder-hold": { type: "string" },
    };
    for (const name of IMPAIRMENT_OPTIONS) {
      for (const prefix of ["", "up-", "down-"]) options[prefix + name] = { type: "string" };
    }
    const parsed = parseCommandArgs("proxy", args, options);
    if (parsed.values.help) {
      printLine(HELP);
      return 0;
    }
    expectPositionals("proxy", parsed.positionals, 0, 0, "");
    const text = (name: string) => parsed.values[name] as string | undefined;
    if (text("listen") === undefined) throw new UsageError("missing --listen HOST:PORT");
    if (text("to") === undefined) throw new UsageError("missing --to HOST:PORT");
    // No default port: -1 marks an address given without one (port 0 is a choice for --listen).
    const listen = parseHostPort(text("listen")!, -1, true);
    const to = parseHostPort(text("to")!, -1);
    if (to.port === -1) throw new UsageError("--to needs a port, e.g. 127.0.0.1:9999");
    if (listen.port === -1) {
      throw new UsageError("--listen needs a port, e.g. 127.0.0.1:9998 (0 for any free one)");
    }
    const up = impairmentsFor(parsed, "up");
    const down = impairmentsFor(parsed, "down");
    const seed = text("seed") === undefined
      ? randomSeed()
      : parseWholeNumber("seed", text("seed")!, 0, 0xffff_ffff);
    const idleMs = text("idle") === undefined ? 60_000 : parseSeconds("idle", text("idle")!, false);
    const maxClients = text("max-clients") === undefined
      ? 1024
      : parseWholeNumber("max-clients", text("max-clients")!, 1, 1_000_000);
    const reorderHoldMs = text("reorder-hold") === undefined
      ? 100
      : parseMs("reorder-hold", text("reorder-hold")!);
    const target = await resolveHost(to.host, to.port);
    const listenAddress = await resolveHost(listen.host, listen.port);
    const append = Boolean(parsed.values.append);
    if (append && text("log") === undefined) throw new UsageError("--append goes with --log FILE");
    const log = text("log") === undefined ? null : LogFile.open(text("log")!, append);
    const json = Boolean(parsed.values.json);
    let proxy: Proxy;
    try {
      proxy = Proxy.listen({
        listen: listenAddress,
        target,
        up,
        down,
        seed,
        idleMs,
        maxClients,
        reorderHoldMs,
        onLog: log ? (record) => log.write(record) : undefined,
      });
    } catch (error) {
      log?.discard();
      throw adviseListen(error);
    }
    // At once (no await since the bind): nothing has been received yet. Giving up file access
    // after the bind, not before, lets a failed bind remove the log it has just created.
    context.filesOpened();
    const where = formatAddress(proxy.address);
    const targetText = formatAddress(target);
    if (json) {
      printJson({ type: "listening", address: where, target: targetText, seed, up, down });
    } else {
      printLine(`Proxying ${where} -> ${targetText} (seed ${seed})`);
      printLine(`up:   ${describeImpairments(up)}`);
      printLine(`down: ${describeImpairments(down)}`);
    }
    const stop = interrupted();
    await stop.promise;
    stop.dispose();
    await proxy.close();
    log?.close();
    const stats = proxy.stats;
    if (json) {
      printJson({ type: "stats", ...stats });
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
    return 0;
  },
};

/** The socket layer's advice for a port in use names serve's --port; the proxy's is --listen. */
function adviseListen(error: unknown): unknown {
  if (!(error instanceof UsageError)) return error;
  const advice = error.message
    .replace(
      /choose another with --port, or --port 0 for any free port$/,
      "choose another with --listen HOST:PORT, or port 0 for any free one (e.g. --listen 127.0.0.1:0)",
    )
    .replace(/use a higher --port$/, "use a higher port in --listen HOST:PORT");
  return advice === error.message ? error : new UsageError(advice);
}

function impairmentsFor(parsed: ParsedArgs, direction: "up" | "down"): Impairments {
  const value = (name: ImpairmentOption) => {
    const specific = parsed.values[`${direction}-${name}`] as string | undefined;
    return specific ?? (parsed.values[name] as string | undefined);
  };
  const option = (name: ImpairmentOption) =>
    parsed.values[`${direction}-${name}`] !== undefined ? `--${direction}-${name}` : `--${name}`;
  const percent = (name: ImpairmentOption) => {
    const text = value(name);
    return text === undefined ? 0 : parsePercent(option(name), text);
  };
  const impairments: Impairments = {
    ...NO_IMPAIRMENTS,
    loss: percent("loss"),
    duplicate: percent("dup"),
    reorder: percent("reorder"),
    corrupt: percent("corrupt"),
  };
  const burst = value("burst-loss");
  if (burst !== undefined) impairments.burst = parseBurst(option("burst-loss"), burst);
  const gap = value("reorder-gap");
  if (gap !== undefined) {
    impairments.reorderGap = parseWholeNumber(option("reorder-gap"), gap, 1, 1000);
  }
  const delay = value("delay");
  if (delay !== undefined) impairments.delayMs = parseMs(option("delay"), delay);
  const jitter = value("jitter");
  if (jitter !== undefined) impairments.jitterMs = parseMs(option("jitter"), jitter);
  const rate = value("rate");
  if (rate !== undefined) impairments.rate = parseRate(option("rate"), rate);
  const queue = value("queue");
  if (queue !== undefined) {
    impairments.queue = parseWholeNumber(option("queue"), queue, 1, 1_000_000);
  }
  return impairments;
}

/**
 * Parses "10%", "10" (percent) or "0.5%" into a probability 0..1.
 *
 * @example
 * ```ts
 * import { parsePercent } from "./proxy.ts";
 * console.log(parsePercent("--loss", "12.5%")); // 0.125
 * ```
 */
export function parsePercent(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  if (!match || Number(match[1]) > 100) {
    throw new UsageError(`invalid ${option} '${text}': use a percentage from 0% to 100%, e.g. 10%`);
  }
  return Number(match[1]) / 100;
}

/**
 * Parses milliseconds: "20", "20ms" or "0.5".
 *
 * @example
 * ```ts
 * import { parseMs } from "./proxy.ts";
 * console.log(parseMs("--delay", "20ms")); // 20
 * ```
 */
export function parseMs(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms)?$/.exec(text);
  if (!match || Number(match[1]) > 3_600_000) {
    throw new UsageError(`invalid ${option} '${text}': use milliseconds, e.g. 20 or 20ms`);
  }
  return Number(match[1]);
}

/**
 * Parses a rate: datagrams per second ("1000", "5k", "1000pps") or bits per second of
 * payload ("10mbit", "512kbit", "64000bit").
 *
 * @example
 * ```ts
 * import { parseRate } from "./proxy.ts";
 * console.log(parseRate("--rate", "10mbit")); // { unit: "bps", value: 10000000 }
 * ```
 */
export function parseRate(option: string, text: string): RateLimit {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)(pps|bit|bps)?$/i.exec(text);
  const scale = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[(match?.[2] ?? "").toLowerCase()] ?? 1;
  const value = match ? Number(match[1]) * scale : NaN;
  if (!match || !(value > 0)) {
    throw new UsageError(
      `invalid ${option} '${text}': use datagrams/s (1000, 5k, 1000pps) or bits/s (10mbit, 512kbit)`,
    );
  }
  const unit = (match[3] ?? "pps").toLowerCase() === "pps" ? "pps" : "bps";
  return { unit, value };
}

/**
 * Parses Gilbert–Elliott parameters "ENTER%,EXIT%[,BAD%[,GOOD%]]".
 *
 * @example
 * ```ts
 * import { parseBurst } from "./proxy.ts";
 * console.log(parseBurst("--burst-loss", "1%,25%"));
 * // { enter: 0.01, exit: 0.25, badLoss: 1, goodLoss: 0 }
 * ```
 */
export function parseBurst(option: string, text: string): NonNullable<Impairments["burst"]> {
  const parts = text.split(",");
  if (parts.length < 2 || parts.length > 4) {
    throw new UsageError(
      `invalid ${option} '${text}': use ENTER%,EXIT%[,BAD%[,GOOD%]], e.g. 1%,25%`,
    );
  }
  const [enter, exit, bad, good] = parts.map((part) => parsePercent(option, part));
  return { enter, exit, badLoss: bad ?? 1, goodLoss: good ?? 0 };
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
