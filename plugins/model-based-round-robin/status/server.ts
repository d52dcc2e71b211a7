/**
 * The status listener's HTTP server: GET /status (JSON) and GET /metrics (Prometheus text). Loaded only when
 * MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN is set, so that neither the query command nor a server without it loads
 * prom-client. It never stops the plugin server: a port in use or a bad host is reported and the listener stays off.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { statusReport } from "../core/status";
import { sharingHealth } from "../policies";
import { operatorActions } from "./actions";
import type { ListenAddress } from "./address";
import { answerPace } from "./answer-pace";
import { metricsEndpoint } from "./metrics";
import { renderBudget } from "./render-budget";

/** When this process started (not when this module was loaded, with the first plugin instance). */
const started = Date.now() - Math.round(process.uptime() * 1000);

/** Renders of each page a second at most (render-budget.ts): past it, readers share the latest rendering. */
export const RENDERS_PER_SECOND = 5;
/**
 * Answers a second at most, after a burst (answer-pace.ts): far more than scrapers and operators ask for, and a
 * flood past it waits on its connections instead of spending the proxy's CPU.
 */
export const ANSWERS_PER_SECOND = 200;
export const ANSWER_BURST = 50;
/**
 * Connections the listener holds open at once (waiting ones included); more are closed as they arrive (Node's
 * maxConnections). An eighth of the process's open-file limit, at most 1024, so that a flood never takes the
 * descriptors Kong's connections, the relay and the providers' connections need.
 */
export const MAX_CONNECTIONS = heldConnections();
/** A request must arrive whole within this, and an idle connection is closed after it: no slow reader holds one. */
const REQUEST_TIMEOUT_MS = 5000;

export function serveStatus(address: ListenAddress, log: (message: string) => void): Server {
  const metrics = metricsEndpoint();
  const statusPage = renderBudget(
    () =>
      `${JSON.stringify(
        {
          plugin_server: { pid: process.pid, started_at: new Date(started).toISOString() },
          ...statusReport(Date.now()),
          redis: sharingHealth().redis,
        },
        null,
        2,
      )}\n`,
    RENDERS_PER_SECOND,
  );
  const metricsPage = renderBudget(() => metrics.render(), RENDERS_PER_SECOND);
  const actions = operatorActions();
  const pace = answerPace(ANSWERS_PER_SECOND, ANSWER_BURST);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://status").pathname;
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...headers });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const json = (status: number, value: unknown, headers?: Record<string, string>) =>
      send(status, "application/json", `${JSON.stringify(value, null, 2)}\n`, headers);
    if (actions.owns(path)) {
      return void actions.handle(req, path).then(
        (answer) => json(answer.status, answer.body, answer.headers),
        (error: unknown) => json(500, { message: `action failed: ${String(error)}` }),
      );
    }
    if (path !== "/status" && path !== "/metrics") {
      return json(404, { message: "not found: this listener serves GET /status and GET /metrics" });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json(405, { message: `${req.method} is not allowed: use GET` }, { allow: "GET, HEAD" });
    }
    const [page, type] =
      path === "/status" ? [statusPage, "application/json"] : [metricsPage, metrics.contentType];
    page.get().then(
      (text) => send(200, type, text),
      (error: unknown) => json(500, { message: `${path.slice(1)} failed: ${String(error)}` }),
    );
  };
  const server = createServer((req, res) =>
    pace.turn(
      () => handle(req, res),
      () => res.destroyed || req.socket.destroyed,
    ),
  );
  server.maxConnections = MAX_CONNECTIONS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = REQUEST_TIMEOUT_MS;
  // No 'timeout' listener: Node destroys a socket idle for this long.
  server.timeout = REQUEST_TIMEOUT_MS;
  server.on("error", (error: NodeJS.ErrnoException) => {
    log(
      `status listener: could not listen on ${shown(address)} (${error.code ?? "error"}: ${error.message}); ` +
        "the listener is off, the plugin server runs on",
    );
  });
  server.listen(address.port, address.host, () => {
    const { port } = server.address() as AddressInfo;
    log(`status listener on http://${shown({ ...address, port })}: GET /status, GET /metrics`);
  });
  // The plugin server's own socket keeps it running; this listener must not keep it from exiting.
  server.unref();
  return server;
}

/** An eighth of the soft open-file limit (Linux's /proc/self/limits), between 32 and 1024; 1024 elsewhere. */
function heldConnections(): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
    const soft = line === undefined || line === "unlimited" ? Number.POSITIVE_INFINITY : Number(line);
    return Math.max(32, Math.min(1024, Math.floor(soft / 8)));
  } catch {
    return 1024;
  }
}

function shown({ host, port }: ListenAddress): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
