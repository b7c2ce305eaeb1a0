/**
 * Third-party STAMP / TWAMP-light peers for the interop tests, and tshark as an independent
 * decoder of what goes on the wire.
 *
 * The peers live in `../shared/peers` from the project's root (stamp-c's `stamp-reflector` and
 * `stamp-sender`, nokia's `twampy`); {@link buildPeers} builds them once per test process into
 * a temporary directory and says why when it cannot, for a test's `ignore`. Each peer has a
 * runner here that bounds its lifetime, kills and awaits it on stop (Deno's sanitizers), and
 * parses what it prints into numbers. What the peers do, seen here:
 *
 * - `stamp-sender -4 -n N [-P] [-O] [-o json] HOST PORT` sends one 44-byte packet a second
 *   (fixed: there is no interval option), IP TTL 255, error estimate 0x0001 (0x4001 with -P),
 *   waits up to 5 s for each reply, exits 0 after N packets (also at 100 % loss) or on
 *   SIGINT/SIGTERM, printing its statistics. Replies shorter than 44 bytes are "Invalid packet
 *   received"; a reply with another sender sequence number is a "Sequence number mismatch"
 *   (both on stderr, neither counted as received). Human output has one line a reply
 *   (`seq\tfwd\t\tbwd\t\trtt\toffset`, ms, 3 decimals); `-o json` has the summary only.
 *   Its RTT is (T2 - T1) + (T4 - T3): the reflector's residence time is not in it.
 * - `stamp-reflector -4 -d PORT` is stateless (reflected sequence number = the sender's),
 *   binds with SO_REUSEADDR (a second one on the same port binds too, as does one beside any
 *   socket with SO_REUSEADDR; beside one without, "bind failed: error 98", exit 1; twampy
 *   alike), prints its per-packet lines on stdout,
 *   which is block-buffered into a pipe, so they come at exit; with -d it writes
 *   "[DEBUG] Debug mode enabled" to stderr once bound, and one "[DEBUG] Received N bytes ..."
 *   line a packet. SIGINT/SIGTERM end it at once, exit 0, with its statistics.
 * - `twampy responder IP:PORT --padding N -v` logs one "Request from" line a request (stdout,
 *   flushed a line at a time), nothing when bound (IPv4); SIGINT makes it exit 1 with a
 *   traceback (shutdown() on a UDP socket), so it is stopped with SIGTERM. A datagram shorter
 *   than 12 bytes ends it (exit 0, "TWL session reflector stopped").
 * - `twampy sender FAR NEAR -c N -i MS --padding N -v` exits 0 by itself: once the reply to
 *   its last packet is back, or N * MS + 5 s after it started (busy-looping a core meanwhile).
 *
 * @module
 */

/** `../shared/peers` from the project's root (this file is in tests/, one level below it). */
export const PEERS_DIR: URL = new URL("../../shared/peers/", import.meta.url);

/** Paths of the built peers. */
export interface Peers {
  /** The peers' source directory. */
  dir: string;
  stampReflector: string;
  stampSender: string;
  /** A bash wrapper that runs twampy's sources with python3: `twampy responder|sender ...`. */
  twampy: string;
}

/** What a finished (or stopped) peer process left. */
export interface ProcessOutput {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** Its hard time limit ran out, and it was interrupted or killed. */
  timedOut: boolean;
}

const decoder = new TextDecoder();

function which(program: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${program}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${program}`;
    } catch {
      // not in this directory
    }
  }
  return null;
}

let built: Promise<Peers | string> | undefined;

/**
 * Builds the peers with `../shared/peers/build.sh` into a temporary directory, once per
 * process (later calls get the same promise). Resolves to their paths, or to a sentence
 * saying why they are absent ("../shared/peers not found: ...", "gcc missing", the build's
 * output), for `Deno.test({ ignore })` or a skip message.
 */
export function buildPeers(): Promise<Peers | string> {
  built ??= build();
  return built;
}

async function build(): Promise<Peers | string> {
  const dir = decodeURIComponent(PEERS_DIR.pathname);
  try {
    await Deno.stat(`${dir}build.sh`);
  } catch (error) {
    return `../shared/peers not found (${dir}build.sh: ${(error as Error).message})`;
  }
  // The peers are there: in CI, what they need must be too (.ci/run installs it).
  const inCi = Deno.env.get("CI") === "true";
  for (const program of ["bash", "gcc", "python3"]) {
    if (!which(program)) {
      const why = `${program} missing: ../shared/peers/build.sh needs gcc and python3`;
      if (inCi) throw new Error(`${why}; .ci/run should install it`);
      return why;
    }
  }
  const out = await Deno.makeTempDir({ prefix: "udp-peers-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(out, { recursive: true });
    } catch {
      // already gone
    }
  });
  const result = await new Deno.Command("bash", {
    args: [`${dir}build.sh`, out],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = decoder.decode(result.stdout) + decoder.decode(result.stderr);
  if (!result.success) {
    const why = `../shared/peers/build.sh failed (exit ${result.code}): ${text}`;
    if (inCi) throw new Error(why);
    return why;
  }
  return {
    dir,
    stampReflector: `${out}/stamp-reflector`,
    stampSender: `${out}/stamp-sender`,
    twampy: `${out}/twampy`,
  };
}

/** A spawned process whose output is collected as it comes. */
class Peer {
  readonly pid: number;
  stdout = "";
  stderr = "";
  exited = false;
  timedOut = false;
  readonly finished: Promise<ProcessOutput>;
  #child: Deno.ChildProcess;
  #listeners = new Set<() => void>();
  #lifetime: ReturnType<typeof setTimeout>;

  constructor(command: string, args: string[], lifetimeMs: number, env?: Record<string, string>) {
    this.#child = new Deno.Command(command, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#lifetime = setTimeout(() => {
      this.timedOut = true;
      void this.stop("SIGTERM", 2000);
    }, lifetimeMs);
    const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      const streamDecoder = new TextDecoder();
      for await (const chunk of stream) {
        this[key] += streamDecoder.decode(chunk, { stream: true });
        this.#notify();
      }
    };
    this.finished = Promise.all([
      this.#child.status,
      pump(this.#child.stdout, "stdout"),
      pump(this.#child.stderr, "stderr"),
    ]).then(([status]) => {
      this.exited = true;
      clearTimeout(this.#lifetime);
      this.#notify();
      return {
        code: status.code,
        signal: status.signal,
        stdout: this.stdout,
        stderr: this.stderr,
        timedOut: this.timedOut,
      };
    });
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Resolves when `pattern` matches the stream's text so far (or `pattern(text)` is true);
   * rejects if the process ends first or `timeoutMs` passes. */
  waitFor(
    key: "stdout" | "stderr",
    pattern: RegExp | ((text: string) => boolean),
    timeoutMs: number,
  ): Promise<void> {
    const matches = typeof pattern === "function" ? pattern : (text: string) => pattern.test(text);
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (matches(this[key])) done();
        else if (this.exited) done(new Error(`exited before ${pattern}: ${this.describe()}`));
      };
      const timer = setTimeout(
        () => done(new Error(`no ${pattern} within ${timeoutMs} ms: ${this.describe()}`)),
        timeoutMs,
      );
      this.#listeners.add(check);
      check();
    });
  }

  describe(): string {
    return `pid ${this.pid}, stdout ${JSON.stringify(this.stdout)}, stderr ${
      JSON.stringify(this.stderr)
    }`;
  }

  kill(signal: Deno.Signal): void {
    if (this.exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // it ended meanwhile
    }
  }

  /** Sends `signal`, then SIGKILL if it is still there after `graceMs`; awaits its end. */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 3000): Promise<ProcessOutput> {
    this.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
    await Promise.race([this.finished, grace]);
    clearTimeout(timer);
    this.kill("SIGKILL");
    return await this.finished;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- stamp-c

/** One reply as stamp-sender prints it (human output), in ms with 3 decimals. */
export interface StampReply {
  seq: number;
  fwdMs: number;
  bwdMs: number;
  /** fwd + bwd: (T2 - T1) + (T4 - T3). */
  rttMs: number;
  offsetMs: number;
}

/** stamp-sender's run, parsed. */
export interface StampSenderResult extends ProcessOutput {
  sent: number;
  received: number;
  timeouts: number;
  lossPercent: number;
  /** Per reply, in order (human output only: empty with `json`). */
  replies: StampReply[];
  rttsMs: number[];
  /** "RTT min/avg/max/stddev" (stddev null for fewer than 2 replies); null with no reply. */
  rtt: { min: number; avg: number; max: number; stddev: number | null } | null;
  /** stderr: replies shorter than 44 bytes or with a zero error-estimate multiplier. */
  invalid: number;
  /** stderr: replies whose sender sequence number was not the one just sent. */
  mismatches: number;
  /** stderr warned of a negative one-way delay or T1 > T4. */
  negativeDelay: boolean;
  /** The `-o json` summary, with `json`. */
  json?: Record<string, unknown>;
}

/** Options of {@link runStampSender}. */
export interface StampSenderOptions {
  host?: string;
  port: number;
  /** Packets to send, one a second (stamp-sender has no interval option). */
  count: number;
  /** PTP timestamps (-P, error estimate Z bit set). */
  ptp?: boolean;
  /** One-way mode (-O): per-packet lines without the RTT column. */
  oneway?: boolean;
  /** `-o json` (summary only) instead of the human table. */
  json?: boolean;
  /** Hard limit; then SIGTERM (it prints its statistics) and SIGKILL 2 s later. Default
   * count * 6 s + 3 s (1 s apart, up to 5 s for each reply). */
  timeoutMs?: number;
}

function numberAfter(text: string, label: RegExp): number {
  const match = label.exec(text);
  return match ? Number(match[1]) : NaN;
}

/** Parses stamp-sender's output (human, or `-o json` on stdout). */
export function parseStampSender(out: ProcessOutput, oneway = false): StampSenderResult {
  const count = (pattern: RegExp) => (out.stderr.match(pattern) ?? []).length;
  const base = {
    ...out,
    invalid: count(/^Invalid packet received$/gm),
    mismatches: count(/^Sequence number mismatch/gm),
    negativeDelay: /negative (one-way )?delay|T1 > T4/i.test(out.stderr),
  };
  if (out.stdout.trimStart().startsWith("{")) {
    const json = JSON.parse(out.stdout) as Record<string, number | null>;
    const avg = json.rtt_avg_ms;
    return {
      ...base,
      sent: Number(json.packets_tx),
      received: Number(json.packets_rx),
      timeouts: Number(json.timeouts),
      lossPercent: Number(json.loss_ratio) * 100,
      replies: [],
      rttsMs: [],
      rtt: avg === null ? null : {
        min: Number(json.rtt_min_ms),
        avg,
        max: Number(json.rtt_max_ms),
        stddev: json.rtt_stddev_ms ?? null,
      },
      json,
    };
  }
  const replies: StampReply[] = [];
  const num = String.raw`(-?\d+\.\d+)`;
  const line = oneway
    ? new RegExp(String.raw`^(\d+)\t${num}\t\t${num}\t\t${num}$`, "gm")
    : new RegExp(String.raw`^(\d+)\t${num}\t\t${num}\t\t${num}\t${num}$`, "gm");
  for (const match of out.stdout.matchAll(line)) {
    const [seq, fwdMs, bwdMs] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const rttMs = oneway ? Math.round((fwdMs + bwdMs) * 1000) / 1000 : Number(match[4]);
    replies.push({ seq, fwdMs, bwdMs, rttMs, offsetMs: Number(match[oneway ? 4 : 5]) });
  }
  const rtt = /^RTT min\/avg\/max\/stddev = ([\d.-]+)\/([\d.-]+)\/([\d.-]+)\/(\S+) ms$/m
    .exec(out.stdout);
  return {
    ...base,
    sent: numberAfter(out.stdout, /^Packets sent: (\d+)$/m),
    received: numberAfter(out.stdout, /^Packets received: (\d+)$/m),
    timeouts: numberAfter(out.stdout, /^Timeouts: (\d+)$/m),
    lossPercent: numberAfter(out.stdout, /^Packet loss: ([\d.]+)%$/m),
    replies,
    rttsMs: replies.map((reply) => reply.rttMs),
    rtt: rtt
      ? {
        min: Number(rtt[1]),
        avg: Number(rtt[2]),
        max: Number(rtt[3]),
        stddev: rtt[4] === "n/a" ? null : Number(rtt[4]),
      }
      : null,
  };
}

/** Runs `stamp-sender -4 -n COUNT HOST PORT` to its end (about count - 1 seconds when every
 * reply comes back) and parses what it printed. */
export async function runStampSender(
  peers: Peers,
  options: StampSenderOptions,
): Promise<StampSenderResult> {
  const args = ["-4", "-n", String(options.count)];
  if (options.ptp) args.push("-P");
  if (options.oneway) args.push("-O");
  if (options.json) args.push("-o", "json");
  args.push(options.host ?? "127.0.0.1", String(options.port));
  const peer = new Peer(
    peers.stampSender,
    args,
    options.timeoutMs ?? options.count * 6000 + 3000,
  );
  return parseStampSender(await peer.finished, options.oneway);
}

/** A packet stamp-reflector reflected: "Reflected packet Seq: 0 from 127.0.0.1:50596 (TTL: 255)". */
export interface StampReflected {
  seq: number;
  from: string;
  port: number;
  /** The IP TTL it received the packet with (and copied into the reply's Sender TTL). */
  ttl: number;
}

/** stamp-reflector's output once stopped, parsed. */
export interface StampReflectorResult extends ProcessOutput {
  reflected: StampReflected[];
  /** Its statistics: "Packets reflected: N", "Packets dropped: N". */
  reflectedCount: number;
  droppedCount: number;
  /** Sizes of the datagrams it received, in order ("[DEBUG] Received 44 bytes from ..."). */
  receivedBytes: number[];
  /** stderr: requests shorter than 44 bytes, padded with zeros before reflecting. */
  padded: number;
}

/** A running peer: `ready` resolves once it listens; `stop()` ends and awaits it. */
export interface RunningPeer<Result> {
  pid: number;
  ready: Promise<void>;
  stop(): Promise<Result>;
}

/** Parses stamp-reflector's output. */
export function parseStampReflector(out: ProcessOutput): StampReflectorResult {
  const reflected: StampReflected[] = [];
  const line = /^Reflected packet Seq: (\d+) from (\S+):(\d+) \((?:TTL|Hop Limit): (\d+)\)$/gm;
  for (const match of out.stdout.matchAll(line)) {
    reflected.push({
      seq: Number(match[1]),
      from: match[2],
      port: Number(match[3]),
      ttl: Number(match[4]),
    });
  }
  return {
    ...out,
    reflected,
    reflectedCount: numberAfter(out.stdout, /^Packets reflected: (\d+)$/m),
    droppedCount: numberAfter(out.stdout, /^Packets dropped: (\d+)$/m),
    receivedBytes: [...out.stderr.matchAll(/^\[DEBUG\] Received (\d+) bytes/gm)].map((m) =>
      Number(m[1])
    ),
    padded: (out.stderr.match(/^Warning: undersized STAMP packet/gm) ?? []).length,
  };
}

/**
 * Starts `stamp-reflector -4 -d PORT` (`-P`: PTP timestamps). `ready` resolves when its
 * stderr says it is bound ("[DEBUG] Debug mode enabled", written after bind and after its
 * signal handlers are set); `stop()` sends SIGTERM (SIGKILL 3 s later) and parses its output.
 * It is stopped after `lifetimeMs` (default 120 s) in any case.
 */
export function startStampReflector(
  peers: Peers,
  port: number,
  options: { ptp?: boolean; lifetimeMs?: number; readyTimeoutMs?: number } = {},
): RunningPeer<StampReflectorResult> {
  const args = ["-4", "-d", ...(options.ptp ? ["-P"] : []), String(port)];
  const peer = new Peer(peers.stampReflector, args, options.lifetimeMs ?? 120_000);
  const ready = peer.waitFor("stderr", /Debug mode enabled/, options.readyTimeoutMs ?? 10_000);
  ready.catch(() => {}); // a test that only stops it need not await it
  return {
    pid: peer.pid,
    ready,
    stop: async () => parseStampReflector(await peer.stop("SIGTERM")),
  };
}

// ---------------------------------------------------------------- twampy

/** Runs twampy without writing bytecode caches (shared/ is read-only in CI anyway). */
const TWAMPY_ENV = { PYTHONDONTWRITEBYTECODE: "1", PYTHONUNBUFFERED: "1" };

/** One request as twampy responder logs it. */
export interface TwampyRequest {
  from: string;
  port: number;
  sseq: number;
  /** Its receive time minus the request's timestamp, 2 decimals. */
  outboundMs: number;
}

/** twampy responder's log once stopped, parsed. */
export interface TwampyResponderResult extends ProcessOutput {
  requests: TwampyRequest[];
  /** Its reflected sequence number restarting at 0: "new remote address/port", "session
   * timeout, 30sec" or "received sseq==0", one a time it did. */
  resets: string[];
  /** It ended by itself (a datagram under 12 bytes ends it) before stop(). */
  stoppedEarly: boolean;
}

/** Parses twampy responder's `-v` log. */
export function parseTwampyResponder(out: ProcessOutput): TwampyResponderResult {
  const requests: TwampyRequest[] = [];
  const line = /Request from (\S+):(\d+) \[sseq=(\d+) outbound=(-?[\d.]+)ms\]/g;
  for (const match of out.stdout.matchAll(line)) {
    requests.push({
      from: match[1],
      port: Number(match[2]),
      sseq: Number(match[3]),
      outboundMs: Number(match[4]),
    });
  }
  return {
    ...out,
    requests,
    resets: [...out.stdout.matchAll(/\brseq:=0\s+\((.*)\)/g)].map((match) => match[1]),
    stoppedEarly: /TWL session reflector stopped/.test(out.stdout),
  };
}

/**
 * Starts `twampy responder HOST:PORT --padding N -v` (padding default 6: 44-byte replies, the
 * least stamp-sender takes; `ttl` its --ttl, default 64). It prints nothing once bound, and a
 * test may not read /proc without every permission, so `ready` probes it: a TWAMP-light test
 * packet numbered {@link READY_PROBE_SEQUENCE}, from a socket of its own, until one is answered
 * (its requests in `stop()`'s result leave that probe out). `stop()`
 * sends SIGTERM (its SIGINT handler crashes; its log is flushed line by line, so nothing is
 * lost).
 */
export function startTwampyResponder(
  peers: Peers,
  port: number,
  options: { host?: string; padding?: number; ttl?: number; lifetimeMs?: number } = {},
): RunningPeer<TwampyResponderResult> {
  const args = [
    "responder",
    `${options.host ?? "127.0.0.1"}:${port}`,
    "--padding",
    String(options.padding ?? 6),
    "-v",
  ];
  if (options.ttl !== undefined) args.push("--ttl", String(options.ttl));
  const peer = new Peer(peers.twampy, args, options.lifetimeMs ?? 120_000, TWAMPY_ENV);
  const ready = probeUntilAnswered(port, options.host ?? "127.0.0.1", () => peer.exited)
    .catch((error) => {
      throw new Error(`${error.message}: ${peer.describe()}`);
    });
  ready.catch(() => {});
  return {
    pid: peer.pid,
    ready,
    stop: async () => {
      const out = await peer.stop("SIGTERM");
      await ready.catch(() => {}); // its /proc poll ends once it sees the process gone
      const result = parseTwampyResponder(out);
      result.requests = result.requests.filter((request) => request.sseq !== READY_PROBE_SEQUENCE);
      return result;
    },
  };
}

/** The sequence number of the probes {@link startTwampyResponder} sends until it answers. */
export const READY_PROBE_SEQUENCE = 999_999;

/**
 * Sends a 44-byte TWAMP-light test packet to `host:port` every 50 ms until a reply comes back,
 * for at most 10 s; rejects at once when `exited()` says the peer is gone.
 */
async function probeUntilAnswered(
  port: number,
  host: string,
  exited: () => boolean,
): Promise<void> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const probe = new Uint8Array(44);
  const view = new DataView(probe.buffer);
  view.setUint32(0, READY_PROBE_SEQUENCE);
  view.setUint16(12, 0x0001); // an error estimate with a multiplier, as every peer wants
  const answered = socket.receive().then(() => true, () => false);
  try {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (exited()) throw new Error(`the peer ended before answering on port ${port}`);
      await socket.send(probe, { transport: "udp", hostname: host, port });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wait = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 50));
      const replied = await Promise.race([answered, wait]);
      clearTimeout(timer);
      if (replied) return;
    }
    throw new Error(`nothing answered on port ${port} within 10000 ms`);
  } finally {
    socket.close();
    await answered;
  }
}

/** One reply as twampy sender logs it (2 decimals; delays below 0 are printed as 0). */
export interface TwampyReply {
  from: string;
  /** The reflector's own sequence number (bytes 0-3 of the reply). */
  rseq: number;
  /** The sender sequence number the reply carries (bytes 24-27). */
  sseq: number;
  /** (T4 - T1) - (T3 - T2). */
  rttMs: number;
  /** T2 - T1. */
  outboundMs: number;
  /** T4 - T3. */
  inboundMs: number;
}

/** A row of twampy sender's closing table, in ms. */
export interface TwampyStatsRow {
  minMs: number;
  maxMs: number;
  avgMs: number;
  jitterMs: number;
  lossPercent: number;
}

/** twampy sender's run, parsed. */
export interface TwampySenderResult extends ProcessOutput {
  /** The sequence numbers it sent, in order. */
  sent: number[];
  replies: TwampyReply[];
  rttsMs: number[];
  /** "All packets received back" (the reply to its last packet came). */
  allReceived: boolean;
  /** stderr/stdout: replies under 36 bytes it dropped. */
  short: number;
  /** The closing table; null when it says "NO STATS AVAILABLE (100% loss)". */
  stats: { outbound: TwampyStatsRow; inbound: TwampyStatsRow; roundtrip: TwampyStatsRow } | null;
}

/** Options of {@link runTwampySender}. */
export interface TwampySenderOptions {
  host?: string;
  port: number;
  /** Its own port (default 0: any). */
  localPort?: number;
  count: number;
  /** Default 100 (twampy's own default; its help says 100 to 1000, but 10 works). */
  intervalMs?: number;
  /** Zero bytes after its 14-byte header (default 30: 44-byte requests, as STAMP wants). */
  padding?: number;
  ttl?: number;
  /** Hard limit (default count * interval + 8 s: it gives up 5 s after its start plus
   * count * interval by itself). */
  timeoutMs?: number;
}

/** twampy's durations: "188us", "5.83ms", "1.35sec", "7.1min" (right-aligned). */
function twampyMs(token: string): number {
  const match = /^(-?[\d.]+)(us|ms|sec|min)$/.exec(token);
  if (!match) return NaN;
  const scale = { us: 0.001, ms: 1, sec: 1000, min: 60_000 }[match[2]] ?? NaN;
  return Number(match[1]) * scale;
}

function twampyRow(stdout: string, label: string): TwampyStatsRow | null {
  const match = new RegExp(String.raw`^\s*${label}:\s+(.*?)\s+(-?[\d.]+)%\s*$`, "m").exec(stdout);
  if (!match) return null;
  const [minMs, maxMs, avgMs, jitterMs] = match[1].trim().split(/\s+/).map(twampyMs);
  return { minMs, maxMs, avgMs, jitterMs, lossPercent: Number(match[2]) };
}

/** Parses twampy sender's `-v` log and table. */
export function parseTwampySender(out: ProcessOutput): TwampySenderResult {
  const replies: TwampyReply[] = [];
  const reply =
    /Reply from (\S+) \[rseq=(\d+) sseq=(\d+) rtt=([\d.]+)ms outbound=([\d.]+)ms inbound=([\d.]+)ms\]/g;
  for (const match of out.stdout.matchAll(reply)) {
    replies.push({
      from: match[1],
      rseq: Number(match[2]),
      sseq: Number(match[3]),
      rttMs: Number(match[4]),
      outboundMs: Number(match[5]),
      inboundMs: Number(match[6]),
    });
  }
  const outbound = twampyRow(out.stdout, "Outbound");
  const inbound = twampyRow(out.stdout, "Inbound");
  const roundtrip = twampyRow(out.stdout, "Roundtrip");
  return {
    ...out,
    sent: [...out.stdout.matchAll(/Sent to \S+ \[sseq=(\d+)\]/g)].map((m) => Number(m[1])),
    replies,
    rttsMs: replies.map((r) => r.rttMs),
    allReceived: /All packets received back/.test(out.stdout),
    short: (out.stdout.match(/short packet received/g) ?? []).length,
    stats: outbound && inbound && roundtrip ? { outbound, inbound, roundtrip } : null,
  };
}

/** Runs `twampy sender HOST:PORT 127.0.0.1:LOCAL -c N -i MS --padding N -v` to its end. */
export async function runTwampySender(
  peers: Peers,
  options: TwampySenderOptions,
): Promise<TwampySenderResult> {
  const interval = options.intervalMs ?? 100;
  const args = [
    "sender",
    `${options.host ?? "127.0.0.1"}:${options.port}`,
    `127.0.0.1:${options.localPort ?? 0}`,
    "-c",
    String(options.count),
    "-i",
    String(interval),
    "--padding",
    String(options.padding ?? 30),
    "-v",
  ];
  if (options.ttl !== undefined) args.push("--ttl", String(options.ttl));
  const limit = options.timeoutMs ?? options.count * interval + 8000;
  const peer = new Peer(peers.twampy, args, limit, TWAMPY_ENV);
  return parseTwampySender(await peer.finished);
}

// ---------------------------------------------------------------- tshark

/** tshark's path, or null where it is not installed. */
export function tsharkPath(): string | null {
  return which("tshark");
}

/**
 * The fields of tshark's (4.0) `twamp.test` dissector. It reads every packet, request or
 * reply, as a reflected TWAMP-Test packet: seq (0-3), timestamp (4-11), error estimate
 * (12-13), mbz1 (14-15: STAMP's SSID), receive timestamp (16-23), sender seq (24-27), sender
 * timestamp (28-35), sender error estimate (36-37), mbz2 (38-39), sender TTL (40), and bytes
 * 41 on as padding (hex): STAMP's 3 MBZ bytes after the TTL, then any TLVs, undissected. It
 * reads every timestamp as NTP, whatever the Z bit says; an all-zero one shows as
 * "Jan  1, 1970 00:00:00.000000000 UTC". The error_estimate.* subfields occur twice in each
 * packet (own, then sender's), joined with ",".
 */
export const TWAMP_TEST_FIELDS: readonly string[] = [
  "twamp.test.seq_number",
  "twamp.test.timestamp",
  "twamp.test.error_estimate",
  "twamp.test.error_estimate.s",
  "twamp.test.error_estimate.z",
  "twamp.test.error_estimate.scale",
  "twamp.test.error_estimate.multiplier",
  "twamp.test.mbz1",
  "twamp.test.receive_timestamp",
  "twamp.test.sender_seq_number",
  "twamp.test.sender_timestamp",
  "twamp.test.sender_error_estimate",
  "twamp.test.mbz2",
  "twamp.test.sender_ttl",
  "twamp.test.padding",
];

/** One packet's requested fields as tshark prints them (`-T fields`): "" where the packet has
 * none, several occurrences joined with ",". */
export type TsharkRecord = Record<string, string>;

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Nanoseconds since 1970 of a tshark absolute time ("Dec  1, 2026 23:57:08.184567773 UTC",
 * as tshark prints them here, with TZ=UTC); null if it is not one. */
export function tsharkTimeToEpochNs(text: string): bigint | null {
  const match = /^(\w{3})\s+(\d+), (\d+) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? UTC$/.exec(text);
  const month = match ? MONTHS.indexOf(match[1]) : -1;
  if (!match || month < 0) return null;
  const ms = Date.UTC(+match[3], month, +match[2], +match[4], +match[5], +match[6]);
  return BigInt(ms) * 1_000_000n + BigInt((match[7] ?? "").padEnd(9, "0"));
}

function fieldArgs(fields: readonly string[], decodePorts: Iterable<number>): string[] {
  const args = ["-n"];
  for (const port of new Set(decodePorts)) args.push("-d", `udp.port==${port},twamp.test`);
  args.push("-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,");
  args.push("-E", "header=n", "-E", "quote=n");
  for (const field of fields) args.push("-e", field);
  return args;
}

function records(stdout: string, fields: readonly string[]): TsharkRecord[] {
  return stdout.split("\n").filter((line) => line.length > 0).map((line) => {
    const values = line.split("\t");
    return Object.fromEntries(fields.map((field, i) => [field, values[i] ?? ""]));
  });
}

/** A UDP datagram for {@link buildPcap}: IPv4, 127.0.0.1 to 127.0.0.1 and TTL 64 unless said. */
export interface Datagram {
  payload: Uint8Array;
  srcPort: number;
  dstPort: number;
  src?: string;
  dst?: string;
  ttl?: number;
}

function ipv4(address: string): number[] {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  return parts;
}

/**
 * A classic libpcap file (LINKTYPE_RAW: each record an IPv4 packet) holding `datagrams`, one
 * millisecond apart from 2023-11-14T22:13:20Z: hand-built IPv4 headers (with their checksum)
 * and UDP headers (checksum 0, "none", as IPv4 allows). Deterministic.
 */
export function buildPcap(datagrams: readonly Datagram[]): Uint8Array {
  const size = 24 + datagrams.reduce((sum, d) => sum + 16 + 28 + d.payload.length, 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  view.setUint32(16, 65535, true);
  view.setUint32(20, 101, true); // LINKTYPE_RAW
  let at = 24;
  datagrams.forEach((datagram, index) => {
    const length = 28 + datagram.payload.length;
    const micros = index * 1000;
    view.setUint32(at, 1_700_000_000 + Math.floor(micros / 1e6), true);
    view.setUint32(at + 4, micros % 1e6, true);
    view.setUint32(at + 8, length, true);
    view.setUint32(at + 12, length, true);
    at += 16;
    const ip = at;
    bytes.set([0x45, 0, length >> 8, length & 0xff, index >> 8 & 0xff, index & 0xff, 0x40, 0], ip);
    bytes.set([datagram.ttl ?? 64, 17, 0, 0], ip + 8);
    bytes.set(ipv4(datagram.src ?? "127.0.0.1"), ip + 12);
    bytes.set(ipv4(datagram.dst ?? "127.0.0.1"), ip + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += view.getUint16(ip + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    view.setUint16(ip + 10, ~sum & 0xffff);
    view.setUint16(ip + 20, datagram.srcPort);
    view.setUint16(ip + 22, datagram.dstPort);
    view.setUint16(ip + 24, 8 + datagram.payload.length);
    bytes.set(datagram.payload, ip + 28);
    at += length;
  });
  return bytes;
}

const TSHARK_ENV = { TZ: "UTC" };

/**
 * Decodes `datagrams` with tshark, offline (no capture, no privilege): builds a pcap
 * ({@link buildPcap}), pipes it to `tshark -r -` with every port of the datagrams decoded as
 * twamp.test (or `decodePorts`), and returns one record of `fields` a datagram, in order.
 * Throws if tshark is absent or fails, or after `timeoutMs` (default 20 s).
 */
export async function decodeWithTshark(
  datagrams: readonly Datagram[],
  fields: readonly string[],
  options: { decodePorts?: number[]; timeoutMs?: number } = {},
): Promise<TsharkRecord[]> {
  const tshark = tsharkPath();
  if (!tshark) throw new Error("tshark is not installed");
  const ports = options.decodePorts ?? datagrams.flatMap((d) => [d.srcPort, d.dstPort]);
  const child = new Deno.Command(tshark, {
    args: ["-r", "-", ...fieldArgs(fields, ports)],
    env: TSHARK_ENV,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended
    }
  }, options.timeoutMs ?? 20_000);
  try {
    const writer = child.stdin.getWriter();
    const output = child.output();
    await writer.write(buildPcap(datagrams));
    await writer.close();
    const result = await output;
    if (!result.success) {
      throw new Error(`tshark failed (${result.code}): ${decoder.decode(result.stderr)}`);
    }
    return records(decoder.decode(result.stdout), fields);
  } finally {
    clearTimeout(timer);
  }
}

/** A live tshark capture: {@link startCapture}. */
export interface Capture {
  /** The tshark process. */
  pid: number;
  /**
   * Ends the capture and returns one record a captured packet, in order (the markers left
   * out). It first sends a marker datagram (every 250 ms) until tshark has printed one, up to
   * `timeoutMs` (default 5 s): dumpcap hands packets over about half a second late, and a
   * SIGINT before that loses them. Then SIGINT, SIGKILL 3 s later.
   */
  stop(options?: { timeoutMs?: number }): Promise<TsharkRecord[]>;
}

/** Sends `marker` datagrams to its own port every `everyMs` until `seen` settles. */
async function sendMarkersUntil(
  marker: Deno.DatagramConn,
  seen: Promise<void>,
  everyMs: number,
): Promise<void> {
  const addr = marker.addr as Deno.NetAddr;
  const payload = new TextEncoder().encode("tests/peers.ts capture marker");
  let settled = false;
  const watched = seen.finally(() => settled = true);
  watched.catch(() => {});
  while (!settled) {
    await marker.send(payload, { transport: "udp", hostname: addr.hostname, port: addr.port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const pause = new Promise<void>((resolve) => timer = setTimeout(resolve, everyMs));
    await Promise.race([watched.catch(() => {}), pause]);
    clearTimeout(timer);
  }
  await seen;
}

/**
 * Starts `tshark -l -i lo -f "udp port PORT" -d udp.port==PORT,twamp.test -T fields -e ...`
 * (`decodePorts` replaces PORT in -d) and resolves once it is capturing; rejects if it is not
 * within `readyTimeoutMs` (default 15 s), e.g. without the privilege to capture (here it runs
 * as root). Its "Capturing on 'Loopback: lo'" comes some 20-40 ms before packets are really
 * captured, so it is ready once a marker datagram that it captured (sent to a socket of its
 * own, which the filter includes; every 50 ms) comes out of it: about 0.5 s. Needs
 * Deno.listenDatagram (deno.json's unstable "net"); without it, ready is "Capturing on" plus
 * 200 ms, and stop() waits 1 s instead of a marker.
 */
export async function startCapture(options: {
  port: number;
  fields: readonly string[];
  decodePorts?: number[];
  readyTimeoutMs?: number;
  lifetimeMs?: number;
}): Promise<Capture> {
  const tshark = tsharkPath();
  if (!tshark) throw new Error("tshark is not installed");
  const marker = "listenDatagram" in Deno
    ? Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
    : null;
  const markerPort = marker ? (marker.addr as Deno.NetAddr).port : 0;
  const markers = (text: string) => text.split(`\n${markerPort}\t`).length - 1;
  const filter = `udp port ${options.port}` + (marker ? ` or udp port ${markerPort}` : "");
  const fields = ["udp.dstport", ...options.fields];
  const decode = options.decodePorts ?? [options.port];
  const args = ["-l", "-i", "lo", "-f", filter, ...fieldArgs(fields, decode)];
  const peer = new Peer(tshark, args, options.lifetimeMs ?? 120_000, TSHARK_ENV);
  peer.stdout = "\n"; // so that every line starts after a "\n"
  const readyTimeout = options.readyTimeoutMs ?? 15_000;
  try {
    await peer.waitFor("stderr", /Capturing on/, readyTimeout);
    if (marker) {
      await sendMarkersUntil(
        marker,
        peer.waitFor("stdout", (t) => markers(t) > 0, readyTimeout),
        50,
      );
    } else {
      await delay(200);
    }
  } catch (error) {
    marker?.close();
    await peer.stop("SIGKILL");
    throw error;
  }
  return {
    pid: peer.pid,
    async stop(stopOptions = {}): Promise<TsharkRecord[]> {
      if (marker) {
        const before = markers(peer.stdout);
        const seen = peer.waitFor(
          "stdout",
          (t) => markers(t) > before,
          stopOptions.timeoutMs ?? 5000,
        );
        // then stop anyway: the records say what was seen
        await sendMarkersUntil(marker, seen, 250).catch(() => {});
        marker.close();
      } else {
        await delay(1000);
      }
      const out = await peer.stop("SIGINT", 3000);
      return records(out.stdout, fields)
        .filter((record) => !marker || record["udp.dstport"] !== String(markerPort))
        .map((record) => {
          if (!options.fields.includes("udp.dstport")) delete record["udp.dstport"];
          return record;
        });
    },
  };
}

/**
 * A port for a peer to bind, free now, from below the kernel's ephemeral range (32768 up): a
 * port from port 0 could be handed to another socket (a client's) before the peer binds it,
 * and a peer whose bind fails does not always say so by exiting.
 */
export function peerPort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
      socket.close();
      return port;
    } catch {
      // taken: try another
    }
  }
  throw new Error("no free UDP port found between 20000 and 32000");
}
