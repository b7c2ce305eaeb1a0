/**
 * The stream frames (docs/protocol.md, "Streams"): the spec's vectors made by the codec, the
 * grant built in place and never longer, and every malformed case.
 */

import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  encodeStreamRequest,
  HEADER_SIZE,
  layOutStreamData,
  makeGrant,
  MessageType,
  NO_TIMESTAMP,
  readStreamFields,
  stampStreamData,
  STREAM_FIELDS_EXAMPLE,
  STREAM_PAYLOAD_SIZE,
  StreamStatus,
} from "../lib/wire/mod.ts";
import { docBlocks } from "./helpers.ts";

const spec = await Deno.readTextFile(new URL("../docs/protocol.md", import.meta.url));
const hex = new Map(
  docBlocks(spec, "json vector").map((block) => {
    const vector = JSON.parse(block) as { name: string; hex: string };
    return [vector.name, vector.hex.replace(/\s+/g, "")];
  }),
);
const sentAt = { seconds: 1_700_000_000, nanos: 123_500_000 };
const receivedAt = { seconds: 1_700_000_000, nanos: 124_250_000 };
const repliedAt = { seconds: 1_700_000_000, nanos: 124_750_000 };
const cookie = Uint8Array.fromHex("5c1f0e8a9d3b2c47e6a1f0b98d7c6e5a");
const asked = { ...STREAM_FIELDS_EXAMPLE, rate: 10_000, durationMs: 10_000, size: 1400 };

Deno.test("stream frames: the spec's exchange, byte for byte", () => {
  const first = encodeStreamRequest(0x01020304, 0xffff_e000, sentAt, asked);
  strictEqual(first.toHex(), hex.get("stream-request"));
  const cookieGrant = makeGrant(
    first.slice(),
    { status: StreamStatus.COOKIE, cookie },
    receivedAt,
    repliedAt,
  );
  strictEqual(cookieGrant.toHex(), hex.get("stream-grant-cookie"));
  const second = encodeStreamRequest(0x01020304, 0xffff_e001, sentAt, { ...asked, cookie });
  strictEqual(second.toHex(), hex.get("stream-request-cookie"));
  const grant = makeGrant(
    second.slice(),
    {
      status: StreamStatus.STREAMING,
      sent: 0,
      grantedRate: 10_000,
      grantedMs: 10_000,
    },
    receivedAt,
    repliedAt,
  );
  strictEqual(grant.toHex(), hex.get("stream-grant"));
  strictEqual(grant.length, second.length);
  assertEquals(readStreamFields(grant.subarray(HEADER_SIZE)), {
    ...asked,
    cookie,
    status: 1,
    grantedRate: 10_000,
    grantedMs: 10_000,
  });
  const data = layOutStreamData(new Uint8Array(64), 0x01020304, false);
  stampStreamData(data, 42, repliedAt);
  strictEqual(data.toHex(), hex.get("stream-data"));
});

Deno.test("stream frames: too short for their fields is malformed; data of any length is not", () => {
  for (const type of [MessageType.STREAM_REQUEST, MessageType.STREAM_GRANT]) {
    const frame = (length: number) =>
      encodeFrame({
        version: 1,
        type: type as 6,
        flags: 0,
        attempt: 0,
        session: 1,
        sequence: 0,
        sentAt,
        receivedAt: NO_TIMESTAMP,
        repliedAt: NO_TIMESTAMP,
        payload: new Uint8Array(length),
      });
    const short = decodeFrame(frame(STREAM_PAYLOAD_SIZE - 1));
    assertEquals(
      [short.kind, short.kind === "malformed" && short.reason],
      ["malformed", "bad-stream-payload"],
    );
    strictEqual(decodeFrame(frame(STREAM_PAYLOAD_SIZE)).kind, "frame");
  }
  const empty = layOutStreamData(new Uint8Array(48), 1, false);
  stampStreamData(empty, 0, sentAt);
  strictEqual(decodeFrame(empty).kind, "frame");
  let threw = false;
  try {
    layOutStreamData(new Uint8Array(47), 1, false);
  } catch (error) {
    threw = error instanceof RangeError;
  }
  strictEqual(threw, true);
});
