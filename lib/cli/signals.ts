/**
 * Ctrl-C and SIGTERM handling for long-running commands.
 *
 * @module
 */

/**
 * Calls `handler` on SIGINT (Ctrl-C) or SIGTERM (where the platform has it) and returns a
 * function that removes the listeners again.
 *
 * @example
 * ```ts
 * import { onInterrupt } from "./signals.ts";
 * const controller = new AbortController();
 * const remove = onInterrupt(() => controller.abort());
 * remove();
 * ```
 */
export function onInterrupt(handler: () => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, handler);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, handler);
  };
}

/**
 * A promise that resolves on the first SIGINT or SIGTERM, and its disposer.
 *
 * @example
 * ```ts
 * import { interrupted } from "./signals.ts";
 * const { promise, dispose } = interrupted();
 * dispose();
 * ```
 */
export function interrupted(): { promise: Promise<void>; dispose: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  const dispose = onInterrupt(() => resolve());
  return { promise, dispose };
}
