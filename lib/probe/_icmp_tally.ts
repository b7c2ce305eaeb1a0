/**
 * What a sender makes of the ICMP errors about its probes: which probe each is about (by what
 * it quoted of it), a count by kind, and how many probes drew one (ping(8)'s "+N errors").
 *
 * @module
 */

import { type IcmpCounts, type IcmpReport, noIcmpCounts } from "../net/mod.ts";
import type { IcmpEvent } from "./ping_report.ts";
import type { ProbeSender } from "./_sender.ts";

/**
 * Counts ICMP errors about one sender's probes.
 *
 * @example A port unreachable about probe 2
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { IcmpTally } from "./_icmp_tally.ts";
 * import { ProbeSender } from "./_sender.ts";
 * const target = { hostname: "127.0.0.1", port: 9, family: "ipv4" as const };
 * const sender = new ProbeSender({ target, session: 5, payloadSize: 8 });
 * const tally = new IcmpTally(16, (sequence) => sequence < 3);
 * const report = {
 *   version: 4 as const, type: 3, code: 3, kind: "port_unreachable" as const,
 *   from: "127.0.0.1", to: { transport: "udp" as const, hostname: "127.0.0.1", port: 9 },
 *   mtu: null, quoted: sender.encode("ping", 2, 0, { seconds: 1, nanos: 0 }), arrivedAt: 0,
 *   local: false,
 * };
 * strictEqual(tally.read(report, sender)?.seq, 2);
 * strictEqual(tally.read(report, sender)?.seq, 2); // the same probe again
 * strictEqual(tally.counts.port_unreachable, 2);
 * strictEqual(tally.errors, 1);
 * ```
 */
export class IcmpTally {
  /** The errors about the sender's probes, by kind. */
  readonly counts: IcmpCounts = noIcmpCounts();
  #errors = 0;
  #localMtu: number | null = null;
  readonly #window: number;
  readonly #counted: Float64Array; // by slot: sequence + 1 of the probe counted in `errors`
  readonly #sent: (sequence: number, attempt: number) => boolean;

  /**
   * A tally for probes remembered `window` at a time; `sent` says whether a probe's attempt
   * was sent and is remembered (an error about anything else is counted by kind only).
   */
  constructor(window: number, sent: (sequence: number, attempt: number) => boolean) {
    this.#window = window;
    this.#counted = new Float64Array(window);
    this.#sent = sent;
  }

  /** Probes that drew at least one ICMP error. */
  get errors(): number {
    return this.#errors;
  }

  /**
   * The MTU this host's own link named when a datagram was too big for it (the kernel queues
   * it with the send's "Message too long", before the send fails); null until then.
   */
  get localMtu(): number | null {
    return this.#localMtu;
  }

  /**
   * Counts an error, and returns its event, if it is about one of `sender`'s requests (to its
   * target, in its session); null otherwise (another socket's destination, a quote too short).
   */
  read(report: IcmpReport, sender: ProbeSender): IcmpEvent | null {
    if (report.local) { // the send that failed tells it; its MTU goes with that failure
      if (report.mtu !== null) this.#localMtu = report.mtu;
      return null;
    }
    const quoted = sender.readQuoted(report);
    if (quoted === null) return null;
    this.counts[report.kind]++;
    const known = this.#sent(quoted.sequence, quoted.attempt);
    if (known) {
      const slot = quoted.sequence % this.#window;
      if (this.#counted[slot] !== quoted.sequence + 1) {
        this.#counted[slot] = quoted.sequence + 1;
        this.#errors++;
      }
    }
    return {
      type: "icmp",
      seq: known ? quoted.sequence : null,
      attempt: known ? quoted.attempt : null,
      kind: report.kind,
      from: report.from,
      icmp_type: report.type,
      icmp_code: report.code,
      mtu: report.mtu,
    };
  }
}
