/**
 * The HTTP endpoint Prometheus scrapes: `GET /metrics` in the format the scraper's Accept header
 * asks for. Silent: it prints nothing, and a failing collection is a 500, never a crash.
 *
 * @module
 */

import { type MetricFamily, negotiate } from "./exposition.ts";

/** What {@linkcode MetricsServer.start} listens on and serves. */
export interface MetricsServerOptions {
  /** The address to listen on: an IPv4 or IPv6 address (`"::1"`, no brackets) or a host name. */
  hostname: string;
  /** The TCP port; 0 picks a free one (see {@linkcode MetricsServer.address}). */
  port: number;
  /** The families to expose, called once per scrape; what it throws becomes a 500. */
  collect: () => readonly MetricFamily[];
}

const ROOT_PAGE = "udp metrics: Prometheus scrapes /metrics\n";
const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8" };

/**
 * A listening metrics endpoint: `/metrics` (GET, HEAD), `/` a pointer to it, else 404; a method
 * other than GET and HEAD is a 405.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { MetricsServer } from "./mod.ts";
 * const server = await MetricsServer.start({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   collect: () => [{ type: "gauge", name: "udp_up", help: "Up.", samples: [{ value: 1 }] }],
 * });
 * const response = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
 * strictEqual(await response.text(), "# HELP udp_up Up.\n# TYPE udp_up gauge\nudp_up 1\n");
 * await server.close();
 * ```
 */
export class MetricsServer {
  /** The address listened on, with the real port when 0 was asked. */
  readonly address: { hostname: string; port: number };
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #closed: Promise<void> | null = null;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, address: Deno.NetAddr) {
    this.#server = server;
    this.address = { hostname: address.hostname, port: address.port };
  }

  /**
   * Listens and resolves once listening; rejects with an `Error` naming the address and the
   * reason (address in use, permission denied, …; the system's error as its `cause`).
   */
  static start(options: MetricsServerOptions): Promise<MetricsServer> {
    const { hostname, port, collect } = options;
    let listening: Deno.NetAddr | null = null;
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port,
        // Given, so that Deno prints no "Listening on" line; it is called before serve returns.
        onListen: (address) => listening = address,
        onError: (error) => failure(error),
      }, (request) => answer(request, collect));
    } catch (error) {
      return Promise.reject(listenError(error, hostname, port));
    }
    return Promise.resolve(new MetricsServer(server, listening ?? server.addr));
  }

  /** Stops listening and waits for the requests in flight to be answered; idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#server.shutdown().then(() => this.#server.finished);
    return this.#closed;
  }
}

function answer(request: Request, collect: () => readonly MetricFamily[]): Response {
  const path = new URL(request.url).pathname;
  if (path !== "/metrics" && path !== "/") {
    return new Response("not found: Prometheus scrapes /metrics\n", {
      status: 404,
      headers: TEXT_HEADERS,
    });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(`method ${request.method} not allowed: use GET or HEAD\n`, {
      status: 405,
      headers: { ...TEXT_HEADERS, allow: "GET, HEAD" },
    });
  }
  if (path === "/") return new Response(ROOT_PAGE, { headers: TEXT_HEADERS });
  const { contentType, render } = negotiate(request.headers.get("accept"));
  let body: string;
  try {
    body = render(collect());
  } catch (error) {
    return failure(error);
  }
  // Vary: the body's format depends on the request's Accept header.
  return new Response(body, { headers: { "content-type": contentType, vary: "Accept" } });
}

/** A 500 with a one-line body; the server goes on. */
function failure(error: unknown): Response {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split("\n", 1)[0];
  return new Response(`collecting metrics failed: ${line}\n`, {
    status: 500,
    headers: TEXT_HEADERS,
  });
}

/**
 * The system's error, said with the address: of the same class (`Deno.errors.AddrInUse`, …) so
 * that callers can tell the reasons apart, the original as its `cause`.
 */
function listenError(error: unknown, hostname: string, port: number): Error {
  const where = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  const detail = error instanceof Error ? error.message : String(error);
  const reasons: [new (message: string, options: ErrorOptions) => Error, string][] = [
    [Deno.errors.AddrInUse, "the address is in use (EADDRINUSE)"],
    [Deno.errors.PermissionDenied, "permission denied (EACCES: ports below 1024 need privileges)"],
    [Deno.errors.AddrNotAvailable, "the address is not one of this host's (EADDRNOTAVAIL)"],
    [Deno.errors.NotCapable, `Deno's permissions do not allow it (${detail})`],
  ];
  for (const [kind, reason] of reasons) {
    if (error instanceof kind) {
      return new kind(`cannot serve metrics on ${where}: ${reason}`, { cause: error });
    }
  }
  return new Error(`cannot serve metrics on ${where}: ${detail}`, { cause: error });
}
