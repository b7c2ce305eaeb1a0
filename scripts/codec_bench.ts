/**
 * `deno bench scripts/codec_bench.ts`: the cost of the codec's hot paths.
 *
 * @module
 */

import { decodeFrame, encodeFrame, makePong, MessageType, NO_TIMESTAMP } from "../lib/wire/mod.ts";

const frame = {
  version: 1,
  type: MessageType.PING,
  flags: 0,
  attempt: 0,
  session: 42,
  sequence: 7,
  sentAt: { seconds: 1_700_000_000, nanos: 123_456_789 },
  receivedAt: NO_TIMESTAMP,
  repliedAt: NO_TIMESTAMP,
  payload: new Uint8Array(20),
};
const buffer = new Uint8Array(2048);
const ping = encodeFrame(frame);
const out = new Uint8Array(ping.length);
const now = { seconds: 1_700_000_000, nanos: 5 };

Deno.bench("encodeFrame (64-byte PING, into a reused buffer)", () => {
  encodeFrame(frame, { into: buffer });
});
Deno.bench("decodeFrame (64-byte PING)", () => {
  decodeFrame(ping);
});
Deno.bench("makePong (64 bytes)", () => {
  makePong(ping, out, now, now);
});
Deno.bench("decodeFrame (raw text)", () => {
  decodeFrame(new TextEncoder().encode("hello"));
});
