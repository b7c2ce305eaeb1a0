/**
 * Loading the shared key for authenticated mode from a file or from $UDP_KEY, never from the
 * command line (where `ps` would show it), with one-line errors for every problem.
 *
 * @module
 */

import { importKey, MAX_KEY_BYTES, MIN_KEY_BYTES } from "../wire/auth.ts";
import { UsageError } from "./errors.ts";
import { describeFileError } from "./files.ts";

/** The environment variable `--key-env` reads. */
export const KEY_ENV = "UDP_KEY";

/**
 * Decodes a key written as hex (64 digits for 32 bytes) or base64; `source` names where it
 * came from, for the error message.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { parseKey } from "./keys.ts";
 * strictEqual(parseKey("00".repeat(32), "test").length, 32);
 * strictEqual(parseKey(btoa("k".repeat(16)), "test").length, 16);
 * throws(() => parseKey("00", "test"), /^UsageError: test holds a 1-byte key/);
 * ```
 */
export function parseKey(text: string, source: string): Uint8Array {
  const compact = text.trim();
  let key: Uint8Array;
  try {
    key = /^[0-9a-fA-F]+$/.test(compact) && compact.length % 2 === 0
      ? Uint8Array.fromHex(compact)
      : Uint8Array.fromBase64(compact);
  } catch {
    throw new UsageError(
      `${source} is neither hex nor base64: write the key as 64 hex digits (udp keygen makes one)`,
    );
  }
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new UsageError(
      `${source} holds a ${key.length}-byte key: use ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes (32 recommended; udp keygen makes one)`,
    );
  }
  return key;
}

/**
 * Reads a key file. Refuses one that other users may read (on systems with POSIX modes).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { readKeyFile } from "./keys.ts";
 * const path = await Deno.makeTempFile(); // mode 600
 * try {
 *   await Deno.writeTextFile(path, "ab".repeat(32) + "\n");
 *   strictEqual((await readKeyFile(path)).length, 32);
 * } finally {
 *   await Deno.remove(path);
 * }
 * ```
 */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let text: string;
  let mode: number | null;
  try {
    mode = (await Deno.stat(path)).mode;
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`cannot read --key-file '${path}': ${describeFileError(error)}`);
  }
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new UsageError(
      `--key-file '${path}' can be read by other users (mode ${
        (mode & 0o777).toString(8)
      }): run chmod 600 '${path}'`,
    );
  }
  return parseKey(text, `--key-file '${path}'`);
}

/**
 * Reads the key from $UDP_KEY.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { KEY_ENV, readKeyEnv } from "./keys.ts";
 * const before = Deno.env.get(KEY_ENV);
 * try {
 *   Deno.env.set(KEY_ENV, "ab".repeat(32));
 *   strictEqual(readKeyEnv().length, 32);
 *   Deno.env.delete(KEY_ENV);
 *   throws(() => readKeyEnv(), { message: "--key-env: $UDP_KEY is not set" });
 * } finally {
 *   if (before !== undefined) Deno.env.set(KEY_ENV, before);
 * }
 * ```
 */
export function readKeyEnv(): Uint8Array {
  let text: string | undefined;
  try {
    text = Deno.env.get(KEY_ENV);
  } catch {
    throw new UsageError(`cannot read $${KEY_ENV}: permission denied`);
  }
  if (!text) throw new UsageError(`--key-env: $${KEY_ENV} is not set`);
  return parseKey(text, `$${KEY_ENV}`);
}

/** Where the key comes from: a file (`--key-file F`), $UDP_KEY (`--key-env`), or nowhere. */
export type KeySource = { readonly file: string } | { readonly env: true } | null;

/**
 * The key of `source`, imported for HMAC, or null when there is none (no key, no
 * authentication).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { loadKey } from "./keys.ts";
 * strictEqual(await loadKey(null), null);
 * ```
 */
export async function loadKey(source: KeySource): Promise<CryptoKey | null> {
  if (source === null) return null;
  return await importKey("file" in source ? await readKeyFile(source.file) : readKeyEnv());
}
