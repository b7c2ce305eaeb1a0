/**
 * The Prometheus text format 0.0.4 and OpenMetrics 1.0 writers, pure (no I/O). One walk writes
 * both: they differ only in a counter's family name, HELP escaping, the `le` label's number
 * rendering and the closing `# EOF`.
 *
 * @module
 */

/** A sample's labels, written in the order given. */
export type Labels = Readonly<Record<string, string>>;

/** One counter or gauge series: its labels and its value. */
export interface Sample {
  /** The series' labels (none when absent). */
  labels?: Labels;
  /** The value: any float, `±Infinity` and `NaN` included. */
  value: number;
}

/** One histogram series, as kept: per-bucket counts, made cumulative when written. */
export interface HistogramSample {
  /** The series' labels (none when absent); `le` is the writer's. */
  labels?: Labels;
  /** Upper bounds, ascending, finite (the +Inf bucket is implied). */
  bounds: readonly number[];
  /** Per-bucket counts, NOT cumulative: length bounds.length + 1, the last one above the largest bound. */
  counts: ArrayLike<number>;
  /** Sum of all observations. */
  sum: number;
}

/**
 * A metric family: a name, its help text and its series, in the order they are written. A
 * counter's name ends in `_total` (the sample name in both formats; OpenMetrics names the family
 * without it). An empty `help` writes no HELP line, which both formats read as no help.
 */
export type MetricFamily =
  | { type: "counter"; name: string; help: string; samples: readonly Sample[] }
  | { type: "gauge"; name: string; help: string; samples: readonly Sample[] }
  | { type: "histogram"; name: string; help: string; samples: readonly HistogramSample[] };

/** The content type of {@linkcode renderText}'s output. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** The content type of {@linkcode renderOpenMetrics}'s output. */
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/**
 * The families in the Prometheus text format 0.0.4. Throws a `TypeError` on a programming error:
 * an invalid metric or label name, a counter not ending in `_total`, two families of one name, a
 * histogram's `le` label, bounds not finite and ascending, or counts of the wrong length.
 *
 * @example Label values escaped; a family without samples keeps its HELP and TYPE
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { renderText } from "./mod.ts";
 * const text = renderText([
 *   { type: "gauge", name: "udp_up", help: "Answers.", samples: [
 *     { labels: { target: 'say "hi"' }, value: 1 }, { labels: { target: "b" }, value: NaN },
 *   ] },
 *   { type: "gauge", name: "udp_idle", help: "None yet.", samples: [] },
 * ]);
 * strictEqual(text, [
 *   "# HELP udp_up Answers.",
 *   "# TYPE udp_up gauge",
 *   'udp_up{target="say \\"hi\\""} 1',
 *   'udp_up{target="b"} NaN',
 *   "# HELP udp_idle None yet.",
 *   "# TYPE udp_idle gauge",
 *   "",
 * ].join("\n"));
 * throws(() => renderText([{ type: "counter", name: "udp_lost", help: "", samples: [] }]), TypeError);
 * ```
 */
export function renderText(families: readonly MetricFamily[]): string {
  return render(families, false);
}

/**
 * The families in the OpenMetrics 1.0 text format, ending with `# EOF\n`. Throws a `TypeError`
 * where {@linkcode renderText} does.
 *
 * @example A counter's family is named without `_total`; `le` values are canonical ("1.0")
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { renderOpenMetrics } from "./mod.ts";
 * const text = renderOpenMetrics([
 *   { type: "counter", name: "udp_lost_total", help: "Lost.", samples: [{ value: 2 }] },
 *   { type: "histogram", name: "udp_rtt_seconds", help: "", samples: [
 *     { labels: { target: "a" }, bounds: [1], counts: [4, 1], sum: 3.5 },
 *   ] },
 * ]);
 * strictEqual(text, [
 *   "# TYPE udp_lost counter",
 *   "# HELP udp_lost Lost.",
 *   "udp_lost_total 2",
 *   "# TYPE udp_rtt_seconds histogram",
 *   'udp_rtt_seconds_bucket{target="a",le="1.0"} 4',
 *   'udp_rtt_seconds_bucket{target="a",le="+Inf"} 5',
 *   'udp_rtt_seconds_sum{target="a"} 3.5',
 *   'udp_rtt_seconds_count{target="a"} 5',
 *   "# EOF",
 *   "",
 * ].join("\n"));
 * ```
 */
export function renderOpenMetrics(families: readonly MetricFamily[]): string {
  return render(families, true);
}

/** What {@linkcode negotiate} chose: the content type to answer with and the writer of it. */
export interface Negotiated {
  /** The response's Content-Type. */
  contentType: string;
  /** The writer of that format. */
  render: (families: readonly MetricFamily[]) => string;
}

const TEXT: Negotiated = { contentType: TEXT_CONTENT_TYPE, render: renderText };
const OPENMETRICS: Negotiated = {
  contentType: OPENMETRICS_CONTENT_TYPE,
  render: renderOpenMetrics,
};
// OpenMetrics 0.0.1 is the same text for everything written here; a scraper asking for it
// alone (Prometheus 2.5 to 2.41) gets it under the name it asked for, as client_golang does.
const OPENMETRICS_0_0_1: Negotiated = {
  contentType: "application/openmetrics-text; version=0.0.1; charset=utf-8",
  render: renderOpenMetrics,
};

/**
 * Which format a scraper's Accept header asks for: OpenMetrics when it lists
 * `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) with a q above 0 and above any
 * `text/plain` (version 0.0.4 or none) it lists; else the text format 0.0.4, the default for
 * everything else (no header, `*\/*`, other types).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { negotiate, OPENMETRICS_CONTENT_TYPE, renderText, TEXT_CONTENT_TYPE } from "./mod.ts";
 * const prometheus = "application/openmetrics-text;version=1.0.0," +
 *   "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*\/*;q=0.1";
 * strictEqual(negotiate(prometheus).contentType, OPENMETRICS_CONTENT_TYPE);
 * strictEqual(negotiate("*\/*").contentType, TEXT_CONTENT_TYPE); // curl
 * strictEqual(negotiate(null).render, renderText);
 * strictEqual(negotiate("application/openmetrics-text;q=0").contentType, TEXT_CONTENT_TYPE);
 * ```
 */
export function negotiate(accept: string | null): Negotiated {
  if (accept === null) return TEXT;
  let best = TEXT;
  let bestQ = 0;
  for (const range of accept.split(",")) {
    const params = range.split(";");
    const type = params[0].trim().toLowerCase();
    const openMetrics = type === "application/openmetrics-text";
    if (!openMetrics && type !== "text/plain") continue;
    let q = 1;
    let version = "";
    for (let i = 1; i < params.length; i++) {
      const eq = params[i].indexOf("=");
      if (eq < 0) continue;
      const key = params[i].slice(0, eq).trim().toLowerCase();
      const value = params[i].slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
      if (key === "q") q = qValue(value);
      else if (key === "version") version = value;
    }
    let offer: Negotiated | null = null;
    if (openMetrics && (version === "" || version === "1.0.0")) offer = OPENMETRICS;
    else if (openMetrics && version === "0.0.1") offer = OPENMETRICS_0_0_1;
    else if (!openMetrics && (version === "" || version === "0.0.4")) offer = TEXT;
    // Strictly greater: of equal q, the first listed wins.
    if (offer !== null && q > bestQ) [best, bestQ] = [offer, q];
  }
  return best;
}

/** An HTTP qvalue (RFC 9110: 0 to 1, up to 3 decimals); a malformed one excludes its range. */
function qValue(text: string): number {
  if (!/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text)) return 0;
  return Number(text);
}

function render(families: readonly MetricFamily[], openMetrics: boolean): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const family of families) {
    const name = familyName(family);
    // The OpenMetrics family name, so that a set valid in one format is valid in the other.
    if (seen.has(name)) throw new TypeError(`metric family '${name}' appears twice`);
    seen.add(name);
    const shown = openMetrics ? name : family.name;
    if (openMetrics) out.push(`# TYPE ${shown} ${family.type}\n`);
    if (family.help !== "") out.push(`# HELP ${shown} ${escape(family.help, openMetrics)}\n`);
    if (!openMetrics) out.push(`# TYPE ${shown} ${family.type}\n`);
    if (family.type === "histogram") writeHistogram(out, family.name, family.samples, openMetrics);
    else writeSamples(out, family.name, family.samples);
  }
  if (openMetrics) out.push("# EOF\n");
  return out.join("");
}

/** The family's name as OpenMetrics has it (a counter's without `_total`), once validated. */
function familyName(family: MetricFamily): string {
  const { type, name } = family;
  if (type !== "counter" && type !== "gauge" && type !== "histogram") {
    throw new TypeError(`metric family '${name}' has an unknown type '${type}'`);
  }
  if (!isMetricName(name)) {
    throw new TypeError(`invalid metric name '${name}': it must match [a-zA-Z_:][a-zA-Z0-9_:]*`);
  }
  if (type !== "counter") return name;
  if (!name.endsWith("_total") || name.length === "_total".length) {
    throw new TypeError(`counter '${name}' must be named <name>_total`);
  }
  return name.slice(0, -"_total".length);
}

function writeSamples(out: string[], name: string, samples: readonly Sample[]): void {
  for (const sample of samples) {
    const labels = sample.labels === undefined ? "" : labelPairs(name, sample.labels);
    out.push(name, labels === "" ? " " : `{${labels}} `, formatValue(sample.value), "\n");
  }
}

function writeHistogram(
  out: string[],
  name: string,
  samples: readonly HistogramSample[],
  openMetrics: boolean,
): void {
  // Series usually share one bounds array: its `le` values are checked and written once.
  let lastBounds: readonly number[] | null = null;
  let les: string[] = [];
  for (const sample of samples) {
    const { bounds, counts } = sample;
    if (bounds !== lastBounds) {
      les = leValues(name, bounds, openMetrics);
      lastBounds = bounds;
    }
    if (counts.length !== bounds.length + 1) {
      throw new TypeError(
        `histogram '${name}': ${counts.length} counts for ${bounds.length} bounds (want bounds + 1)`,
      );
    }
    const labels = sample.labels === undefined ? "" : labelPairs(name, sample.labels, true);
    const bucket = labels === "" ? `${name}_bucket{le="` : `${name}_bucket{${labels},le="`;
    let cumulative = 0;
    for (let i = 0; i < counts.length; i++) {
      cumulative += counts[i];
      out.push(bucket, les[i], '"} ', formatValue(cumulative), "\n");
    }
    const braces = labels === "" ? " " : `{${labels}} `;
    out.push(`${name}_sum`, braces, formatValue(sample.sum), "\n");
    out.push(`${name}_count`, braces, formatValue(cumulative), "\n");
  }
}

/** The `le` label values of `bounds`, then `+Inf`, once the bounds are checked. */
function leValues(name: string, bounds: readonly number[], openMetrics: boolean): string[] {
  const les: string[] = [];
  for (let i = 0; i < bounds.length; i++) {
    const bound = bounds[i];
    if (typeof bound !== "number" || !Number.isFinite(bound)) {
      throw new TypeError(`histogram '${name}': bound ${bound} is not a finite number`);
    }
    if (i > 0 && !(bound > bounds[i - 1])) {
      throw new TypeError(`histogram '${name}': bounds must ascend (${bounds[i - 1]}, ${bound})`);
    }
    les.push(openMetrics ? formatCanonical(bound) : formatGo(bound));
  }
  les.push("+Inf");
  return les;
}

/** `a="x",b="y"`, label names checked and values escaped; "" for no labels. */
function labelPairs(metric: string, labels: Labels, histogram = false): string {
  let pairs = "";
  for (const key in labels) {
    if (!isLabelName(key)) {
      throw new TypeError(
        `metric '${metric}': invalid label name '${key}': it must match [a-zA-Z_][a-zA-Z0-9_]* ` +
          "and not start with __",
      );
    }
    if (histogram && key === "le") {
      throw new TypeError(`histogram '${metric}': 'le' is the bucket's label, not a series'`);
    }
    const pair = `${key}="${escape(labels[key], true)}"`;
    pairs = pairs === "" ? pair : `${pairs},${pair}`;
  }
  return pairs;
}

/**
 * A sample value: an integer without exponent or decimal point, any other float as its
 * shortest round-trip form (both formats read either), and `+Inf`, `-Inf`, `NaN`.
 */
export function formatValue(value: number): string {
  if (Number.isFinite(value)) return String(value); // String(-0) is "0"
  return value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
}

/**
 * A finite number as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, as client_golang's
 * text format does for `le`: the shortest digits, in exponent form (two exponent digits at
 * least) below 1e-4 or from 1e6 on.
 */
export function formatGo(value: number): string {
  const magnitude = Math.abs(value);
  // Exact at both edges: a double below 1e-4 never prints as 0.0001, nor one below 1e6 as 1e6.
  if (magnitude === 0 || (magnitude >= 1e-4 && magnitude < 1e6)) return String(value);
  const text = value.toExponential(); // shortest digits, e.g. "1.5e+21", "1e-5"
  const e = text.indexOf("e");
  const exponent = text.slice(e + 2);
  return text.slice(0, e + 2) + (exponent.length < 2 ? "0" + exponent : exponent);
}

/**
 * OpenMetrics' canonical number for `le` ("Canonical Numbers" in the spec): Go's `%g`, with
 * `.0` appended when that has neither a decimal point nor an exponent (`1.0`, `10.0`, `1e+06`).
 */
export function formatCanonical(value: number): string {
  const text = formatGo(value);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e || c === 0x65) return text; // "." or "e"
  }
  return text + ".0";
}

/**
 * Backslash and newline escaped, and the double quote too when `quote`: label values in both
 * formats, and help text in OpenMetrics (whose escaped-string has no bare quote; 0.0.4's help
 * keeps it).
 */
function escape(text: string, quote: boolean): string {
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c || c === 0x0a || (quote && c === 0x22)) break;
  }
  if (i === text.length) return text; // the common case: nothing to escape, no copy
  let escaped = text.slice(0, i);
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) escaped += "\\\\";
    else if (c === 0x0a) escaped += "\\n";
    else if (quote && c === 0x22) escaped += '\\"';
    else escaped += text[i];
  }
  return escaped;
}

function isNameChar(c: number, first: boolean, colon: boolean): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f ||
    (colon && c === 0x3a) || (!first && c >= 0x30 && c <= 0x39);
}

/** `[a-zA-Z_:][a-zA-Z0-9_:]*`, by character codes (no regex per name on the hot path). */
function isMetricName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    if (!isNameChar(name.charCodeAt(i), i === 0, true)) return false;
  }
  return true;
}

/** `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved for Prometheus' own). */
function isLabelName(name: string): boolean {
  if (name.length === 0 || name.startsWith("__")) return false;
  for (let i = 0; i < name.length; i++) {
    if (!isNameChar(name.charCodeAt(i), i === 0, false)) return false;
  }
  return true;
}
