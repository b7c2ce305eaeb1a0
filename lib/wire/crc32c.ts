/**
 * CRC-32C (Castagnoli, RFC 3720 B.4), the check every `udp` frame ends with: it catches every
 * error of up to 3 bits in a jumbo frame and every burst of up to 32, which the UDP checksum
 * (a 16-bit sum, often recomputed or left out by middleboxes) does not. Pure; no I/O.
 *
 * @module
 */

// Reflected polynomial 0x1EDC6F41. Sixteen tables in one array: the loop takes 16 bytes a
// round ("slicing-by-16"), 1.1 ns a byte in V8 here, where a byte at a time costs four times that.
const POLYNOMIAL = 0x82f63b78;
const T = makeTables();

function makeTables(): Int32Array {
  const tables = new Int32Array(16 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    tables[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    for (let k = 1; k < 16; k++) {
      const previous = tables[(k - 1) * 256 + byte];
      tables[k * 256 + byte] = (previous >>> 8) ^ tables[previous & 0xff];
    }
  }
  return tables;
}

/**
 * The CRC-32C of `bytes` up to `end` (all of them by default), as an unsigned 32-bit number: the
 * end saves a view per datagram where a check covers all but the last bytes.
 *
 * @example The standard check value, and RFC 3720's 32 zero bytes
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { crc32c } from "./crc32c.ts";
 * strictEqual(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
 * strictEqual(crc32c(new Uint8Array(32)), 0x8a9136aa);
 * ```
 */
export function crc32c(bytes: Uint8Array, end: number = bytes.length): number {
  return (crc32cUpdate(-1, bytes, 0, Math.min(end, bytes.length)) ^ -1) >>> 0;
}

/**
 * The CRC register after `bytes[from..to)` from register `crc` (-1 to start a CRC, 0 for the
 * linear part alone), neither inverted: the building block of {@linkcode crc32c} and of
 * {@linkcode FrameSealer}. Words are read little-endian through a DataView (V8 inlines it):
 * four loads a word cost a sixth more.
 */
export function crc32cUpdate(crc: number, bytes: Uint8Array, from: number, to: number): number {
  if (faster !== null && to - from >= FASTER_FROM_BYTES) return faster(crc, bytes, from, to);
  return softwareCrc32cUpdate(crc, bytes, from, to);
}

// A faster way to the same registers (the CPU's instruction, lib/net/native/_crc32c.ts): its
// call costs about what 32 bytes do here, so shorter inputs stay here.
let faster: typeof softwareCrc32cUpdate | null = null;
const FASTER_FROM_BYTES = 48;

/**
 * Has {@linkcode crc32cUpdate} use `update` (for inputs of 48 bytes and more) from now on, if
 * it gives the same registers as {@linkcode softwareCrc32cUpdate} on test inputs (every length
 * up to 600 bytes, from odd offsets, and a long one), or stop using another with null; whether
 * it is used. The executable hands it the CPU's `crc32` instruction where there is one.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { softwareCrc32cUpdate, useCrc32cUpdate } from "./crc32c.ts";
 * strictEqual(useCrc32cUpdate(() => 0), false); // wrong: refused
 * strictEqual(useCrc32cUpdate(softwareCrc32cUpdate), true);
 * useCrc32cUpdate(null);
 * ```
 */
export function useCrc32cUpdate(
  update: typeof softwareCrc32cUpdate | null,
): boolean {
  faster = null;
  if (update === null) return false;
  const input = new Uint8Array(70_000);
  for (let i = 0; i < input.length; i++) input[i] = (i * 2654435761) >>> 24;
  const same = (from: number, to: number, crc: number) =>
    (update(crc, input, from, to) | 0) === softwareCrc32cUpdate(crc, input, from, to);
  for (let length = 0; length <= 600; length++) {
    if (!same(length % 7, length % 7 + length, length % 2 === 0 ? -1 : length * 40503)) {
      return false;
    }
  }
  if (!same(3, 65_538, -1) || !same(9, 9, 5)) return false;
  faster = update;
  return true;
}

/** Whether {@linkcode crc32cUpdate} uses a faster way ({@linkcode useCrc32cUpdate}). */
export function crc32cAccelerated(): boolean {
  return faster !== null;
}

/**
 * {@linkcode crc32cUpdate} in JavaScript alone, whatever {@linkcode useCrc32cUpdate} was given:
 * what a faster way must agree with.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { softwareCrc32cUpdate } from "./crc32c.ts";
 * const bytes = new TextEncoder().encode("123456789");
 * strictEqual((softwareCrc32cUpdate(-1, bytes, 0, 9) ^ -1) >>> 0, 0xe3069283);
 * ```
 */
export function softwareCrc32cUpdate(
  crc: number,
  bytes: Uint8Array,
  from: number,
  to: number,
): number {
  // A view costs an allocation: below a few hundred bytes, a byte's loads cost less.
  if (to - from < DATA_VIEW_BYTES) return crc32cSmall(crc, bytes, from, to);
  const view = viewOf(bytes.buffer);
  const base = bytes.byteOffset;
  let i = from;
  const end16 = to - ((to - from) & 15);
  for (; i < end16; i += 16) {
    const a = crc ^ view.getInt32(base + i, true);
    const b = view.getInt32(base + i + 4, true);
    const c = view.getInt32(base + i + 8, true);
    const d = view.getInt32(base + i + 12, true);
    crc = T[3840 + (a & 0xff)] ^ T[3584 + ((a >>> 8) & 0xff)] ^ T[3328 + ((a >>> 16) & 0xff)] ^
      T[3072 + (a >>> 24)] ^ T[2816 + (b & 0xff)] ^ T[2560 + ((b >>> 8) & 0xff)] ^
      T[2304 + ((b >>> 16) & 0xff)] ^ T[2048 + (b >>> 24)] ^ T[1792 + (c & 0xff)] ^
      T[1536 + ((c >>> 8) & 0xff)] ^ T[1280 + ((c >>> 16) & 0xff)] ^ T[1024 + (c >>> 24)] ^
      T[768 + (d & 0xff)] ^ T[512 + ((d >>> 8) & 0xff)] ^ T[256 + ((d >>> 16) & 0xff)] ^
      T[d >>> 24];
  }
  for (; i < to; i++) crc = (crc >>> 8) ^ T[(crc ^ bytes[i]) & 0xff];
  return crc;
}

/** Inputs this long or longer are read through a DataView. */
const DATA_VIEW_BYTES = 256;

// The view over the buffer read last: a datagram's bytes are mostly a view into a receive
// arena, whose whole buffer one view serves (making a view costs as much as 150 bytes' CRC).
let viewedBuffer: ArrayBufferLike | null = null;
let bufferView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

function viewOf(buffer: ArrayBufferLike): DataView<ArrayBufferLike> {
  if (buffer !== viewedBuffer) {
    bufferView = new DataView(buffer);
    viewedBuffer = buffer;
  }
  return bufferView;
}

/** {@linkcode crc32cUpdate} of a short input: 16 bytes a round, each loaded on its own. */
function crc32cSmall(crc: number, bytes: Uint8Array, from: number, to: number): number {
  let i = from;
  const end16 = to - ((to - from) & 15);
  for (; i < end16; i += 16) {
    const a = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = T[3840 + (a & 0xff)] ^ T[3584 + ((a >>> 8) & 0xff)] ^ T[3328 + ((a >>> 16) & 0xff)] ^
      T[3072 + (a >>> 24)] ^ T[2816 + bytes[i + 4]] ^ T[2560 + bytes[i + 5]] ^
      T[2304 + bytes[i + 6]] ^ T[2048 + bytes[i + 7]] ^ T[1792 + bytes[i + 8]] ^
      T[1536 + bytes[i + 9]] ^ T[1280 + bytes[i + 10]] ^ T[1024 + bytes[i + 11]] ^
      T[768 + bytes[i + 12]] ^ T[512 + bytes[i + 13]] ^ T[256 + bytes[i + 14]] ^ T[bytes[i + 15]];
  }
  // Then 4 bytes a round (a frame's last 12 before its check, say), then bytes.
  const end4 = to - ((to - i) & 3);
  for (; i < end4; i += 4) {
    const a = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = T[768 + (a & 0xff)] ^ T[512 + ((a >>> 8) & 0xff)] ^ T[256 + ((a >>> 16) & 0xff)] ^
      T[a >>> 24];
  }
  for (; i < to; i++) crc = (crc >>> 8) ^ T[(crc ^ bytes[i]) & 0xff];
  return crc;
}

/**
 * The operators "append 2^k zero bytes" on a CRC register (linear over GF(2)), k = 0 to 16,
 * each as four tables of 256 (a register goes through one with four lookups), made on first
 * use: a register runs through any count of zero bytes below 128 KiB with at most 17 of them,
 * whatever the count. The counts used most get an operator of their own (see
 * {@linkcode crc32cShift}).
 */
let zeroOperators: Int32Array[] | null = null;

function zeroBytesOperators(): Int32Array[] {
  if (zeroOperators !== null) return zeroOperators;
  // The images of the register's 32 basis vectors through one zero byte, then by squaring.
  let columns = Int32Array.from({ length: 32 }, (_, bit) => {
    const crc = 1 << bit;
    return (crc >>> 8) ^ T[crc & 0xff];
  });
  const operators: Int32Array[] = [];
  for (let k = 0; k <= 16; k++) {
    operators.push(byteTables(columns));
    const square = columns;
    columns = Int32Array.from(square, (vector) => apply(square, vector));
  }
  zeroOperators = operators;
  return operators;
}

/** An operator given by the images of the basis vectors, as four tables of 256. */
function byteTables(columns: Int32Array): Int32Array {
  const tables = new Int32Array(4 * 256);
  for (let table = 0; table < 4; table++) {
    for (let byte = 0; byte < 256; byte++) {
      let value = 0;
      for (let bit = 0; bit < 8; bit++) {
        if (byte & (1 << bit)) value ^= columns[table * 8 + bit];
      }
      tables[table * 256 + byte] = value;
    }
  }
  return tables;
}

function apply(columns: Int32Array, vector: number): number {
  let value = 0;
  for (let bit = 0; bit < 32; bit++) if (vector & (1 << bit)) value ^= columns[bit];
  return value;
}

/**
 * A CRC register (not inverted) run through `count` zero bytes (below 2^17), without reading
 * them: the CRC of bytes that are known not to have changed is had by shifting, not reading.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { crc32cShift, crc32cUpdate } from "./crc32c.ts";
 * const bytes = new Uint8Array(1000);
 * bytes[0] = 9;
 * strictEqual(crc32cShift(crc32cUpdate(-1, bytes, 0, 1), 999), crc32cUpdate(-1, bytes, 0, 1000));
 * ```
 */
export function crc32cShift(crc: number, count: number): number {
  const own = countOperators.get(count);
  if (own !== undefined) return applyTables(own, crc);
  if (++shiftsSinceBuild >= SHIFTS_PER_BUILD && count > 0 && count < 2 ** 17) {
    // A count of its own: one operator, four lookups in 4 KiB, where the powers of two
    // take up to 17 (scattered over 68 KiB, a miss each once the cache is busy elsewhere).
    shiftsSinceBuild = 0;
    if (countOperators.size >= COUNT_OPERATORS) countOperators.clear();
    const columns = Int32Array.from({ length: 32 }, (_, bit) => shiftByPowers(1 << bit, count));
    const tables = byteTables(columns);
    countOperators.set(count, tables);
    return applyTables(tables, crc);
  }
  return shiftByPowers(crc, count);
}

// Operators of single counts (a frame length's tail, say: the same one for every datagram of
// that length), at most COUNT_OPERATORS; one is built (about 20 µs) at most every
// SHIFTS_PER_BUILD shifts, so no input can make shifting cost more than a few ns a shift more.
const COUNT_OPERATORS = 8;
const SHIFTS_PER_BUILD = 1024;
const countOperators = new Map<number, Int32Array>();
let shiftsSinceBuild = SHIFTS_PER_BUILD - 1;

/** A register through one operator given as four tables of 256. */
function applyTables(s: Int32Array, crc: number): number {
  return s[crc & 0xff] ^ s[256 + ((crc >>> 8) & 0xff)] ^ s[512 + ((crc >>> 16) & 0xff)] ^
    s[768 + (crc >>> 24)];
}

/** {@linkcode crc32cShift} through the operators of the powers of two in `count`. */
function shiftByPowers(crc: number, count: number): number {
  const operators = zeroBytesOperators();
  for (let k = 0; count > 0; k++, count >>>= 1) {
    if ((count & 1) !== 0) crc = applyTables(operators[k], crc);
  }
  return crc;
}

/**
 * Seals frames whose bytes from `headerBytes` on are always the same (a sender's padding, or a
 * reflector's reply that changed only its header): the CRC-32C of such a frame is its header's
 * register run through the rest's zero-byte operator, xored with the rest's own (linear) CRC,
 * so sealing reads the header only. Built for one length and one tail; check with
 * {@linkcode FrameSealer.matches} before trusting it with another frame.
 *
 * @example Sealing reads the header only, and agrees with the CRC of every byte
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { crc32c, FrameSealer } from "./crc32c.ts";
 * const frame = new Uint8Array(1448).fill(7);
 * const sealer = new FrameSealer(frame, 44);
 * frame[20] = 1; // a header byte changes: the sender's next sequence number
 * strictEqual(sealer.crc(frame), crc32c(frame, 1444));
 * ```
 */
export class FrameSealer {
  /** Bytes of the frames it seals. */
  readonly length: number;
  readonly #headerBytes: number;
  readonly #tail: Uint8Array;
  readonly #tailCrc: number;

  /** A sealer for frames as long as `frame` whose bytes from `headerBytes` up to the check (the
   * last 4) are those of `frame` now. */
  constructor(frame: Uint8Array, headerBytes: number) {
    const end = frame.length - 4;
    this.length = frame.length;
    this.#headerBytes = headerBytes;
    this.#tail = frame.slice(headerBytes, end);
    this.#tailCrc = crc32cUpdate(0, this.#tail, 0, this.#tail.length);
  }

  /** Whether `frame` has this sealer's length and tail (a full read of the tail). */
  matches(frame: Uint8Array): boolean {
    if (frame.length !== this.length) return false;
    const tail = this.#tail;
    const at = this.#headerBytes;
    for (let i = 0; i < tail.length; i++) if (frame[at + i] !== tail[i]) return false;
    return true;
  }

  /** The CRC-32C of `frame` before its check, the tail taken to be this sealer's. */
  crc(frame: Uint8Array): number {
    const header = crc32cUpdate(-1, frame, 0, this.#headerBytes);
    return ((crc32cShift(header, this.#tail.length) ^ this.#tailCrc) ^ -1) >>> 0;
  }
}
