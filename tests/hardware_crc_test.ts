// CRC-32C by the CPU's crc32 instruction (lib/net/native/_crc32c.ts): the machine code is its
// source assembled, and it gives exactly what the JavaScript gives.
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { hardwareCrc32c } from "../lib/net/mod.ts";
import { crc32c, crc32cShift, softwareCrc32cUpdate, useCrc32cUpdate } from "../lib/wire/mod.ts";
import { cpuHasCrc32Instruction } from "./helpers.ts";

const hardware = hardwareCrc32c();
/** In three lanes for long ranges, joined by carry-less multiplications (where the CPU can). */
const laned = hardwareCrc32c(crc32cShift);
const cpuHasIt = cpuHasCrc32Instruction();

/** Whether a program can be run here. */
function has(program: string): boolean {
  try {
    return new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test("hardware CRC-32C: available exactly where the native backend and SSE4.2 are", () => {
  const native = Deno.build.os === "linux" && Deno.build.arch === "x86_64" &&
    Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  strictEqual(hardware !== null, native && cpuHasIt);
});

Deno.test({
  name: "hardware CRC-32C: the machine code is scripts/native/crc32c.S assembled",
  // `as` and `objcopy` are binutils (gcc's); without them there is nothing to compare with.
  ignore: !has("as") || !has("objcopy"),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const source = new URL("../scripts/native/crc32c.S", import.meta.url).pathname;
      const run = (command: string, args: string[]) => {
        const output = new Deno.Command(command, { args, stderr: "piped" }).outputSync();
        strictEqual(output.code, 0, new TextDecoder().decode(output.stderr));
      };
      run("as", [source, "-o", `${dir}/crc32c.o`]);
      run("objcopy", ["-O", "binary", "-j", ".text", `${dir}/crc32c.o`, `${dir}/crc32c.bin`]);
      const assembled = (await Deno.readFile(`${dir}/crc32c.bin`)).toHex();
      const module = await Deno.readTextFile(
        new URL("../lib/net/native/_crc32c.ts", import.meta.url),
      );
      const literal = /const CODE = ((?:"[0-9a-f]+"\s*\+?\s*)+);/.exec(module);
      assert(literal !== null, "the CODE constant");
      const embedded = [...literal[1].matchAll(/"([0-9a-f]+)"/g)].map((m) => m[1]).join("");
      strictEqual(embedded, assembled);
      // And where `features` starts is where the assembler put it.
      const at = /const FEATURES_AT = 0x([0-9a-f]+);/.exec(module)!;
      const symbols = new Deno.Command("nm", { args: [`${dir}/crc32c.o`] }).outputSync();
      const features = /^([0-9a-f]+) t features$/m.exec(new TextDecoder().decode(symbols.stdout));
      if (features !== null) strictEqual(parseInt(features[1], 16), parseInt(at[1], 16));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "hardware CRC-32C: the same registers as the JavaScript, every length, offset and start",
  ignore: hardware === null,
  fn: () => {
    const update = hardware!;
    const arena = new Uint8Array(70_000);
    crypto.getRandomValues(arena.subarray(0, 65_536));
    arena.copyWithin(65_536, 0, 70_000 - 65_536);
    const mismatches: string[] = [];
    const compare = (bytes: Uint8Array, from: number, to: number, crc: number) => {
      const got = update(crc, bytes, from, to) | 0;
      const want = softwareCrc32cUpdate(crc, bytes, from, to);
      if (got !== want) mismatches.push(`${bytes.byteOffset} ${from}..${to} from ${crc}`);
    };
    for (let length = 0; length <= 2100; length++) {
      // A view that does not start at its buffer's start, as a datagram in the receive arena.
      const view = arena.subarray(length % 13, length % 13 + length + 9);
      compare(view, length % 9, length % 9 + length, length % 3 === 0 ? -1 : length * 2654435761);
    }
    compare(arena, 0, 65_535, -1);
    compare(arena, 1, 69_999, 0);
    assertEquals(mismatches, []);
    const digits = new TextEncoder().encode("123456789");
    strictEqual((update(-1, digits, 0, 9) ^ -1) >>> 0, 0xe3069283);
  },
});

Deno.test({
  name:
    "hardware CRC-32C in three lanes: the same registers as the JavaScript, every length, offset and start",
  ignore: laned === null,
  fn: () => {
    const arena = new Uint8Array(200_000);
    for (let at = 0; at < arena.length; at += 65_536) {
      crypto.getRandomValues(arena.subarray(at, Math.min(at + 65_536, arena.length)));
    }
    // A second function shares the machine code's job: each must write its own constants.
    const other = hardwareCrc32c(crc32cShift)!;
    const mismatches: string[] = [];
    const compare = (from: number, to: number, crc: number, update = laned!) => {
      if ((update(crc, arena, from, to) | 0) !== softwareCrc32cUpdate(crc, arena, from, to)) {
        mismatches.push(`${from}..${to} from ${crc}`);
      }
    };
    for (let length = 0; length <= 3000; length++) {
      compare(length % 11, length % 11 + length, length % 3 === 0 ? -1 : length * 2654435761);
      compare(5, 5 + 1396, length, other); // another length between two of this one's
    }
    for (const length of [65_535, 65_536, 100_001, 199_999]) compare(1, 1 + length, -1);
    assertEquals(mismatches, []);
    // Out of range as in one lane: only what the array holds is read.
    const bytes = arena.subarray(100, 1100);
    const whole = softwareCrc32cUpdate(-1, bytes, 0, 1000);
    strictEqual(laned!(-1, bytes, 0, 1_000_000) | 0, whole);
    strictEqual(laned!(-1, bytes, -5, 1000) | 0, whole);
    strictEqual(laned!(-1, bytes, 0, 999.5) | 0, softwareCrc32cUpdate(-1, bytes, 0, 999));
    strictEqual(laned!(7, bytes, 0, NaN) | 0, 7);
  },
});

Deno.test({
  name: "hardware CRC-32C: it reads only what the array holds, whatever range it is asked",
  ignore: hardware === null,
  fn: () => {
    const update = hardware!;
    const bytes = crypto.getRandomValues(new Uint8Array(100)).subarray(10, 60);
    const whole = softwareCrc32cUpdate(-1, bytes, 0, 50);
    strictEqual(update(-1, bytes, 0, 1_000_000) | 0, whole); // to past the end: to the end
    strictEqual(update(-1, bytes, -5, 50) | 0, whole); // from before the start: the start
    strictEqual(update(7, bytes, 40, 20) | 0, 7); // from after to: nothing
    strictEqual(update(7, bytes, 900, 1000) | 0, 7);
    strictEqual(update(7, new Uint8Array(0), 0, 0) | 0, 7);
    // Negative, fractional and NaN ends: never read as huge unsigned lengths.
    strictEqual(update(7, bytes, 0, -1) | 0, 7);
    strictEqual(update(7, bytes, -9, -2) | 0, 7);
    strictEqual(update(7, bytes, 0, NaN) | 0, 7);
    strictEqual(update(-1, bytes, 0, 49.5) | 0, softwareCrc32cUpdate(-1, bytes, 0, 49));
  },
});

Deno.test("useCrc32cUpdate: a wrong one is refused, a right one used, and crc32c stays right", () => {
  const digits = new TextEncoder().encode("123456789".repeat(20));
  const expected = crc32c(digits);
  strictEqual(useCrc32cUpdate((crc) => crc), false);
  strictEqual(
    useCrc32cUpdate((crc, bytes, from, to) => softwareCrc32cUpdate(crc, bytes, from, to + 1)),
    false,
  );
  let calls = 0;
  const counted = (crc: number, bytes: Uint8Array, from: number, to: number) => {
    calls++;
    return (hardware ?? softwareCrc32cUpdate)(crc, bytes, from, to);
  };
  try {
    strictEqual(useCrc32cUpdate(counted), true);
    calls = 0;
    strictEqual(crc32c(digits), expected);
    strictEqual(calls, 1, "180 bytes go the faster way");
    strictEqual(crc32c(digits.subarray(0, 9)), 0xe3069283);
    strictEqual(calls, 1, "9 bytes do not");
  } finally {
    useCrc32cUpdate(null);
  }
  strictEqual(crc32c(digits), expected);
});
