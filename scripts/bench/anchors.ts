/**
 * The C and Python anchors of scripts/anchors/: building loadgen.c, echo.c and
 * stamped_pingpong.c with gcc -O2 into a temporary directory (never committed binaries), and
 * running the load generator and the stamped ping-pong's client.
 *
 * @module
 */

import { onPath, run } from "./common.ts";

const ANCHORS = new URL("../anchors/", import.meta.url);
/** scripts/anchors/echo.py, the classic Python recvfrom/sendto loop. */
export const ECHO_PY: string = new URL("echo.py", ANCHORS).pathname;

/** The built anchors. */
export interface Anchors {
  /** The temporary directory they are in; {@link removeAnchors} deletes it. */
  dir: string;
  loadgen: string;
  echo: string;
  /** scripts/anchors/stamped_pingpong.c: the floor of a kernel-stamped RTT. */
  stampedPingpong: string;
}

/** What scripts/anchors/loadgen.c prints: one JSON line. */
export interface LoadgenResult {
  mode: "raw" | "ping";
  size: number;
  window: number;
  sent: number;
  /** Good replies, in time. */
  replies: number;
  echo_replies: number;
  /** raw mode: `ack:` + the datagram (`udp serve`'s default). */
  ack_replies?: number;
  /** ping mode: PONGs. */
  pong_replies?: number;
  /** Good replies to a datagram already answered or given up on. */
  late: number;
  bad: number;
  timeouts: number;
  errors: number;
  seconds: number;
  /** Its own user + system CPU time: near `seconds`, the generator bounded the run. */
  cpu_s: number;
  /** The time it had nothing to read: near `seconds`, the server bounded the run. */
  waited_s: number;
  replies_per_s: number;
  reply_kind: "echo" | "ack" | "pong" | "mixed" | "none";
}

/**
 * Builds the C anchors with `gcc -O2` into a new temporary directory; resolves to their
 * paths, or to a sentence saying why they cannot be built (gcc missing, its errors).
 */
export async function buildAnchors(): Promise<Anchors | string> {
  if (!onPath("gcc")) return "gcc not found";
  // mktemp and rm rather than Deno's calls: the bench may write only into docs/.
  const dir = (await run("mktemp", ["-d", "-t", "udp-anchors-XXXXXX"])).trim();
  const built: Record<string, string> = {};
  for (const name of ["loadgen", "echo", "stamped_pingpong"]) {
    const output = await new Deno.Command("gcc", {
      args: ["-O2", "-Wall", "-o", `${dir}/${name}`, new URL(`${name}.c`, ANCHORS).pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      await run("rm", ["-rf", dir]);
      return `gcc could not build ${name}.c: ${new TextDecoder().decode(output.stderr).trim()}`;
    }
    built[name] = `${dir}/${name}`;
  }
  return {
    dir,
    loadgen: built.loadgen,
    echo: built.echo,
    stampedPingpong: built.stamped_pingpong,
  };
}

/** Deletes the anchors' temporary directory. */
export async function removeAnchors(anchors: Anchors): Promise<void> {
  await run("rm", ["-rf", anchors.dir]);
}

/** Options of a loadgen run. */
export interface LoadgenOptions {
  mode: "raw" | "ping";
  seconds: number;
  window?: number;
  size?: number;
  /** Run it under `taskset -c CPU`. */
  cpu?: number;
  /** How it waits for replies: spinning on a non-blocking read (the default), or in poll(). */
  wait?: "spin" | "block";
}

/** Runs loadgen against 127.0.0.1:PORT; its result. Throws if it fails. */
export async function loadgen(
  anchors: Anchors,
  port: number,
  options: LoadgenOptions,
): Promise<LoadgenResult> {
  const args = [
    ...["127.0.0.1", String(port), "--mode", options.mode, "--duration", String(options.seconds)],
    ...["--window", String(options.window ?? 64), "--size", String(options.size ?? 64)],
    ...["--wait", options.wait ?? "spin"],
  ];
  const [command, argv] = options.cpu === undefined
    ? [anchors.loadgen, args]
    : ["taskset", ["-c", String(options.cpu), anchors.loadgen, ...args]];
  const output = await new Deno.Command(command, { args: argv, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`loadgen ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** What scripts/anchors/stamped_pingpong.c's client prints: one JSON line. */
export interface StampedPingpong {
  probes: number;
  replies: number;
  /** RTT (the server's hold left out), p50 and p99, in ms; null when nothing came back. */
  p50_ms: number | null;
  p99_ms: number | null;
  /** The server's hold p50, in ms. */
  hold_p50_ms: number | null;
}

/** Runs the stamped ping-pong's client: `probes` probes `gapMs` apart to 127.0.0.1:PORT. */
export async function stampedPingpong(
  anchors: Anchors,
  port: number,
  probes: number,
  gapMs: number,
): Promise<StampedPingpong> {
  const args = ["client", String(port), String(probes), String(Math.round(gapMs * 1000))];
  const output = await new Deno.Command(anchors.stampedPingpong, { args, stdout: "piped" })
    .output();
  return JSON.parse(new TextDecoder().decode(output.stdout));
}
