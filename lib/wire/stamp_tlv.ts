/**
 * STAMP's TLVs (RFC 8972 §4), after the base packet: what a session-sender puts in, what a
 * session-reflector fills in and flags, and what the sender reads back. docs/stamp.md, "TLVs",
 * is their single source, with the choices the RFC leaves open.
 *
 * A reflector processes the trailing bytes as TLVs only when they are a well-formed sequence
 * of them (each TLV's length within the packet, no type 0); anything else, such as a
 * TWAMP-light sender's padding, comes back unchanged.
 *
 * @module
 */

import { addressBytes, formatIpv6 } from "./ip_address.ts";
import type { AnswerContext, StampReplyFields } from "./probe_format.ts";

/** TLV types (IANA "STAMP TLV Types"). */
export const TlvType = {
  EXTRA_PADDING: 1,
  LOCATION: 2,
  TIMESTAMP_INFORMATION: 3,
  CLASS_OF_SERVICE: 4,
  DIRECT_MEASUREMENT: 5,
  ACCESS_REPORT: 6,
  FOLLOW_UP_TELEMETRY: 7,
  HMAC: 8,
} as const;

/** TLV flags (RFC 8972 §4.1): Unrecognized, Malformed, Integrity failed. */
export const TlvFlag = { U: 0x80, M: 0x40, I: 0x20 } as const;

/** Location sub-TLV types (RFC 8972 §4.2, IANA "STAMP Sub-TLV Types"): a sender asks with a
 * generic type, the reflector answers with the specific one, in the same room. */
export const LocationSubTlv = {
  SOURCE_MAC: 1,
  SOURCE_EUI48: 2,
  SOURCE_EUI64: 3,
  DESTINATION_IP: 4,
  DESTINATION_IPV4: 5,
  DESTINATION_IPV6: 6,
  SOURCE_IP: 7,
  SOURCE_IPV4: 8,
  SOURCE_IPV6: 9,
} as const;

/** Synchronization sources (RFC 8972 §4.3, IANA "STAMP Synchronization Source"). */
export const SyncSource = { NTP: 1, PTP: 2, SSU_BITS: 3, GPS: 4, LOCAL: 5 } as const;

/** Timestamping methods (RFC 8972 §4.3, IANA "STAMP Timestamping Method"). */
export const TimestampMethod = { HARDWARE: 1, SOFTWARE: 2, CONTROL_PLANE: 3 } as const;

/** A TLV a session-sender can ask for (besides Extra Padding, which is the padding). */
export type SenderTlv =
  | "location"
  | "timestamp-info"
  | "class-of-service"
  | "direct-measurement"
  | "access-report";

/** Every TLV a sender can ask for, by its option name. */
export const SENDER_TLVS: readonly SenderTlv[] = Object.freeze([
  "location",
  "timestamp-info",
  "class-of-service",
  "direct-measurement",
  "access-report",
]);

const HEADER = 4;
const HMAC_VALUE = 16;

/** Bytes of each sender TLV's value. */
const VALUE_BYTES: Record<SenderTlv, number> = {
  // Ports, then a source and a destination IP address sub-TLV, each with 16 bytes of room.
  "location": 4 + 2 * (HEADER + 16),
  "timestamp-info": 4,
  "class-of-service": 4,
  "direct-measurement": 12,
  "access-report": 4,
};

const TYPE_OF: Record<SenderTlv, number> = {
  "location": TlvType.LOCATION,
  "timestamp-info": TlvType.TIMESTAMP_INFORMATION,
  "class-of-service": TlvType.CLASS_OF_SERVICE,
  "direct-measurement": TlvType.DIRECT_MEASUREMENT,
  "access-report": TlvType.ACCESS_REPORT,
};

/**
 * Bytes the TLVs of a test packet take: each of `tlvs`, Extra Padding with `padding` bytes of
 * value when there are any, and, in authenticated mode with any TLV, the HMAC TLV (last).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { senderTlvsBytes } from "./stamp_tlv.ts";
 * strictEqual(senderTlvsBytes([], false), 0);
 * strictEqual(senderTlvsBytes(["direct-measurement"], false, 10), 16 + 14);
 * strictEqual(senderTlvsBytes(["direct-measurement"], true), 16 + 20);
 * ```
 */
export function senderTlvsBytes(
  tlvs: readonly SenderTlv[],
  authenticated: boolean,
  padding = 0,
): number {
  let bytes = padding > 0 ? HEADER + padding : 0;
  for (const tlv of tlvs) bytes += HEADER + VALUE_BYTES[tlv];
  if (authenticated && bytes > 0) bytes += HEADER + HMAC_VALUE;
  return bytes;
}

/** What the sender's TLVs say (see {@linkcode writeSenderTlvs}). */
export interface SenderTlvValues {
  /** Bytes of Extra Padding's value; 0 for none. */
  padding: number;
  /** Authenticated mode: an HMAC TLV closes the TLVs (signed with the packet). */
  authenticated: boolean;
  /** Direct Measurement's S_TxC: test packets sent in the session, this one included. */
  transmitted: number;
  /** Class of Service's DSCP1: the DSCP the reply is asked to carry. */
  dscpRequested: number;
}

/**
 * Writes the sender's TLVs at `at` (the bytes must be zero): each TLV asked for, then Extra
 * Padding, then, authenticated, the HMAC TLV with its HMAC left for signing.
 */
export function writeSenderTlvs(
  bytes: Uint8Array,
  at: number,
  tlvs: readonly SenderTlv[],
  values: SenderTlvValues,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = at;
  // Every TLV leaves with U set (RFC 8972 §4): a reflector that understands it clears it, so
  // one that only copies the bytes back says so.
  const header = (type: number, length: number) => {
    bytes[offset] = TlvFlag.U;
    bytes[offset + 1] = type;
    view.setUint16(offset + 2, length);
    offset += HEADER;
  };
  for (const tlv of tlvs) {
    const length = VALUE_BYTES[tlv];
    header(TYPE_OF[tlv], length);
    const value = offset;
    if (tlv === "direct-measurement") view.setUint32(value, values.transmitted >>> 0);
    if (tlv === "class-of-service") bytes[value] = (values.dscpRequested & 0x3f) << 2;
    if (tlv === "access-report") {
      bytes[value] = 1 << 4; // ID 1 (3GPP), Return Code 1: the access network is available
      bytes[value + 1] = 1;
    }
    if (tlv === "location") {
      // Generic requests for both addresses: the reflector answers with what it saw.
      const first = value + 4;
      bytes[first] = TlvFlag.U;
      bytes[first + 1] = LocationSubTlv.SOURCE_IP;
      view.setUint16(first + 2, 16);
      const second = first + HEADER + 16;
      bytes[second] = TlvFlag.U;
      bytes[second + 1] = LocationSubTlv.DESTINATION_IP;
      view.setUint16(second + 2, 16);
    }
    offset += length;
  }
  if (values.padding > 0) {
    header(TlvType.EXTRA_PADDING, values.padding);
    offset += values.padding;
  }
  if (values.authenticated && offset > at) header(TlvType.HMAC, HMAC_VALUE);
}

/** What {@linkcode hmacTlvOffset} says of TLVs that are Extra Padding alone (or none). */
export const TLVS_PADDING_ONLY = -2;

/**
 * Where the HMAC TLV of a packet's TLVs starts: the last TLV but Extra Padding, well formed.
 * {@linkcode TLVS_PADDING_ONLY} when there are no TLVs but Extra Padding (nothing for it to
 * cover); -1 when there is none where it must be, or the bytes are no TLVs at all.
 */
export function hmacTlvOffset(bytes: Uint8Array, start: number): number {
  let found = -1;
  let misplaced = false;
  let padding = true;
  const wellFormed = walk(bytes, start, (offset, type, length) => {
    if (type === TlvType.EXTRA_PADDING) return;
    padding = false;
    if (found >= 0) misplaced = true; // a TLV after the HMAC TLV: it covers too little
    if (type === TlvType.HMAC && length === HMAC_VALUE && !misplaced) found = offset;
  });
  if (!wellFormed) return -1;
  if (padding) return TLVS_PADDING_ONLY;
  return misplaced ? -1 : found;
}

/**
 * Calls `each` for every TLV from `start` to the end of `bytes`, if they form a well-formed
 * sequence (see the module's doc); returns whether they did (no bytes after the base also do).
 */
function walk(
  bytes: Uint8Array,
  start: number,
  each: (offset: number, type: number, length: number) => void,
): boolean {
  const end = bytes.length;
  // A first pass checks the structure, so that nothing is flagged in bytes that are no TLVs.
  for (let at = start; at < end;) {
    if (end - at < HEADER || bytes[at + 1] === 0) return false;
    at += HEADER + ((bytes[at + 2] << 8) | bytes[at + 3]);
    if (at > end) return false;
  }
  for (let at = start; at < end;) {
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    each(at, bytes[at + 1], length);
    at += HEADER + length;
  }
  return true;
}

/**
 * The reflector's side (RFC 8972 §4): fills in, in place, the TLVs it knows (Location,
 * Timestamp Information, Class of Service, Direct Measurement; Extra Padding and Access
 * Report come back as they came), clears their U flag, leaves U set on those it does not know
 * and sets M on those of a wrong length. Returns the TOS byte the reply is asked to leave
 * with (Class of Service's DSCP1), or -1 for the socket's own. The HMAC TLV is the signer's:
 * it is recognized only in authenticated mode.
 */
export function reflectTlvs(
  bytes: Uint8Array,
  start: number,
  context: AnswerContext,
  mode: { synchronized: boolean; authenticated: boolean },
): number {
  let replyTos = -1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  walk(bytes, start, (at, type, length) => {
    const value = at + HEADER;
    bytes[at] = 0;
    const fits = (wanted: number) => {
      if (length === wanted) return true;
      bytes[at] = TlvFlag.M;
      return false;
    };
    switch (type) {
      case TlvType.EXTRA_PADDING:
        return;
      case TlvType.ACCESS_REPORT:
        fits(4);
        return;
      case TlvType.HMAC:
        // Without a key it cannot be checked: not understood here.
        if (!mode.authenticated) bytes[at] = TlvFlag.U;
        else fits(16);
        return;
      case TlvType.LOCATION:
        if (length < 4) {
          bytes[at] = TlvFlag.M;
          return;
        }
        view.setUint16(value, context.local.port);
        view.setUint16(value + 2, context.from.port);
        if (!fillLocation(bytes, view, value + 4, value + length, context)) bytes[at] = TlvFlag.M;
        return;
      case TlvType.TIMESTAMP_INFORMATION: {
        if (!fits(4)) return;
        // Synchronized is what the kernel's NTP discipline (adjtimex) says; by what (an NTP or
        // a PTP daemon) it does not, and the timestamps' format (--ptp) is no clue: NTP.
        const source = mode.synchronized ? SyncSource.NTP : SyncSource.LOCAL;
        // Both stamps are taken in software: the arrival by the kernel, the departure by us.
        bytes[value] = source;
        bytes[value + 1] = TimestampMethod.SOFTWARE;
        bytes[value + 2] = source;
        bytes[value + 3] = TimestampMethod.SOFTWARE;
        return;
      }
      case TlvType.CLASS_OF_SERVICE: {
        if (!fits(4)) return;
        if (context.tos < 0) {
          // How the request arrived is unknown here (no control messages): not filled in.
          bytes[at] = TlvFlag.U;
          return;
        }
        const dscpRequested = bytes[value] >> 2;
        const tos = context.tos;
        // DSCP1 stays; DSCP2 and ECN say how the request arrived; RP 0 when the reply
        // carries DSCP1, 1 when this socket cannot set it (the reply keeps the socket's).
        const rp = context.replyTosSettable ? 0 : 1;
        bytes[value] = (dscpRequested << 2) | (tos >> 6);
        bytes[value + 1] = (((tos >> 2) & 0x0f) << 4) | ((tos & 3) << 2) | rp;
        if (context.replyTosSettable) replyTos = dscpRequested << 2;
        return;
      }
      case TlvType.DIRECT_MEASUREMENT:
        if (!fits(12)) return;
        view.setUint32(value + 4, context.session.received >>> 0);
        // The session's replies so far (this one is counted once built: +1).
        view.setUint32(value + 8, (context.session.replied + 1) >>> 0);
        return;
      default:
        bytes[at] = TlvFlag.U;
    }
  });
  return replyTos;
}

/**
 * Answers a Location TLV's sub-TLVs with what the reflector saw: a generic Source or
 * Destination IP Address request (16 bytes of room) becomes the IPv4 or IPv6 one, the address
 * first; a MAC request is not answered (U: no link-layer address here). False if malformed.
 */
function fillLocation(
  bytes: Uint8Array,
  view: DataView,
  start: number,
  end: number,
  context: AnswerContext,
): boolean {
  for (let at = start; at < end;) {
    if (end - at < HEADER) return false;
    const length = view.getUint16(at + 2);
    if (at + HEADER + length > end) return false;
    const type = bytes[at + 1];
    const value = bytes.subarray(at + HEADER, at + HEADER + length);
    const wanted = type === LocationSubTlv.SOURCE_IP
      ? context.from.hostname
      : type === LocationSubTlv.DESTINATION_IP
      ? context.local.hostname
      : null;
    const address = wanted === null ? null : addressBytes(wanted);
    bytes[at] = 0;
    if (wanted === null) {
      bytes[at] = TlvFlag.U;
    } else if (length !== 16) {
      bytes[at] = TlvFlag.M;
      value.fill(0);
    } else if (address === null || address.every((byte) => byte === 0)) {
      // A wildcard the reflector is bound to: the address it arrived at is not known here.
      bytes[at] = TlvFlag.U;
    } else {
      const source = type === LocationSubTlv.SOURCE_IP;
      const v4 = address.length === 4;
      bytes[at + 1] = source
        ? (v4 ? LocationSubTlv.SOURCE_IPV4 : LocationSubTlv.SOURCE_IPV6)
        : (v4 ? LocationSubTlv.DESTINATION_IPV4 : LocationSubTlv.DESTINATION_IPV6);
      value.fill(0);
      value.set(address);
    }
    at += HEADER + length;
  }
  return true;
}

/**
 * The sender's side: reads what the reflector filled in and flagged into `fields` (its
 * `direct`, `classOfService`, `timestampInfo`, `location`, `tlvFlags`, `tlvsUntouched`). A TLV
 * still flagged U was not understood (or only copied back), and says nothing.
 */
export function readReplyTlvs(bytes: Uint8Array, start: number, fields: StampReplyFields): void {
  fields.direct = null;
  fields.classOfService = null;
  fields.timestampInfo = null;
  fields.location = null;
  const flags = { unrecognized: 0, malformed: 0, integrity: 0 };
  fields.tlvFlags = flags;
  let count = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  walk(bytes, start, (at, type, length) => {
    count++;
    const flag = bytes[at];
    if (flag & TlvFlag.U) flags.unrecognized++;
    if (flag & TlvFlag.M) flags.malformed++;
    if (flag & TlvFlag.I) flags.integrity++;
    if (flag !== 0) return;
    const value = at + HEADER;
    switch (type) {
      case TlvType.DIRECT_MEASUREMENT:
        if (length !== 12) return;
        fields.direct = {
          senderTransmitted: view.getUint32(value),
          reflectorReceived: view.getUint32(value + 4),
          reflectorTransmitted: view.getUint32(value + 8),
        };
        return;
      case TlvType.TIMESTAMP_INFORMATION:
        if (length !== 4) return;
        fields.timestampInfo = {
          syncSource: bytes[value],
          methodIn: bytes[value + 1],
          methodOut: bytes[value + 3],
        };
        return;
      case TlvType.CLASS_OF_SERVICE: {
        if (length !== 4) return;
        const word = view.getUint16(value);
        fields.classOfService = {
          dscpRequested: word >> 10,
          dscpReceived: (word >> 4) & 0x3f,
          ecnReceived: (word >> 2) & 3,
        };
        return;
      }
      case TlvType.LOCATION: {
        if (length < 4) return;
        let address: string | null = null;
        for (let sub = value + 4; sub + HEADER <= value + length;) {
          const subLength = view.getUint16(sub + 2);
          if (sub + HEADER + subLength > value + length) break;
          const subType = bytes[sub + 1];
          const room = bytes.subarray(sub + HEADER, sub + HEADER + subLength);
          if (bytes[sub] === 0 && subType === LocationSubTlv.SOURCE_IPV4 && subLength >= 4) {
            address = room.subarray(0, 4).join(".");
          }
          if (bytes[sub] === 0 && subType === LocationSubTlv.SOURCE_IPV6 && subLength === 16) {
            address = formatIpv6(room);
          }
          sub += HEADER + subLength;
        }
        fields.location = { address, port: view.getUint16(value + 2) };
        return;
      }
    }
  });
  fields.tlvsUntouched = count > 0 && flags.unrecognized === count;
}
