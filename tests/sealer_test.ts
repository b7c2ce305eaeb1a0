/**
 * Sealing without reading every byte (lib/wire/crc32c.ts): a sender's frames sealed from their
 * header alone, and a reflector's PONG patched from its PING's check, are byte for byte what a
 * CRC-32C of every byte gives, at every length and with every flag that changes what is read.
 */

import { ok as assert, strictEqual } from "node:assert/strict";
import { ProbeSender } from "../lib/probe/_sender.ts";
import {
  checkFrame,
  crc32c,
  crc32cShift,
  crc32cUpdate,
  FrameSealer,
  newAnswerContext,
  newRequestReading,
  udpFormat,
} from "../lib/wire/mod.ts";
import { loopbackTarget } from "./helpers.ts";

let seed = 2026;
const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const randomBytes = (length: number) =>
  Uint8Array.from({ length }, () => Math.floor(random() * 256));

Deno.test("crc32cShift(): zero bytes appended without reading them, every count to 70,000", () => {
  const zeros = new Uint8Array(70_000);
  for (const count of [0, 1, 2, 3, 7, 8, 15, 16, 17, 255, 256, 1404, 65_459, 65_536, 70_000]) {
    const register = crc32cUpdate(-1, randomBytes(4), 0, 4);
    strictEqual(crc32cShift(register, count), crc32cUpdate(register, zeros, 0, count), `${count}`);
  }
});

Deno.test("crc32cShift(): counts used over and over get operators of their own, with the same registers", () => {
  // One operator is built per 1,024 shifts at most, and at most 8 are kept: 12 counts, each
  // 2,100 times in turn, have operators built, dropped and built again meanwhile.
  const zeros = new Uint8Array(70_000);
  const counts = [1, 5, 44, 463, 468, 928, 1392, 1404, 4000, 9000, 65_459, 70_000];
  let wrong = 0;
  for (let round = 0; round < 2_100; round++) {
    for (const count of counts) {
      const register = (round * 2654435761 + count) | 0;
      if (crc32cShift(register, count) !== crc32cUpdate(register, zeros, 0, count)) wrong++;
    }
  }
  strictEqual(wrong, 0);
});

Deno.test("FrameSealer: the CRC of every byte, whatever the header holds, at every length", () => {
  for (let length = 8; length <= 3000; length += 1 + Math.floor(random() * 40)) {
    const frame = randomBytes(length);
    const header = Math.min(44, length - 4);
    const sealer = new FrameSealer(frame, header);
    for (let round = 0; round < 3; round++) {
      frame.set(randomBytes(header), 0);
      strictEqual(sealer.crc(frame), crc32c(frame, length - 4), `${length}`);
    }
    assert(sealer.matches(frame));
    if (length - 4 > header) {
      frame[length - 5] ^= 1;
      assert(!sealer.matches(frame)); // a changed tail is not the sealer's
    }
  }
});

Deno.test("a sender's PINGs sealed from their header: every check right, one-way too", () => {
  for (const payloadSize of [0, 20, 1400, 9000]) {
    for (const oneWay of [false, true]) {
      const sender = new ProbeSender({ target: loopbackTarget(9), payloadSize, oneWay });
      const buffer = new Uint8Array(sender.datagramBytes);
      for (let sequence = 0; sequence < 300; sequence++) {
        const sentAt = { seconds: 1_700_000_000 + sequence, nanos: sequence * 3331 };
        const frame = sender.encode("ping", sequence, sequence % 3, sentAt, buffer);
        assert(checkFrame(frame), `${payloadSize} ${oneWay} ${sequence}`);
      }
      // A STATS request of the same sender is sealed in full (its padding is another).
      assert(checkFrame(sender.encode("stats", 5, 0, { seconds: 1, nanos: 0 })));
    }
  }
});

Deno.test("a reflector's PONG patched from its PING's check: the full CRC's, with and without the report", () => {
  for (const path of [false, true]) {
    for (const payloadSize of [24, 200, 212, 213, 1400, 8000]) {
      const sender = new ProbeSender({ target: loopbackTarget(9), payloadSize, path });
      const ping = sender.encode("ping", 7, 0, { seconds: 1_700_000_000, nanos: 5 });
      const reading = newRequestReading();
      udpFormat.readRequest(ping, reading);
      const context = newAnswerContext();
      context.receivedAt = { seconds: 1_700_000_001, nanos: 999_999_999 };
      context.repliedAt = { seconds: 1_700_000_002, nanos: 1 };
      context.ttl = 61;
      context.tos = 0xb8;
      context.from = { hostname: "192.0.2.7", port: 4433 };
      const pong = udpFormat.answer(ping.slice(), reading, context)!;
      const resealed = pong.slice();
      const end = resealed.length - 4;
      const crc = crc32c(resealed, end);
      strictEqual(
        [pong[end], pong[end + 1], pong[end + 2], pong[end + 3]].join(),
        [crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff].join(),
        `${path} ${payloadSize}`,
      );
    }
  }
});
