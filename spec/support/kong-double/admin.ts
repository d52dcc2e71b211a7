/**
 * The Admin API endpoints the double serves: `GET /` and `GET /status` (Kong's shapes, with
 * `configuration.database`), `POST /config` (DB-less: loads a declarative configuration, replacing everything;
 * Kong's 400 on error), `GET /config`, and `POST /schemas/plugins/validate`. JSON bodies only.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parse as parseYaml } from "yaml";
import { parseDeclarativeConfig } from "./declarative";
import { KongApiError, type KongConfig, type PluginInfo } from "./model";
import { KONG_VERSION } from "./proxy";
import { validateRecord } from "./schema";

export interface AdminDeps {
  plugins: Map<string, PluginInfo>;
  current(): KongConfig;
  apply(config: KongConfig): void;
}

export async function startAdmin(
  deps: AdminDeps,
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const { status, body } = route(
        deps,
        req.method ?? "GET",
        new URL(req.url ?? "/", "http://admin"),
        Buffer.concat(chunks),
      );
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function route(deps: AdminDeps, method: string, url: URL, raw: Buffer): { status: number; body: unknown } {
  try {
    if (method === "GET" && url.pathname === "/") {
      return {
        status: 200,
        body: {
          version: KONG_VERSION,
          tagline: "Welcome to kong (test double)",
          configuration: { database: "off", role: "traditional" },
          plugins: {
            available_on_server: Object.fromEntries(
              [...deps.plugins.values()].map((p) => [p.name, { version: p.version, priority: p.priority }]),
            ),
            enabled_in_cluster: [...new Set(deps.current().plugins.map((p) => p.name))],
          },
        },
      };
    }
    if (method === "GET" && url.pathname === "/status") {
      return { status: 200, body: { database: { reachable: true }, server: { connections_active: 1 } } };
    }
    if (method === "GET" && url.pathname === "/config")
      return { status: 200, body: { config: deps.current() } };
    if (method === "POST" && url.pathname === "/config") {
      const body = parseBody(raw);
      const input =
        typeof body === "object" && body !== null && "config" in body && typeof body.config === "string"
          ? body.config
          : body;
      const config = parseDeclarativeConfig(input as string | object, deps.plugins);
      deps.apply(config);
      return { status: 201, body: config };
    }
    if (method === "POST" && url.pathname === "/schemas/plugins/validate") {
      const body = parseBody(raw) as { name?: string; config?: unknown };
      const info = body?.name === undefined ? undefined : deps.plugins.get(body.name);
      if (info === undefined)
        return {
          status: 400,
          body: {
            code: 2,
            name: "schema violation",
            fields: { name: "plugin not enabled" },
            message: "schema violation (name: plugin not enabled)",
          },
        };
      const checked = validateRecord(info.configFields, body.config ?? {});
      if (!checked.ok) {
        return {
          status: 400,
          body: {
            code: 2,
            name: "schema violation",
            fields: { config: checked.errors },
            message: `schema violation (config: ${JSON.stringify(checked.errors)})`,
          },
        };
      }
      return { status: 200, body: { message: "schema validation successful" } };
    }
    if (["POST", "PUT", "PATCH", "DELETE"].includes(method)) {
      return {
        status: 405,
        body: {
          message: `cannot ${method === "DELETE" ? "delete" : "create or update"} entities when not using a database`,
        },
      };
    }
    return { status: 404, body: { message: "Not found" } };
  } catch (error) {
    if (error instanceof KongApiError) return { status: error.status, body: error.body };
    throw error;
  }
}

function parseBody(raw: Buffer): unknown {
  const text = raw.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    try {
      return parseYaml(text);
    } catch {
      throw new KongApiError(400, { message: "Cannot parse JSON body" });
    }
  }
}
