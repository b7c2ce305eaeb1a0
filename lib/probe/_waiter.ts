/**
 * The one wait of a ping run's sending loop: until a condition holds, a time is reached, or
 * the run stops.
 *
 * @module
 */

import { monotonicMs, type UdpSocket } from "../net/mod.ts";

interface Waiting {
  ready: () => boolean;
  resolve: () => void;
  cancel?: () => void;
}

/**
 * Lets one loop wait; whoever changes what it waits for calls
 * {@linkcode LoopWaiter.notify}. Only the sending loop waits, so one waiter is enough.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { UdpSocket } from "../net/mod.ts";
 * import { LoopWaiter } from "./_waiter.ts";
 * using socket = UdpSocket.bind("127.0.0.1", 0);
 * let done = false;
 * const waiter = new LoopWaiter(socket, () => false);
 * const waited = waiter.waitFor(() => done);
 * done = true;
 * waiter.notify();
 * await waited;
 * strictEqual(done, true);
 * ```
 */
export class LoopWaiter {
  readonly #socket: UdpSocket;
  readonly #stopped: () => boolean;
  #waiter: Waiting | null = null;

  /** A waiter whose waits end early once `stopped()` holds (then call `notify()`). */
  constructor(socket: UdpSocket, stopped: () => boolean) {
    this.#socket = socket;
    this.#stopped = stopped;
  }

  /** Resolves when `ready()` holds, the time `untilMs` (monotonic) is reached, or the run
   * stops. */
  waitFor(ready: () => boolean, untilMs?: number): Promise<void> {
    if (this.#stopped() || ready()) return Promise.resolve();
    if (untilMs !== undefined && untilMs <= monotonicMs()) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiting = { ready, resolve };
      if (untilMs !== undefined) {
        // The socket's timer: on the native backend, the probe this lets out is followed at
        // once by the wait for its reply, with no turn of the event loop in the RTT.
        waiter.cancel = this.#socket.wakeAt(untilMs, () => this.#wake());
        waiter.ready = () => ready() || monotonicMs() >= untilMs;
      }
      this.#waiter = waiter;
    });
  }

  /** Ends the wait if what it waits for now holds (or the run stopped). */
  notify(): void {
    if (this.#waiter !== null && (this.#stopped() || this.#waiter.ready())) this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    this.#waiter = null;
    waiter.cancel?.();
    waiter.resolve();
  }
}
