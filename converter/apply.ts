/**
 * Applies a converted configuration to a running Kong through its Admin API. A DB-less Kong takes a whole
 * configuration at once (`POST /config` replaces everything it holds), so the converted services are merged into
 * what `GET /config` gives back: services of the same names (and their routes and plugins) are replaced,
 * everything else is kept; `replace` loads the converted configuration alone, explicitly. A database-backed Kong
 * gets the entity endpoints (`PUT` by name, so running the converter twice updates instead of duplicating;
 * plugins get stable ids derived from their scope), which leave other entities alone.
 */
import { createHash } from "node:crypto";
import { parse } from "yaml";
import type { DeclarativeConfig } from "./convert";
import { ConversionError } from "./errors";

export async function applyToKong(
  adminUrl: string,
  config: DeclarativeConfig,
  options: { replace?: boolean } = {},
): Promise<string> {
  const base = adminUrl.replace(/\/+$/, "");
  // Not `GET /`: Kong 3.9.1-3.9.3 answers it with a 500 while it manages a plugin server (it serialises the
  // server's process handle). `GET /status` tells the modes apart on every 3.x: a database-backed node reports
  // `database: {reachable}`, a DB-less one (or a data plane) leaves it out (K3.9.3 kong/api/routes/health.lua).
  const status = await call(base, "GET", "/status");
  const dbless = (status as { database?: unknown }).database === undefined;
  if (dbless) {
    if (options.replace) {
      await call(base, "POST", "/config?flatten_errors=1", config);
      return `replaced the whole configuration of DB-less Kong at ${base} with this run's (POST /config, --replace)`;
    }
    const held = await heldConfiguration(base);
    const merged = mergeInto(held, config);
    await call(base, "POST", "/config?flatten_errors=1", merged.config);
    const list = (names: string[]) => names.join(", ");
    return `loaded into DB-less Kong at ${base} (POST /config), merged with what it held: ${
      merged.replaced.length > 0 ? `replaced ${list(merged.replaced)}; ` : ""
    }${merged.kept.length > 0 ? `kept services ${list(merged.kept)} and every other entity` : "it held no other service"}`;
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
  return `applied to Kong at ${base} (with a database) through the entity endpoints${
    options.replace ? " (--replace has nothing to do there: other entities are left as they are)" : ""
  }`;
}

type Entity = Record<string, unknown>;

/** What a DB-less Kong holds, as `GET /config` exports it (flat lists, foreign keys by id). */
async function heldConfiguration(base: string): Promise<Entity> {
  const refuse = (why: string) =>
    new ConversionError(
      `cannot merge into DB-less Kong at ${base}: ${why}; POST /config would replace all it holds: pass --replace to load this run's configuration alone`,
    );
  let answer: unknown;
  try {
    answer = await call(base, "GET", "/config");
  } catch (error) {
    throw refuse(`reading what it holds failed (${(error as Error).message})`);
  }
  const text = (answer as { config?: unknown } | undefined)?.config;
  let held: unknown;
  try {
    held = typeof text === "string" ? parse(text) : undefined;
  } catch {
    held = undefined;
  }
  if (held === null || held === undefined) return {};
  if (typeof held !== "object" || Array.isArray(held))
    throw refuse("GET /config did not give back a declarative configuration");
  return held as Entity;
}

/**
 * The held configuration with the converted services in place of those of the same names: their routes (and
 * routes of the converted routes' names) and the plugins on any of them go too.
 */
export function mergeInto(
  held: Entity,
  config: DeclarativeConfig,
): { config: Entity; replaced: string[]; kept: string[] } {
  const list = (key: string) => (Array.isArray(held[key]) ? (held[key] as Entity[]) : []);
  /** A foreign key as Kong exports it (the id), or as an entity reference ({id}). */
  const ref = (value: unknown) =>
    typeof value === "string" ? value : (value as { id?: unknown } | null | undefined)?.id;
  const serviceNames = new Set(config.services.map((s) => s.name));
  const routeNames = new Set(config.services.flatMap((s) => s.routes.map((r) => r.name)));
  const goneServices = list("services").filter((s) => serviceNames.has(s.name as string));
  const goneServiceIds = new Set(goneServices.map((s) => s.id));
  const goneRoutes = list("routes").filter(
    (r) => goneServiceIds.has(ref(r.service)) || routeNames.has(r.name as string),
  );
  const goneRouteIds = new Set(goneRoutes.map((r) => r.id));
  const kept = list("services").filter((s) => !goneServiceIds.has(s.id));
  // Kong exports a foreign key as the id alone; {id} is taken back as well, and given back as Kong writes it.
  const flat = (entity: Entity) =>
    Object.fromEntries(
      Object.entries(entity).map(([k, v]) => {
        const only = v !== null && typeof v === "object" && !Array.isArray(v) ? Object.keys(v) : [];
        return [k, only.length === 1 && only[0] === "id" ? ref(v) : v];
      }),
    );
  const entities = Object.fromEntries(
    Object.entries(held)
      .filter(([k, v]) => !k.startsWith("_") && Array.isArray(v))
      .map(([k, v]) => [k, (v as Entity[]).map(flat)]),
  );
  const strays = goneRoutes.filter((r) => !goneServiceIds.has(ref(r.service)));
  return {
    config: {
      ...held,
      ...entities,
      _format_version: "3.0",
      services: [...kept.map(flat), ...config.services],
      routes: list("routes")
        .filter((r) => !goneRouteIds.has(r.id))
        .map(flat),
      plugins: list("plugins")
        .filter((p) => !goneServiceIds.has(ref(p.service)) && !goneRouteIds.has(ref(p.route)))
        .map(flat),
    },
    replaced: [
      ...(goneServices.length > 0 ? [`services ${goneServices.map((s) => s.name).join(", ")}`] : []),
      ...(strays.length > 0 ? [`routes ${strays.map((r) => r.name).join(", ")} of other services`] : []),
    ],
    kept: kept.map((s) => String(s.name ?? s.id)),
  };
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
  if (typeof id !== "string") throw new ConversionError("Kong's Admin API answered without an entity id");
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
    throw new ConversionError(
      `Kong's Admin API refused ${method} ${path} (${res.status}): ${kongProblem(text)}`,
    );
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

/**
 * Kong's error answer in one line: its name and message, or for a refused declarative configuration (asked with
 * `flatten_errors=1`) the first entity's first error, never the whole body.
 */
function kongProblem(text: string): string {
  let body:
    | {
        name?: unknown;
        message?: unknown;
        flattened_errors?: {
          entity_type?: string;
          entity_name?: string;
          errors?: { field?: string; message?: string }[];
        }[];
      }
    | undefined;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = undefined;
  }
  const flat = body?.flattened_errors ?? [];
  const first = flat[0];
  const count = flat.reduce((n, e) => n + (e.errors?.length ?? 0), 0);
  const detail =
    first === undefined
      ? body?.message
      : `${[first.entity_type, first.entity_name && `"${first.entity_name}"`].filter(Boolean).join(" ")}: ${[
          first.errors?.[0]?.field,
          first.errors?.[0]?.message,
        ]
          .filter(Boolean)
          .join(": ")}${count > 1 ? ` (and ${count - 1} more)` : ""}`;
  const parts = [body?.name, detail].filter((p): p is string => typeof p === "string" && p !== "");
  const line = (parts.length > 0 ? parts.join(": ") : text).replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line || "(no message)";
}
