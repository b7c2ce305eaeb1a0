/**
 * How the reactor waits for the one reply a ping awaits (_reactor.ts with _policy.ts), with a
 * socket whose reads are scripted: which look finds the reply is set by the test, not by how
 * soon another thread or process runs on this machine.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { monotonicMs } from "../lib/net/clock.ts";
import { loadNativeUdp, NativeUdpSocket, spinCounts } from "../lib/net/native/mod.ts";
import { Doorbell } from "../lib/net/native/_doorbell.ts";
import { native } from "../lib/net/native/_ffi.ts";
import { SPIN_MIN_MS } from "../lib/net/native/_policy.ts";
import { policy, reactor, reactorSleeps, type ReactorSocket } from "../lib/net/native/_reactor.ts";

const nativeOnly = { ignore: !loadNativeUdp() };

/** A socket on a descriptor that is never ready whose `replyAt`th read finds one datagram. */
class ScriptedSocket implements ReactorSocket {
  readonly prompt = true;
  readonly lastBatch = 0;
  closed = false;
  /** When each read was made, by the reactor's clock. */
  readonly reads: number[] = [];
  /** Settles with the count of the batch handed on. */
  readonly handled = Promise.withResolvers<number>();

  constructor(readonly fd: number, readonly replyAt: number) {}

  readBatch(): number {
    this.reads.push(monotonicMs());
    if (this.reads.length !== this.replyAt) return 0;
    policy.noteTraffic(); // as a socket's read does: the awaited reply came
    return 1;
  }

  handleBatch(count: number): Promise<void> {
    this.handled.resolve(count);
    return Promise.resolve();
  }

  readErrors(): number {
    return 0;
  }
}

/** Runs `test` with a descriptor that is never ready (an eventfd never written), then closes it. */
async function withIdleDescriptor(test: (fd: number) => Promise<void>): Promise<void> {
  const idle = new Doorbell();
  assert(idle.fd >= 0, "the kernel refused an eventfd");
  try {
    await test(idle.fd);
  } finally {
    native().symbols.close(idle.fd);
  }
}

/** A turn of the event loop (the reactor sleeps off the main thread meanwhile). */
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

Deno.test(
  "reactor: an awaited reply is looked for before sleeping",
  nativeOnly,
  () =>
    withIdleDescriptor(async (fd) => {
      // There at the first look: found by the spin (which looks at least once, however late
      // it begins), not by a read after a sleep for it. A zero-wait sleep, the event loop's
      // turn, may come first on a loaded machine: that is not a wait for the reply.
      policy.reset();
      const socket = new ScriptedSocket(fd, 1);
      const before = spinCounts();
      policy.noteSend(1); // a probe sent: one reply awaited
      reactor.add(socket);
      strictEqual(await socket.handled.promise, 1);
      strictEqual(socket.reads.length, 1);
      strictEqual(spinCounts().found - before.found, 1);
      strictEqual(spinCounts().missed - before.missed, 0);
      socket.closed = true;
      await reactor.remove(socket);
    }),
);

Deno.test(
  "reactor: a spin for a reply that does not come lasts its shortest time, then the reactor sleeps",
  nativeOnly,
  () =>
    withIdleDescriptor(async (fd) => {
      policy.reset();
      const socket = new ScriptedSocket(fd, Infinity);
      const before = spinCounts();
      const begun = monotonicMs();
      policy.noteSend(1);
      reactor.add(socket);
      // Asleep with no end of its own (no timer: the reply is awaited until something else
      // comes), after one spin that found nothing. Bounded: 10 s of turns at most.
      const missed = () => spinCounts().missed - before.missed;
      for (let turn = 0; turn < 10_000; turn++) {
        if (missed() > 0 && reactorSleeps().until === Infinity) break;
        await tick();
      }
      strictEqual(missed(), 1);
      strictEqual(spinCounts().found - before.found, 0);
      strictEqual(reactorSleeps().until, Infinity);
      // Every read was the spin's (the descriptor is never ready: nothing reads it otherwise),
      // the last SPIN_MIN_MS or more after the probe: the spin's end is read from the clock
      // before its last look, so a thread preempted meanwhile still looks once more.
      const reads = socket.reads.length;
      const spun = socket.reads.at(-1)! - begun;
      assert(spun >= SPIN_MIN_MS, `the spin ended after ${spun.toFixed(3)} ms`);
      for (let turn = 0; turn < 5; turn++) await tick();
      strictEqual(socket.reads.length, reads, "it read again while asleep");
      socket.closed = true;
      await reactor.remove(socket);
    }),
);

Deno.test(
  "policy: a reflector's lone reply awaits the next request, as a client's probe its reply",
  nativeOnly,
  async () => {
    // On purpose: under a ping-pong load the reflector then spins for the next request (its
    // hold a few µs, not a wake-up's 15). Both ends are in this process: the server's reply
    // is checked right after it left, before the client has read it.
    policy.reset();
    const server = NativeUdpSocket.bind("127.0.0.1", 0);
    const client = NativeUdpSocket.bind("127.0.0.1", 0);
    const awaited: boolean[] = [];
    const serving = server.receiveEach(
      (data, from) => {
        strictEqual(server.send(data, from), data.length); // a lone datagram: sent at once
        awaited.push(policy.awaitsOneReply());
      },
      undefined,
      { concurrent: true },
    );
    const replied = Promise.withResolvers<void>();
    const receiving = client.receiveEach(() => replied.resolve());
    try {
      client.sendNow(new Uint8Array([1]), server.address);
      strictEqual(policy.awaitsOneReply(), true, "the client's datagram awaits its reply");
      await Promise.race([replied.promise, serving]); // a failed check inside ends `serving`
      assertEquals(awaited, [true], "the server's reply awaits the next request");
    } finally {
      server.close();
      client.close();
      await Promise.all([serving, receiving]);
    }
  },
);
