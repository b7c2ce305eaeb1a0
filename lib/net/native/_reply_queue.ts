/**
 * A concurrent batch's replies, waiting in the reply arena for the one `sendmmsg()` that sends
 * them once every handler of the batch has had its turn; each settles when it has really left.
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, fillSlot } from "./_arena.ts";
import { writeSendControl } from "./_control.ts";
import { osError } from "./_errno.ts";
import { native } from "./_ffi.ts";

/** One reply waiting: its length, and who waits for it to leave. */
interface QueuedReply {
  length: number;
  sent: PromiseWithResolvers<number>;
}

/** The replies queued, in the order they were sent. */
export class ReplyQueue {
  #queued: QueuedReply[] = [];

  /** Whether it is full: the next reply must wait for a flush, to keep the order. */
  get full(): boolean {
    return this.#queued.length === BATCH_SIZE;
  }

  /**
   * Puts a datagram to the destination `name` (`nameLength` bytes, IPv4 or not) into the next
   * slot, with TOS `tos` unless it is -1 and from `source` unless it is null; the promise
   * settles with its length once it has left.
   */
  add(
    data: Uint8Array,
    name: Uint8Array,
    nameLength: number,
    ipv4: boolean,
    tos: number,
    source: Uint8Array | null,
  ): Promise<number> {
    const arena = native().replyBatch;
    const slot = this.#queued.length;
    fillSlot(arena, slot, data, name, nameLength);
    if (tos >= 0 || source !== null) writeSendControl(arena, slot, tos, ipv4, source);
    const sent = Promise.withResolvers<number>();
    this.#queued.push({ length: data.byteLength, sent });
    return sent.promise;
  }

  /**
   * Sends the queued replies with `send` (a `sendmmsg()` of slots: how many left, or minus the
   * errno), in order, and settles each one's promise; all are rejected once `closed()`.
   */
  flush(
    send: (arena: BatchArena, first: number, count: number) => number,
    closed: () => boolean,
  ): void {
    const queued = this.#queued;
    if (queued.length === 0) return;
    this.#queued = [];
    const arena = native().replyBatch;
    let done = 0;
    while (done < queued.length) {
      if (closed()) {
        queued[done++].sent.reject(new Deno.errors.BadResource("the socket is closed"));
        continue;
      }
      const result = send(arena, done, queued.length - done);
      if (result < 0) {
        queued[done++].sent.reject(osError(-result)); // then the rest
        continue;
      }
      for (let k = 0; k < result; k++, done++) queued[done].sent.resolve(queued[done].length);
    }
  }
}
