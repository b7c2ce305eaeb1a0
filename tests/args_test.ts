import { strictEqual, throws } from "node:assert/strict";
import { closestMatch, editDistance, parseCommandArgs } from "../lib/cli/args.ts";
import { checkPayloadSize, parsePayloadSize, payloadSizeLimit } from "../lib/cli/parse.ts";
import { maxPayloadSize, TAG_SIZE } from "../lib/wire/protocol.ts";

Deno.test("editDistance() is Damerau–Levenshtein: a swap of neighbours costs 1", () => {
  strictEqual(editDistance("ping", "ping"), 0);
  strictEqual(editDistance("pnig", "ping"), 1);
  strictEqual(editDistance("cuont", "count"), 1);
  strictEqual(editDistance("lsiten", "listen"), 1);
  strictEqual(editDistance("serv", "serve"), 1);
  strictEqual(editDistance("prxoy", "proxy"), 1);
  strictEqual(editDistance("kitten", "sitting"), 3);
  strictEqual(editDistance("", "abc"), 3);
  strictEqual(editDistance("abc", ""), 3);
  strictEqual(editDistance("ca", "abc"), 3); // optimal string alignment: no edit of a swap
});

Deno.test("closestMatch() suggests only a clearly closest, close enough candidate", () => {
  const commands = ["serve", "ping", "send", "listen", "bench", "proxy", "keygen", "help"];
  strictEqual(closestMatch("pnig", commands), "ping");
  strictEqual(closestMatch("PING", commands), "ping");
  strictEqual(closestMatch("lisen", commands), "listen");
  strictEqual(closestMatch("keygne", commands), "keygen");
  strictEqual(closestMatch("bogus", commands), null);
  strictEqual(closestMatch("sen", commands), "send");
  // As close to two candidates: no guess.
  strictEqual(closestMatch("pend", ["send", "bend"]), null);
  strictEqual(closestMatch("pign", ["ping"]), "ping");
  // Distance 2 on a 4-letter word is more than a third of it.
  strictEqual(closestMatch("pxnx", ["ping"]), null);
  const options = ["--count", "--interval", "--timeout", "--deadline", "--size", "--help"];
  strictEqual(closestMatch("--cuont", options), "--count");
  strictEqual(closestMatch("--intervall", options), "--interval");
  strictEqual(closestMatch("--sise", options), "--size");
  strictEqual(closestMatch("--xyz", options), null);
  strictEqual(closestMatch("x", []), null);
});

Deno.test("parseCommandArgs(): an unknown option gets 'did you mean' when one is clearly meant", () => {
  const options = {
    count: { type: "string" as const, short: "c" },
    quiet: { type: "boolean" as const },
  };
  throws(
    () => parseCommandArgs("ping", ["--cuont", "3"], options),
    { message: "unknown option '--cuont': did you mean '--count'? (see 'udp ping --help')" },
  );
  throws(
    () => parseCommandArgs("ping", ["--hepl"], options),
    { message: "unknown option '--hepl': did you mean '--help'? (see 'udp ping --help')" },
  );
  throws(
    () => parseCommandArgs("ping", ["--nope"], options),
    { message: "unknown option '--nope' (see 'udp ping --help')" },
  );
  throws(
    () => parseCommandArgs("ping", ["-x"], options),
    { message: "unknown option '-x' (see 'udp ping --help')" },
  );
});

Deno.test("one size limit text, computed from maxPayloadSize(), wherever -s is refused", () => {
  const v4 = maxPayloadSize("ipv4");
  const v6 = maxPayloadSize("ipv6");
  const limit = `use 0 to ${v4.toLocaleString("en")} (IPv4) or ${v6.toLocaleString("en")} (IPv6)`;
  strictEqual(payloadSizeLimit(false), limit);
  strictEqual(
    payloadSizeLimit(true),
    `use 0 to ${(v4 - TAG_SIZE).toLocaleString("en")} (IPv4) or ${
      (v6 - TAG_SIZE).toLocaleString("en")
    } (IPv6) with a key`,
  );
  strictEqual(parsePayloadSize(String(v6)), v6);
  throws(() => parsePayloadSize(String(v6 + 1)), { message: `invalid size '${v6 + 1}': ${limit}` });
  throws(() => parsePayloadSize("-1"), { message: `invalid size '-1': ${limit}` });
  throws(() => parsePayloadSize("many"), { message: `invalid size 'many': ${limit}` });
  checkPayloadSize(v4, "ipv4", false);
  checkPayloadSize(v4 + 1, "ipv6", false);
  throws(() => checkPayloadSize(v4 + 1, "ipv4", false), {
    message: `invalid size '${v4 + 1}': ${limit}; the target is IPv4`,
  });
  throws(() => checkPayloadSize(v6 - TAG_SIZE + 1, "ipv6", true), {
    message: `invalid size '${v6 - TAG_SIZE + 1}': ${payloadSizeLimit(true)}; the target is IPv6`,
  });
});
