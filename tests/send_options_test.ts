/**
 * How the probes of `udp ping`, `udp bench` and `udp monitor` leave, with the kernel as the
 * oracle: a native socket of the test's own, asking for each datagram's TTL and TOS, sees
 * exactly the `--ttl` and `--tos`/`--dscp`/`--ecn` asked for, from the `-I` address asked for,
 * through `--interface lo`. Don't-fragment (`-M`) is seen by what the kernel does with a
 * datagram bigger than the path (mtu_test.ts's namespace).
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { UdpSocket } from "../lib/net/mod.ts";
import { loadNativeUdp } from "../lib/net/native/mod.ts";
import { runUdp } from "./helpers.ts";

const nativeOnly = { ignore: !loadNativeUdp() };

/** What reached a socket of the test's: each datagram's source, TTL and TOS. */
async function capture(
  host: string,
  args: (port: number) => string[],
): Promise<{ code: number; stderr: string; seen: { from: string; ttl: number; tos: number }[] }> {
  const socket = UdpSocket.bind(host, 0);
  const seen: { from: string; ttl: number; tos: number }[] = [];
  const receiving = socket.receiveEach(
    (_data, from, _at, meta) =>
      void seen.push({ from: from.hostname, ttl: meta.ttl, tos: meta.tos }),
    undefined,
    { ttlAndTos: true },
  );
  try {
    const run = await runUdp(args(socket.address.port));
    return { code: run.code, stderr: run.stderr, seen };
  } finally {
    socket.close();
    await receiving;
  }
}

Deno.test(
  "ping, bench and monitor: every probe leaves with the TTL, TOS and source asked for",
  nativeOnly,
  async () => {
    const cases: [string, (port: number) => string[], number, number][] = [
      [
        "ping",
        (
          p,
        ) => [
          "ping",
          "-c",
          "3",
          "-i",
          "0",
          "-W",
          "0.05",
          "-t",
          "9",
          "--dscp",
          "EF",
          "--ecn",
          "ect0",
          "-I",
          "127.0.0.2",
          `127.0.0.1:${p}`,
        ],
        9,
        0xb8 | 2,
      ],
      [
        "ping -Q",
        (
          p,
        ) => [
          "ping",
          "-c",
          "2",
          "-i",
          "0",
          "-W",
          "0.05",
          "-Q",
          "0x28",
          "-I",
          "127.0.0.2",
          "--interface",
          "lo",
          `127.0.0.1:${p}`,
        ],
        64,
        0x28,
      ],
      [
        "bench",
        (
          p,
        ) => [
          "bench",
          "-t",
          "0.2",
          "--rate",
          "50",
          "--ttl",
          "17",
          "--dscp",
          "AF41",
          "-I",
          "127.0.0.2",
          `127.0.0.1:${p}`,
        ],
        17,
        34 << 2,
      ],
      [
        "monitor",
        (
          p,
        ) => [
          "monitor",
          "-w",
          "0.3",
          "--interval",
          "0.1",
          "-W",
          "0.05",
          "-t",
          "33",
          "--ecn",
          "ce",
          "-I",
          "127.0.0.2",
          "--interface",
          "lo",
          `127.0.0.1:${p}`,
        ],
        33,
        3,
      ],
    ];
    for (const [name, args, ttl, tos] of cases) {
      const { code, stderr, seen } = await capture("127.0.0.1", args);
      assert(code === 0 || code === 1, `${name}: exit ${code}: ${stderr}`);
      assert(seen.length >= 2, `${name}: ${seen.length} datagrams`);
      // Default TTL is the system's (64 unless configured): the ping -Q case does not set one.
      const expectTtl = name === "ping -Q" ? seen[0].ttl : ttl;
      for (const datagram of seen) {
        assertEquals(datagram, { from: "127.0.0.2", ttl: expectTtl, tos }, name);
      }
    }
  },
);

Deno.test("ping over IPv6: the hop limit and traffic class asked for", nativeOnly, async () => {
  const { seen } = await capture(
    "::1",
    (
      p,
    ) => [
      "ping",
      "-c",
      "2",
      "-i",
      "0",
      "-W",
      "0.05",
      "-t",
      "3",
      "-Q",
      "0xb9",
      "-I",
      "::1",
      `[::1]:${p}`,
    ],
  );
  strictEqual(seen.length, 2);
  for (const datagram of seen) assertEquals(datagram, { from: "::1", ttl: 3, tos: 0xb9 });
});
