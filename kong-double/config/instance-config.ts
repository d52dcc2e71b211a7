/**
 * The table Kong cjson-encodes into StartInstance's `Config` (3.9.3: kong/runloop/plugins_iterator.lua
 * get_plugin_config; kong/db/schema/init.lua process_auto_fields in select context; kong/vaults/env):
 *
 * - the plugin's validated config: defaults filled, unset optionals absent (the data plane reads rows without
 *   nulls), as the double stores it;
 * - `route_id`, `service_id`, `consumer_id` (absent when unscoped), `plugin_instance_name` (when set),
 *   `__plugin_id`, `__ws_id` (3.9; 3.8 sends no workspace id here), `__key__` = the plugins cache key
 *   `plugins:<name>:<route_id>:<service_id>:<consumer_id>::<ws_id>`, and `__seq__`;
 * - vault references in referenceable fields (strings, and strings inside arrays, sets and maps, at any record
 *   depth) resolved through Kong's env vault: `{vault://env/openai-key}` reads OPENAI_KEY (upper-cased, `-`
 *   to `_`), `{vault://env/name/field}` reads a field of the JSON the variable holds; an unresolved reference
 *   becomes "" with a warning; each record that held references gets `"$refs"` with the originals, as
 *   process_auto_fields leaves them.
 */
import type { FieldDef, PluginEntity, SchemaField } from "./model";
import { fieldEntries, isPlainObject, isReference } from "./schema";

/** constants.DECLARATIVE_DEFAULT_WORKSPACE_ID: the default workspace of a DB-less Kong. */
export const DEFAULT_WS_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b";

export interface InstanceConfigOptions {
  /** The plugin's config fields (PluginInfo.configFields): where the referenceable fields are. */
  fields?: readonly SchemaField[];
  /** What `{vault://env/...}` sees; default process.env. */
  env?: Record<string, string | undefined>;
  kongVersion?: "3.9" | "3.8";
  wsId?: string;
  /** Receives the warnings Kong would log (unresolved references). */
  warn?: (message: string) => void;
}

export function buildInstanceConfig(
  plugin: PluginEntity,
  seq: number,
  opts?: InstanceConfigOptions,
): Record<string, unknown>;
/** The earlier positional form, kept for callers written against it. */
export function buildInstanceConfig(
  plugin: PluginEntity,
  fields: readonly SchemaField[],
  seq: number,
  env: Record<string, string | undefined>,
  warn: (message: string) => void,
): Record<string, unknown>;
export function buildInstanceConfig(
  plugin: PluginEntity,
  seqOrFields: number | readonly SchemaField[],
  optsOrSeq?: InstanceConfigOptions | number,
  env?: Record<string, string | undefined>,
  warn?: (message: string) => void,
): Record<string, unknown> {
  const [seq, opts] =
    typeof seqOrFields === "number"
      ? [seqOrFields, (optsOrSeq as InstanceConfigOptions | undefined) ?? {}]
      : [optsOrSeq as number, { fields: seqOrFields, env, warn }];
  const wsId = opts.wsId ?? DEFAULT_WS_ID;
  const resolver: Resolver = { env: opts.env ?? process.env, warn: opts.warn ?? (() => {}) };
  const cfg = resolveRecord(opts.fields ?? [], plugin.config, resolver);
  const routeId = plugin.route?.id;
  const serviceId = plugin.service?.id;
  const consumerId = plugin.consumer?.id;
  if (routeId !== undefined) cfg.route_id = routeId;
  if (serviceId !== undefined) cfg.service_id = serviceId;
  if (consumerId !== undefined) cfg.consumer_id = consumerId;
  if (plugin.instance_name !== undefined) cfg.plugin_instance_name = plugin.instance_name;
  cfg.__plugin_id = plugin.id;
  if (opts.kongVersion !== "3.8") cfg.__ws_id = wsId;
  cfg.__key__ = pluginCacheKey(plugin.name, routeId, serviceId, consumerId, wsId);
  cfg.__seq__ = seq;
  return cfg;
}

/** kong.db.plugins:cache_key(name, route_id, service_id, consumer_id, nil, ws_id). */
export function pluginCacheKey(
  name: string,
  routeId: string | undefined,
  serviceId: string | undefined,
  consumerId: string | undefined,
  wsId: string,
): string {
  return `plugins:${name}:${routeId ?? ""}:${serviceId ?? ""}:${consumerId ?? ""}::${wsId}`;
}

interface Resolver {
  env: Record<string, string | undefined>;
  warn: (message: string) => void;
}

function resolveRecord(
  fields: readonly SchemaField[],
  value: Record<string, unknown>,
  r: Resolver,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...value };
  const refs: Record<string, unknown> = {};
  for (const [key, def] of fieldEntries(fields)) {
    const v = out[key];
    if (v === undefined) continue;
    if (def.type === "string" && def.referenceable === true && isReference(v)) {
      refs[key] = v;
      out[key] = dereference(v, r);
    } else if (
      (def.type === "array" || def.type === "set") &&
      Array.isArray(v) &&
      def.elements !== undefined
    ) {
      out[key] = resolveList(key, def.elements, v, refs, r);
    } else if (def.type === "map" && isPlainObject(v) && def.values !== undefined) {
      out[key] = resolveMap(key, def.values, v, refs, r);
    } else if (def.type === "record" && isPlainObject(v)) {
      out[key] = resolveRecord(def.fields ?? [], v, r);
    }
  }
  if (Object.keys(refs).length > 0) out.$refs = refs;
  return out;
}

function resolveList(
  key: string,
  elements: FieldDef,
  list: unknown[],
  refs: Record<string, unknown>,
  r: Resolver,
): unknown[] {
  if (elements.type === "record")
    return list.map((e) => (isPlainObject(e) ? resolveRecord(elements.fields ?? [], e, r) : e));
  if (elements.type !== "string" || elements.referenceable !== true) return list;
  const originals: (string | null)[] = [];
  const resolved = list.map((e, i) => {
    if (!isReference(e)) return e;
    originals[i] = e;
    return dereference(e, r);
  });
  if (originals.length > 0) refs[key] = Array.from(originals, (o) => o ?? null);
  return resolved;
}

function resolveMap(
  key: string,
  values: FieldDef,
  map: Record<string, unknown>,
  refs: Record<string, unknown>,
  r: Resolver,
): Record<string, unknown> {
  if (values.type !== "string" || values.referenceable !== true) return map;
  const originals: Record<string, string> = {};
  const out = Object.fromEntries(
    Object.entries(map).map(([k, v]) => {
      if (!isReference(v)) return [k, v];
      originals[k] = v;
      return [k, dereference(v, r)];
    }),
  );
  if (Object.keys(originals).length > 0) refs[key] = originals;
  return out;
}

/** kong.vault.get with the env vault; other vaults are not emulated. Unresolved: "" and a warning. */
function dereference(reference: string, r: Resolver): string {
  const m = /^\{vault:\/\/([^/}]+)\/([^/}]+)(?:\/([^}]*))?\}$/.exec(reference);
  if (m === null || m[1] !== "env") {
    r.warn(`unable to resolve reference ${reference} (the Kong double implements the env vault only)`);
    return "";
  }
  const variable = (m[2] as string).replace(/-/g, "_").toUpperCase();
  const raw = r.env[variable];
  if (raw === undefined) {
    r.warn(`unable to resolve reference ${reference} (environment variable ${variable} is not set)`);
    return "";
  }
  const field = m[3];
  if (field === undefined || field === "") return raw;
  try {
    const parsed = JSON.parse(raw) as Record<string, unknown>;
    if (typeof parsed[field] === "string") return parsed[field];
  } catch {
    // fall through to the warning
  }
  r.warn(
    `unable to resolve reference ${reference} (environment variable ${variable} holds no JSON string field '${field}')`,
  );
  return "";
}
