/**
 * The table Kong cjson-encodes into StartInstance's `Config` (plugins_iterator.lua get_plugin_config, 3.9.3):
 * the validated config with defaults (unset optionals absent), plus `__plugin_id`, `__key__` (the plugin's
 * cache key), `__seq__`, `__ws_id`, and `route_id`/`service_id`/`consumer_id` when scoped. Vault references in
 * referenceable fields are resolved (Kong's env vault: `{vault://env/openai-key}` reads OPENAI_KEY; an
 * unresolved one becomes "" with a warning) and the originals kept under `$refs`.
 */
import type { FieldDef, PluginEntity, SchemaField } from "./model";
import { VAULT_REFERENCE } from "./schema";

export const DEFAULT_WS_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b";

export function buildInstanceConfig(
  plugin: PluginEntity,
  fields: readonly SchemaField[],
  seq: number,
  env: Record<string, string | undefined>,
  warn: (message: string) => void,
): Record<string, unknown> {
  const refs: Record<string, unknown> = {};
  const config = resolveRecord(fields, plugin.config, refs, env, warn) as Record<string, unknown>;
  return {
    ...config,
    ...(Object.keys(refs).length > 0 && { $refs: refs }),
    ...(plugin.route && { route_id: plugin.route.id }),
    ...(plugin.service && { service_id: plugin.service.id }),
    ...(plugin.consumer && { consumer_id: plugin.consumer.id }),
    ...(plugin.instance_name && { plugin_instance_name: plugin.instance_name }),
    __plugin_id: plugin.id,
    __key__: `plugins:${plugin.name}:${plugin.route?.id ?? ""}:${plugin.service?.id ?? ""}:${plugin.consumer?.id ?? ""}::${DEFAULT_WS_ID}`,
    __seq__: seq,
    __ws_id: DEFAULT_WS_ID,
  };
}

function resolveRecord(
  fields: readonly SchemaField[],
  value: Record<string, unknown>,
  refs: Record<string, unknown>,
  env: Record<string, string | undefined>,
  warn: (message: string) => void,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const defs = new Map(fields.flatMap((f) => Object.entries(f)));
  for (const [name, v] of Object.entries(value)) {
    const def = defs.get(name);
    const nestedRefs: Record<string, unknown> = {};
    out[name] = def === undefined ? v : resolveValue(def, v, nestedRefs, env, warn);
    if ("$ref" in nestedRefs) refs[name] = nestedRefs.$ref;
    else if (Object.keys(nestedRefs).length > 0) refs[name] = nestedRefs;
  }
  return out;
}

function resolveValue(
  def: FieldDef,
  value: unknown,
  refs: Record<string, unknown>,
  env: Record<string, string | undefined>,
  warn: (message: string) => void,
): unknown {
  if (
    def.type === "string" &&
    def.referenceable === true &&
    typeof value === "string" &&
    VAULT_REFERENCE.test(value)
  ) {
    refs.$ref = value;
    return resolveReference(value, env, warn);
  }
  if (def.type === "record" && value !== null && typeof value === "object") {
    return resolveRecord(def.fields ?? [], value as Record<string, unknown>, refs, env, warn);
  }
  if ((def.type === "array" || def.type === "set") && Array.isArray(value) && def.elements !== undefined) {
    const elements = def.elements;
    return value.map((item, i) => {
      const itemRefs: Record<string, unknown> = {};
      const resolved = resolveValue(elements, item, itemRefs, env, warn);
      if ("$ref" in itemRefs) refs[String(i + 1)] = itemRefs.$ref;
      else if (Object.keys(itemRefs).length > 0) refs[String(i + 1)] = itemRefs;
      return resolved;
    });
  }
  return value;
}

/** Kong's env vault (kong/vaults/env): the name upper-cased with `-` as `_`. */
function resolveReference(
  reference: string,
  env: Record<string, string | undefined>,
  warn: (m: string) => void,
): string {
  const match = /^\{vault:\/\/env\/([^/}]+)(?:\/[^}]*)?\}$/.exec(reference);
  if (match === null) {
    warn(`unable to resolve reference ${reference} (the double implements the env vault only)`);
    return "";
  }
  const name = (match[1] as string).toUpperCase().replace(/-/g, "_");
  const value = env[name];
  if (value === undefined) {
    warn(
      `unable to resolve reference ${reference} (could not get value from external vault (no value found (environment variable "${name}" not found)))`,
    );
    return "";
  }
  return value;
}
