/**
 * `udp nat` through a real NAT, with the kernel as the oracle (issue 15): a line of client,
 * router and server in network namespaces (tests/netns.ts), the router masquerading the
 * client's network behind its own address on the server's side, and its conntrack keeping a
 * UDP flow that saw no reply for `net.netfilter.nf_conntrack_udp_timeout` = 7 s. Each trial
 * of `udp nat` is such a flow (a fresh socket, one request): the mapped address must be the
 * router's, the source port kept (masquerade keeps a free one), and the binding timeout within
 * one second of 7. The router's nftables counters say how many delayed replies it translated
 * back to the client and how many found their mapping gone (delivered to the router itself):
 * they must equal the trials that got their reply and those that did not.
 *
 * Needs root, `ip` and `nft` (tests/netns.ts says why it skips otherwise). IPv4: the NAT of
 * this kind is IPv4's.
 */

import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { type Json, type LineTopology, netnsSkipReason, withLine } from "./netns.ts";

const SKIP = netnsSkipReason();
if (SKIP !== null) console.log(`skipping the NAT test: ${SKIP}`);

const PORT = 9999;
const TIMEOUT_S = 7;
const TABLE = "natprobe";

/** The router's NAT and its counters of the replies coming back from the server. */
function ruleset(line: LineTopology): string {
  const server = line.address(line.server, "ipv4");
  const outside = line.links[1].left.device; // the router's link towards the server
  const replies = `ip saddr ${server} udp sport ${PORT}`;
  return `table ip ${TABLE} {
  counter requests {}
  counter translated {}
  counter expired {}
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${outside}" ip daddr ${server} udp dport ${PORT} counter name requests masquerade
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ${replies} counter name translated
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ${replies} counter name expired
  }
}
`;
}

Deno.test({
  name: "udp nat through a masquerading router whose conntrack keeps unreplied UDP 7 s",
  ignore: SKIP !== null,
  fn: () =>
    withLine({ routers: 1 }, async (line) => {
      const [router] = line.routers;
      await router.loadNft(ruleset(line));
      // After the NAT table: conntrack is in use in the namespace, its sysctls are there.
      await router.sysctl("net.netfilter.nf_conntrack_udp_timeout", TIMEOUT_S);
      strictEqual(
        (await router.exec("sysctl", ["-n", "net.netfilter.nf_conntrack_udp_timeout"])).trim(),
        String(TIMEOUT_S),
      );
      const host = line.address(line.server, "ipv4");
      const serve = line.server.spawnUdp("serve", [
        ...["serve", "--host", host, "--port", String(PORT), "--json"],
      ]);
      await serve.waitFor("listening", (l) => l.type === "listening", 20_000);
      const probe = line.client.spawnUdp("nat", [
        ...["nat", line.serverTarget("ipv4", PORT), "--json", "--max", "12", "-W", "1"],
      ]);
      const { code, stderr } = await probe.exited(120_000);
      strictEqual(code, 0, stderr);
      const summary: Json = probe.lines.at(-1)!;
      const what = JSON.stringify(summary);
      const router_ = line.address(router, "ipv4", "server");
      const client = line.address(line.client, "ipv4");
      strictEqual(summary.type, "summary", what);
      // The reflector saw the router's address, this host's own port (masquerade kept it).
      const mapped = summary.mapped_address as string;
      assert(mapped.startsWith(`${router_}:`), what);
      strictEqual(summary.local_address, `${client}:${mapped.split(":")[1]}`, what);
      assertEquals([summary.nat, summary.port_preserved], [true, true], what);
      strictEqual(summary.binding_outcome, "found", what);
      assert(Math.abs(summary.binding_timeout_s - TIMEOUT_S) <= 1, what);
      strictEqual(summary.expired_s, summary.binding_timeout_s + 1, what);
      // Every trial's mapping was the router's too.
      const trials = probe.lines.filter((l) => l.type === "trial");
      strictEqual(trials.length, summary.trials);
      for (const trial of trials.filter((t) => t.replied)) {
        assert(trial.mapped_address.startsWith(`${router_}:`), JSON.stringify(trial));
        assert(trial.delay_s <= summary.binding_timeout_s, JSON.stringify(trial));
      }
      for (const trial of trials.filter((t) => !t.replied)) {
        assert(trial.delay_s >= summary.expired_s, JSON.stringify(trial));
      }
      strictEqual(summary.lost, 0, what);

      const stopped = await serve.stop();
      strictEqual(stopped.code, 0, stopped.stderr);
      const stats = serve.lines.find((l) => l.type === "stats")!;
      // Every request that left (the first probe, the trials, those not waited for) reached
      // the reflector through the NAT, and it answered each once.
      const counters = await router.counters("ip", TABLE);
      const sent = 1 + summary.trials + summary.cancelled;
      strictEqual(counters.get("requests"), sent, JSON.stringify([...counters]));
      strictEqual(stats.received, sent, JSON.stringify(stats));
      assertEquals(stats.delayed, {
        held: summary.trials + summary.cancelled,
        sent: summary.trials + summary.cancelled,
        failed: 0,
        dropped: 0,
        pending: 0,
      });
      // The kernel's word: the replies it translated back are the ones that came, the rest
      // found their mapping expired (the trials that failed, and those not waited for).
      strictEqual(counters.get("translated"), 1 + summary.replied, JSON.stringify([...counters]));
      strictEqual(
        counters.get("expired"),
        summary.trials - summary.replied + summary.cancelled,
        JSON.stringify([...counters]),
      );
    }),
});
