/**
 * Readings for a probe format (`ProbeFormat`) to fill in: each reader (a reflector, a
 * sender) makes one and reuses it for every datagram.
 *
 * @module
 */

import type { AnswerContext, ReplyReading, RequestReading } from "./probe_format.ts";
import { emptySessionCounts } from "./session_counts.ts";
import { NO_TIMESTAMP } from "./timestamp.ts";

/**
 * A reading for {@linkcode ProbeFormat.readRequest} to fill in, before any datagram.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { newRequestReading } from "./readings.ts";
 * strictEqual(newRequestReading().header, null);
 * ```
 */
export function newRequestReading(): RequestReading {
  return {
    kind: "raw",
    reason: "",
    detail: "",
    header: null,
    authenticated: false,
    sentAt: NO_TIMESTAMP,
    answerable: false,
    delayMs: -1,
    oneWay: false,
  };
}

/**
 * A reading for {@linkcode ProbeFormat.readReply} to fill in, before any datagram.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { newReplyReading } from "./readings.ts";
 * strictEqual(newReplyReading().kind, "foreign");
 * ```
 */
export function newReplyReading(): ReplyReading {
  return {
    kind: "foreign",
    reason: "raw",
    request: "ping",
    session: 0,
    sequence: 0,
    attempt: 0,
    authenticated: false,
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    counts: null,
    error: null,
    stamp: null,
    path: null,
  };
}

/**
 * A context for {@linkcode ProbeFormat.answer} to be told, before any request: a reflector
 * makes one per place that answers and refills it for each reply.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { newAnswerContext } from "./readings.ts";
 * strictEqual(newAnswerContext().replyTos, -1);
 * ```
 */
export function newAnswerContext(): AnswerContext {
  return {
    receivedAt: NO_TIMESTAMP,
    repliedAt: NO_TIMESTAMP,
    counts: null,
    session: emptySessionCounts(),
    ttl: -1,
    tos: -1,
    from: { hostname: "", port: 0 },
    local: { hostname: "", port: 0 },
    replyTos: -1,
    replyTosSettable: false,
  };
}
