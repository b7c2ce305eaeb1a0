/**
 * Big-endian integers in byte arrays, read and written byte by byte: the codecs' hot paths run
 * once per datagram, and a DataView over a datagram costs more to make than the loads it saves.
 *
 * @module
 */

/** The big-endian u16 at `at` of `bytes`. */
export function readUint16(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 8) | bytes[at + 1];
}

/** The big-endian u32 at `at` of `bytes`. */
export function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** Writes `value` as a big-endian u16 at `at` of `bytes`. */
export function writeUint16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value;
}

/** Writes `value` as a big-endian u32 at `at` of `bytes`. */
export function writeUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}
