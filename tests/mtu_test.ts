/**
 * `udp mtu` on loopback: the search's ends (the largest size asked for, a target that does not
 * answer, one where nothing listens), its output and its usage errors; and this host's own
 * interface as the limit, in a network namespace whose loopback MTU the test sets (root only).
 * Routers, their ICMP "fragmentation needed" and black holes are in path_test.ts.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { UdpSocket } from "../lib/net/mod.ts";
import { loadNativeUdp } from "../lib/net/native/mod.ts";
import { findPathMtu, type MtuProbeEvent } from "../lib/probe/mtu.ts";
import { Reflector } from "../lib/reflector/reflector.ts";
import { stampFormat } from "../lib/wire/mod.ts";
import { runtimeFlags } from "../scripts/flags.ts";
import { assertUsageError, childEnv, missing, runUdp, udpArgv } from "./helpers.ts";

const nativeOnly = { ignore: !loadNativeUdp() };

Deno.test(
  "findPathMtu: on loopback the largest size asked for comes back, udp and STAMP, IPv4 and IPv6",
  nativeOnly,
  async () => {
    for (const [hostname, family] of [["127.0.0.1", "ipv4"], ["::1", "ipv6"]] as const) {
      for (const stamp of [false, true]) {
        const reflector = Reflector.listen({
          hostname,
          port: 0,
          format: stamp ? stampFormat() : undefined,
        });
        const probes: MtuProbeEvent[] = [];
        const summary = await findPathMtu({
          target: { hostname, port: reflector.address.port, family },
          format: stamp ? stampFormat() : undefined,
          maxSize: 9000,
          timeoutMs: 2000,
          onProbe: (event) => probes.push(event),
        });
        await reflector.close();
        const header = family === "ipv6" ? 48 : 28;
        const least = family === "ipv6" ? 1280 : 576;
        assertEquals(probes.map((p) => [p.size, p.payload_bytes, p.result]), [
          [least, least - header, "reply"],
          [9000, 9000 - header, "reply"],
        ]);
        assertEquals(
          [summary.path_mtu, summary.max_payload, summary.found_by, summary.black_hole],
          [9000, 9000 - header, "max", false],
        );
        assertEquals([summary.probes, summary.icmp_mtu, summary.icmp_error], [2, null, null]);
      }
    }
  },
);

Deno.test(
  "udp mtu: a closed port ends the search at its port unreachable, exit 1",
  nativeOnly,
  async () => {
    const socket = UdpSocket.bind("127.0.0.1", 0);
    const port = socket.address.port;
    socket.close();
    const json = await runUdp(["mtu", `127.0.0.1:${port}`, "-W", "10", "--json"]);
    strictEqual(json.code, 1, json.stderr);
    const lines = json.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assertEquals(lines.map((line) => line.type), ["start", "probe", "summary"]);
    assertEquals(lines[1], {
      type: "probe",
      size: 576,
      payload_bytes: 548,
      result: "icmp_error",
      mtu: null,
      from: "127.0.0.1",
      icmp_kind: "port_unreachable",
      rtt_ms: null,
    });
    assertEquals(
      [lines[2].path_mtu, lines[2].max_payload, lines[2].icmp_error, lines[2].icmp_error_from],
      [null, null, "port_unreachable", "127.0.0.1"],
    );
    const text = await runUdp(["mtu", `127.0.0.1:${port}`, "-W", "10"]);
    strictEqual(text.code, 1);
    assert(
      text.stdout.includes(
        "no size came back: port unreachable from 127.0.0.1 (nothing listens on that port)",
      ),
      text.stdout,
    );
  },
);

Deno.test(
  "udp mtu: a target that answers nothing: each size tried twice, no path MTU, exit 1",
  nativeOnly,
  async () => {
    using silent = UdpSocket.bind("127.0.0.1", 0); // bound and never read: no reply, no ICMP
    const run = await runUdp(["mtu", `127.0.0.1:${silent.address.port}`, "-W", "0.2", "--json"]);
    strictEqual(run.code, 1, run.stderr);
    const lines = run.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assertEquals(lines.filter((l) => l.type === "probe").map((l) => [l.size, l.result]), [
      [576, "timeout"],
      [576, "timeout"],
    ]);
    assertEquals([lines.at(-1).path_mtu, lines.at(-1).found_by], [null, null]);
  },
);

Deno.test("udp mtu: text output against udp serve, and its usage errors", nativeOnly, async () => {
  const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
  const target = `127.0.0.1:${reflector.address.port}`;
  try {
    const run = await runUdp(["mtu", target, "--max", "2000"]);
    strictEqual(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n");
    strictEqual(
      lines[0],
      `UDP MTU ${target}: sizes 576 to 2000 bytes (IP packets; the UDP payload is 28 less)`,
    );
    assert(/^ {2}576 bytes: reply, time=[\d.]+ ms$/.test(lines[1]), lines[1]);
    assert(/^ 2000 bytes: reply, time=[\d.]+ ms$/.test(lines[2]), lines[2]);
    assert(lines.includes("path MTU 2000 bytes, UDP payload up to 1972 bytes"), run.stdout);
    const refused: [string[], RegExp][] = [
      [["--min", "1500", "--max", "1400"], /invalid --min 1500: .*at most --max \(1400\)/],
      [["--min", "60"], /invalid --min '60': use a whole number from 68 to 65,535/],
      [["--min", "70"], /invalid --min 70: it must be at least 76/],
      [["-M", "do"], /-M goes without udp mtu/],
      [["-W", "0"], /timeout/],
      [["-I", "::1"], /not of the target's family/],
    ];
    for (const [flags, message] of refused) {
      const bad = await runUdp(["mtu", target, ...flags]);
      assertUsageError(bad, message, flags.join(" "));
    }
  } finally {
    await reflector.close();
  }
});

Deno.test("udp mtu: without udp's native sockets it is a usage error that says so", async () => {
  // main.ts with the binary's flags less --allow-ffi: the sockets fall back to Deno's own.
  const flags = runtimeFlags().filter((flag) => flag !== "--allow-ffi");
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...flags,
      new URL("../main.ts", import.meta.url).pathname,
      "mtu",
      "127.0.0.1:9",
    ],
    env: childEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const run = {
    code: output.code,
    stdout: "",
    stderr: new TextDecoder().decode(output.stderr),
  };
  assertUsageError(run, /udp mtu needs udp's native sockets \(Linux x86-64, glibc\)/, "mtu");
});

/** Why the namespace test cannot run here, or null. */
function namespaceSkip(): string | null {
  if (missing("ip")) return "ip (iproute2) is not installed";
  const uid = new TextDecoder().decode(
    new Deno.Command("id", { args: ["-u"] }).outputSync().stdout,
  );
  if (uid.trim() !== "0") return `not root (uid ${uid.trim()}): network namespaces need it`;
  return null;
}

const skip = loadNativeUdp() ? namespaceSkip() : "udp's native sockets are not available";

Deno.test({
  name:
    "udp mtu: this host's interface as the limit, and ping -M (a namespace's loopback at MTU 1400)",
  ignore: skip !== null,
  async fn() {
    const ns = `udpmtu-${Deno.pid}`;
    const ip = (...args: string[]) => new Deno.Command("ip", { args }).outputSync();
    strictEqual(ip("netns", "add", ns).code, 0, "ip netns add");
    try {
      strictEqual(ip("-n", ns, "link", "set", "lo", "mtu", "1400", "up").code, 0);
      const [serveCommand, serveArgs] = udpArgv(["serve", "--host", "127.0.0.1", "--port", "9999"]);
      const serve = new Deno.Command("ip", {
        args: ["netns", "exec", ns, serveCommand, ...serveArgs],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      try {
        // Its first line says it listens: then it answers.
        const reader = serve.stdout.getReader();
        await reader.read();
        reader.releaseLock();
        const [mtuCommand, mtuArgs] = udpArgv(["mtu", "127.0.0.1:9999", "--json", "-W", "2"]);
        const out = await new Deno.Command("ip", {
          args: ["netns", "exec", ns, mtuCommand, ...mtuArgs],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
        const lines = stdout.trim().split("\n").map((line) => JSON.parse(line));
        const probes = lines.filter((l) => l.type === "probe").map((
          l,
        ) => [l.size, l.result, l.mtu]);
        assertEquals(probes, [[576, "reply", null], [65535, "too_big_locally", 1400], [
          1400,
          "reply",
          null,
        ]]);
        const summary = lines.at(-1);
        assertEquals(
          [summary.path_mtu, summary.max_payload, summary.found_by, summary.local_mtu],
          [1400, 1372, "local", 1400],
        );
        // ping -M: a 1,548-byte datagram on a 1,400-byte link. Don't-fragment set: this host
        // refuses to send it; not set, or only wanted (this host fragments what is too big
        // for its own link): it leaves in fragments and its reply comes back.
        for (const [hint, received] of [["do", 0], ["want", 1], ["dont", 1]] as const) {
          const [command, args] = udpArgv(
            ["ping", "-c", "1", "-W", "2", "-s", "1500", "-M", hint, "--json", "127.0.0.1:9999"],
          );
          const ping = await new Deno.Command("ip", {
            args: ["netns", "exec", ns, command, ...args],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const out = new TextDecoder().decode(ping.stdout).trim().split("\n");
          const last = JSON.parse(out.at(-1)!);
          strictEqual(last.received, received, `-M ${hint}: ${out.join("\n")}`);
          const errors = out.map((line) => JSON.parse(line)).filter((l) => l.type === "send_error");
          assertEquals(
            errors.map((e) => [e.error, e.mtu]),
            received === 1 ? [] : [["Message too long", 1400]],
            `-M ${hint}`,
          );
        }
      } finally {
        serve.kill("SIGTERM");
        await serve.stdout.cancel().catch(() => {});
        await serve.status;
      }
    } finally {
      ip("netns", "del", ns);
    }
  },
});
