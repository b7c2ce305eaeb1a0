/**
 * Shared helpers for the tests: running the CLI as a subprocess (from source with the
 * compile flags, or the compiled binary named by UDP_BIN), reading its output line by line,
 * and a scripted fake reflector.
 *
 * @module
 */

import { ok as assert, strictEqual } from "node:assert/strict";
import { runtimeFlags } from "../scripts/flags.ts";
import type { ResolvedAddress } from "../lib/net/address.ts";
import { UdpSocket } from "../lib/net/socket.ts";

/** The keys of `udp ping --json`'s summary, in order, as the README documents them. */
export const SUMMARY_KEYS = [
  "type",
  "target",
  "transmitted",
  "received",
  "lost",
  "in_flight",
  "loss_percent",
  "duplicates",
  "reordered",
  "late",
  "foreign",
  "corrupted",
  "echo_server",
  "retransmitted",
  "time_ms",
  "rtt_ms",
  "round_trip_ms",
  "server_ms",
  "jitter_ms",
  "errors",
  "icmp",
  "lost_there",
  "lost_back",
  "ipdv_there_ms",
  "ipdv_back_ms",
  "one_way_there_ms",
  "one_way_back_ms",
  "hops_there",
  "dscp_sent",
  "dscp_received",
  "ecn_sent",
  "ecn_received",
  "seen_as",
];

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The command line that runs `udp ARGS`; with `entry`, that module (from source, with the
 * binary's flags) instead of main.ts or the binary. */
export function udpArgv(args: string[], entry?: string): [string, string[]] {
  const binary = Deno.env.get("UDP_BIN");
  if (binary && entry === undefined) return [binary, args];
  return [Deno.execPath(), ["run", "--quiet", ...runtimeFlags(), entry ?? MAIN, ...args]];
}

/**
 * The environment of a CLI subprocess: this process's, with `extra`, but never an $INIT_CWD
 * (which `deno task test` sets for itself): main.ts would take it for the directory a
 * `deno task udp` was started in whenever the subprocess runs in the project's directory.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  return { ...env, ...extra };
}

/** The result of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Asserts that a CLI run was a usage error: exit 2 and one line on stderr that `message`
 * matches (stderr trimmed), `what` naming the run in the failure.
 */
export function assertUsageError(run: CliResult, message: RegExp, what: string): void {
  const stderr = run.stderr.trim();
  strictEqual(run.code, 2, `${what}: ${stderr}`);
  strictEqual(stderr.split("\n").length, 1, stderr);
  assert(message.test(stderr), `${what}: ${stderr}`);
}

/** Where and with what environment a CLI subprocess runs. */
export interface RunOptions {
  /** Working directory: where relative paths start. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** A module to run with the binary's flags instead of main.ts (a test's own entry point). */
  entry?: string;
}

/** Runs `udp ARGS` to completion, with optional standard input. */
export function runUdp(
  args: string[],
  stdin?: string | Uint8Array,
  options: RunOptions = {},
): Promise<CliResult> {
  const [command, argv] = udpArgv(args, options.entry);
  return tryRun(command, argv, stdin, { cwd: options.cwd, env: childEnv(options.env) });
}

function decoded(output: Deno.CommandOutput): CliResult {
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs a command to its end, synchronously (at a module's load); never throws for an exit
 * code. */
export function runSync(command: string, args: string[]): CliResult {
  return decoded(
    new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .outputSync(),
  );
}

/**
 * Runs a command to its end, with `stdin` if given; never throws for an exit code. With
 * `env`, that is its whole environment.
 */
export async function tryRun(
  command: string,
  args: string[],
  stdin?: string | Uint8Array,
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    clearEnv: options.env !== undefined,
    env: options.env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
    await writer.close();
  }
  return decoded(await child.output());
}

/** Runs a command to its end; throws, with its stderr, when it fails. */
export async function run(command: string, args: string[], stdin?: string): Promise<string> {
  const output = await tryRun(command, args, stdin);
  if (output.code !== 0) {
    throw new Error(`${command} ${args.join(" ")}: exit ${output.code}: ${output.stderr.trim()}`);
  }
  return output.stdout;
}

/** A running `udp` subprocess whose stdout can be read line by line. */
export class UdpProcess {
  readonly child: Deno.ChildProcess;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  readonly #stderr: Promise<string>;
  readonly seen: string[] = [];
  #pending = "";
  #reading: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
  #draining: Promise<void> | null = null;

  constructor(args: string[], options: RunOptions = {}) {
    const [command, argv] = udpArgv(args, options.entry);
    this.child = new Deno.Command(command, {
      args: argv,
      cwd: options.cwd,
      clearEnv: true,
      env: childEnv(options.env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.child.stdout.getReader();
    this.#stderr = new Response(this.child.stderr).text();
  }

  /** Reads lines until one matches `pattern`; returns the match. Fails at the end of the
   * output, or after `timeoutMs` (so a wrong expectation fails instead of hanging). */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const newline = this.#pending.indexOf("\n");
      if (newline >= 0) {
        const line = this.#pending.slice(0, newline);
        this.#pending = this.#pending.slice(newline + 1);
        this.seen.push(line);
        const match = line.match(pattern);
        if (match) return match;
        continue;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      });
      const next = this.#reading ??= this.#stdout.read();
      const result = await Promise.race([next, timeout]);
      clearTimeout(timer);
      if (result === "timeout") {
        throw new Error(
          `no line matched ${pattern} in ${timeoutMs} ms; got:\n${this.seen.join("\n")}`,
        );
      }
      this.#reading = null;
      const { value, done } = result;
      if (done) {
        throw new Error(`output ended before ${pattern}; got:\n${this.seen.join("\n")}`);
      }
      this.#pending += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Closes the reading end of stdout, as `| head -N` does once it has read N lines: the
   * process's next write to stdout fails. */
  async closeStdout(): Promise<void> {
    await this.#stdout.cancel();
    this.#reading = null;
  }

  /**
   * Waits for the process to exit without reading stdout further (after closeStdout()),
   * killing it and failing after `timeoutMs`, so a process that does not notice fails the test
   * instead of hanging it. Returns the exit code and stderr.
   */
  async exited(timeoutMs = 20_000): Promise<{ code: number; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const status = await Promise.race([this.child.status, timeout]);
    clearTimeout(timer);
    if (status === "timeout") {
      this.child.kill("SIGKILL");
      await this.child.status;
      await this.#stderr;
      throw new Error(`still running ${timeoutMs} ms after its stdout was closed`);
    }
    return { code: status.code, stderr: await this.#stderr };
  }

  /** Sends a signal, then collects the rest of stdout, stderr and the exit code. */
  async stop(signal: Deno.Signal = "SIGINT"): Promise<CliResult> {
    this.child.kill(signal);
    return await this.finish();
  }

  /**
   * Reads stdout in the background from now on (what finish() returns), so that a daemon
   * printing a line per interval never blocks on a full pipe while the test does something
   * else. waitFor() is not to be used after it.
   */
  keepReading(): void {
    this.#draining ??= (async () => {
      while (true) {
        const { value, done } = await (this.#reading ?? this.#stdout.read());
        this.#reading = null;
        if (done) return;
        this.#pending += this.#decoder.decode(value, { stream: true });
      }
    })();
  }

  /** Waits for exit; stdout holds every line not yet consumed by waitFor. */
  async finish(): Promise<CliResult> {
    if (this.#draining !== null) await this.#draining;
    let rest = this.#pending;
    while (this.#draining === null) {
      const { value, done } = await (this.#reading ?? this.#stdout.read());
      this.#reading = null;
      if (done) break;
      rest += this.#decoder.decode(value, { stream: true });
    }
    rest += this.#decoder.decode();
    const status = await this.child.status;
    return { code: status.code, stdout: rest, stderr: await this.#stderr };
  }
}

/** Starts `udp serve --port 0 ARGS` and returns it with the port it listens on. */
export async function startServe(
  args: string[] = [],
  options: RunOptions = {},
): Promise<{ serve: UdpProcess; port: number }> {
  const serve = new UdpProcess(["serve", "--port", "0", ...args], options);
  const match = await serve.waitFor(/^Listening on (?:\[.*\]|[^\s:]+):(\d+)|"address":".*:(\d+)"/);
  return { serve, port: Number(match[1] ?? match[2]) };
}

/** A loopback socket the test drives by hand, e.g. as a scripted reflector. */
export function bindLoopback(): UdpSocket {
  return UdpSocket.bind("127.0.0.1", 0);
}

/** The resolved address of a local socket on 127.0.0.1, for the library's `target` options. */
export function loopbackTarget(port: number): ResolvedAddress {
  return { hostname: "127.0.0.1", port, family: "ipv4" };
}

/** Whether a program is on PATH. */
export function hasProgram(name: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** A received datagram (copied). */
export interface Received {
  data: Uint8Array;
  from: Deno.NetAddr;
  /** When it reached the socket (monotonic milliseconds; see DatagramHandler). */
  arrivedAt: number;
}

/**
 * A loopback socket with a queue of what it receives: `next()` waits for the next datagram.
 * `close()` closes the socket and waits for its receive loop to end.
 */
export class Inbox {
  readonly socket: UdpSocket;
  readonly #queue: Received[] = [];
  #waiting: ((received: Received) => void) | null = null;
  readonly #loop: Promise<void>;

  constructor(hostname = "127.0.0.1") {
    this.socket = UdpSocket.bind(hostname, 0);
    this.#loop = this.socket.receiveEach((data, from, arrivedAt) => {
      const received = { data: data.slice(), from, arrivedAt };
      if (this.#waiting) {
        const resolve = this.#waiting;
        this.#waiting = null;
        resolve(received);
      } else {
        this.#queue.push(received);
      }
    });
  }

  /** The next datagram received. */
  next(): Promise<Received> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiting = resolve);
  }

  /** The next datagram, or null when none arrives within `ms`. */
  async nextWithin(ms: number): Promise<Received | null> {
    const queued = this.#queue.shift();
    if (queued) return queued;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arrival = new Promise<Received>((resolve) => this.#waiting = resolve);
    const timeout = new Promise<null>((resolve) =>
      timer = setTimeout(() => resolve(null), Math.max(0, ms))
    );
    const result = await Promise.race([arrival, timeout]);
    clearTimeout(timer);
    if (result === null) this.#waiting = null;
    return result;
  }

  /** Sends `data` to `to`. */
  async send(data: Uint8Array, to: { hostname: string; port: number }): Promise<void> {
    await this.socket.send(data, to);
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    this.socket.close();
    await this.#loop;
  }
}

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "udp-test-" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Whether a test needing `program` must be skipped: true when it is missing outside CI. In CI
 * (CI=true) a missing program is an error, since .ci/run installs what the tests use.
 */
export function missing(program: string): boolean {
  const present = hasProgram(program);
  if (!present && Deno.env.get("CI") === "true") {
    throw new Error(`${program} is missing: .ci/run should install it`);
  }
  return !present;
}

/** A free loopback UDP port (bound, then closed): for a peer that cannot report its own, or
 * for a target where nothing listens. */
export function freePort(): number {
  const socket = UdpSocket.bind("127.0.0.1", 0);
  const port = socket.address.port;
  socket.close();
  return port;
}

/** The bodies of a document's fenced blocks tagged `tag` (e.g. "json vector"): the test vectors
 * docs/protocol.md and docs/stamp.md hold. */
export function docBlocks(doc: string, tag: string): string[] {
  const pattern = new RegExp("```" + tag + "\\n([\\s\\S]*?)\\n```", "g");
  return [...doc.matchAll(pattern)].map((match) => match[1]);
}

/**
 * Whether this machine's processor has the crc32 instruction (SSE4.2), which the native
 * backend computes checks with: asked of /proc/cpuinfo by grep (Deno reads /proc only with
 * every permission).
 */
export function cpuHasCrc32Instruction(): boolean {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return false;
  const grep = new Deno.Command("grep", { args: ["-qw", "sse4_2", "/proc/cpuinfo"] });
  return grep.outputSync().success;
}
