/**
 * A concurrent batch's replies, waiting in the reply arena for the one `sendmmsg()` that sends
 * them once every handler of the batch has had its turn; each is told when it has really left.
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, fillSlot } from "./_arena.ts";
import { writeSendControl } from "./_control.ts";
import { osError } from "./_errno.ts";
import { native } from "./_ffi.ts";
import type { SendReceipt } from "../socket.ts";

/** The receipt of a reply whose sender awaits a promise (its token). */
export const PROMISED: SendReceipt<PromiseWithResolvers<number>> = {
  sent: (promise, bytes) => promise.resolve(bytes),
  failed: (promise, error) => promise.reject(error),
};

/** The replies queued, in the order they were sent: each slot's length, receipt and token, in
 * arrays made once (a reflector queues hundreds of thousands a second). */
export class ReplyQueue {
  readonly #send: (arena: BatchArena, first: number, count: number) => number;
  readonly #closed: () => boolean;
  #count = 0;
  readonly #lengths = new Int32Array(BATCH_SIZE);
  readonly #receipts: SendReceipt<unknown>[] = new Array(BATCH_SIZE).fill(PROMISED);
  readonly #tokens: unknown[] = new Array(BATCH_SIZE).fill(null);

  /** Sends with `send` (a `sendmmsg()` of slots: how many left, or minus the errno); every
   * reply fails once `closed()`. */
  constructor(
    send: (arena: BatchArena, first: number, count: number) => number,
    closed: () => boolean,
  ) {
    this.#send = send;
    this.#closed = closed;
  }

  /**
   * Puts a datagram to the destination `name` (`nameLength` bytes, IPv4 or not) into the next
   * slot, with TOS `tos` unless it is -1 and from `source` unless it is null; `receipt` is told
   * (with `token`) when it has left or failed. A full queue is sent first, to keep the order.
   */
  add<T>(
    data: Uint8Array,
    name: Uint8Array,
    nameLength: number,
    ipv4: boolean,
    tos: number,
    source: Uint8Array | null,
    receipt: SendReceipt<T>,
    token: T,
  ): void {
    if (this.#count === BATCH_SIZE) this.flush();
    const arena = native().replyBatch;
    const slot = this.#count++;
    fillSlot(arena, slot, data, name, nameLength);
    if (tos >= 0 || source !== null) writeSendControl(arena, slot, tos, ipv4, source);
    this.#lengths[slot] = data.byteLength;
    this.#receipts[slot] = receipt as SendReceipt<unknown>;
    this.#tokens[slot] = token;
  }

  /** Sends the queued replies, in order, and tells each one's receipt. */
  flush(): void {
    const count = this.#count;
    if (count === 0) return;
    // Copied and emptied first, and every datagram sent before any receipt is told: a receipt
    // runs its sender's code, which may queue again (into the arena's first slots).
    this.#count = 0;
    const receipts = this.#receipts.slice(0, count);
    const tokens = this.#tokens.slice(0, count);
    const lengths = this.#lengths.slice(0, count);
    this.#tokens.fill(null, 0, count); // nothing kept alive past its batch
    const arena = native().replyBatch;
    const errors: unknown[] = [];
    let done = 0;
    while (done < count) {
      if (this.#closed()) {
        errors[done++] = new Deno.errors.BadResource("the socket is closed");
        continue;
      }
      const result = this.#send(arena, done, count - done);
      if (result < 0) errors[done++] = osError(-result); // then the rest
      else done += result;
    }
    for (let k = 0; k < count; k++) {
      if (errors[k] === undefined) receipts[k].sent(tokens[k], lengths[k]);
      else receipts[k].failed(tokens[k], errors[k]);
    }
  }
}
