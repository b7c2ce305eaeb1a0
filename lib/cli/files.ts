/**
 * Files the user names: where relative paths start, one-line descriptions of file errors, and
 * giving up file access once a command's files are open.
 *
 * A command may open a file wherever the user names it, but only at start: the key file
 * (`--key-file`), `udp send --file`, `udp keygen FILE` and `udp proxy --log`. Once they are
 * open the CLI gives up read and write permission for the rest of the run
 * ({@linkcode giveUpFileAccess}), before the first datagram, so nothing that arrives from the
 * network can make it read or write a file.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** Which way a file was being used, for {@linkcode describeFileError}. */
export type FileAccess = "read" | "write";

/**
 * Why a file could not be opened, for people: "no such file", "permission denied", …
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { describeFileError } from "./files.ts";
 * strictEqual(describeFileError(new Deno.errors.NotFound("x")), "no such file");
 * strictEqual(
 *   describeFileError(new Deno.errors.NotFound("x"), "write"),
 *   "its directory does not exist",
 * );
 * ```
 */
export function describeFileError(error: unknown, access: FileAccess = "read"): string {
  if (error instanceof Deno.errors.NotFound) {
    return access === "write" ? "its directory does not exist" : "no such file";
  }
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Deno.errors.NotCapable) {
    return `this run may not ${access} files (run the udp binary or 'deno task udp', which may)`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied (check the owner and mode of the file and its directory)";
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\(os error \d+\).*$/, "").split("\n")[0];
}

/**
 * Gives up read and write permission for the rest of the process's life. The CLI calls it
 * once a command's files are open (`RunContext.filesOpened()` in
 * lib/cli/command.ts); afterwards every file access
 * is refused by the runtime (`Deno.errors.NotCapable`). Giving up what was never held does
 * nothing.
 *
 * @example
 * Not run as a test: it would end file access for every test after it.
 *
 * ```ts ignore
 * import { strictEqual } from "node:assert/strict";
 * import { giveUpFileAccess } from "./files.ts";
 * giveUpFileAccess();
 * strictEqual(Deno.permissions.querySync({ name: "read" }).state, "prompt");
 * ```
 */
export function giveUpFileAccess(): void {
  Deno.permissions.revokeSync({ name: "read" });
  Deno.permissions.revokeSync({ name: "write" });
}

/** Where a process runs, for {@linkcode startDirectory}. */
export interface StartPlace {
  /** The process's working directory. */
  cwd: string;
  /** `$INIT_CWD`: `deno task` (like npm) sets it to the directory it was started in. */
  initCwd: string | undefined;
  /** The directory `deno task udp` runs the task in: the project's, where main.ts is. */
  taskDirectory: string;
  /** Whether this is the compiled binary (`Deno.build.standalone`). */
  standalone: boolean;
}

/**
 * The directory the user started `udp` in, from which relative paths start. That is the
 * working directory, except under `deno task udp`, which runs the task in the project's
 * directory and says in `$INIT_CWD` where it was started. `$INIT_CWD` is trusted only when
 * the process runs from source in the project's directory: the compiled binary, or a
 * `deno run main.ts` started elsewhere (by a test, say, inside an npm script or another
 * `deno task` that set `$INIT_CWD` for itself), keeps its working directory.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { startDirectory } from "./files.ts";
 * const task = { taskDirectory: "/src/udp", initCwd: "/home/me", standalone: false };
 * strictEqual(startDirectory({ ...task, cwd: "/src/udp" }), "/home/me");
 * strictEqual(startDirectory({ ...task, cwd: "/tmp" }), "/tmp");
 * strictEqual(startDirectory({ ...task, cwd: "/src/udp", standalone: true }), "/src/udp");
 * ```
 */
export function startDirectory(place: StartPlace): string {
  const { cwd, initCwd, taskDirectory, standalone } = place;
  if (standalone || !initCwd) return cwd;
  return withoutTrailingSlash(cwd) === withoutTrailingSlash(taskDirectory) ? initCwd : cwd;
}

/**
 * Changes to the {@linkcode startDirectory} when it is not the working directory (under
 * `deno task udp`), so that relative paths start where the user typed them. `mainModule` is
 * main.ts's `import.meta.url`. Returns a one-line problem, or null.
 *
 * @example
 * Not run as a test: it may change the working directory of every test after it.
 *
 * ```ts ignore
 * import { enterStartDirectory } from "./files.ts";
 * const problem = enterStartDirectory(import.meta.url);
 * ```
 */
export function enterStartDirectory(mainModule: string): string | null {
  if (Deno.build.standalone) return null;
  let initCwd: string | undefined;
  try {
    initCwd = Deno.env.get("INIT_CWD");
  } catch {
    return null; // no permission to read it: not run as the udp task
  }
  if (!initCwd) return null;
  const cwd = Deno.cwd();
  const taskDirectory = realPath(fileURLToPath(new URL(".", mainModule)));
  const target = startDirectory({ cwd: realPath(cwd), initCwd, taskDirectory, standalone: false });
  if (target === initCwd) {
    try {
      Deno.chdir(initCwd);
    } catch (error) {
      return `cannot go to '${initCwd}', where 'deno task udp' was started ($INIT_CWD): ${
        describeFileError(error)
      }`;
    }
  }
  return null;
}

function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

function withoutTrailingSlash(path: string): string {
  return path.length > 1 ? path.replace(/[\\/]+$/, "") : path;
}
