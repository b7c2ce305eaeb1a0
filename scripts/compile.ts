/**
 * `deno task compile`: build the `udp` binary with exactly the runtime flags of the `udp`
 * task (scripts/flags.ts).
 *
 *   deno task compile          dist/udp for this machine
 *   deno task compile --all    dist/udp-TARGET for all six targets, and dist/SHA256SUMS
 *
 * `deno compile` downloads the `denort` runtime for each target. Where that download is
 * unreachable, this prints one line saying so and exits 3, so CI can tell "skipped" from
 * "broken" (exit 1).
 *
 * @module
 */

import { runtimeFlags } from "./flags.ts";

/** Every target `deno compile --target` accepts. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
] as const;

/** Exit code for "the runtime download is unreachable". */
export const EXIT_UNAVAILABLE = 3;

const DIST = new URL("../dist", import.meta.url);
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function compile(output: string, target?: string): Promise<void> {
  const args = ["compile", ...runtimeFlags(), "--output", output];
  if (target) args.push("--target", target);
  args.push(MAIN);
  console.log(`deno ${args.join(" ")}`);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "piped",
  })
    .output();
  if (result.success) return;
  const stderr = new TextDecoder().decode(result.stderr);
  if (/denort|dl\.deno\.land|error sending request|Setting up base binary/i.test(stderr)) {
    console.error(
      "udp compile: skipped: deno compile needs to download the denort runtime, which is unreachable from this machine",
    );
    Deno.exit(EXIT_UNAVAILABLE);
  }
  console.error(stderr.trimEnd());
  console.error(`udp compile: deno compile failed for ${target ?? "this machine"}`);
  Deno.exit(1);
}

async function sha256(path: URL): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return new Uint8Array(digest).toHex();
}

if (import.meta.main) {
  const all = Deno.args.includes("--all");
  const unknown = Deno.args.filter((arg) => arg !== "--all");
  if (unknown.length > 0) {
    console.error(`udp compile: unknown argument '${unknown[0]}' (use --all or nothing)`);
    Deno.exit(2);
  }
  await Deno.mkdir(DIST, { recursive: true });
  if (!all) {
    await compile(new URL("udp", DIST).pathname);
  } else {
    const sums: string[] = [];
    for (const target of TARGETS) {
      const name = `udp-${target}${target.includes("windows") ? ".exe" : ""}`;
      await compile(new URL(name, DIST).pathname, target);
      sums.push(`${await sha256(new URL(name, DIST))}  ${name}`);
    }
    await Deno.writeTextFile(new URL("SHA256SUMS", DIST), sums.join("\n") + "\n");
    console.log(`wrote dist/SHA256SUMS for ${TARGETS.length} binaries`);
  }
}
