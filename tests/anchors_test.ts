/**
 * The C and Python anchors of `deno task bench`'s closed loop (scripts/anchors/): loadgen.c
 * against echo.c, against a real `udp serve` reflector, and against servers that answer wrongly,
 * on 127.0.0.1. loadgen must count every good reply and no wrong one: the closed loop's figures
 * are only as true as its checks. Built with gcc into a temporary directory per test; skipped,
 * saying so, without gcc (python3 likewise for echo.py).
 *
 * @module
 */

import { ok as assert, strictEqual } from "node:assert/strict";
import { Reflector } from "../lib/reflector/reflector.ts";
import { crc32c } from "../lib/wire/crc32c.ts";
import {
  type Anchors,
  buildAnchors,
  ECHO_PY,
  loadgen,
  type LoadgenResult,
  removeAnchors,
  stampedPingpong,
} from "../scripts/bench/anchors.ts";
import { onPath } from "../scripts/bench/common.ts";

const GCC = onPath("gcc");
const PYTHON = onPath("python3");
const SKIP_GCC = GCC ? "" : " (skipped: gcc not found)";

/** Builds the anchors, runs `body` with them, and removes them, whatever happens. */
async function withAnchors(body: (anchors: Anchors) => Promise<void>): Promise<void> {
  const anchors = await buildAnchors();
  if (typeof anchors === "string") throw new Error(anchors);
  try {
    await body(anchors);
  } finally {
    await removeAnchors(anchors);
  }
}

/** A server subprocess that prints its port first; stopped with SIGTERM, which exits 0. */
async function startServer(command: string, args: string[]) {
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${command} exited before printing its port`);
    text += value;
  }
  return {
    port: Number(text.split("\n")[0]),
    async stop() {
      child.kill("SIGTERM");
      await reader.cancel();
      const status = await child.status;
      strictEqual(status.code, 0, `${command} exit code`);
    },
  };
}

function assertGood(result: LoadgenResult, kind: LoadgenResult["reply_kind"]): void {
  assert(result.replies > 0, `no replies: ${JSON.stringify(result)}`);
  strictEqual(result.bad, 0, `bad replies: ${JSON.stringify(result)}`);
  strictEqual(result.reply_kind, kind, JSON.stringify(result));
  assert(result.sent >= result.replies, JSON.stringify(result));
}

/**
 * A tiny UDP server that answers each datagram with `answer(datagram)`, until the returned
 * stop() closes it.
 */
function answeringServer(answer: (data: Uint8Array) => Uint8Array) {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    try {
      while (true) {
        const [data, from] = await conn.receive();
        await conn.send(answer(data), from);
      }
    } catch {
      // closed
    }
  })();
  return {
    port: (conn.addr as Deno.NetAddr).port,
    async stop() {
      conn.close();
      await serving;
    },
  };
}

Deno.test(`loadgen against echo.c: raw and PING modes, every reply good${SKIP_GCC}`, {
  ignore: !GCC,
}, async () => {
  await withAnchors(async (anchors) => {
    const echo = await startServer(anchors.echo, ["0"]);
    try {
      assertGood(await loadgen(anchors, echo.port, { mode: "raw", seconds: 1 }), "echo");
      assertGood(await loadgen(anchors, echo.port, { mode: "ping", seconds: 1 }), "echo");
      const blocking = await loadgen(anchors, echo.port, {
        mode: "ping",
        seconds: 1,
        wait: "block",
      });
      assertGood(blocking, "echo");
      const big = await loadgen(anchors, echo.port, { mode: "ping", seconds: 1, size: 1400 });
      assertGood(big, "echo");
    } finally {
      await echo.stop();
    }
  });
});

Deno.test(`stamped_pingpong: every probe answered, the server's hold left out${SKIP_GCC}`, {
  ignore: !GCC,
}, async () => {
  await withAnchors(async (anchors) => {
    const server = await startServer(anchors.stampedPingpong, ["server", "0"]);
    try {
      const before = performance.now();
      const result = await stampedPingpong(anchors, server.port, 50, 1);
      const elapsedMs = performance.now() - before;
      strictEqual(result.probes, 50);
      strictEqual(result.replies, 50);
      const { p50_ms: p50, p99_ms: p99, hold_p50_ms: hold } = result;
      assert(p50 !== null && p99 !== null && hold !== null);
      // Kernel stamps on one clock: an RTT and a hold are positive, and no RTT is longer than
      // the whole run (a hold not left out, or a clock mixed up, would show).
      assert(p50 > 0 && p99 >= p50 && hold > 0, JSON.stringify(result));
      assert(p99 < elapsedMs, `${p99} ms in a run of ${elapsedMs} ms`);
    } finally {
      await server.stop();
    }
  });
});

Deno.test(`loadgen against udp serve's reflector: ack: replies and PONGs${SKIP_GCC}`, {
  ignore: !GCC,
}, async () => {
  await withAnchors(async (anchors) => {
    const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
    const echoing = Reflector.listen({ hostname: "127.0.0.1", port: 0, raw: "echo" });
    try {
      const port = reflector.address.port;
      assertGood(await loadgen(anchors, port, { mode: "raw", seconds: 1 }), "ack");
      const pings = await loadgen(anchors, port, { mode: "ping", seconds: 1 });
      assertGood(pings, "pong");
      strictEqual(pings.pong_replies, pings.replies);
      assertGood(
        await loadgen(anchors, echoing.address.port, { mode: "raw", seconds: 1 }),
        "echo",
      );
    } finally {
      await reflector.close();
      await echoing.close();
    }
  });
});

Deno.test(`loadgen counts a damaged or mismatched reply as bad${SKIP_GCC}`, {
  ignore: !GCC,
}, async () => {
  await withAnchors(async (anchors) => {
    const flip = (at: (data: Uint8Array) => number) => (data: Uint8Array) => {
      const out = data.slice();
      out[at(out)] ^= 0x01;
      return out;
    };
    /** A PONG with another session, its check written again: only the fields can tell. */
    const otherSession = (data: Uint8Array) => {
      const out = data.slice();
      out[5] = 2;
      out[12] ^= 0xff;
      new DataView(out.buffer).setUint32(out.length - 4, crc32c(out, out.length - 4));
      return out;
    };
    const cases: [string, "raw" | "ping", (data: Uint8Array) => Uint8Array][] = [
      ["raw, its last byte flipped", "raw", flip((d) => d.length - 1)],
      ["raw, a digit of its sequence flipped", "raw", flip(() => 20)],
      ["PING, a bit of its padding flipped", "ping", flip(() => 50)],
      ["PING, a bit of its check flipped", "ping", flip((d) => d.length - 1)],
      ["PING, another session with a good check", "ping", otherSession],
      [
        "raw, 4 bytes longer but not 'ack:'",
        "raw",
        (d) => new Uint8Array([...d.slice(0, 4), ...d]),
      ],
      ["raw, 'ack:' and the datagram, a bit of it flipped", "raw", (d) => {
        const out = new Uint8Array([...new TextEncoder().encode("ack:"), ...d]);
        out[30] ^= 0x01;
        return out;
      }],
    ];
    for (const [what, mode, answer] of cases) {
      const server = answeringServer(answer);
      try {
        const result = await loadgen(anchors, server.port, { mode, seconds: 0.5, window: 8 });
        strictEqual(result.replies, 0, `${what}: ${JSON.stringify(result)}`);
        assert(result.bad > 0, `${what}: ${JSON.stringify(result)}`);
      } finally {
        await server.stop();
      }
    }
  });
});

Deno.test(
  `loadgen against echo.py, the Python loop${PYTHON ? SKIP_GCC : " (skipped: python3 not found)"}`,
  { ignore: !GCC || !PYTHON },
  async () => {
    await withAnchors(async (anchors) => {
      const echo = await startServer("python3", [ECHO_PY, "0"]);
      try {
        assertGood(await loadgen(anchors, echo.port, { mode: "raw", seconds: 1 }), "echo");
      } finally {
        await echo.stop();
      }
    });
  },
);
