/**
 * Where the tests find Prometheus' binaries: `$UDP_PROMETHEUS_DIR` first (an explicit choice
 * wins), then each directory of `$PATH`, then `/opt/prometheus` (where .ci/run installs them).
 *
 * @module
 */

/** Where .ci/run installs prometheus and promtool. */
export const PROMETHEUS_INSTALL_DIR = "/opt/prometheus";

/**
 * The path of an executable `name` (`prometheus` or `promtool`), or null when none is found. Needs
 * --allow-env (PATH, UDP_PROMETHEUS_DIR) and --allow-read.
 */
export function prometheusBinary(name: "prometheus" | "promtool"): string | null {
  const dirs = [
    Deno.env.get("UDP_PROMETHEUS_DIR") ?? "",
    ...(Deno.env.get("PATH") ?? "").split(":"),
    PROMETHEUS_INSTALL_DIR,
  ];
  for (const dir of dirs) {
    if (dir === "") continue;
    const path = `${dir.replace(/\/+$/, "")}/${name}`;
    if (isExecutable(path)) return path;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}
