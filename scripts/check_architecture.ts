/**
 * `deno task check` runs this: the layer rules of docs/architecture.md, checked on the imports
 * of every module in `lib/` and of `mod.ts`, and the size limits (500 lines a file, 80 a
 * function) on `lib/` and `scripts/`. Prints each violation on a line of its own and exits 1 if
 * there is any.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** What each folder of lib/ may import, besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  wire: [],
  net: [],
  metrics: [],
  stats: ["wire", "net", "metrics"],
  reflector: ["wire", "net", "stats", "metrics"],
  probe: ["wire", "net", "stats", "metrics"],
  proxy: ["wire", "net", "stats", "metrics"],
  cli: ["wire", "net", "stats", "reflector", "probe", "proxy", "metrics"],
};

const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 80;

/** The relative import specifiers of a module's code (not of its comments' examples). */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const pattern = /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.[^"']+)["']/g;
  const dynamic = /\bimport\(\s*["'](\.[^"']+)["']\s*\)/g;
  return [...code.matchAll(pattern), ...code.matchAll(dynamic)].map((match) => match[1]);
}

/**
 * Functions (and methods) longer than `max` lines, found by their layout: `deno fmt` puts a
 * function's closing brace alone on a line at the indentation of its first line.
 */
export function longFunctions(source: string, max: number): { line: number; length: number }[] {
  const lines = source.split("\n");
  const found: { line: number; length: number }[] = [];
  const start = new RegExp(
    String.raw`^(\s*)(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\b|` +
      String
        .raw`(?:(?:static|private|public|protected|readonly|get|set|async)\s+)*[#\w]+\s*(?:<[^>]*>)?\(.*\)\s*(?::[^{]*)?\{\s*$|` +
      String.raw`(?:const|let)\s+\w+\s*=\s*(?:async\s+)?\(.*\)\s*(?::[^=]*)?=>\s*\{\s*$)`,
  );
  for (let i = 0; i < lines.length; i++) {
    const match = start.exec(lines[i]);
    if (!match || /^\s*(?:if|for|while|switch|catch|return)\b/.test(lines[i])) continue;
    const indent = match[1];
    let end = i;
    // A signature can run over several lines: the body starts at the first line ending in "{".
    while (end < lines.length && !/\{\s*$/.test(lines[end])) end++;
    for (end++; end < lines.length; end++) {
      if (new RegExp(`^${indent}\\}[;,)]*\\s*$`).test(lines[end])) break;
    }
    const length = end - i + 1;
    if (end < lines.length && length > max) found.push({ line: i + 1, length });
  }
  return found;
}

async function* modules(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* modules(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

/** The lib/ folder a module belongs to ("wire", "cli", …), or null outside lib/. */
function folderOf(url: URL): string | null {
  const path = url.pathname.slice(new URL("lib/", ROOT).pathname.length);
  return url.pathname.startsWith(new URL("lib/", ROOT).pathname) ? path.split("/")[0] : null;
}

function checkImport(from: URL, target: URL): string | null {
  const source = folderOf(from);
  const folder = folderOf(target);
  const relative = target.pathname.slice(ROOT.pathname.length);
  if (from.pathname === new URL("mod.ts", ROOT).pathname) {
    return /^lib\/\w+\/mod\.ts$/.test(relative)
      ? null
      : `mod.ts exports only from folder faces (lib/*/mod.ts), not ${relative}`;
  }
  if (source === null || folder === null) return null;
  const name = target.pathname.split("/").at(-1)!;
  if (folder !== source) {
    if (!MAY_IMPORT[source]?.includes(folder)) return `lib/${source} may not import ${relative}`;
    if (name.startsWith("_")) return `${relative} is private to lib/${folder}`;
    return null;
  }
  const commands = new URL("lib/cli/commands/", ROOT).pathname;
  if (from.pathname.startsWith(commands) && target.pathname.startsWith(commands)) {
    return `a command imports another (${relative}): share it from lib/cli/ instead`;
  }
  return null;
}

/** Every violation of the rules, one line each. */
export async function violations(): Promise<string[]> {
  const found: string[] = [];
  const files = [new URL("mod.ts", ROOT)];
  for await (const url of modules(new URL("lib/", ROOT))) files.push(url);
  for (const url of files) {
    const source = await Deno.readTextFile(url);
    const where = url.pathname.slice(ROOT.pathname.length);
    for (const specifier of importsOf(source)) {
      const problem = checkImport(url, new URL(specifier, url));
      if (problem) found.push(`${where}: ${problem}`);
    }
    if (folderOf(url) !== null) found.push(...sizeViolations(where, source));
  }
  for await (const url of modules(new URL("scripts/", ROOT))) {
    const where = url.pathname.slice(ROOT.pathname.length);
    found.push(...sizeViolations(where, await Deno.readTextFile(url)));
  }
  return found;
}

/** A module's breaches of the size limits. */
function sizeViolations(where: string, source: string): string[] {
  const found: string[] = [];
  const lines = source.split("\n").length - (source.endsWith("\n") ? 1 : 0);
  if (lines > MAX_FILE_LINES) found.push(`${where}: ${lines} lines, more than ${MAX_FILE_LINES}`);
  for (const { line, length } of longFunctions(source, MAX_FUNCTION_LINES)) {
    found.push(`${where}:${line}: a function of ${length} lines, more than ${MAX_FUNCTION_LINES}`);
  }
  return found;
}

if (import.meta.main) {
  const found = await violations();
  for (const line of found) console.error(line);
  if (found.length > 0) {
    console.error(`${found.length} violations of docs/architecture.md`);
    Deno.exit(1);
  }
  console.log("architecture: every layer rule and size limit holds");
}
