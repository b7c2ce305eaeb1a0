/**
 * A concurrent batch's replies, waiting in the reply arena for the one `sendmmsg()` that sends
 * them once every handler of the batch has had its turn; each is told when it has really left.
 * With GSO, consecutive replies of one size to one destination, with the same TOS and source
 * (a sender's probes answered), share a slot as one super-datagram (_offload.ts), which the
 * kernel cuts into them: one trip through the IP stack for the run, not one each.
 *
 * @module
 */

import { BATCH_SIZE, type BatchArena, fillSlot, SLOT_SIZE } from "./_arena.ts";
import { writeSendControl } from "./_control.ts";
import { osError } from "./_errno.ts";
import { native } from "./_ffi.ts";
import { IOVEC_LEN, IOVEC_SIZE } from "./_layout.ts";
import { addSegmentControl, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, refusesGso } from "./_offload.ts";
import type { SendReceipt } from "../socket.ts";
import { monotonicMs } from "../clock.ts";

/** The receipt of a reply whose sender awaits a promise (its token). */
const PROMISED: SendReceipt<PromiseWithResolvers<number>> = {
  sent: (promise, bytes) => promise.resolve(bytes),
  failed: (promise, error) => promise.reject(error),
};

/** Has `queue` queue a reply with a receipt that settles the promise returned (the bytes sent),
 * for a sender that awaits one. */
export function promised(
  queue: (receipt: typeof PROMISED, sent: PromiseWithResolvers<number>) => void,
): Promise<number> {
  const sent = Promise.withResolvers<number>();
  queue(PROMISED, sent);
  return sent.promise;
}

/** How a reply queue sends: a `sendmmsg()` of slots (how many left, or minus the errno). */
export interface ReplySender {
  send(arena: BatchArena, first: number, count: number): number;
  /** Whether the socket is closed: every reply then fails. */
  closed(): boolean;
  /** Whether runs may leave as GSO super-datagrams. */
  gso(): boolean;
  /** Told that the kernel refused one: the socket sends without GSO from then on. */
  refusedGso(): void;
}

/** The replies queued, in the order they were sent: each one's length, receipt and token, and
 * each slot's count of them, in arrays made once (a reflector queues 100,000s a second). */
export class ReplyQueue {
  readonly #sender: ReplySender;
  #count = 0; // replies
  #slots = 0; // slots filled
  readonly #lengths = new Int32Array(BATCH_SIZE);
  readonly #offsets = new Int32Array(BATCH_SIZE); // where each one is in the arena's data
  readonly #receipts: SendReceipt<unknown>[] = new Array(BATCH_SIZE).fill(PROMISED);
  readonly #tokens: unknown[] = new Array(BATCH_SIZE).fill(null);
  readonly #segments = new Uint8Array(BATCH_SIZE); // replies in each slot
  // What the last slot's run is: its destination and source (the socket's cached bytes, so
  // the same object for the same address), TOS, and its replies' length (-1: none may join).
  #runName: Uint8Array | null = null;
  #runSource: Uint8Array | null = null;
  #runTos = -1;
  #runSize = -1;

  constructor(sender: ReplySender) {
    this.#sender = sender;
  }

  /**
   * Puts a datagram to the destination `name` (`nameLength` bytes, IPv4 or not) into the
   * queue, with TOS `tos` unless it is -1 and from `source` unless it is null; `receipt` is
   * told (with `token`) when it has left or failed. A full queue is sent first, to keep the
   * order.
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
    const size = data.byteLength;
    const last = this.#slots - 1;
    let offset: number;
    if (
      size === this.#runSize && name === this.#runName && source === this.#runSource &&
      tos === this.#runTos && this.#segments[last] < GSO_MAX_SEGMENTS &&
      (this.#segments[last] + 1) * size <= GSO_MAX_BYTES
    ) {
      // One more segment of the last slot's super-datagram (with the same control messages).
      offset = last * SLOT_SIZE + this.#segments[last] * size;
      arena.data.set(data, offset);
      const segments = ++this.#segments[last];
      arena.iovecView.setUint32(last * IOVEC_SIZE + IOVEC_LEN, segments * size, true);
      if (segments === 2) addSegmentControl(arena, last, size);
    } else {
      const slot = this.#slots++;
      offset = slot * SLOT_SIZE;
      fillSlot(arena, slot, data, name, nameLength);
      if (tos >= 0 || source !== null) writeSendControl(arena, slot, tos, ipv4, source);
      this.#segments[slot] = 1;
      const joinable = size > 0 && this.#sender.gso();
      this.#runName = joinable ? name : null;
      this.#runSource = source;
      this.#runTos = tos;
      this.#runSize = joinable ? size : -1;
    }
    const reply = this.#count++;
    this.#lengths[reply] = size;
    this.#offsets[reply] = offset;
    this.#receipts[reply] = receipt as SendReceipt<unknown>;
    this.#tokens[reply] = token;
  }

  /** Sends the queued replies, in order, and tells each one's receipt. */
  flush(): void {
    const count = this.#count;
    if (count === 0) return;
    const slots = this.#slots;
    // Copied and emptied first, and every datagram sent before any receipt is told: a receipt
    // runs its sender's code, which may queue again (into the arena's first slots).
    this.#count = this.#slots = 0;
    this.#runName = null;
    this.#runSize = -1;
    const receipts = this.#receipts.slice(0, count);
    const tokens = this.#tokens.slice(0, count);
    const lengths = this.#lengths.slice(0, count);
    const segments = this.#segments.slice(0, slots);
    this.#tokens.fill(null, 0, count); // nothing kept alive past its batch
    // Each told that it leaves now, as a datagram sent alone is (a reflector stamps its reply
    // as sent then): a batch's handling, tens of µs under load, is not the network's.
    const data = native().replyBatch.data;
    let now = NaN; // read once, when the first receipt asks
    for (let k = 0; k < count; k++) {
      const receipt = receipts[k];
      if (receipt.sending === undefined) continue;
      if (Number.isNaN(now)) now = monotonicMs();
      const offset = this.#offsets[k];
      receipt.sending(tokens[k], data.subarray(offset, offset + lengths[k]), now);
    }
    const errors = this.#sendSlots(slots, segments);
    for (let k = 0; k < count; k++) {
      if (errors[k] === undefined) receipts[k].sent(tokens[k], lengths[k]);
      else receipts[k].failed(tokens[k], errors[k]);
    }
  }

  /** Sends `slots` slots holding `segments` replies each; the errors by reply (none: sent). */
  #sendSlots(slots: number, segments: Uint8Array): unknown[] {
    const arena = native().replyBatch;
    const errors: unknown[] = [];
    let slot = 0;
    let reply = 0;
    const fail = (error: unknown) => {
      for (let k = 0; k < segments[slot]; k++) errors[reply++] = error;
      slot++;
    };
    while (slot < slots) {
      if (this.#sender.closed()) {
        fail(new Deno.errors.BadResource("the socket is closed"));
        continue;
      }
      const result = this.#sender.send(arena, slot, slots - slot);
      if (result >= 0) {
        for (let k = 0; k < result; k++) reply += segments[slot++];
        continue;
      }
      if (segments[slot] === 1 || !refusesGso(-result)) {
        fail(osError(-result)); // then the rest
        continue;
      }
      // This path cannot take super-datagrams: this one's replies one by one, and no more.
      this.#sender.refusedGso();
      const size = arena.iovecView.getUint32(slot * IOVEC_SIZE + IOVEC_LEN, true) /
        segments[slot];
      for (let k = 0; k < segments[slot]; k++, reply++) {
        const error = this.#sendApart(arena, slot, k, size);
        if (error !== null) errors[reply] = error;
      }
      slot++;
    }
    return errors;
  }

  /** Sends segment `k` (`size` bytes) of slot `slot` alone: moved to the slot's start, it is
   * the slot's only datagram. Its error, or null once it has left. */
  #sendApart(arena: BatchArena, slot: number, k: number, size: number): unknown {
    const start = slot * SLOT_SIZE;
    if (k > 0) arena.data.copyWithin(start, start + k * size, start + (k + 1) * size);
    arena.iovecView.setUint32(slot * IOVEC_SIZE + IOVEC_LEN, size, true);
    if (k === 0) addSegmentControl(arena, slot, 0); // its other control messages stay
    const result = this.#sender.send(arena, slot, 1);
    return result > 0 ? null : osError(result < 0 ? -result : 11); // EAGAIN: it did not leave
  }
}
