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
 * import { parseKey } from "./keys.ts";
 * console.log(parseKey("00".repeat(32), "test").length); // 32
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
 * ```ts ignore
 * import { readKeyFile } from "./keys.ts";
 * const key = await readKeyFile("udp.key");
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
 * ```ts ignore
 * import { readKeyEnv } from "./keys.ts";
 * const key = readKeyEnv();
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

/**
 * The key named by `--key-file F` or `--key-env`, imported for HMAC, or null when neither was
 * given. Both at once is an error.
 *
 * @example
 * ```ts
 * import { keyFromOptions } from "./keys.ts";
 * console.log(await keyFromOptions(undefined, false)); // null
 * ```
 */
export async function keyFromOptions(
  keyFile: string | undefined,
  keyEnv: boolean,
): Promise<CryptoKey | null> {
  if (keyFile !== undefined && keyEnv) {
    throw new UsageError("give either --key-file or --key-env, not both");
  }
  if (keyFile !== undefined) return await importKey(await readKeyFile(keyFile));
  if (keyEnv) return await importKey(readKeyEnv());
  return null;
}
