/**
 * What `deno task bench` records about the machine, so that runs can be told apart: kernel,
 * processor, cores, virtualization, load average at the start and end, and the versions of
 * every tool it measures or builds with.
 *
 * @module
 */

import { udpCommand } from "../flags.ts";

/** The machine a run was on; null where it could not be found out. */
export interface MachineFacts {
  os: string;
  arch: string;
  /** `uname -r`. */
  kernel: string | null;
  /** /proc/cpuinfo's first "model name". */
  cpu_model: string | null;
  cores: number | null;
  /** systemd-detect-virt, else the DMI product name, else the cpuinfo "hypervisor" flag. */
  virtualization: string | null;
  /** /proc/loadavg's 1, 5 and 15 minute averages at the run's start and end. */
  load_start: number[] | null;
  load_end: number[] | null;
  /**
   * The share of the CPUs' time over the run that the hypervisor gave to others ("steal" in
   * /proc/stat), in %: a noisy neighbour shows here.
   */
  steal_percent: number | null;
  versions: Record<string, string | null>;
}

async function text(command: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const out = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return { ok: output.success, out: out.trim() };
  } catch {
    return { ok: false, out: "" };
  }
}

async function readFile(path: string): Promise<string | null> {
  const { ok, out } = await text("cat", [path]);
  return ok ? out : null;
}

/** The first line `command args` prints, or null if it is not there or fails. */
async function firstLine(command: string, args: string[]): Promise<string | null> {
  const { ok, out } = await text(command, args);
  return ok && out !== "" ? out.split("\n")[0] : null;
}

/** The 1, 5 and 15 minute load averages now. */
export async function loadAverage(): Promise<number[] | null> {
  const loadavg = await readFile("/proc/loadavg");
  return loadavg === null ? null : loadavg.split(" ").slice(0, 3).map(Number);
}

async function virtualization(cpuinfo: string | null): Promise<string | null> {
  const flag = cpuinfo !== null && /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  // It prints "none" (and exits 1) when there is none: an answer too.
  const vm = (await text("systemd-detect-virt", ["--vm"])).out.split("\n")[0];
  const container = (await text("systemd-detect-virt", ["--container"])).out.split("\n")[0];
  if (vm !== "" || container !== "") {
    const seen = vm === "none" && flag ? "none said, but the cpuinfo hypervisor flag is set" : vm;
    return `VM: ${seen || "unknown"}, container: ${container || "unknown"} (systemd-detect-virt)`;
  }
  const product = await readFile("/sys/class/dmi/id/product_name");
  if (product) return `${product} (DMI product name)`;
  if (cpuinfo === null) return null;
  return flag
    ? "a hypervisor (the cpuinfo flag; its kind unknown)"
    : "none seen (no cpuinfo hypervisor flag)";
}

/** Every tool's version line. */
async function versions(): Promise<Record<string, string | null>> {
  const [udpCmd, udpArgs] = udpCommand(["--version"]);
  const udpText = await text(udpCmd, udpArgs);
  return {
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    udp: udpText.ok ? udpText.out.split("\n").join("; ") : null,
    node: await firstLine("node", ["--version"]),
    sockperf: await firstLine("sockperf", ["--version"]),
    irtt: await firstLine("irtt", ["version"]),
    iperf3: await firstLine("iperf3", ["--version"]),
    gcc: await firstLine("gcc", ["--version"]),
    python3: await firstLine("python3", ["--version"]),
  };
}

/** /proc/stat's first line: [steal, total] jiffies of all CPUs so far. */
async function cpuTimes(): Promise<[number, number] | null> {
  const stat = await readFile("/proc/stat");
  const fields = stat?.split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
  if (!fields || fields.length < 8) return null;
  return [fields[7], fields.reduce((a, b) => a + b, 0)];
}

let startTimes: [number, number] | null = null;

/** The facts at the start of a run (`load_end` is filled in by {@link finishFacts}). */
export async function machineFacts(): Promise<MachineFacts> {
  const cpuinfo = await readFile("/proc/cpuinfo");
  startTimes = await cpuTimes();
  const model = cpuinfo === null ? null : /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? null;
  return {
    os: Deno.build.os,
    arch: Deno.build.arch,
    kernel: await firstLine("uname", ["-r"]),
    cpu_model: model?.trim() ?? null,
    cores: navigator.hardwareConcurrency ?? null,
    virtualization: await virtualization(cpuinfo),
    load_start: await loadAverage(),
    load_end: null,
    steal_percent: null,
    versions: await versions(),
  };
}

/** Records the load average at the end of the run. */
export async function finishFacts(facts: MachineFacts): Promise<void> {
  facts.load_end = await loadAverage();
  const end = await cpuTimes();
  if (startTimes !== null && end !== null && end[1] > startTimes[1]) {
    facts.steal_percent = (end[0] - startTimes[0]) / (end[1] - startTimes[1]) * 100;
  }
}

const known = (value: unknown) => value === null || value === undefined ? "unknown" : `${value}`;

/** The report header's lines about the machine. */
export function machineLines(facts: MachineFacts): string[] {
  const load = (l: number[] | null) =>
    l === null ? "unknown" : l.map((x) => x.toFixed(2)).join(" ");
  const v = facts.versions;
  return [
    `- Machine: ${known(facts.cpu_model)}, ${known(facts.cores)} cores, ${facts.os} ` +
    `${facts.arch}, kernel ${known(facts.kernel)}; virtualization: ${known(facts.virtualization)}`,
    `- Load average (1, 5, 15 min) at the start: ${load(facts.load_start)}; at the end: ` +
    `${load(facts.load_end)}; CPU time stolen by the hypervisor during the run: ` +
    (facts.steal_percent === null ? "unknown" : `${facts.steal_percent.toFixed(1)}%`),
    `- Deno ${known(v.deno)}; Node ${known(v.node)}; ${known(v.python3)}; ${known(v.gcc)}`,
    `- udp ${known(v.udp)}`,
    `- ${known(v.sockperf)}; irtt ${known(v.irtt)}; ${known(v.iperf3)}`,
  ];
}
