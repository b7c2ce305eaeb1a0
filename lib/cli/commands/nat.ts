/**
 * `udp nat`: what a NAT between this host and a `udp serve` does: the address and port the
 * reflector sees, and how long the NAT keeps an idle mapping.
 *
 * @module
 */

import { DEFAULT_PORT, formatAddress, parseHostPort, resolveHost } from "../../net/address.ts";
import {
  DEFAULT_NAT_MAX_S,
  DEFAULT_NAT_RESOLUTION_S,
  DEFAULT_NAT_WAIT_MS,
  MAX_NAT_S,
  nat,
  NAT_SPACING_MS,
  type NatEvent,
  type NatResult,
  natSummaryJson,
} from "../../probe/mod.ts";
import { defineCommand } from "../command.ts";
import { UsageError } from "../errors.ts";
import { loadKey } from "../keys.ts";
import { option, section } from "../options.ts";
import { printJson, printLine, toJson } from "../output.ts";
import { parseSeconds } from "../parse.ts";
import { familyOption, jsonOption, keyOptions } from "../shared_options.ts";
import { onInterrupt } from "../signals.ts";

const OPTIONS = {
  maxMs: option({
    long: "max",
    value: "SEC",
    help: `the longest silence to try (default ${DEFAULT_NAT_MAX_S}, at most ${MAX_NAT_S}:
the reflector holds a reply 10 minutes at most)`,
    parse: (text) => {
      const ms = parseSeconds("--max", text, false);
      if (ms < 1000 || ms > MAX_NAT_S * 1000) {
        throw new UsageError(`invalid --max '${text}': use 1 to ${MAX_NAT_S} seconds`);
      }
      return ms;
    },
  }),
  waitMs: option({
    long: "timeout",
    short: "W",
    value: "SEC",
    help: `how long to wait for a reply past its delay (default ${DEFAULT_NAT_WAIT_MS / 1000})`,
    parse: (text) => parseSeconds("timeout", text, false),
  }),
  resolutionMs: option({
    long: "resolution",
    value: "SEC",
    help: `how close the search closes in on the timeout (default ${DEFAULT_NAT_RESOLUTION_S})`,
    parse: (text) => {
      const ms = parseSeconds("--resolution", text, false);
      if (ms < 100 || ms > 60_000) {
        throw new UsageError(`invalid --resolution '${text}': use 0.1 to 60 seconds`);
      }
      return ms;
    },
  }),
  key: keyOptions(`authenticated mode: the reflector's key (hex or base64, in a file
only its owner may read)`),
  json: jsonOption("print NDJSON: start, mapping, one object per trial, summary"),
  family: familyOption(),
};

/** The `udp nat` command. */
export const natCommand = defineCommand({
  name: "nat",
  summary: "what a NAT to a udp serve does: the address it maps to, its idle timeout",
  help: [
    `Usage: udp nat HOST[:PORT] [--max SEC] [-W SEC] [--resolution SEC]
               [--key-file F | --key-env] [--json] [-4|-6]

Find out what a NAT (or stateful firewall) between this host and a udp serve does. A first
probe learns the address and port the reflector sees this host as (as STUN would report it), so
whether there is a NAT at all and whether it keeps the source port shows. Then it measures how
long the NAT keeps an idle mapping: each trial opens a fresh socket (a fresh source port, so a
fresh mapping), sends one request and asks the reflector for one reply after T seconds of
silence; the reply gets through only if the mapping outlived T. Trials run in parallel, in
rounds: first a ladder of T (1, 2, 3, 5, 8, 13, 20, 30, ... up to --max), then between the
longest T that got its reply and the shortest that did not, until they are --resolution apart.
A trial whose reply does not come is stopped early once a shorter one has failed (it would
fail too), and a failure counts as an expiry only when it happens twice with nothing longer
getting through (else it was loss), so the run takes a few times the timeout it finds, not
the sum of the delays. Requests leave ${NAT_SPACING_MS} ms apart (a --rate-limit of 10 a second
or more never refuses one) and never more than 16 wait at the reflector at once.

This measures a mapping that saw one packet out and none back: Linux's conntrack keeps such a
flow for net.netfilter.nf_conntrack_udp_timeout (30 s by default), and one that has seen
replies for longer (nf_conntrack_udp_timeout_stream, 120 s); home routers differ.`,
    section("Options:", OPTIONS, 20),
    `Exit status: 0 when the search ended (the timeout found, or at least --max, or loss left it
open: the summary says which), 1 when the reflector never answered or no delayed reply came
even after the shortest T, 2 on errors (options, a reflector that does not do delayed
replies). Ctrl-C prints the summary.`,
  ],
  options: OPTIONS,
  positionals: { min: 1, max: 1, usage: "HOST[:PORT]" },
  async run(options, [destination], context) {
    const { host, port } = parseHostPort(destination, DEFAULT_PORT);
    const target = await resolveHost(host, port, { family: options.family });
    const key = await loadKey(options.key);
    context.filesOpened();
    const maxS = (options.maxMs ?? DEFAULT_NAT_MAX_S * 1000) / 1000;
    const waitMs = options.waitMs ?? DEFAULT_NAT_WAIT_MS;
    const resolutionS = (options.resolutionMs ?? DEFAULT_NAT_RESOLUTION_S * 1000) / 1000;
    const targetText = formatAddress(target);
    if (options.json) {
      printJson({
        type: "start",
        target: targetText,
        host,
        max_s: maxS,
        wait_s: waitMs / 1000,
        resolution_s: resolutionS,
      });
    } else {
      const named = host === target.hostname ? targetText : `${host} (${targetText})`;
      printLine(
        `UDP NAT ${named}: one reply per fresh port after T s of silence, T up to ${maxS} s`,
      );
    }
    const controller = new AbortController();
    const removeInterrupt = onInterrupt(() => controller.abort());
    let result: NatResult;
    try {
      result = await nat({
        target,
        maxS,
        waitMs,
        resolutionS,
        key: key ?? undefined,
        signal: controller.signal,
        onEvent: options.json ? printJson : printEvent,
      });
    } finally {
      removeInterrupt();
    }
    if (result.error !== null) console.error(`udp nat: ${result.error}`);
    printLine(options.json ? toJson(natSummaryJson(result.summary)) : summaryText(result));
    return exitCode(result);
  },
});

function printEvent(event: NatEvent): void {
  switch (event.type) {
    case "mapping":
      printLine(
        event.local_address === null
          ? `this host is seen as ${event.mapped_address}`
          : `this host ${event.local_address} is seen as ${event.mapped_address}: ` +
            (!event.nat
              ? "no NAT"
              : `NAT, source port ${event.port_preserved ? "kept" : "changed"}`),
      );
      break;
    case "trial": {
      const seen = event.mapped_address === null ? "" : `, seen as ${event.mapped_address}`;
      printLine(
        event.replied
          ? `T=${event.delay_s} s: reply after ${event.elapsed_s!.toFixed(3)} s ` +
            `(port ${event.local_port}${seen})`
          : `T=${event.delay_s} s: no reply (port ${event.local_port})`,
      );
      break;
    }
    case "error":
      break;
  }
}

/**
 * The text summary.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { summaryText } from "./nat.ts";
 * const text = summaryText({
 *   stopReason: "done", error: null,
 *   summary: {
 *     type: "summary", target: "192.0.2.1:9999", local_address: "10.0.0.2:40000",
 *     mapped_address: "198.51.100.1:40000", nat: true, port_preserved: true,
 *     binding_timeout_s: 29, binding_outcome: "found", expired_s: 30, longest_replied_s: 29,
 *     max_s: 120, tried: [1, 2, 3, 5, 8, 13, 20, 29, 30, 45], trials: 20, replied: 16,
 *     lost: 0, cancelled: 4, time_ms: 92_000,
 *   },
 * });
 * strictEqual(text.split("\n")[3],
 *   "binding timeout: 29 s (a reply after 29 s of silence came; after 30 s none did, twice)");
 * strictEqual(text.split("\n")[4], "tried T = 1, 2, 3, 5, 8, 13, 20, 29, 30, 45 s: 20 trials, " +
 *   "16 replied, 4 expired, 0 lost; 4 more not waited for");
 * ```
 */
export function summaryText(result: NatResult): string {
  const s = result.summary;
  const lines = ["", `--- ${s.target} udp nat ---`];
  if (s.mapped_address === null) {
    lines.push(
      result.stopReason === "no-reply"
        ? "no reply: nothing answered (no udp serve there, or the path drops UDP)"
        : "no mapping learned",
    );
    return lines.join("\n");
  }
  const kept = s.port_preserved === null
    ? ""
    : s.port_preserved
    ? "; source port preserved"
    : "; source port not preserved";
  lines.push(
    `mapped address ${s.mapped_address} (` +
      (s.nat === null
        ? "this host's own address is not known here"
        : s.nat
        ? `NAT: this host is ${s.local_address}`
        : "no NAT: the reflector sees this host's own address and port") +
      `${kept})`,
    bindingLine(s),
  );
  if (s.tried.length > 0) {
    lines.push(
      `tried T = ${s.tried.join(", ")} s: ${s.trials} trials, ${s.replied} replied, ` +
        `${s.trials - s.replied - s.lost} expired, ${s.lost} lost; ` +
        `${s.cancelled} more not waited for`,
    );
  }
  return lines.join("\n");
}

function bindingLine(s: NatResult["summary"]): string {
  switch (s.binding_outcome) {
    case "found":
      return `binding timeout: ${s.binding_timeout_s} s (a reply after ${s.binding_timeout_s} s ` +
        `of silence came; after ${s.expired_s} s none did, twice)`;
    case "at-least-max":
      return `binding timeout: at least ${s.max_s} s (every delay tried got its reply; ` +
        `--max goes up to ${MAX_NAT_S})`;
    case "under-min":
      return `binding timeout: under ${s.expired_s} s (no delayed reply came: the mapping ` +
        "expires sooner, or the reflector refused them: see its refused counts)";
    case "inconclusive":
      return `binding timeout: not found (replies came after up to ${s.longest_replied_s} s; ` +
        "loss kept expiry from being told apart)";
    case "not-searched":
      return "binding timeout: not searched (the run ended first)";
  }
}

function exitCode(result: NatResult): number {
  if (result.stopReason === "protocol-error") return 2;
  if (result.stopReason === "no-reply") return 1;
  if (result.summary.binding_outcome === "under-min") return 1;
  return 0;
}
