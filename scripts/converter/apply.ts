/**
 * Applies a converted configuration to a running Kong through its Admin API: `POST /config` when Kong is
 * DB-less (it replaces the whole configuration), the entity endpoints otherwise (`PUT` by name, so running the
 * converter twice updates instead of duplicating; plugins get stable ids derived from their scope).
 */
import { createHash } from "node:crypto";
import type { DeclarativeConfig } from "./convert";
import { ConversionError } from "./errors";

export async function applyToKong(adminUrl: string, config: DeclarativeConfig): Promise<string> {
  const base = adminUrl.replace(/\/+$/, "");
  // Not `GET /`: Kong 3.9.1-3.9.3 answers it with a 500 while it manages a plugin server (it serialises the
  // server's process handle). `GET /status` tells the modes apart on every 3.x: a database-backed node reports
  // `database: {reachable}`, a DB-less one (or a data plane) leaves it out (K3.9.3 kong/api/routes/health.lua).
  const status = await call(base, "GET", "/status");
  const dbless = (status as { database?: unknown }).database === undefined;
  if (dbless) {
    await call(base, "POST", "/config", config);
    return `loaded into DB-less Kong at ${base} (POST /config)`;
  }
  // Foreign keys by id, which every Kong version accepts, taken from each PUT's answer.
  for (const service of config.services) {
    const { routes, plugins, ...fields } = service;
    const serviceId = idOf(await call(base, "PUT", `/services/${encodeURIComponent(service.name)}`, fields));
    for (const plugin of plugins) await putPlugin(base, plugin, { service: { id: serviceId } }, service.name);
    for (const route of routes) {
      const { plugins: routePlugins, ...routeFields } = route;
      const routeId = idOf(
        await call(base, "PUT", `/routes/${encodeURIComponent(route.name)}`, {
          ...routeFields,
          service: { id: serviceId },
        }),
      );
      for (const plugin of routePlugins)
        await putPlugin(base, plugin, { route: { id: routeId } }, route.name);
    }
  }
  return `applied to Kong at ${base} (with a database) through the entity endpoints`;
}

async function putPlugin(
  base: string,
  plugin: { name: string; config: object },
  scope: { service?: { id: string }; route?: { id: string } },
  owner: string,
) {
  const key = `${plugin.name}|${scope.service ? "service" : "route"}|${owner}`;
  await call(base, "PUT", `/plugins/${stableUuid(key)}`, { ...plugin, ...scope });
}

function idOf(entity: unknown): string {
  const id = (entity as { id?: unknown } | undefined)?.id;
  if (typeof id !== "string")
    throw new ConversionError(`Kong's Admin API answered without an entity id: ${JSON.stringify(entity)}`);
  return id;
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (error) {
    throw new ConversionError(
      `cannot reach Kong's Admin API at ${base}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`,
    );
  }
  const text = await res.text();
  if (!res.ok)
    throw new ConversionError(`Kong's Admin API refused ${method} ${path} (${res.status}): ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function stableUuid(key: string): string {
  const h = createHash("sha1").update(`apk-conf-to-kong:${key}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((Number.parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}
