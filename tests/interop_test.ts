/**
 * udp against real third-party peers: netcat-openbsd and socat (.ci/run installs both).
 * Outside CI a missing peer skips its test; in CI (CI=true) it fails.
 */
import { ok as assert, strictEqual } from "node:assert/strict";
import { freePort, missing, runUdp, startServe } from "./helpers.ts";

Deno.test({
  name: "nc -u (netcat-openbsd) gets 'ack:' + its data from udp serve",
  ignore: missing("nc"),
  async fn() {
    const { serve, port } = await startServe();
    try {
      const nc = new Deno.Command("nc", {
        args: ["-u", "-w", "1", "127.0.0.1", String(port)],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = nc.stdin.getWriter();
      await writer.write(new TextEncoder().encode("hello from netcat"));
      await writer.close();
      const output = await nc.output();
      strictEqual(new TextDecoder().decode(output.stdout), "ack:hello from netcat");
    } finally {
      const stopped = await serve.stop();
      assert(/raw 1/.test(stopped.stdout), stopped.stdout);
    }
  },
});

Deno.test({
  name: "udp send --wait gets the echo from a socat UDP echo server",
  ignore: missing("socat"),
  async fn() {
    const port = freePort();
    const socat = new Deno.Command("socat", {
      args: ["-T", "5", `UDP4-RECVFROM:${port},bind=127.0.0.1,fork`, "PIPE"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // socat gives no sign when it is ready; retries are the protocol's answer to that.
      const result = await runUdp([
        "send",
        `127.0.0.1:${port}`,
        "hello socat",
        "--wait",
        "-W",
        "0.2",
        "--retries",
        "5",
        "-q",
      ]);
      strictEqual(result.code, 0, result.stdout + result.stderr);
      strictEqual(result.stdout, `Received "hello socat" from 127.0.0.1:${port} (11 bytes)\n`);
    } finally {
      socat.kill("SIGTERM");
      await socat.status;
    }
  },
});
