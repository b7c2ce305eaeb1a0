/**
 * CRC-32C by the CPU's own instruction (`crc32`, SSE4.2, on every x86-64 processor since 2008):
 * 8 bytes an instruction, about 6 times as fast as the best JavaScript here on a 1,448-byte
 * frame, whose check a reflector verifies and a sender seals for every datagram. The frames'
 * check is udp's own (lib/wire/crc32c.ts); this is only a faster way to the same numbers, used
 * once it has given the same as the JavaScript on test inputs.
 *
 * The code is one page of machine code, scripts/native/crc32c.S assembled (the bytes below;
 * tests/hardware_crc_test.ts assembles the source again and compares), written at start while
 * the FFI permission is held, then made read-and-execute for good (`mprotect()`), never
 * writable again. It is reached through the C library's `tfind()`: its comparator, called with
 * the datagram and a job ({ crc, from, to, lane }) that a one-node tree holds, so the call is one
 * of Deno's fast FFI calls (typed arrays only), where a call through a function pointer is about
 * fifty times dearer. The range is checked against the array here, before every call.
 *
 * The instruction takes three cycles but starts one a cycle: a long range (a 1,400-byte frame)
 * is read as three lanes at once, joined in the machine code by carry-less multiplications
 * whose constants depend only on the range's length (computed here, by lib/wire's crc32cShift,
 * handed in, when the length changes).
 *
 * @module
 */

/** scripts/native/crc32c.S, assembled: `compare` at 0, `features` at {@linkcode FEATURES_AT}. */
const CODE = "8b068b56048b4e08448b460c4531db4801d74829d1762d4d85c075304883f9087210f2480f38f107" +
  "4883c7084883e908ebea4885c9740df20f38f00748ffc748ffc9ebee4431d8890631c0c34531c945" +
  "31d24c89c2f2480f38f107f24e0f38f10c07f24e0f38f114474883c7084883ea0875e2660f6ec066" +
  "0f6e4e10660f3a44c10066410f6ed1660f6e5e14660f3a44d300660fefc266480f7ec2f24c0f38f1" +
  "da4489d04a8d3c474c29c14c29c14c29c1e966ffffff53b80100000031c90fa289c85bc3";
/** Where `features` starts in {@linkcode CODE}. */
const FEATURES_AT = 0xb6;
/** CPUID leaf 1, ECX: SSE4.2 (crc32). */
const SSE4_2 = 1 << 20;
/** CPUID leaf 1, ECX: PCLMULQDQ (carry-less multiplication, which joins lanes). */
const PCLMULQDQ = 1 << 1;

const PAGE_SIZE = 4096;
const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;

/** The C library's calls this needs (bound with the others, in _ffi.ts). */
export const CRC_SYMBOLS = {
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  tsearch: { parameters: ["buffer", "buffer", "buffer"], result: "pointer" },
  tfind: { parameters: ["buffer", "buffer", "buffer"], result: "void" },
} as const;

/** The CRC register after `bytes[from..to)` from register `crc` (as lib/wire's crc32cUpdate). */
export type Crc32cUpdate = (crc: number, bytes: Uint8Array, from: number, to: number) => number;

/** A CRC register run through `count` zero bytes (as lib/wire's crc32cShift). */
export type Crc32cShift = (crc: number, count: number) => number;

/**
 * The CPU's CRC-32C: in one lane, or, given the shift that makes the constants joining lanes
 * (and where the processor multiplies without carries), three at once for ranges of
 * {@linkcode LANES_FROM_BYTES} and more.
 */
export type HardwareCrc32c = (shift?: Crc32cShift) => Crc32cUpdate;

/**
 * Ranges this long or longer go three lanes at once: below, setting them up costs what they
 * save (here, about the same at 256 bytes; 0.14 µs against 0.18 at 512, 0.18 against 0.34 at
 * 1,396, 0.59 against 1.5 at 8,000).
 */
const LANES_FROM_BYTES = 384;
/** And shorter than this (any datagram): the shift making the constants counts below 2^17. */
const LANES_BELOW_BYTES = 2 ** 17;

/**
 * The CPU's CRC-32C, set up (needs the FFI permission), or null where the processor has no
 * `crc32` instruction or the system refuses executable memory.
 */
export function loadHardwareCrc32c(
  symbols: Deno.DynamicLibrary<typeof CRC_SYMBOLS>["symbols"],
): HardwareCrc32c | null {
  const { mmap, mprotect, tsearch, tfind } = symbols;
  const page = mmap(
    null,
    BigInt(PAGE_SIZE),
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS,
    -1,
    0n,
  );
  // MAP_FAILED is (void *) -1.
  if (page === null || BigInt(Deno.UnsafePointer.value(page)) === 2n ** 64n - 1n) return null;
  const code = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, PAGE_SIZE));
  code.set(Uint8Array.fromHex(CODE));
  if (mprotect(page, BigInt(PAGE_SIZE), PROT_READ | PROT_EXEC) !== 0) return null;
  const features = new Deno.UnsafeFnPointer(
    Deno.UnsafePointer.offset(page, FEATURES_AT)!,
    {
      parameters: [],
      result: "u32",
    } as const,
  );
  const cpu = features.call();
  if ((cpu & SSE4_2) === 0) return null;
  const lanes = (cpu & PCLMULQDQ) !== 0;
  // The job, and the tree whose one node holds it: memory of its own that never moves (a
  // buffer this size is not on V8's heap), kept for the life of the process.
  const jobMemory = new ArrayBuffer(64);
  const job = new Int32Array(jobMemory, 0, 6); // crc, from, to, lane, k1, k2
  const jobKey = new Uint8Array(jobMemory);
  const root = new Uint8Array(new ArrayBuffer(64));
  if (tsearch(jobKey, root, code) === null) return null;
  return (shift) => {
    // The joining constants of the length read last (a datagram's length mostly repeats), of
    // this function's own: the job is every one's, so they are written into it at each call.
    let joinedLength = -1;
    let k1 = 0;
    let k2 = 0;
    const join = (length: number, lane: number) => {
      joinedLength = length;
      k1 = zeroBytesConstant(shift!, length - lane);
      k2 = zeroBytesConstant(shift!, length - 2 * lane);
    };
    const threeLanes = lanes && shift !== undefined;
    return (crc, bytes, from, to) => {
      // The machine code reads base[from..to) (as unsigned numbers): only what the array holds.
      const end = Math.max(0, Math.min(to, bytes.length));
      const start = Math.max(0, Math.min(from, end));
      job[0] = crc;
      job[1] = start;
      job[2] = end;
      // As the machine code reads them (whole numbers); lanes of a multiple of 8 bytes.
      const length = job[2] - job[1];
      const inLanes = threeLanes && length >= LANES_FROM_BYTES && length < LANES_BELOW_BYTES;
      const lane = inLanes ? 8 * Math.floor(length / 24) : 0;
      if (lane > 0 && length !== joinedLength) join(length, lane);
      job[3] = lane;
      job[4] = k1;
      job[5] = k2;
      tfind(bytes, root, code);
      return job[0];
    };
  };
}

/**
 * x^(8m - 33) mod P (reflected), for m >= 5: a register carry-less multiplied by it, and the
 * product reduced by the crc32 instruction, is the register run through m zero bytes.
 */
function zeroBytesConstant(shift: Crc32cShift, m: number): number {
  return shift(1 << 24, m - 5); // x^7, then 8(m - 5) more
}
