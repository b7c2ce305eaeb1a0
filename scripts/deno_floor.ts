/**
 * The fastest a Deno program can do each job, as floors for `deno task bench`: a bare echo
 * loop, a bare ping-pong client and a bare sender, with nothing of udp's protocol, accounting
 * or safety. Two kinds: with `Deno.listenDatagram` (one async op per datagram each way), and,
 * with `--native`, with the C library's blocking `recvfrom()`/`sendto()` through FFI and
 * nothing else on the thread (no event loop turns, no timers), the floor for udp's native
 * backend.
 *
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts echo
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts pingpong PORT COUNT [INTERVAL_MS]
 *   deno run --unstable-net --allow-net scripts/deno_floor.ts flood PORT SECONDS
 *   deno run --allow-ffi scripts/deno_floor.ts --native echo | pingpong … (no flood)
 *   deno run --allow-ffi scripts/deno_floor.ts --native hold COUNT
 *   deno run --allow-ffi scripts/deno_floor.ts --native cold
 *
 * `hold` echoes COUNT + 1 datagrams (the first only turns the kernel's stamps on), then prints the p50 and p99 of its hold time: from each
 * one's arrival by the kernel's stamp (`SIOCGSTAMPNS`) to just before its `sendto()`, what
 * udp serve's hold time counts (its wake-up included); the floor of udp serve's at a low rate.
 * `cold` times 200 reads of objects scattered over a 16 MB heap, warm (straight after the same
 * reads) and after the thread slept 1, 10 and 1000 ms (`usleep()`): what any code that touches
 * much memory pays on waking, on this machine (medians of 9, in µs).
 *
 * @module
 */

const native = Deno.args[0] === "--native";
const [mode, portText, amountText, intervalText] = Deno.args.slice(native ? 1 : 0);
const buffer = new Uint8Array(65536);
const datagram = new Uint8Array(64);

function report(samples: Float64Array): void {
  samples.sort();
  const at = (q: number) => samples[Math.ceil(q * samples.length) - 1];
  console.log(JSON.stringify({ p50_ms: at(0.5), p99_ms: at(0.99) }));
}

if (native) {
  const libc = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "i32" },
    sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
    ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
    clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    usleep: { parameters: ["u32"], result: "i32" },
  });
  const c = libc.symbols;
  const sockaddr = (port: number) => {
    const bytes = new Uint8Array(16); // sockaddr_in: AF_INET, port, 127.0.0.1
    new DataView(bytes.buffer).setUint16(0, 2, true);
    new DataView(bytes.buffer).setUint16(2, port, false);
    bytes.set([127, 0, 0, 1], 4);
    return bytes;
  };
  const fd = c.socket(2, 2, 0);
  c.bind(fd, sockaddr(0), 16);
  const from = new Uint8Array(16);
  const fromLength = new Uint8Array(new Uint32Array([16]).buffer);
  if (mode === "cold") {
    const objects = Array.from({ length: 200_000 }, (_, i) => ({ value: i, text: String(i) }));
    const read = () => {
      const start = performance.now();
      let sum = 0;
      for (let i = 0; i < 200; i++) sum += objects[(i * 7919) % objects.length].value;
      return [performance.now() - start, sum];
    };
    for (let i = 0; i < 100; i++) read(); // compiled
    const median = (pauseMs: number) => {
      const samples = Array.from({ length: 9 }, () => {
        read();
        if (pauseMs > 0) c.usleep(pauseMs * 1000);
        return read()[0] * 1000;
      }).sort((a, b) => a - b);
      return samples[4];
    };
    const figures = { warm_us: median(0), after_1ms_us: median(1), after_10ms_us: median(10) };
    console.log(JSON.stringify({ ...figures, after_1000ms_us: median(1000) }));
    Deno.exit(0);
  } else if (mode === "echo") {
    c.getsockname(fd, from, fromLength);
    console.log(new DataView(from.buffer).getUint16(2, false));
    while (true) {
      const received = c.recvfrom(fd, buffer, 65536n, 0, from, fromLength);
      if (received >= 0) c.sendto(fd, buffer, BigInt(received), 0, from, 16);
    }
  } else if (mode === "hold") {
    c.getsockname(fd, from, fromLength);
    console.log(new DataView(from.buffer).getUint16(2, false));
    const SIOCGSTAMPNS = 0x8907n; // the last datagram's arrival, a struct timespec (realtime)
    const arrived = new BigInt64Array(2);
    const now = new BigInt64Array(2);
    const arrivedBytes = new Uint8Array(arrived.buffer);
    const nowBytes = new Uint8Array(now.buffer);
    const samples = new Float64Array(Number(portText));
    for (let i = -1; i < samples.length;) {
      const received = c.recvfrom(fd, buffer, 65536n, 0, from, fromLength);
      if (received < 0) continue;
      c.ioctl(fd, SIOCGSTAMPNS, arrivedBytes);
      c.clock_gettime(0, nowBytes);
      c.sendto(fd, buffer, BigInt(received), 0, from, 16);
      const held = Number(now[0] - arrived[0]) * 1e3 + Number(now[1] - arrived[1]) / 1e6;
      if (i >= 0) samples[i] = held;
      i++;
    }
    report(samples);
    Deno.exit(0);
  } else if (mode === "pingpong") {
    const to = sockaddr(Number(portText));
    const samples = new Float64Array(Number(amountText));
    const intervalMs = Number(intervalText ?? 0);
    for (let i = 0; i < samples.length; i++) {
      if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
      const start = performance.now();
      c.sendto(fd, datagram, 64n, 0, to, 16);
      c.recvfrom(fd, buffer, 65536n, 0, from, fromLength);
      samples[i] = performance.now() - start;
    }
    report(samples);
    Deno.exit(0);
  }
  console.error(
    "usage: deno_floor.ts --native echo | hold COUNT | cold | pingpong PORT COUNT [INTERVAL_MS]",
  );
  Deno.exit(2);
}

const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
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
  report(samples);
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
