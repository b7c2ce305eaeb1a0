/**
 * One trial of `udp nat`: a fresh socket (a fresh source port, so a fresh NAT mapping), one
 * PING asking for the path report and, but for the first, one reply after a delay (DELAYED),
 * and a wait for that reply until the delay and a margin have passed. Its socket is closed,
 * and its timer cancelled, however it ends.
 *
 * @module
 */

import { monotonicMs, type ResolvedAddress, wallClockMs } from "../net/mod.ts";
import {
  DELAYED_PAYLOAD_SIZE,
  type PathReport,
  type ProbeError,
  timestampDiffMs,
  timestampFromMs,
} from "../wire/mod.ts";
import { ProbeSender } from "./_sender.ts";

/** What one trial asks. */
export interface TrialRequest {
  /** Where the reflector is. */
  target: ResolvedAddress;
  /** The delay asked for, in milliseconds; null: a reply at once (no DELAYED flag). */
  delayMs: number | null;
  /** How long to wait past the delay. */
  waitMs: number;
  /** Authenticated mode: the request is tagged, and only a reply with a right tag counts. */
  key: CryptoKey | null;
  /** Monotonic milliseconds before which the request is not sent (pacing). */
  notBefore: number;
}

/** How one trial ended. */
export interface TrialOutcome {
  /** Whether its reply came in time; false when it did not or the trial was cancelled. */
  replied: boolean;
  /** Whether it was cancelled before its wait was over (its outcome says nothing). */
  cancelled: boolean;
  /** Monotonic milliseconds when its request left; null when it never did. */
  sentAt: number | null;
  /** Its socket's port. */
  localPort: number;
  /** This host's address the reply was sent to, where the socket tells it; else null. */
  localAddress: string | null;
  /** What the reflector reported of the request's arrival; null without a reply or report. */
  report: PathReport | null;
  /** From the request's send to the reply's arrival, in milliseconds; null without a reply. */
  elapsedMs: number | null;
  /** How long the reflector held the request, by its timestamps; null when not told. */
  heldMs: number | null;
  /** The reflector's ERROR, if it answered with one. */
  error: ProbeError | null;
  /** Why the request could not be sent, if it could not. */
  sendError: string | null;
}

/**
 * Runs one trial to its end: its reply, its wait over, or `cancel` aborted.
 *
 * @example A reply at once from a local reflector, with its report
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Reflector } from "../reflector/mod.ts";
 * import { runTrial } from "./_nat_trial.ts";
 * const reflector = Reflector.listen({ hostname: "127.0.0.1", port: 0 });
 * const target = { hostname: "127.0.0.1", port: reflector.address.port, family: "ipv4" as const };
 * const outcome = await runTrial(
 *   { target, delayMs: null, waitMs: 2000, key: null, notBefore: 0 },
 *   new AbortController().signal,
 * );
 * await reflector.close();
 * strictEqual(outcome.replied, true);
 * strictEqual(outcome.report?.port, outcome.localPort);
 * ```
 */
export async function runTrial(request: TrialRequest, cancel: AbortSignal): Promise<TrialOutcome> {
  const { target, delayMs, key } = request;
  const sender = new ProbeSender({
    target,
    key: key ?? undefined,
    payloadSize: DELAYED_PAYLOAD_SIZE,
    path: true,
    delayMs: delayMs ?? undefined,
  });
  const socket = sender.bind();
  const outcome: TrialOutcome = {
    replied: false,
    cancelled: false,
    sentAt: null,
    localPort: socket.address.port,
    localAddress: null,
    report: null,
    elapsedMs: null,
    heldMs: null,
    error: null,
    sendError: null,
  };
  const over = Promise.withResolvers<void>();
  const onCancel = () => {
    outcome.cancelled = !outcome.replied;
    over.resolve();
  };
  cancel.addEventListener("abort", onCancel);
  const receiving = socket.receiveEach(async (data, from, arrivedAt, meta) => {
    const local = meta.local; // read before any await: the socket reuses it
    if (outcome.sentAt === null || sender.read(data, from) !== null) return;
    const reply = sender.reply;
    if (reply.kind === "error" && reply.error !== null && !reply.error.damagedRequest) {
      if (key !== null) return; // under a key an ERROR is never taken (anyone can send one)
      outcome.error = reply.error;
      return over.resolve();
    }
    const answers = reply.kind === "reply" && reply.request === "ping" && reply.sequence === 0;
    if (!answers || data.length !== sender.datagramBytes) return;
    const { path, receivedAt, repliedAt } = reply;
    if (key !== null && !(reply.authenticated && await sender.verify(data))) return;
    outcome.replied = true;
    outcome.localAddress = local;
    outcome.report = path;
    outcome.elapsedMs = arrivedAt - outcome.sentAt;
    const held = receivedAt.seconds > 0 ? timestampDiffMs(repliedAt, receivedAt) : null;
    outcome.heldMs = held !== null && held >= 0 ? held : null;
    over.resolve();
  });
  let cancelTimer = () => {};
  try {
    await waitUntil(socket, request.notBefore, cancel);
    if (!cancel.aborted) {
      const bytes = sender.encode("ping", 0, 0, timestampFromMs(wallClockMs()));
      if (key !== null) await sender.sign(bytes);
      outcome.sentAt = monotonicMs();
      await socket.send(bytes, target);
      const until = outcome.sentAt + (delayMs ?? 0) + request.waitMs;
      cancelTimer = socket.wakeAt(until, () => over.resolve());
      await over.promise;
    } else {
      outcome.cancelled = true;
    }
  } catch (error) {
    outcome.sendError = error instanceof Error ? error.message : String(error);
  } finally {
    cancelTimer();
    cancel.removeEventListener("abort", onCancel);
    socket.close();
    await receiving;
  }
  return outcome;
}

/** Waits on the socket's timer until `at` (monotonic), or until `cancel` aborts. */
function waitUntil(
  socket: { wakeAt(at: number, fire: () => void): () => void },
  at: number,
  cancel: AbortSignal,
): Promise<void> {
  if (at <= monotonicMs() || cancel.aborted) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const stop = socket.wakeAt(at, resolve);
  const onCancel = () => {
    stop();
    resolve();
  };
  cancel.addEventListener("abort", onCancel, { once: true });
  return promise.finally(() => cancel.removeEventListener("abort", onCancel));
}
