/**
 * `deno task bench`'s codec section: scripts/codec_bench.ts under `deno bench`.
 *
 * @module
 */

import { run, type SectionReport } from "./common.ts";

const CODEC_BENCH = new URL("../codec_bench.ts", import.meta.url).pathname;

/** Each bench's name and average time in nanoseconds. */
export type CodecFigures = { name: string; avgNs: number }[];

/** Runs the codec benches (about 10 s). */
export async function measureCodec(): Promise<CodecFigures> {
  const codec = JSON.parse(await run(Deno.execPath(), ["bench", "--json", CODEC_BENCH]));
  return codec.benches.map((b: { name: string; results: { ok: { avg: number } }[] }) => ({
    name: b.name,
    avgNs: b.results[0].ok.avg,
  }));
}

/** A bench's stable name in the history: "codec." and its name's words, lowercase. */
export function codecKey(name: string): string {
  return "codec." + name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
}

/** The section's text and headline figures (it has no targets). */
export function codecReport(f: CodecFigures): SectionReport {
  return {
    markdown: [
      "| deno bench | Average (ns) |",
      "| --- | ---: |",
      ...f.map((b) => `| ${b.name} | ${b.avgNs.toFixed(0)} |`),
      "",
    ],
    targets: [],
    headlines: Object.fromEntries(f.map((b) => [codecKey(b.name), b.avgNs])),
  };
}
