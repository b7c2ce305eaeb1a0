import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import {
  canonicalHost,
  familyOf,
  formatAddress,
  parseHostPort,
  parsePort,
  resolveHost,
  sameAddress,
  validateHost,
} from "../lib/net/address.ts";
import { NetError } from "../lib/net/mod.ts";

Deno.test("parseHostPort() accepts names, IPv4, bracketed and bare IPv6, with and without port", () => {
  assertEquals(parseHostPort("127.0.0.1", 9999), { host: "127.0.0.1", port: 9999 });
  assertEquals(parseHostPort("127.0.0.1:53", 9999), { host: "127.0.0.1", port: 53 });
  assertEquals(parseHostPort("example.net:7", 9999), { host: "example.net", port: 7 });
  assertEquals(parseHostPort("[::1]:8", 9999), { host: "::1", port: 8 });
  assertEquals(parseHostPort("[::1]", 9999), { host: "::1", port: 9999 });
  assertEquals(parseHostPort("::1", 9999), { host: "::1", port: 9999 });
  assertEquals(parseHostPort("fe80::1:2", 9999), { host: "fe80::1:2", port: 9999 });
});

Deno.test("parseHostPort() rejects bad hosts and ports with one line saying what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["", /missing host/],
    [":9999", /missing host/],
    ["127.0.0.1:", /invalid port ''/],
    ["127.0.0.1:0", /invalid port '0'/],
    ["127.0.0.1:65536", /invalid port '65536'/],
    ["127.0.0.1:http", /invalid port 'http'/],
    ["999.1.1.1", /invalid IPv4 address '999.1.1.1'/],
    ["1.2.3", /invalid IPv4 address/],
    ["[127.0.0.1]:5", /not an IPv6 address/],
    ["[::1", /write IPv6 as \[ADDRESS\]:PORT/],
    ["gg::1", /invalid IPv6 address/],
    ["bad host", /invalid host name/],
    ["-x", /invalid host name/],
  ];
  for (const [input, message] of cases) {
    throws(() => parseHostPort(input, 9999), (error: Error) => {
      assert(error instanceof NetError, `${input}: ${error}`);
      assert(message.test(error.message), `${input}: ${error.message}`);
      assert(!error.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("parsePort() admits 0 only when asked", () => {
  assertEquals(parsePort("0", true), 0);
  assertEquals(parsePort("65535", false), 65535);
  throws(() => parsePort("0", false), NetError);
  throws(() => parsePort("-1", true), NetError);
  throws(() => parsePort("1e3", true), NetError);
});

Deno.test("validateHost() accepts plausible names and literals", () => {
  for (const host of ["localhost", "a.b-c.example", "10.0.0.1", "::", "::ffff:1.2.3.4", "x_y"]) {
    validateHost(host);
  }
});

Deno.test("canonicalHost() unmaps IPv4-mapped addresses and compresses IPv6", () => {
  assertEquals(canonicalHost("::ffff:127.0.0.1"), "127.0.0.1");
  assertEquals(canonicalHost("::FFFF:7f00:1"), "127.0.0.1");
  assertEquals(canonicalHost("0:0:0:0:0:0:0:1"), "::1");
  assertEquals(canonicalHost("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assertEquals(canonicalHost("10.1.2.3"), "10.1.2.3");
});

Deno.test("formatAddress() brackets IPv6", () => {
  assertEquals(formatAddress({ hostname: "::1", port: 1 }), "[::1]:1");
  assertEquals(formatAddress({ hostname: "::ffff:10.0.0.1", port: 2 }), "10.0.0.1:2");
  assertEquals(formatAddress({ hostname: "127.0.0.1", port: 3 }), "127.0.0.1:3");
});

Deno.test("sameAddress() compares canonical forms and ports", () => {
  assert(
    sameAddress({ hostname: "::ffff:127.0.0.1", port: 5 }, { hostname: "127.0.0.1", port: 5 }),
  );
  assert(sameAddress({ hostname: "0::1", port: 5 }, { hostname: "::1", port: 5 }));
  assert(!sameAddress({ hostname: "127.0.0.1", port: 5 }, { hostname: "127.0.0.1", port: 6 }));
  assert(!sameAddress({ hostname: "127.0.0.1", port: 5 }, { hostname: "127.0.0.2", port: 5 }));
});

Deno.test("familyOf() tells literals from names", () => {
  assertEquals(familyOf("1.2.3.4"), "ipv4");
  assertEquals(familyOf("::1"), "ipv6");
  assertEquals(familyOf("localhost"), null);
});

Deno.test("resolveHost() resolves literals and localhost, and fails in one line", async () => {
  assertEquals(await resolveHost("127.0.0.1", 1), {
    hostname: "127.0.0.1",
    port: 1,
    family: "ipv4",
  });
  assertEquals(await resolveHost("0:0::1", 2), { hostname: "::1", port: 2, family: "ipv6" });
  const local = await resolveHost("localhost", 3);
  assert(local.hostname === "127.0.0.1" || local.hostname === "::1");
  await rejects(resolveHost("no-such-host.invalid", 1), (error: Error) => {
    assert(error instanceof NetError);
    assertEquals(error.message, "cannot resolve host 'no-such-host.invalid': no such host");
    return true;
  });
  await rejects(resolveHost("127.0.0.1", 1, { family: "ipv6" }), /ipv4 address but ipv6 was asked/);
});
