/**
 * `udp mtu`: the largest datagram that makes the round trip to a reflector with don't-fragment
 * set, by ICMP "fragmentation needed" where the path sends it and by search where it is
 * filtered (a black hole).
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, parseHostPort, resolveHost } from "../../net/address.ts";
import { defaultBackend } from "../../net/mod.ts";
import {
  findPathMtu,
  HEADER_BYTES,
  MAX_MTU,
  type MtuProbeEvent,
  type MtuSummary,
  TRIES_PER_SIZE,
} from "../../probe/mtu.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { formatRtt } from "../format.ts";
import { option, section } from "../options.ts";
import { printJson, printLine, toJson } from "../output.ts";
import { parseSeconds, parseWholeNumber } from "../parse.ts";
import { familyOption, jsonOption } from "../shared_options.ts";
import { onInterrupt } from "../signals.ts";
import {
  checkSourceFamily,
  pathOptions,
  requireSocketOptionSupport,
  senderFormat,
  STAMP_PORT,
  stampFlag,
} from "../stamp_options.ts";

const DEFAULT_TIMEOUT_MS = 1000;

const sizeOption = (long: string, help: string) =>
  option({
    long,
    value: "BYTES",
    help,
    parse: (text) => parseWholeNumber(`--${long}`, text, 68, MAX_MTU),
  });

const OPTIONS = {
  stamp: stampFlag(`probe a STAMP or TWAMP-light reflector (default port ${STAMP_PORT}) with
test packets padded by an Extra Padding TLV`),
  timeoutMs: option({
    long: "timeout",
    short: "W",
    value: "SEC",
    help: `time to wait for each probe's reply (default ${DEFAULT_TIMEOUT_MS / 1000}); a size that
gets neither a reply nor an ICMP error ${TRIES_PER_SIZE} times does not get through`,
    parse: (text) => parseSeconds("timeout", text, false),
  }),
  minSize: sizeOption(
    "min",
    "the size tried first, which the target must answer (default 576; IPv6 1280)",
  ),
  maxSize: sizeOption("max", `the largest size to try (default ${MAX_MTU})`),
  path: pathOptions(),
  json: jsonOption("print NDJSON: start, one object per probe, summary"),
  family: familyOption(),
};

/** The `udp mtu` command. */
export const mtuCommand = defineCommand({
  name: "mtu",
  summary: "the path MTU to a reflector: the largest datagram that gets there and back",
  help: [
    `Usage: udp mtu HOST[:PORT] [--stamp] [-W SEC] [--min BYTES] [--max BYTES] [-I ADDRESS]
               [--interface NAME] [--json] [-4|-6]

Find the largest IP packet (and UDP payload) that makes the round trip to a udp serve (or, with
--stamp, a STAMP reflector) with don't-fragment set. A router that cannot forward a probe says
so with ICMP "fragmentation needed" (ICMPv6 "packet too big") and its next-hop MTU, and the
search goes there at once; where those are filtered (a black hole), bisection between a size
that came back and one that vanished finds it, and the summary names the black hole. Sizes are
whole IP packets (the MTU), headers included; a reply is never longer than its probe.`,
    section("Options:", OPTIONS, 21),
    "Exit status: 0 when a size came back, 1 when none did (the target does not answer), 2 on errors.",
  ],
  options: OPTIONS,
  positionals: { min: 1, max: 1, usage: "HOST[:PORT]" },
  async run(options, [destination], context) {
    const { host, port } = parseHostPort(destination, options.stamp ? STAMP_PORT : DEFAULT_PORT);
    const target = await resolveHost(host, port, { family: options.family });
    context.filesOpened();
    if (options.path.dontFragment !== undefined) {
      throw new UsageError("-M goes without udp mtu: its probes always set don't-fragment");
    }
    // Don't-fragment and the error queue are the native sockets' own.
    if (defaultBackend() !== "native") {
      throw new UsageError(
        "udp mtu needs udp's native sockets (Linux x86-64, glibc): don't-fragment and the " +
          "ICMP errors that name an MTU are theirs",
      );
    }
    requireSocketOptionSupport({ path: options.path });
    checkSourceFamily(options.path.source, target);
    const least = options.minSize ?? (target.family === "ipv6" ? 1280 : 576);
    const most = options.maxSize ?? MAX_MTU;
    const header = HEADER_BYTES[target.family];
    const format = senderFormat({
      stamp: options.stamp,
      ptp: false,
      tlvs: [],
      authenticated: false,
      tos: undefined,
    });
    const smallest = header + format.overhead(false);
    if (least < smallest || least > most) {
      throw new UsageError(
        `invalid --min ${least}: it must be at least ${smallest} (the headers and the probe) and ` +
          `at most --max (${most})`,
      );
    }
    const targetText = formatAddress(target);
    if (options.json) {
      printJson({
        type: "start",
        target: targetText,
        host,
        family: target.family,
        min: least,
        max: most,
      });
    } else {
      printLine(
        `UDP MTU ${host === target.hostname ? targetText : `${host} (${targetText})`}: sizes ` +
          `${least} to ${most} bytes (IP packets; the UDP payload is ${header} less)`,
      );
    }
    const controller = new AbortController();
    const removeInterrupt = onInterrupt(() => controller.abort());
    try {
      const summary = await findPathMtu({
        target,
        format,
        minSize: least,
        maxSize: most,
        timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        source: options.path.source,
        device: options.path.device,
        signal: controller.signal,
        onProbe: (event) => options.json ? printJson(event) : printLine(probeLine(event)),
      });
      printLine(options.json ? toJson(summary) : summaryText(summary));
      return summary.path_mtu === null ? 1 : 0;
    } finally {
      removeInterrupt();
    }
  },
});

/** One probe, as the text output prints it. */
function probeLine(event: MtuProbeEvent): string {
  const size = `${String(event.size).padStart(5)} bytes:`;
  switch (event.result) {
    case "reply":
      return `${size} reply, time=${formatRtt(event.rtt_ms ?? 0)} ms`;
    case "frag_needed":
      return `${size} fragmentation needed (mtu ${event.mtu ?? "?"}) from ${event.from ?? "?"}`;
    case "too_big_locally":
      return `${size} too big for this host's interface (mtu ${event.mtu ?? "?"})`;
    case "timeout":
      return `${size} no reply, no ICMP error`;
    case "icmp_error":
      return `${size} ${(event.icmp_kind ?? "other").replaceAll("_", " ")} from ${
        event.from ?? "?"
      }`;
  }
}

/**
 * The last lines: the path MTU and how it was found.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { summaryText } from "./mtu.ts";
 * const text = summaryText({
 *   type: "summary", target: "10.0.2.2:9999", path_mtu: 1280, max_payload: 1252,
 *   found_by: "search", black_hole: true, icmp_mtu: null, icmp_from: null, local_mtu: 1500,
 *   probes: 14, icmp_error: null, icmp_error_from: null,
 * });
 * strictEqual(text.split("\n")[2].startsWith("path MTU 1280 bytes"), true);
 * ```
 */
export function summaryText(s: MtuSummary): string {
  const lines = ["", `--- ${s.target} udp mtu: ${s.probes} probes ---`];
  if (s.path_mtu === null) {
    lines.push(
      s.icmp_error === null
        ? "no size came back: the target does not answer (is udp serve running there?)"
        : `no size came back: ${s.icmp_error.replaceAll("_", " ")} from ` +
          `${s.icmp_error_from ?? "an unknown address"}` +
          (s.icmp_error === "port_unreachable" ? " (nothing listens on that port)" : ""),
    );
    return lines.join("\n");
  }
  lines.push(`path MTU ${s.path_mtu} bytes, UDP payload up to ${s.max_payload} bytes`);
  switch (s.found_by) {
    case "icmp":
      lines.push(
        `told by ICMP "fragmentation needed" from ${s.icmp_from ?? "a router"} ` +
          `(mtu ${s.icmp_mtu}), and a probe of that size came back`,
      );
      break;
    case "search":
      lines.push(
        s.black_hole
          ? "found by search: larger probes got neither a reply nor an ICMP error: a black " +
            "hole (something on the path drops them and filters the ICMP that should say so)"
          : "found by search",
      );
      break;
    case "local":
      lines.push(`this host's interface is the narrowest link (mtu ${s.local_mtu})`);
      break;
    case "max":
      lines.push("the largest size asked for (--max) came back: the path may carry more");
      break;
  }
  return lines.join("\n");
}
