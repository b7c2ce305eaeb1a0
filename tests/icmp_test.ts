/**
 * ICMP errors about what udp sends (Linux's error queue, IP_RECVERR and IPV6_RECVERR), with
 * the loopback kernel as the oracle: a datagram to a closed port of 127.0.0.1 or ::1 draws one
 * "port unreachable" from that address, quoting the datagram. The socket tells each one, once;
 * its sends go on (the kernel's pending error would otherwise fail the next one); ping counts
 * them per kind and per probe, and prints them as ping(8) does. The kinds that need a router
 * (unreachable hosts, filters, MTUs, TTLs) are tested in network namespaces (path_test.ts).
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { type IcmpReport, UdpSocket } from "../lib/net/mod.ts";
import { loadNativeUdp } from "../lib/net/native/mod.ts";
import { ping, type PingEvent } from "../lib/probe/ping.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { stampFormat, udpFormat } from "../lib/wire/mod.ts";
import { assertUsageError, runUdp } from "./helpers.ts";

const nativeOnly = { ignore: !loadNativeUdp() };
const HOSTS = ["127.0.0.1", "::1"] as const;

/** A port of `host` where nothing listens (bound, then closed). */
function closedPort(host: string): number {
  const socket = UdpSocket.bind(host, 0);
  const port = socket.address.port;
  socket.close();
  return port;
}

/** Resolves once `count` reports came; rejects after `ms` (a bound, not a synchronisation). */
function collect(count: number, ms: number) {
  const reports: { report: IcmpReport; quoted: Uint8Array }[] = [];
  const done = Promise.withResolvers<void>();
  const timer = setTimeout(
    () => done.reject(new Error(`${reports.length} of ${count} ICMP errors in ${ms} ms`)),
    ms,
  );
  const onIcmp = (report: IcmpReport) => {
    reports.push({ report, quoted: report.quoted.slice() });
    if (reports.length === count) {
      clearTimeout(timer);
      done.resolve();
    }
  };
  return { reports, onIcmp, done: done.promise };
}

for (const host of HOSTS) {
  Deno.test(
    `native socket (${host}): each port unreachable is told once, with its sender, its destination and its quote, and no send fails for it`,
    nativeOnly,
    async () => {
      const socket = UdpSocket.bind(host, 0);
      const port = closedPort(host);
      const to = { hostname: host, port };
      const { reports, onIcmp, done } = collect(6, 5000);
      const receiving = socket.receiveEach(() => {}, undefined, { onIcmp });
      // Back to back: each error sets the socket's pending error, which would fail the next
      // send; single sends and a batch.
      const datagrams = Array.from({ length: 6 }, (_, i) => new Uint8Array(20 + i).fill(i + 1));
      for (const datagram of datagrams.slice(0, 3)) {
        strictEqual(await socket.send(datagram, to), datagram.length);
      }
      strictEqual(await socket.sendBatch(datagrams.slice(3), to), 3);
      await done;
      socket.close();
      await receiving;
      const v6 = host === "::1";
      for (const [i, { report, quoted }] of reports.entries()) {
        strictEqual(report.kind, "port_unreachable");
        assertEquals([report.version, report.type, report.code], v6 ? [6, 1, 4] : [4, 3, 3]);
        strictEqual(report.from, host);
        assertEquals({ hostname: report.to.hostname, port: report.to.port }, to);
        strictEqual(report.mtu, null);
        assertEquals(quoted, datagrams[i]);
        assert(report.arrivedAt > 0 && report.arrivedAt <= performance.now());
      }
    },
  );
}

Deno.test("readQuoted: the probe an ICMP error quotes, in udp's frames and in STAMP packets", () => {
  const padding = new Uint8Array(8);
  const request = {
    type: "ping" as const,
    session: 0xdeadbeef,
    sequence: 70000,
    attempt: 3,
    sentAt: { seconds: 1, nanos: 2 },
    padding,
    authenticated: false,
  };
  const frame = udpFormat.encodeRequest(request);
  assertEquals(udpFormat.readQuoted(frame), { session: 0xdeadbeef, sequence: 70000, attempt: 3 });
  assertEquals(udpFormat.readQuoted(frame.subarray(0, 20)), {
    session: 0xdeadbeef,
    sequence: 70000,
    attempt: 3,
  });
  strictEqual(udpFormat.readQuoted(frame.subarray(0, 19)), null); // the sequence is cut
  const stats = udpFormat.encodeRequest({ ...request, type: "stats", padding: new Uint8Array(32) });
  strictEqual(udpFormat.readQuoted(stats)?.sequence, 70000);
  const notMagic = frame.slice();
  notMagic[0] ^= 1;
  strictEqual(udpFormat.readQuoted(notMagic), null);
  const pong = frame.slice();
  pong[5] = 2; // a reply is not a request of ours
  strictEqual(udpFormat.readQuoted(pong), null);
  strictEqual(udpFormat.readQuoted(new TextEncoder().encode("hello, this is no frame")), null);

  const stamp = stampFormat();
  const packet = stamp.encodeRequest({ ...request, session: 0xbeef });
  assertEquals(stamp.readQuoted(packet), { session: 0xbeef, sequence: 70000, attempt: 0 });
  // A router that quotes only 8 bytes past the UDP header: the sequence, not the SSID.
  assertEquals(stamp.readQuoted(packet.subarray(0, 8)), {
    session: null,
    sequence: 70000,
    attempt: 0,
  });
  strictEqual(stamp.readQuoted(packet.subarray(0, 3)), null);
});

for (const protocol of ["udp", "stamp"] as const) {
  Deno.test(
    `ping (${protocol}): probes to a closed port draw a port unreachable each, counted by kind and probe, and stay lost`,
    nativeOnly,
    async () => {
      const port = closedPort("127.0.0.1");
      const events: PingEvent[] = [];
      const result = await ping({
        target: { hostname: "127.0.0.1", port, family: "ipv4" },
        count: 3,
        intervalMs: 10,
        // Far longer than the run may take: the probes end at their errors, not their timeout.
        timeoutMs: 60_000,
        format: protocol === "stamp" ? stampFormat() : udpFormat,
        onEvent: (event) => events.push(event),
      });
      const s = result.summary;
      assertEquals([s.transmitted, s.received, s.lost, s.in_flight], [3, 0, 3, 0]);
      strictEqual(s.loss_percent, 100);
      strictEqual(s.errors, 3);
      assertEquals(s.icmp, {
        port_unreachable: 3,
        host_unreachable: 0,
        net_unreachable: 0,
        admin_prohibited: 0,
        frag_needed: 0,
        time_exceeded: 0,
        other: 0,
      });
      const icmp = events.filter((event) => event.type === "icmp");
      assertEquals(
        icmp,
        [0, 1, 2].map((seq) => ({
          type: "icmp",
          seq,
          attempt: 0,
          kind: "port_unreachable",
          from: "127.0.0.1",
          icmp_type: 3,
          icmp_code: 3,
          mtu: null,
        })),
      );
      // Lost when the error came, not at their timeout: no reply can follow it.
      strictEqual(events.filter((event) => event.type === "timeout").length, 0);
      strictEqual(events.filter((event) => event.type === "send_error").length, 0);
    },
  );
}

Deno.test("ping: a reflector's replies draw no ICMP error; the counts say 0", async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const result = await ping({
    target: { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" },
    count: 3,
    intervalMs: 0,
  });
  await reflector.close();
  strictEqual(result.summary.received, 3);
  strictEqual(result.summary.errors, 0);
  strictEqual(Object.values(result.summary.icmp).reduce((a, b) => a + b), 0);
});

Deno.test(
  "udp ping: ICMP errors printed as ping(8) does, and in the JSON",
  nativeOnly,
  async () => {
    const port = closedPort("127.0.0.1");
    const text = await runUdp(["ping", "-c", "2", "-i", "0.02", "-W", "0.3", `127.0.0.1:${port}`]);
    strictEqual(text.code, 1, text.stderr);
    const lines = text.stdout.split("\n");
    assert(lines.includes("From 127.0.0.1 icmp_seq=0 Destination Port Unreachable"), text.stdout);
    assert(lines.includes("From 127.0.0.1 icmp_seq=1 Destination Port Unreachable"), text.stdout);
    assert(
      lines.some((line) =>
        line.startsWith("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
      ),
      text.stdout,
    );
    assert(lines.includes("ICMP errors: 2 port unreachable (about 2 probes: not silent loss)"));

    const v6 = closedPort("::1");
    const json = await runUdp(["ping", "-c", "1", "-W", "0.3", "--json", `[::1]:${v6}`]);
    strictEqual(json.code, 1, json.stderr);
    const objects = json.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assertEquals(objects.find((o) => o.type === "icmp"), {
      type: "icmp",
      seq: 0,
      attempt: 0,
      kind: "port_unreachable",
      from: "::1",
      icmp_type: 1,
      icmp_code: 4,
      mtu: null,
    });
    const summary = objects.at(-1);
    strictEqual(summary.errors, 1);
    strictEqual(summary.icmp.port_unreachable, 1);
    strictEqual(summary.lost, 1);
    const words = await runUdp(["ping", "-c", "1", "-W", "0.3", `[::1]:${v6}`]);
    assert(words.stdout.includes("From ::1 icmp_seq=0 Destination unreachable: Port unreachable"));
  },
);

Deno.test("udp ping: -M, -I and --interface, and what each refuses", nativeOnly, async () => {
  const port = closedPort("127.0.0.1");
  const ok = await runUdp([
    "ping",
    "-c",
    "1",
    "-W",
    "0.3",
    "-M",
    "do",
    "-I",
    "127.0.0.1",
    "--interface",
    "lo",
    "--json",
    `127.0.0.1:${port}`,
  ]);
  strictEqual(ok.code, 1, ok.stderr); // sent, and answered by the kernel's port unreachable
  strictEqual(JSON.parse(ok.stdout.trim().split("\n").at(-1)!).errors, 1);
  const refused: [string[], RegExp][] = [
    [["-M", "probe"], /^udp ping: invalid -M 'probe': use one of do, want, dont$/],
    [["-I", "eth0"], /^udp ping: invalid -I 'eth0': .*use --interface eth0$/],
    [["-I", "::1"], /^udp ping: -I ::1 is not of the target's family \(IPv4/],
    [["-I", "192.0.2.77"], /192\.0\.2\.77 is not an address of this machine/],
    [["--interface", "a/b"], /^udp ping: invalid --interface 'a\/b': an interface name is/],
    [["--interface", "udpnope0"], /^udp ping: no network interface is named 'udpnope0'/],
  ];
  for (const [flags, message] of refused) {
    const run = await runUdp(["ping", "-c", "1", ...flags, `127.0.0.1:${port}`]);
    assertUsageError(run, message, flags.join(" "));
  }
});

Deno.test(
  "udp monitor: a target's ICMP errors counted by kind, each probe lost at once",
  nativeOnly,
  async () => {
    const port = closedPort("127.0.0.1");
    // -W far above the run: a probe is lost when its error comes, not at its timeout.
    const run = await runUdp([
      "monitor",
      `127.0.0.1:${port}`,
      "-w",
      "0.5",
      "--interval",
      "0.1",
      "-W",
      "60",
      "--json",
    ]);
    const summary = run.stdout.trim().split("\n").map((line) => JSON.parse(line)).at(-1);
    strictEqual(summary.type, "summary", run.stdout);
    assert(summary.sent >= 3, run.stdout);
    assertEquals([summary.received, summary.lost, summary.in_flight], [0, summary.sent, 0]);
    assertEquals(summary.icmp, {
      port_unreachable: summary.sent,
      host_unreachable: 0,
      net_unreachable: 0,
      admin_prohibited: 0,
      frag_needed: 0,
      time_exceeded: 0,
      other: 0,
    });
  },
);

Deno.test(
  "udp bench: datagrams to a closed port are ICMP errors, counted by kind, not silent loss",
  nativeOnly,
  async () => {
    const port = closedPort("127.0.0.1");
    const json = await runUdp([
      "bench",
      `127.0.0.1:${port}`,
      "-t",
      "0.2",
      "--rate",
      "50",
      "--json",
    ]);
    const summary = JSON.parse(json.stdout.trim().split("\n").at(-1)!);
    strictEqual(summary.type, "summary", json.stdout);
    assert(summary.sent >= 5, json.stdout);
    strictEqual(summary.received, 0);
    // Every datagram drew one (errors counts them); the STATS requests before and after the run
    // (retried when unanswered) draw theirs too, counted by kind only.
    strictEqual(summary.errors, summary.sent);
    assert(summary.icmp.port_unreachable > summary.sent, JSON.stringify(summary.icmp));
    strictEqual(
      summary.icmp.port_unreachable + 0,
      Object.values(summary.icmp).reduce((a, b) => Number(a) + Number(b), 0),
    );
    const text = await runUdp(["bench", `127.0.0.1:${port}`, "-t", "0.2", "--rate", "50"]);
    assert(
      /ICMP errors: \d+ port unreachable \(about \d+ datagrams: not silent loss\)/.test(
        text.stdout,
      ),
      text.stdout,
    );
  },
);
