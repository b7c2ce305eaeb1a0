/**
 * The fastest a Deno program can do each job with `Deno.listenDatagram`, as a floor for
 * `deno task bench`: a bare echo loop, a bare ping-pong client and a bare sender, with nothing
 * of udp's protocol, accounting or safety. If udp is close to these, the remaining gap to
 * C tools is Deno's datagram API (one async op per datagram each way, no batching).
 *
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts echo
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts pingpong PORT COUNT [INTERVAL_MS]
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts flood PORT SECONDS
 *
 * @module
 */

const [mode, portText, amountText, intervalText] = Deno.args;
const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const buffer = new Uint8Array(65536);
const datagram = new Uint8Array(64);

if (mode === "echo") {
  console.log((conn.addr as Deno.NetAddr).port);
  while (true) {
    const [data, from] = await conn.receive(buffer);
    await conn.send(data, from);
  }
} else if (mode === "pingpong") {
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: Number(portText) };
  const samples = new Float64Array(Number(amountText));
  const intervalMs = Number(intervalText ?? 0);
  for (let i = 0; i < samples.length; i++) {
    if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const start = performance.now();
    await conn.send(datagram, to);
    await conn.receive(buffer);
    samples[i] = performance.now() - start;
  }
  samples.sort();
  const at = (q: number) => samples[Math.ceil(q * samples.length) - 1];
  console.log(JSON.stringify({ p50_ms: at(0.5), p99_ms: at(0.99) }));
  conn.close();
} else if (mode === "flood") {
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: Number(portText) };
  const end = performance.now() + Number(amountText) * 1000;
  let sent = 0;
  const start = performance.now();
  while (performance.now() < end) {
    await conn.send(datagram, to);
    sent++;
  }
  console.log(JSON.stringify({ pps: sent / ((performance.now() - start) / 1000) }));
  conn.close();
} else {
  console.error("usage: deno_floor.ts echo | pingpong PORT COUNT | flood PORT SECONDS");
  Deno.exit(2);
}
