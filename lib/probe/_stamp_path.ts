/**
 * What a STAMP reflector's replies say about each direction of the path, beyond the round
 * trip: loss there and back (a stateful reflector's own sequence numbers, or the Direct
 * Measurement TLV's counts), delay variation each way (IPDV, RFC 5481: it needs no
 * synchronized clocks), one-way delays (only when both clocks say they are synchronized),
 * and, through a {@linkcode PathArrival}, hops on the way there, what the path did to DSCP and
 * ECN (Class of Service TLV) and the source the reflector saw (Location TLV).
 *
 * @module
 */

import { SignedStats, type SignedSummary } from "../stats/mod.ts";
import { type StampReplyFields, type Timestamp, timestampDiffMs } from "../wire/mod.ts";
import type { PathArrival } from "./_path_arrival.ts";

/** The STAMP part of a ping summary; every key null (or empty) when it is not known. How the
 * probes arrived (hops, DSCP, ECN, the source seen) is {@linkcode PathArrival}'s part. */
export interface StampPathSummary {
  /** Probes lost on the way to the reflector, up to the last one answered; null when the
   * reflector does not say (a stateless reflector without Direct Measurement). */
  lost_there: number | null;
  /** Replies lost on the way back, up to the last probe answered; null likewise. */
  lost_back: number | null;
  /** IPDV of the way there (RFC 5481): each one-way delay minus the previous probe's. */
  ipdv_there_ms: SignedSummary;
  /** IPDV of the way back. */
  ipdv_back_ms: SignedSummary;
  /** One-way delays there; null unless both ends' error estimates say synchronized. */
  one_way_there_ms: SignedSummary | null;
  /** One-way delays back; null likewise. */
  one_way_back_ms: SignedSummary | null;
}

/** What the text report says besides the summary's keys. */
export interface StampPathNotes {
  /** Where lost_there and lost_back come from. */
  lossSource: "reflector-sequence" | "direct-measurement" | null;
  /** Why one-way delays are omitted; null when they are given. */
  oneWayOmitted: string | null;
  /** The DSCP the replies arrived with, when the Class of Service TLV asked for one. */
  dscpBack: number | null;
  /** Whether the reflector returned our TLVs untouched (it does not process them). */
  tlvsUntouched: boolean;
  /** TLVs the reflector flagged unrecognized, malformed or failing integrity, in the last reply. */
  tlvFlags: { unrecognized: number; malformed: number; integrity: number };
}

/** Options of {@linkcode StampPath}. */
export interface StampPathOptions {
  /** Probes whose delays are remembered for IPDV (the pinger's window). */
  window: number;
  /** Whether this end's clock is known synchronized. */
  synchronized: boolean;
  /** Where to tell how each answered probe arrived (Sender TTL, Class of Service, Location);
   * null: nowhere. */
  arrival: PathArrival | null;
}

/**
 * Collects the per-direction figures of a STAMP ping run, reply by reply.
 *
 * @example Two replies of a stateful reflector that missed probe 1 on the way there
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { PathArrival } from "./_path_arrival.ts";
 * import { StampPath } from "./_stamp_path.ts";
 * const arrival = new PathArrival({ ttlSet: true, ttl: 255, tosSet: false, tos: -1 });
 * const path = new StampPath({ window: 16, synchronized: false, arrival });
 * const at = (ms: number) => ({ seconds: 1000, nanos: ms * 1e6 });
 * const fields = (reflectorSequence: number, t1: number) => ({
 *   reflectorSequence, ttl: 254, requestSentAt: at(t1), reflectorSynchronized: false,
 *   reflectorErrorSeconds: 1, reflectorPtp: false, direct: null, classOfService: null,
 *   timestampInfo: null, location: null, tlvsUntouched: false,
 *   tlvFlags: { unrecognized: 0, malformed: 0, integrity: 0 },
 * });
 * path.onReply(0, fields(0, 0), at(5), at(5), 1_000_010, -1);
 * path.onReply(2, fields(1, 20), at(26), at(26), 1_000_031, -1);
 * const summary = path.summary(2);
 * strictEqual(summary.lost_there, 1);
 * strictEqual(summary.lost_back, 0);
 * strictEqual(summary.one_way_there_ms, null);
 * strictEqual(arrival.summary().hops_there, 2);
 * ```
 */
export class StampPath {
  readonly #options: StampPathOptions;
  readonly #tags: Float64Array;
  readonly #there: Float64Array;
  readonly #back: Float64Array;
  readonly #ipdvThere = new SignedStats();
  readonly #ipdvBack = new SignedStats();
  readonly #oneWayThere = new SignedStats();
  readonly #oneWayBack = new SignedStats();
  #allSynchronized: boolean;
  #replies = 0;
  /** The highest sequence answered (within its timeout or late). */
  #lastSequence = -1;
  /** The reflector's own counts, as its stateful sequence numbers say them. */
  readonly #sequenceCounts = new ReflectorCount();
  /** The reflector's own counts, as Direct Measurement says them: received, and sent. */
  readonly #receivedCounts = new ReflectorCount();
  readonly #sentCounts = new ReflectorCount();
  /** Whether the reflector has shown its own sequence (one that differs from ours). */
  #stateful = false;
  /** Probes that reached the reflector twice (duplicated on the way there), as replies with
   * another reflector count for the same probe show. */
  #duplicatedThere = 0;
  /** What each slot's probe's reply said of the reflector's count, to tell duplicates apart. */
  readonly #slotCounts: Float64Array;
  /** Sequence numbers used by probes that never left (their send failed). */
  readonly #unsent: number[] = [];
  #dscpBack: number | null = null;
  #tlvsUntouched = false;
  #tlvFlags = { unrecognized: 0, malformed: 0, integrity: 0 };

  /** A collector for one run. */
  constructor(options: StampPathOptions) {
    this.#options = options;
    this.#tags = new Float64Array(options.window);
    this.#there = new Float64Array(options.window);
    this.#back = new Float64Array(options.window);
    this.#slotCounts = new Float64Array(options.window);
    this.#allSynchronized = options.synchronized;
  }

  /** A probe whose send failed: its sequence number was used, but nothing was lost. */
  onUnsent(sequence: number): void {
    this.#unsent.push(sequence);
  }

  /** A first reply to a probe that had timed out: it counts for loss, not for delays. */
  onLate(sequence: number, fields: StampReplyFields): void {
    this.#count(sequence, fields);
  }

  /**
   * A further reply to a probe already answered. One with another reflector count says the
   * probe reached the reflector twice (duplicated on the way there), which its counts include.
   */
  onDuplicate(sequence: number, fields: StampReplyFields): void {
    const slot = sequence % this.#options.window;
    if (this.#tags[slot] !== sequence + 1) return;
    if (this.#slotCounts[slot] !== reflectorCount(fields)) this.#duplicatedThere++;
  }

  /**
   * Takes the first reply to probe `sequence`, within its timeout: the reflector's fields,
   * its timestamps T2 (`receivedAt`) and T3 (`repliedAt`), its arrival here T4 (wall-clock
   * milliseconds) and the TOS byte it arrived with (-1 when unknown).
   */
  onReply(
    sequence: number,
    fields: StampReplyFields,
    receivedAt: Timestamp,
    repliedAt: Timestamp,
    arrivedWallMs: number,
    arrivedTos: number,
  ): void {
    this.#replies++;
    const there = timestampDiffMs(receivedAt, fields.requestSentAt);
    const back = arrivedWallMs - (repliedAt.seconds * 1000 + repliedAt.nanos / 1e6);
    if (!fields.reflectorSynchronized) this.#allSynchronized = false;
    this.#oneWayThere.record(there);
    this.#oneWayBack.record(back);
    // IPDV pairs consecutive sequence numbers (RFC 5481 §4.1), whichever arrives second.
    const window = this.#options.window;
    const slot = sequence % window;
    this.#tags[slot] = sequence + 1;
    this.#there[slot] = there;
    this.#back[slot] = back;
    const previous = (sequence + window - 1) % window;
    if (sequence > 0 && this.#tags[previous] === sequence) {
      this.#ipdvThere.record(there - this.#there[previous]);
      this.#ipdvBack.record(back - this.#back[previous]);
    }
    const next = (sequence + 1) % window;
    if (this.#tags[next] === sequence + 2) {
      this.#ipdvThere.record(this.#there[next] - there);
      this.#ipdvBack.record(this.#back[next] - back);
    }
    this.#slotCounts[slot] = reflectorCount(fields);
    this.#count(sequence, fields);
    const cos = fields.classOfService;
    if (cos !== null && arrivedTos >= 0) this.#dscpBack = arrivedTos >> 2;
    const location = fields.location;
    this.#options.arrival?.observe(
      fields.ttl,
      cos?.dscpReceived ?? null,
      cos?.ecnReceived ?? null,
      location?.address ?? null,
      location?.port ?? null,
    );
    this.#tlvsUntouched = fields.tlvsUntouched;
    this.#tlvFlags = { ...fields.tlvFlags };
  }

  /** The summary, `answered` being the probes answered at all (received or late). */
  summary(answered: number): StampPathSummary {
    const [lostThere, lostBack] = this.#loss(answered);
    const oneWay = this.#allSynchronized && this.#replies > 0;
    return {
      lost_there: lostThere,
      lost_back: lostBack,
      ipdv_there_ms: this.#ipdvThere.summary(),
      ipdv_back_ms: this.#ipdvBack.summary(),
      one_way_there_ms: oneWay ? this.#oneWayThere.summary() : null,
      one_way_back_ms: oneWay ? this.#oneWayBack.summary() : null,
    };
  }

  /** What the text report adds. */
  notes(): StampPathNotes {
    const lossSource = this.#receivedCounts.known
      ? "direct-measurement"
      : this.#stateful
      ? "reflector-sequence"
      : null;
    let oneWayOmitted: string | null = null;
    if (this.#replies > 0 && !this.#allSynchronized) {
      oneWayOmitted = this.#options.synchronized
        ? "the reflector's error estimate does not say its clock is synchronized"
        : "this host's clock is not known to be synchronized (the kernel says so)";
    }
    return {
      lossSource,
      oneWayOmitted,
      dscpBack: this.#dscpBack,
      tlvsUntouched: this.#tlvsUntouched,
      tlvFlags: this.#tlvFlags,
    };
  }

  /** What an answered probe's reply says of the reflector's counts. */
  #count(sequence: number, fields: StampReplyFields): void {
    if (sequence > this.#lastSequence) this.#lastSequence = sequence;
    if (fields.reflectorSequence !== sequence) this.#stateful = true;
    this.#sequenceCounts.observe(sequence, fields.reflectorSequence + 1);
    const direct = fields.direct;
    if (direct !== null) {
      this.#receivedCounts.observe(sequence, direct.reflectorReceived);
      this.#sentCounts.observe(sequence, direct.reflectorTransmitted);
    }
  }

  /**
   * Loss there and back up to the last probe answered, `answered` being the probes answered
   * (all at or before it): the sender knows their sum exactly (sent − answered), and the
   * reflector's counts split it. [null, null] when they cannot: a stateless reflector with
   * loss, or counts that do not fit (a reflector that restarted, or counts for more than this
   * session: each part would have to be negative or exceed the sum).
   */
  #loss(answered: number): [number | null, number | null] {
    const last = this.#lastSequence;
    if (last < 0) return [null, null];
    const sent = last + 1 - this.#unsent.filter((sequence) => sequence <= last).length;
    const total = sent - answered;
    let reached: number;
    let replied: number;
    if (this.#receivedCounts.known) {
      reached = this.#receivedCounts.value - this.#duplicatedThere;
      replied = this.#sentCounts.value - this.#duplicatedThere;
    } else if (this.#stateful) {
      reached = this.#sequenceCounts.value - this.#duplicatedThere;
      replied = reached;
    } else {
      // A stateless reflector returns our sequence: loss is placed only when there was none.
      return total === 0 ? [0, 0] : [null, null];
    }
    const there = sent - reached;
    const back = replied - answered;
    if (there < 0 || back < 0 || there + back > total || replied > reached) return [null, null];
    return [there, back];
  }
}

/** A reflector's count of the session's packets as its replies say it, the largest seen (a
 * reply reordered on the way back says less than the one after it), less what it had counted
 * before our first reply's probe could have reached it (state kept from an earlier session). */
class ReflectorCount {
  #offset: number | null = null;
  #largest = 0;

  /** Whether any reply said it. */
  get known(): boolean {
    return this.#offset !== null;
  }

  /** The count for this session so far. */
  get value(): number {
    return this.#largest - (this.#offset ?? 0);
  }

  /** A reply to probe `sequence` saying the count is `count` (this probe included). */
  observe(sequence: number, count: number): void {
    this.#offset ??= Math.max(0, count - (sequence + 1));
    if (count > this.#largest) this.#largest = count;
  }
}

/** The reflector's count a reply says: Direct Measurement's received count, else its
 * sequence number (+1). */
function reflectorCount(fields: StampReplyFields): number {
  return fields.direct?.reflectorReceived ?? fields.reflectorSequence + 1;
}

/** The STAMP keys of a summary when the format is not STAMP (udp's). */
export const UNKNOWN_PATH: StampPathSummary = Object.freeze({
  lost_there: null,
  lost_back: null,
  ipdv_there_ms: new SignedStats().summary(),
  ipdv_back_ms: new SignedStats().summary(),
  one_way_there_ms: null,
  one_way_back_ms: null,
});
