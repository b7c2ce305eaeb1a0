// UDP GSO and GRO in the native backend (lib/net/native/_offload.ts), on real sockets on
// loopback: what a batch sends arrives complete, in order and byte-exact, however it was
// packed, and a socket with GRO hands each datagram of a coalesced message on by itself.

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  loadNativeUdp,
  NativeUdpSocket,
  offloadSupport,
  openNativeSockets,
  setReceiveBuffer,
} from "../lib/net/native/mod.ts";
import { childEnv } from "./helpers.ts";

const native = loadNativeUdp();
const supported = native && offloadSupport().gso;

/** A datagram of `size` bytes whose bytes say which it is (`index`) and where in it they are. */
function datagram(index: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (index * 31 + i) & 0xff;
  return bytes;
}

/** 200 datagrams of 1400 bytes, with odd sizes among them (shorter, longer, empty, one byte). */
function mixedBatch(): Uint8Array[] {
  const sizes = Array.from({ length: 200 }, () => 1400);
  for (const [at, size] of [[10, 700], [11, 1], [50, 0], [51, 1500], [120, 9000], [199, 3]]) {
    sizes[at] = size;
  }
  return sizes.map((size, index) => datagram(index, size));
}

/** A receiver that collects `expected` datagrams (copies) and resolves once it has them all. */
function collector(socket: NativeUdpSocket, expected: number) {
  const received: Uint8Array[] = [];
  const complete = Promise.withResolvers<void>();
  const loop = socket.receiveEach((data) => {
    received.push(data.slice());
    if (received.length === expected) complete.resolve();
  });
  return { received, complete: complete.promise, loop };
}

function bindReceiver(gro: boolean): NativeUdpSocket {
  const socket = NativeUdpSocket.bind("127.0.0.1", 0, { gso: false, gro });
  setReceiveBuffer(socket.fd, 8 << 20); // the whole batch waits in it before it is read
  return socket;
}

async function sendToBoth(gso: boolean, gro: boolean, prepare?: (fd: number) => void) {
  const sender = NativeUdpSocket.bind("127.0.0.1", 0, { gso, gro: false });
  prepare?.(sender.fd);
  const receivers = [bindReceiver(gro), bindReceiver(gro)];
  const batch = mixedBatch();
  const collectors = receivers.map((receiver) => collector(receiver, batch.length));
  try {
    for (const receiver of receivers) {
      assertEquals(sender.sendBatchNow(batch, receiver.address), batch.length); // datagrams
    }
    await Promise.all(collectors.map((c) => c.complete));
    for (const { received } of collectors) {
      assertEquals(received.length, batch.length);
      received.forEach((data, i) => assertEquals(data, batch[i], `datagram ${i}`));
    }
    return { sender, receivers };
  } finally {
    sender.close();
    for (const receiver of receivers) receiver.close();
    await Promise.all(collectors.map((c) => c.loop));
  }
}

Deno.test({
  name: "GSO: a batch of runs and odd sizes to two destinations arrives complete, in order",
  ignore: !supported,
  async fn() {
    for (const gro of [false, true]) {
      const { sender, receivers } = await sendToBoth(true, gro);
      assert(sender.gso, "GSO stayed on: the kernel took every super-datagram");
      assertEquals(receivers.map((r) => r.gro), [gro, gro]);
    }
    assertEquals(openNativeSockets(), 0);
  },
});

Deno.test({
  name: "GRO: a super-datagram reaches the handler as its datagrams, each of its size",
  ignore: !supported,
  async fn() {
    const sender = NativeUdpSocket.bind("127.0.0.1", 0, { gso: true, gro: false });
    const receiver = bindReceiver(true);
    const sizes = [...Array.from({ length: 63 }, () => 1000), 123]; // one run: one message
    const { received, complete, loop } = collector(receiver, sizes.length);
    let messages = 0;
    const batch = sizes.map((size, i) => datagram(i, size));
    try {
      assertEquals(sender.sendBatchNow(batch, receiver.address), sizes.length);
      await complete;
      assertEquals(received.map((data) => data.byteLength), sizes);
      received.forEach((data, i) => assertEquals(data, batch[i]));
      messages = receiver.lastBatch; // what one recvmmsg() read: the coalesced message
    } finally {
      sender.close();
      receiver.close();
      await loop;
    }
    assertEquals(messages, 1);
    assertEquals(openNativeSockets(), 0);
  },
});

Deno.test({
  name: "offload off: the same batch, one message per datagram, arrives the same",
  ignore: !native,
  async fn() {
    const { sender, receivers } = await sendToBoth(false, false);
    assertEquals([sender.gso, ...receivers.map((r) => r.gro)], [false, false, false]);
    assertEquals(openNativeSockets(), 0);
  },
});

// SO_NO_CHECK: UDP without checksums, which GSO cannot do: the kernel refuses the
// super-datagram (EINVAL) as it does one a device cannot segment.
const SOL_SOCKET = 1;
const SO_NO_CHECK = 11;

/** Runs `body` with a function that sets SO_NO_CHECK on a socket (through a libc of its own). */
async function withoutChecksums(body: (prepare: (fd: number) => void) => Promise<void>) {
  const libc = Deno.dlopen("libc.so.6", {
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  });
  try {
    await body((fd) => {
      const one = new Uint8Array(new Int32Array([1]).buffer);
      assertEquals(libc.symbols.setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, one, 4), 0);
    });
  } finally {
    libc.close();
  }
}

Deno.test({
  name: "GSO refused by the kernel: the socket falls back for good and sends every datagram",
  ignore: !supported,
  async fn() {
    const gso: boolean[] = [];
    await withoutChecksums(async (prepare) => {
      gso.push((await sendToBoth(true, false, prepare)).sender.gso);
    });
    assertEquals(gso, [false]);
    assertEquals(openNativeSockets(), 0);
  },
});

/** `udp --version`'s output, run where it may read $UDP_OFFLOAD (`deno task udp` may not). */
async function version(env: Record<string, string>): Promise<string> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const args = ["run", "--quiet", "--allow-ffi", "--allow-read", "--allow-env", main, "--version"];
  const command = new Deno.Command(Deno.execPath(), { args, env: childEnv(env), stdout: "piped" });
  const { code, stdout } = await command.output();
  assertEquals(code, 0);
  return new TextDecoder().decode(stdout);
}

Deno.test({
  name: "udp --version says which offloads are used; UDP_OFFLOAD=off turns them off",
  ignore: !native,
  async fn() {
    const on = await version({});
    const off = await version({ UDP_OFFLOAD: "off" });
    const expected = supported ? "offload: GSO" : "offload: none (";
    assert(on.includes(expected), on);
    assert(off.includes("offload: none (UDP_OFFLOAD=off)"), off);
  },
});

/** A concurrent echo whose replies are counted by receipt, as udp serve's (reply `n` with TOS
 * `tos(n)`: a control message of its own, so a slot of its own): what its receipt was told. */
function echoServer(server: NativeUdpSocket, tos: (n: number) => number, fromLocal: boolean) {
  const told: string[] = [];
  const receipt = {
    sent: (n: number, bytes: number) => told.push(`${n} ${bytes}`),
    failed: (n: number, error: unknown) => told.push(`${n} ${(error as Error).name}`),
  };
  let n = 0;
  const loop = server.receiveEach(
    (data, from, _at, meta) =>
      server.sendCountedReply(data, from, tos(n), fromLocal ? meta.local : null, receipt, n++),
    undefined,
    { concurrent: true },
  );
  return { told, loop };
}

async function echoBurst(
  batch: Uint8Array[],
  options: {
    gro: boolean;
    prepare?: (fd: number) => void;
    tos?: (n: number) => number;
    /** Bound to 0.0.0.0, each reply sent from the address its request came to (a control
     * message: IP_PKTINFO), as udp serve --host 0.0.0.0 does. */
    wildcard?: boolean;
  },
) {
  const host = options.wildcard ? "0.0.0.0" : "127.0.0.1";
  const server = NativeUdpSocket.bind(host, 0, { gso: true, gro: false });
  options.prepare?.(server.fd);
  const client = bindReceiver(options.gro);
  const { told, loop } = echoServer(server, options.tos ?? (() => -1), options.wildcard ?? false);
  const to = { hostname: "127.0.0.1", port: server.address.port };
  const { received, complete, loop: receiving } = collector(client, batch.length);
  try {
    // One sendmmsg(): all of it waits in the server's socket before the server reads it (the
    // reads are this thread's), so its replies are one concurrent batch.
    assertEquals(client.sendBatchNow(batch, to), batch.length);
    await complete;
    return { received, told, serverGso: server.gso, clientMessages: client.lastBatch };
  } finally {
    server.close();
    client.close();
    await Promise.all([loop, receiving]);
  }
}

Deno.test({
  name: "GSO replies: a batch's equal replies to one sender leave as one super-datagram",
  ignore: !supported,
  async fn() {
    const batch = Array.from({ length: 64 }, (_, i) => datagram(i, 1000));
    const { received, told, serverGso, clientMessages } = await echoBurst(batch, { gro: true });
    received.forEach((data, i) => assertEquals(data, batch[i], `reply ${i}`));
    assertEquals(told, batch.map((d, i) => `${i} ${d.length}`));
    assert(serverGso);
    // The client's socket coalesces what arrives as one: the 64 replies came as one message.
    assertEquals(clientMessages, 1);
    assertEquals(openNativeSockets(), 0);
  },
});

Deno.test({
  name: "GSO replies: from a wildcard-bound socket, each from its request's address, still one",
  ignore: !supported,
  async fn() {
    const batch = Array.from({ length: 64 }, (_, i) => datagram(i, 700));
    const burst = await echoBurst(batch, { gro: true, wildcard: true });
    burst.received.forEach((data, i) => assertEquals(data, batch[i], `reply ${i}`));
    assertEquals(burst.told, batch.map((d, i) => `${i} ${d.length}`));
    assertEquals([burst.serverGso, burst.clientMessages], [true, 1]);
    // With a TOS of their own too (two control messages and the segments'): still one run.
    const tos = await echoBurst(batch, { gro: true, wildcard: true, tos: () => 0x28 });
    tos.received.forEach((data, i) => assertEquals(data, batch[i], `reply ${i}`));
    assertEquals([tos.serverGso, tos.clientMessages], [true, 1]);
    assertEquals(openNativeSockets(), 0);
  },
});

Deno.test({
  name: "GSO replies: runs broken by other sizes, empty replies and TOS arrive complete, in order",
  ignore: !supported,
  async fn() {
    const sizes = Array.from({ length: 60 }, (_, i) => [500, 500, 500, 7, 0, 500, 1][i % 7]);
    const batch = sizes.map((size, i) => datagram(i, size));
    for (const gro of [false, true]) {
      const tos = (n: number) => n % 9 === 4 ? 0x20 : -1;
      const { received, told, serverGso } = await echoBurst(batch, { gro, tos });
      assertEquals(received.map((d) => d.length), sizes);
      received.forEach((data, i) => assertEquals(data, batch[i], `reply ${i}`));
      assertEquals(told, sizes.map((size, i) => `${i} ${size}`));
      assert(serverGso);
    }
    assertEquals(openNativeSockets(), 0);
  },
});

Deno.test({
  name: "GSO replies refused by the kernel: each reply of the run sent alone, GSO off for good",
  ignore: !supported,
  async fn() {
    await withoutChecksums(async (prepare) => {
      const batch = Array.from({ length: 40 }, (_, i) => datagram(i, 300));
      const { received, told, serverGso } = await echoBurst(batch, { gro: false, prepare });
      received.forEach((data, i) => assertEquals(data, batch[i], `reply ${i}`));
      assertEquals(told, batch.map((d, i) => `${i} ${d.length}`));
      assertEquals(serverGso, false);
    });
    assertEquals(openNativeSockets(), 0);
  },
});
