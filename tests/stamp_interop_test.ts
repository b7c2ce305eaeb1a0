/**
 * STAMP against the world, both directions: a C STAMP sender and reflector (stamp-c) and a
 * Python TWAMP-light sender and responder (twampy) from ../shared/peers, and tshark's
 * `twamp.test` dissector as an independent decoder of udp's packets. Each test skips, saying
 * why in its name, where a peer is absent (in CI a missing tshark fails instead).
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ping } from "../lib/probe/ping.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { defaultBackend } from "../lib/net/socket.ts";
import { newReplyReading, stampFormat, type Timestamp } from "../lib/wire/mod.ts";
import { Inbox, loopbackTarget, missing, runUdp, UdpProcess } from "./helpers.ts";
import {
  buildPeers,
  decodeWithTshark,
  peerPort,
  type Peers,
  runStampSender,
  runTwampySender,
  startStampReflector,
  startTwampyResponder,
  tsharkTimeToEpochNs,
  TWAMP_TEST_FIELDS,
} from "./peers.ts";

const native = defaultBackend() === "native";
const built = await buildPeers();
const peers: Peers | null = typeof built === "string" ? null : built;
const absent = typeof built === "string" ? ` (skipped: ${built})` : "";

/** The median of some numbers. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The median RTT of `udp ping --stamp -c 10` to a loopback port, as its JSON summary says. */
async function udpMedianRtt(port: number): Promise<number> {
  const args = ["ping", "--stamp", `127.0.0.1:${port}`, "-c", "10", "-i", "0.02", "--json"];
  const ours = await runUdp(args);
  strictEqual(ours.code, 0, ours.stderr);
  return JSON.parse(ours.stdout.trimEnd().split("\n").at(-1)!).rtt_ms.p50;
}

/** Starts `udp serve --stamp` on a free port; its port. */
async function startStampServe(args: string[] = []): Promise<{ serve: UdpProcess; port: number }> {
  const serve = new UdpProcess(["serve", "--stamp", "--port", "0", ...args]);
  const [, port] = await serve.waitFor(/^Listening on 127\.0\.0\.1:(\d+)/m);
  return { serve, port: Number(port) };
}

Deno.test({
  name:
    `udp ping --stamp -> stamp-c's reflector: every probe answered, its TTL and RTTs agree${absent}`,
  ignore: peers === null,
  async fn() {
    const port = peerPort();
    const reflector = startStampReflector(peers!, port);
    await reflector.ready;
    let result;
    let theirs;
    try {
      result = await ping({
        target: loopbackTarget(port),
        format: stampFormat(),
        payloadSize: 0,
        count: 5,
        intervalMs: 20,
      });
      // The peer's own figures, from the same reflector, for comparison.
      theirs = await runStampSender(peers!, { port, count: 5 });
    } finally {
      const output = await reflector.stop();
      // The reflector's own log shows each of our probes, with the TTL of 255 we sent.
      const ours = output.reflected.filter((entry) =>
        entry.seq < 5 && entry.ttl === (native ? 255 : 64)
      );
      assert(ours.length >= 5, output.stdout);
    }
    const s = result.summary;
    assertEquals([s.transmitted, s.received, s.foreign, s.lost], [5, 5, 0, 0]);
    if (native) strictEqual(s.hops_there, 1);
    // stamp-c zeroes the Session-Sender Identifier: replies are matched by source and sequence.
    strictEqual(theirs.received, 5, theirs.stdout + theirs.stderr);
    const gap = Math.abs(median(theirs.rttsMs) - s.rtt_ms.p50!);
    assert(
      gap < 0.5,
      `udp's median RTT ${s.rtt_ms.p50} ms, stamp-sender's ${median(theirs.rttsMs)} ms`,
    );
  },
});

Deno.test({
  name:
    `stamp-c's sender -> udp serve --stamp: every reply valid, causal timestamps, RTTs agree${absent}`,
  ignore: peers === null,
  async fn() {
    const { serve, port } = await startStampServe(["--stateful"]);
    try {
      const theirs = await runStampSender(peers!, { port, count: 5 });
      strictEqual(theirs.received, 5, theirs.stdout + theirs.stderr);
      assertEquals([theirs.invalid, theirs.mismatches, theirs.negativeDelay], [0, 0, false]);
      assertEquals(theirs.replies.map((reply) => reply.seq), [0, 1, 2, 3, 4]);
      // One clock on loopback: each direction's delay (our T2 and T3 read against its T1 and
      // T4) is between 0 and the round trip, so our timestamps are where and what they say.
      for (const reply of theirs.replies) {
        assert(reply.fwdMs >= 0 && reply.bwdMs >= 0, JSON.stringify(reply));
        assert(reply.fwdMs <= reply.rttMs + 0.001 && reply.bwdMs <= reply.rttMs + 0.001);
      }
      const ours = await udpMedianRtt(port);
      const gap = Math.abs(median(theirs.rttsMs) - ours);
      assert(
        gap < 0.5,
        `udp's median RTT ${ours} ms, stamp-sender's ${median(theirs.rttsMs)}`,
      );
    } finally {
      const stopped = await serve.stop();
      assert(/ping 15,/.test(stopped.stdout), stopped.stdout);
    }
  },
});

Deno.test({
  name:
    `udp ping --stamp -> twampy's TWAMP-light responder: every probe, loss per direction${absent}`,
  ignore: peers === null,
  async fn() {
    const port = peerPort();
    const responder = startTwampyResponder(peers!, port, { padding: 6 });
    await responder.ready;
    let result;
    try {
      result = await ping({
        target: loopbackTarget(port),
        format: stampFormat(),
        payloadSize: 0,
        count: 10,
        intervalMs: 20,
      });
    } finally {
      const output = await responder.stop();
      // Its log has each request with the one-way delay it read from our T1 (T2 − T1, by its
      // Python clock after its recvfrom()): never negative, and well under a second (a T1 a
      // second or more off, or in the wrong epoch, would show), to its 0.01 ms of print.
      const requests = output.requests;
      assertEquals(requests.map((request) => request.sseq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const request of requests) {
        assert(request.outboundMs >= 0 && request.outboundMs < 1000, JSON.stringify(request));
      }
    }
    // No RTT is compared with a peer's here: twampy's responder stamps T2 and T3 at once in
    // Python, so its own processing (0.1 to 1.6 ms here) is in every peer's RTT through it.
    const s = result.summary;
    assertEquals([s.transmitted, s.received, s.foreign], [10, 10, 0]);
    // twampy keeps its own sequence per sender (a stateful reflector): nothing lost either way.
    assertEquals([s.lost_there, s.lost_back], [0, 0]);
    // Its replies are 44 bytes (38 + padding 6), without a Sender TTL: no hop count is claimed.
    strictEqual(s.hops_there, null);
  },
});

Deno.test({
  name:
    `twampy's TWAMP-light sender -> udp serve --stamp: every reply, sequence and timestamps read${absent}`,
  ignore: peers === null,
  async fn() {
    const { serve, port } = await startStampServe();
    try {
      // RFC 5357's 27 bytes of padding: 41-byte packets, answered with 41-byte replies.
      const theirs = await runTwampySender(peers!, { port, count: 5, intervalMs: 20, padding: 27 });
      assert(theirs.allReceived, theirs.stdout + theirs.stderr);
      strictEqual(theirs.short, 0);
      assertEquals(theirs.replies.map((reply) => [reply.rseq, reply.sseq]), [
        [0, 0],
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
      ]);
      for (const reply of theirs.replies) {
        assert(reply.outboundMs >= 0 && reply.inboundMs >= 0, JSON.stringify(reply));
      }
      // twampy times with Python's clock around its own sendto() and recvfrom(): its RTTs
      // carry its latency (medians of 0.8 to 2.5 ms here, against its own responder too), so
      // the 0.5 ms comparison is stamp-c's, which times by the kernel's stamps as udp does.
      // What twampy shows is that our T2 and T3 sit between its T1 and T4 (above).
    } finally {
      await serve.stop();
    }
  },
});

const noTshark = missing("tshark");

Deno.test({
  name: `tshark's twamp.test dissector reads udp's STAMP packets field for field${
    noTshark ? " (skipped: tshark is not installed)" : ""
  }`,
  ignore: noTshark,
  async fn() {
    const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0, format: stampFormat() });
    const inbox = new Inbox();
    try {
      const sentAt: Timestamp = { seconds: 1_764_633_600, nanos: 123_456_789 };
      const request = stampFormat().encodeRequest({
        type: "ping",
        session: 0x1234,
        sequence: 7,
        attempt: 0,
        sentAt,
        padding: new Uint8Array(0),
        authenticated: false,
      });
      await inbox.send(request, reflector.address);
      const reply = (await inbox.next()).data;
      const reading = newReplyReading();
      stampFormat().readReply(reply, reading);
      const clientPort = inbox.socket.address.port;
      const serverPort = reflector.address.port;
      const [sent, answered] = await decodeWithTshark(
        [
          { payload: request, srcPort: clientPort, dstPort: serverPort },
          { payload: reply, srcPort: serverPort, dstPort: clientPort },
        ],
        TWAMP_TEST_FIELDS,
        { decodePorts: [serverPort] },
      );
      const ns = (t: Timestamp) => BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos);
      const near = (text: string, t: Timestamp) => {
        const decoded = tsharkTimeToEpochNs(text);
        assert(decoded !== null, text);
        const difference = decoded - ns(t);
        assert(difference >= -1n && difference <= 1n, `${text} vs ${ns(t)}`); // NTP's 2^-32 s
      };
      // tshark reads every packet in the reply layout: the request's first fields are ours.
      strictEqual(sent["twamp.test.seq_number"], "7");
      near(sent["twamp.test.timestamp"], sentAt);
      strictEqual(sent["twamp.test.mbz1"], String(0x1234)); // the SSID, to TWAMP an MBZ
      // The reply, field for field against what udp's own reading of it says.
      strictEqual(answered["twamp.test.seq_number"], "7"); // stateless: the sender's
      strictEqual(answered["twamp.test.sender_seq_number"], "7");
      near(answered["twamp.test.sender_timestamp"], sentAt);
      near(answered["twamp.test.receive_timestamp"], reading.receivedAt);
      near(answered["twamp.test.timestamp"], reading.repliedAt);
      strictEqual(answered["twamp.test.mbz1"], String(0x1234));
      strictEqual(answered["twamp.test.mbz2"], "0");
      strictEqual(answered["twamp.test.sender_ttl"], native ? "64" : "0");
      strictEqual(answered["twamp.test.error_estimate.s"].split(",")[0], "0");
    } finally {
      await inbox.close();
      await reflector.close();
    }
  },
});
