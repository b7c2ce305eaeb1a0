/**
 * What a datagram's IP header may be sent with, checked alike by both backends (one that
 * cannot set it still refuses what no backend could): a TTL (IPv6: hop limit) of 1 to 255 and
 * a TOS byte (IPv6: traffic class; the DSCP and the ECN bits) of 0 to 255.
 *
 * @module
 */

/** Throws a RangeError unless `ttl` is a TTL or hop limit a datagram can be sent with. */
export function checkTtl(ttl: number): void {
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) {
    throw new RangeError(`a TTL is from 1 to 255, not ${ttl}`);
  }
}

/** Throws a RangeError unless `tos` is a TOS byte or traffic class (DSCP << 2 | ECN). */
export function checkTos(tos: number): void {
  if (!Number.isInteger(tos) || tos < 0 || tos > 255) {
    throw new RangeError(`a TOS byte is from 0 to 255, not ${tos}`);
  }
}
