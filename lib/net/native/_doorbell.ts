/**
 * The reactor's doorbell: an eventfd among the descriptors it sleeps on, so that code running
 * on the main thread while the reactor sleeps on another (a socket opened or closed, a timer
 * set earlier than the sleep's end) can end the sleep at once.
 *
 * @module
 */

import { native } from "./_ffi.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK } from "./_layout.ts";

/** An eventfd's counter: 8 bytes, read or added to as one. */
const COUNTER_SIZE = 8n;

/** An eventfd that ends a `ppoll()` it is among; rung at most once per sleep. */
export class Doorbell {
  /** Its file descriptor; -1 where the kernel refused one (`ppoll()` then skips it). */
  readonly fd: number;
  #rung = false;
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);
  readonly #sink = new Uint8Array(Number(COUNTER_SIZE));

  constructor() {
    this.fd = native().symbols.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }

  /** Whether it was rung since the last {@linkcode Doorbell.clear}. */
  get rung(): boolean {
    return this.#rung;
  }

  /** Ends the sleep it is among (or the next, if none is under way yet). */
  ring(): void {
    if (this.#rung || this.fd < 0) return;
    this.#rung = true;
    native().symbols.write(this.fd, this.#one, COUNTER_SIZE);
  }

  /** Makes it quiet again after a sleep, rung or not. */
  clear(): void {
    if (!this.#rung) return;
    this.#rung = false;
    native().symbols.read(this.fd, this.#sink, COUNTER_SIZE);
  }
}
