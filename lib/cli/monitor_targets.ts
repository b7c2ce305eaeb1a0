/**
 * `udp monitor`'s targets: `[NAME=]HOST[:PORT]` for udp's protocol, `[NAME=]stamp://HOST[:PORT]`
 * for a STAMP reflector, on the command line or one a line in `--targets FILE` (`#` starts a
 * comment). The file is opened once, at start, and re-read from that open file on SIGHUP: the
 * command gives up file access before its first probe, so no other file can be read later.
 *
 * @module
 */

import { DEFAULT_PORT, type Family, parseHostPort, resolveHost } from "../net/address.ts";
import { NetError } from "../net/mod.ts";
import { UsageError } from "./errors.ts";
import { describeFileError } from "./files.ts";
import { STAMP_PORT } from "./stamp_options.ts";

/** A target as written, parsed but not resolved. */
export interface TargetSpec {
  /** Its `target` label: NAME, else the target as written. */
  readonly label: string;
  /** `udp` (udp's protocol) or `stamp`. */
  readonly protocol: "udp" | "stamp";
  /** The host, a name or an address. */
  readonly host: string;
  /** The port (default 9999 for udp, 862 for STAMP). */
  readonly port: number;
}

const STAMP_SCHEME = "stamp://";
const UDP_SCHEME = "udp://";
const NAME = /^[^\s=#]+$/;

/**
 * Parses one target; throws a one-line {@linkcode UsageError} saying what is wrong.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { parseTarget } from "./monitor_targets.ts";
 * assertEquals(parseTarget("10.0.0.2"), {
 *   label: "10.0.0.2", protocol: "udp", host: "10.0.0.2", port: 9999,
 * });
 * assertEquals(parseTarget("core1=stamp://[2001:db8::1]"), {
 *   label: "core1", protocol: "stamp", host: "2001:db8::1", port: 862,
 * });
 * ```
 */
export function parseTarget(text: string): TargetSpec {
  const equals = text.indexOf("=");
  const name = equals >= 0 ? text.slice(0, equals) : null;
  const written = equals >= 0 ? text.slice(equals + 1) : text;
  if (name !== null && !NAME.test(name)) {
    throw new UsageError(
      `invalid target '${text}': a name before '=' must be non-empty, without spaces or '#'`,
    );
  }
  const stamp = written.startsWith(STAMP_SCHEME);
  const address = stamp
    ? written.slice(STAMP_SCHEME.length)
    : written.startsWith(UDP_SCHEME)
    ? written.slice(UDP_SCHEME.length)
    : written;
  if (address === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    throw new UsageError(
      `invalid target '${text}': write HOST[:PORT] (udp's protocol) or stamp://HOST[:PORT]`,
    );
  }
  try {
    const { host, port } = parseHostPort(address, stamp ? STAMP_PORT : DEFAULT_PORT);
    return { label: name ?? written, protocol: stamp ? "stamp" : "udp", host, port };
  } catch (error) {
    if (error instanceof NetError) {
      throw new UsageError(`invalid target '${text}': ${error.message}`);
    }
    throw error;
  }
}

/**
 * The targets of a targets file's text, one a line; blank lines and `#` comments are skipped.
 * An error names the file and line.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseTargetsText } from "./monitor_targets.ts";
 * const specs = parseTargetsText("# peers\n10.0.0.2\n\nedge=stamp://10.0.0.3  # router\n", "t");
 * strictEqual(specs.map((spec) => spec.label).join(" "), "10.0.0.2 edge");
 * ```
 */
export function parseTargetsText(text: string, fileName: string): TargetSpec[] {
  const specs: TargetSpec[] = [];
  text.split("\n").forEach((line, index) => {
    const content = line.replace(/(^|\s)#.*$/, "").trim();
    if (content === "") return;
    if (/\s/.test(content)) {
      throw new UsageError(`${fileName}:${index + 1}: one target a line, not '${content}'`);
    }
    try {
      specs.push(parseTarget(content));
    } catch (error) {
      if (error instanceof UsageError) {
        throw new UsageError(`${fileName}:${index + 1}: ${error.message}`);
      }
      throw error;
    }
  });
  return specs;
}

/** A target spec resolved to a numeric address. */
export interface ResolvedTarget extends TargetSpec {
  /** Where its reflector is. */
  readonly address: { hostname: string; port: number; family: Family };
}

/** Resolves every spec (names through the system's resolver); a name that does not resolve
 * is a one-line error naming the target. */
export function resolveTargets(
  specs: readonly TargetSpec[],
  family: Family | undefined,
): Promise<ResolvedTarget[]> {
  return Promise.all(specs.map(async (spec) => {
    try {
      return { ...spec, address: await resolveHost(spec.host, spec.port, { family }) };
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new UsageError(`target '${spec.label}': ${why}`);
    }
  }));
}

/**
 * The `--targets` file, opened at start and read again from the open file on each
 * {@linkcode TargetsFile.read}: a file rewritten in place (`cat new > FILE`) is read anew;
 * one replaced by another file (an editor's save, `mv`) is not seen, which
 * {@linkcode TargetsFile.read} says when the text comes back unchanged.
 */
export class TargetsFile {
  /** The path, as given. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  #lastText: string | null = null;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Opens `path`; a one-line usage error when it cannot. */
  static async open(path: string): Promise<TargetsFile> {
    try {
      return new TargetsFile(path, await Deno.open(path, { read: true }));
    } catch (error) {
      throw new UsageError(`cannot read --targets ${path}: ${describeFileError(error)}`);
    }
  }

  /** The file's targets now, and whether its text is the same as at the last read. */
  async read(): Promise<{ specs: TargetSpec[]; unchanged: boolean }> {
    await this.#file.seek(0, Deno.SeekMode.Start);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    let total = 0;
    for (;;) {
      const count = await this.#file.read(buffer);
      if (count === null) break;
      chunks.push(buffer.slice(0, count));
      total += count;
      if (total > 16 * 1024 * 1024) {
        throw new UsageError(`--targets ${this.path} is over 16 MiB: is it the right file?`);
      }
    }
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    const text = new TextDecoder().decode(bytes);
    const unchanged = text === this.#lastText;
    const specs = parseTargetsText(text, this.path);
    this.#lastText = text;
    return { specs, unchanged };
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}
