/**
 * Frame authentication: HMAC-SHA-256 (WebCrypto) over everything before the tag, truncated to
 * 16 bytes, as STAMP does (RFC 8762 §4.1.1 / §4.2.2). No I/O.
 *
 * @module
 */

import { CHECK_SIZE, sealFrame, TAG_SIZE } from "./protocol.ts";

/** The shortest key accepted: 128 bits. */
export const MIN_KEY_BYTES = 16;
/** The longest key accepted: one SHA-256 block. */
export const MAX_KEY_BYTES = 64;

/**
 * Imports raw key bytes as an HMAC-SHA-256 key for signing and verifying frames.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { importKey } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32));
 * strictEqual(key.algorithm.name, "HMAC");
 * throws(() => importKey(new Uint8Array(8)), RangeError);
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
 * before the tag (the tag sits just before the frame's 4-byte check).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { computeTag, importKey } from "./auth.ts";
 * const tag = await computeTag(new Uint8Array(64), await importKey(new Uint8Array(32)));
 * strictEqual(tag.length, 16);
 * ```
 */
export function computeTag(frame: Uint8Array, key: CryptoKey): Promise<Uint8Array> {
  return truncatedHmac(key, frame.subarray(0, tagOffset(frame)));
}

/**
 * HMAC-SHA-256 of `text`, truncated to its first 16 bytes: the tag of the `udp` frame and of
 * STAMP's packets and HMAC TLV (RFC 8762 §4.4).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { importKey, truncatedHmac } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32));
 * strictEqual((await truncatedHmac(key, new Uint8Array(96))).length, 16);
 * ```
 */
export async function truncatedHmac(key: CryptoKey, text: Uint8Array): Promise<Uint8Array> {
  const mac = await crypto.subtle.sign("HMAC", key, text as Uint8Array<ArrayBuffer>);
  return new Uint8Array(mac, 0, TAG_SIZE);
}

/**
 * Whether two tags are the same bytes, compared in constant time (no early exit tells an
 * attacker how much of a forged tag was right).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { sameTag } from "./auth.ts";
 * strictEqual(sameTag(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
 * strictEqual(sameTag(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
 * ```
 */
export function sameTag(expected: Uint8Array, actual: Uint8Array): boolean {
  if (expected.length !== actual.length) return false;
  let difference = 0;
  for (let i = 0; i < expected.length; i++) difference |= expected[i] ^ actual[i];
  return difference === 0;
}

/**
 * Writes the tag of an authenticated frame in place, then seals the frame again (its check
 * covers the tag).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { importKey, signFrame, verifyFrame } from "./auth.ts";
 * import { checkFrame } from "./protocol.ts";
 * const key = await importKey(new Uint8Array(32).fill(7));
 * const frame = new Uint8Array(64);
 * await signFrame(frame, key);
 * strictEqual(await verifyFrame(frame, key), true);
 * strictEqual(checkFrame(frame), true);
 * ```
 */
export async function signFrame(frame: Uint8Array, key: CryptoKey): Promise<void> {
  frame.set(await computeTag(frame, key), tagOffset(frame));
  sealFrame(frame);
}

/**
 * Whether a frame carries its correct tag; compares in constant time.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { importKey, verifyFrame } from "./auth.ts";
 * const key = await importKey(new Uint8Array(32));
 * strictEqual(await verifyFrame(new Uint8Array(64), key), false);
 * ```
 */
export async function verifyFrame(frame: Uint8Array, key: CryptoKey): Promise<boolean> {
  if (frame.length < TAG_SIZE + CHECK_SIZE) return false;
  const expected = await computeTag(frame, key);
  return sameTag(expected, frame.subarray(tagOffset(frame), tagOffset(frame) + TAG_SIZE));
}

function tagOffset(frame: Uint8Array): number {
  return frame.length - CHECK_SIZE - TAG_SIZE;
}
