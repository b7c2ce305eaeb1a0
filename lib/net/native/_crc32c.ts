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
 * the datagram and a job ({ crc, from, to }) that a one-node tree holds, so the call is one of
 * Deno's fast FFI calls (typed arrays only), where a call through a function pointer is about
 * fifty times dearer. The range is checked against the array here, before every call.
 *
 * @module
 */

/** scripts/native/crc32c.S, assembled: `compare` at 0, `features` at {@linkcode FEATURES_AT}. */
const CODE = "8b068b56048b4e084801d74829d176284883f9087210f2480f38f1074883c7084883e908ebea4885c9" +
  "740df20f38f00748ffc748ffc9ebee890631c0c353b80100000031c90fa289c85bc3";
/** Where `features` starts in {@linkcode CODE}. */
const FEATURES_AT = 0x3d;
/** CPUID leaf 1, ECX: SSE4.2. */
const SSE4_2 = 1 << 20;

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

/**
 * The CPU's CRC-32C, set up (needs the FFI permission), or null where the processor has no
 * `crc32` instruction or the system refuses executable memory.
 */
export function loadHardwareCrc32c(
  symbols: Deno.DynamicLibrary<typeof CRC_SYMBOLS>["symbols"],
): Crc32cUpdate | null {
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
  if ((features.call() & SSE4_2) === 0) return null;
  // The job, and the tree whose one node holds it: memory of its own that never moves (a
  // buffer this size is not on V8's heap), kept for the life of the process.
  const jobMemory = new ArrayBuffer(64);
  const job = new Int32Array(jobMemory, 0, 3);
  const jobKey = new Uint8Array(jobMemory);
  const root = new Uint8Array(new ArrayBuffer(64));
  if (tsearch(jobKey, root, code) === null) return null;
  return (crc, bytes, from, to) => {
    // The machine code reads base[from..to) (as unsigned numbers): only what the array holds.
    const end = Math.max(0, Math.min(to, bytes.length));
    const start = Math.max(0, Math.min(from, end));
    job[0] = crc;
    job[1] = start;
    job[2] = end;
    tfind(bytes, root, code);
    return job[0];
  };
}
