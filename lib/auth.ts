/**
 * Frame authentication: HMAC-SHA-256 (WebCrypto) over everything before the tag, truncated to
 * 16 bytes, as STAMP does (RFC 8762 §4.1.1 / §4.2.2). No I/O.
 *
 * @module
 */

import { TAG_SIZE } from "./protocol.ts";

/** The shortest key accepted: 128 bits. */
export const MIN_KEY_BYTES = 16;
/** The longest key accepted: one SHA-256 block. */
export const MAX_KEY_BYTES = 64;

/**
 * Imports raw key bytes as an HMAC-SHA-256 key for signing and verifying frames.
 *
 * @example
 * ```ts
 * import { importKey } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32));
 * console.log(key.algorithm.name); // HMAC
 * ```
 */
export function importKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length < MIN_KEY_BYTES || raw.length > MAX_KEY_BYTES) {
    throw new RangeError(`a key has ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes, not ${raw.length}`);
  }
  return crypto.subtle.importKey(
    "raw",
    raw.slice(),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/**
 * The tag of an authenticated frame: the first 16 bytes of HMAC-SHA-256 over all its bytes
 * before the tag.
 *
 * @example
 * ```ts
 * import { computeTag, importKey } from "./auth.ts";
 * const tag = await computeTag(new Uint8Array(60), await importKey(new Uint8Array(32)));
 * console.log(tag.length); // 16
 * ```
 */
export async function computeTag(frame: Uint8Array, key: CryptoKey): Promise<Uint8Array> {
  const signed = frame.subarray(0, frame.length - TAG_SIZE) as Uint8Array<ArrayBuffer>;
  const mac = await crypto.subtle.sign("HMAC", key, signed);
  return new Uint8Array(mac, 0, TAG_SIZE);
}

/**
 * Writes the tag into the last 16 bytes of an authenticated frame, in place.
 *
 * @example
 * ```ts
 * import { importKey, signFrame, verifyFrame } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32).fill(7));
 * const frame = new Uint8Array(60);
 * await signFrame(frame, key);
 * console.log(await verifyFrame(frame, key)); // true
 * ```
 */
export async function signFrame(frame: Uint8Array, key: CryptoKey): Promise<void> {
  frame.set(await computeTag(frame, key), frame.length - TAG_SIZE);
}

/**
 * Whether the last 16 bytes of a frame are its correct tag; compares in constant time.
 *
 * @example
 * ```ts
 * import { importKey, verifyFrame } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32));
 * console.log(await verifyFrame(new Uint8Array(60), key)); // false
 * ```
 */
export async function verifyFrame(frame: Uint8Array, key: CryptoKey): Promise<boolean> {
  if (frame.length < TAG_SIZE) return false;
  const expected = await computeTag(frame, key);
  const actual = frame.subarray(frame.length - TAG_SIZE);
  let difference = 0;
  for (let i = 0; i < TAG_SIZE; i++) difference |= expected[i] ^ actual[i];
  return difference === 0;
}
