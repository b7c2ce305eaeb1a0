/**
 * `--metrics HOST:PORT`, shared by `udp serve` and `udp monitor`: where the Prometheus
 * endpoint listens, and starting it with the command's families plus `udp_build_info`.
 *
 * @module
 */

import config from "../../deno.json" with { type: "json" };
import { type HostPort, parseHostPort, resolveHost } from "../net/address.ts";
import { formatAddress } from "../net/mod.ts";
import { type MetricFamily, MetricsServer } from "../metrics/mod.ts";
import { UsageError } from "./errors.ts";
import { type Option, option } from "./options.ts";

/** No port is assumed: every daemon on a host needs its own, and the operator picks it. */
const NO_PORT = -1;

/**
 * `--metrics HOST:PORT`: serve Prometheus metrics there (`HOST:0` picks a free port).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
 * import { parseMetricsAddress } from "./metrics_endpoint.ts";
 * assertEquals(parseMetricsAddress("127.0.0.1:9861"), { host: "127.0.0.1", port: 9861 });
 * assertEquals(parseMetricsAddress("[::1]:0"), { host: "::1", port: 0 });
 * throws(() => parseMetricsAddress("127.0.0.1"), /--metrics needs a port/);
 * ```
 */
export function parseMetricsAddress(text: string): HostPort {
  const parsed = parseHostPort(text, NO_PORT, true);
  if (parsed.port === NO_PORT) {
    throw new UsageError(
      `--metrics needs a port: write HOST:PORT, e.g. 127.0.0.1:9861 (0.0.0.0:9861 for Prometheus on another host)`,
    );
  }
  return parsed;
}

/** The `--metrics` option, with the command's help. */
export function metricsOption(help: string): Option<HostPort | undefined> {
  return option({ long: "metrics", value: "HOST:PORT", help, parse: parseMetricsAddress });
}

/** `udp_build_info`: which udp a series came from. */
export function buildInfo(): MetricFamily {
  return {
    type: "gauge",
    name: "udp_build_info",
    help: "Always 1; its version label says which udp build answers.",
    samples: [{ labels: { version: config.version }, value: 1 }],
  };
}

/**
 * Starts the endpoint at `where` serving `collect()`'s families and `udp_build_info`; a host
 * that is not this machine's, or a port in use, is a one-line usage error.
 */
export async function startMetricsEndpoint(
  where: HostPort,
  collect: () => readonly MetricFamily[],
): Promise<MetricsServer> {
  const address = await resolveHost(where.host, where.port);
  const info = buildInfo();
  try {
    return await MetricsServer.start({
      hostname: address.hostname,
      port: address.port,
      collect: () => [...collect(), info],
    });
  } catch (error) {
    const where = `cannot serve metrics on ${formatAddress(address)}`;
    const why = reason(error);
    throw new UsageError(why.startsWith(where) ? why : `${where}: ${why}`);
  }
}

function reason(error: unknown): string {
  if (error instanceof Deno.errors.AddrInUse) {
    return "the port is already in use; choose another, or port 0 for any free port";
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return "not an address of this machine; use 127.0.0.1, ::1, 0.0.0.0, :: or one of its addresses";
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied; ports below 1024 need privileges: use a port above 1023";
  }
  return error instanceof Error ? error.message : String(error);
}

/** The endpoint's URL, for the "Listening" lines. */
export function metricsUrl(server: MetricsServer): string {
  return `http://${formatAddress(server.address)}/metrics`;
}
