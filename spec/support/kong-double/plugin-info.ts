/**
 * Kong's load checks on a plugin server's query command (kong/runloop/plugin_servers/process.lua and
 * kong/db/dao/plugins.lua at 3.9.3, kong/db/schema/metaschema.lua): stdout must be pure JSON (Kong reads it
 * with io.popen and cjson.decode), an array or `{Protocol, Plugins}`; Kong 3.9 registers only the first plugin
 * of each server; `Version` must be x.y.z, `Priority` an integer; the schema must pass the metaschema, or Kong
 * refuses to start.
 */
import { execFile } from "node:child_process";
import type { FieldDef, Phase, PluginInfo, SchemaField } from "./model";

export type KongVersion = "3.9" | "3.8";

export class PluginLoadError extends Error {
  override name = "PluginLoadError";
}

const TYPES = new Set([
  "string",
  "number",
  "integer",
  "boolean",
  "array",
  "set",
  "map",
  "record",
  "foreign",
  "json",
]);
const PHASES = new Set(["certificate", "rewrite", "access", "response", "preread", "log"]);
const ATTRIBUTES = new Set([
  "type",
  "required",
  "default",
  "description",
  "examples",
  "immutable",
  "encrypted",
  "referenceable",
  "deprecation",
  "err",
  "elements",
  "keys",
  "values",
  "fields",
  "json_schema",
  "between",
  "one_of",
  "not_one_of",
  "len_eq",
  "len_min",
  "len_max",
  "match",
  "not_match",
  "match_all",
  "match_none",
  "match_any",
  "starts_with",
  "is_regex",
  "uuid",
  "timestamp",
  "gt",
  "eq",
  "ne",
  "contains",
  "mutually_exclusive_subsets",
  "unique",
  "auto",
  "nilable",
  "legacy",
  "entity_checks",
  "shorthand_fields",
  "translate_backwards",
]);
const VALIDATOR_TYPES: Record<string, string[]> = {
  between: ["integer", "number"],
  gt: ["integer", "number"],
  one_of: ["string", "number", "integer"],
  not_one_of: ["string", "number", "integer"],
  len_eq: ["string", "array", "set", "map"],
  len_min: ["string", "array", "set", "map"],
  len_max: ["string", "array", "set", "map"],
  match: ["string"],
  not_match: ["string"],
  match_all: ["string"],
  match_none: ["string"],
  match_any: ["string"],
  starts_with: ["string"],
  is_regex: ["string"],
  uuid: ["string"],
  timestamp: ["number", "integer"],
  contains: ["array", "set"],
  referenceable: ["string"],
};

export function runQueryCommand(
  argv: string[],
  opts: { kongVersion: KongVersion; server: string },
): Promise<PluginInfo[]> {
  const [command, ...args] = argv;
  if (command === undefined)
    return Promise.reject(new PluginLoadError(`query_command undefined for pluginserver ${opts.server}`));
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error && stdout.trim() === "") {
        reject(
          new PluginLoadError(
            `failed loading plugin info from pluginserver ${opts.server} (${argv.join(" ")}): ${error.message}`,
          ),
        );
        return;
      }
      try {
        resolve(parsePluginDump(stdout, opts));
      } catch (e) {
        reject(e);
      }
    });
  });
}

export function parsePluginDump(
  stdout: string,
  opts: { kongVersion: KongVersion; server: string },
): PluginInfo[] {
  let dump: unknown;
  try {
    dump = JSON.parse(stdout);
  } catch (error) {
    const head = stdout.slice(0, 80).replace(/\n/g, "\\n");
    throw new PluginLoadError(
      `failed decoding plugin info from pluginserver ${opts.server}: ${(error as Error).message} (stdout starts "${head}")`,
    );
  }
  const list = Array.isArray(dump) ? dump : (dump as { Plugins?: unknown })?.Plugins;
  if (!Array.isArray(list))
    throw new PluginLoadError(`Not a plugin info table from pluginserver ${opts.server}`);
  const protocol = Array.isArray(dump)
    ? "MsgPack:1"
    : ((dump as { Protocol?: string }).Protocol ?? "MsgPack:1");
  if (protocol !== "MsgPack:1")
    throw new PluginLoadError(`pluginserver ${opts.server}: unsupported protocol ${protocol}`);
  const taken = opts.kongVersion === "3.9" ? list.slice(0, 1) : list;
  if (taken.length === 0) throw new PluginLoadError(`pluginserver ${opts.server} reported no plugin`);
  return taken.map((entry) => checkPluginInfo(entry, opts.server));
}

function checkPluginInfo(entry: unknown, server: string): PluginInfo {
  const info = entry as Record<string, unknown>;
  const name = info.Name;
  if (typeof name !== "string" || name === "")
    throw new PluginLoadError(`pluginserver ${server}: plugin info without Name`);
  if (typeof info.Priority !== "number" || !Number.isInteger(info.Priority)) {
    throw new PluginLoadError(
      `Plugin ${name} cannot be loaded because its PRIORITY field is not a valid integer number`,
    );
  }
  if (typeof info.Version !== "string" || !/^\d+\.\d+\.\d+/.test(info.Version)) {
    throw new PluginLoadError(
      `Plugin ${name} cannot be loaded because its VERSION field does not follow the "x.y.z" format`,
    );
  }
  if (!Array.isArray(info.Phases) || info.Phases.some((p) => !PHASES.has(p as string))) {
    throw new PluginLoadError(`Plugin ${name}: Phases must be a list of ${[...PHASES].join(", ")}`);
  }
  const schema = info.Schema as { fields?: { config?: FieldDef }[] } | undefined;
  const config = schema?.fields?.[0]?.config;
  if (config?.type !== "record" || !Array.isArray(config.fields)) {
    throw new PluginLoadError(
      `error loading plugin schemas: on plugin '${name}': schema has no config record`,
    );
  }
  const problems = metaschemaProblems(config.fields, "config");
  if (problems.length > 0) {
    throw new PluginLoadError(`error loading plugin schemas: on plugin '${name}': ${problems.join("; ")}`);
  }
  return {
    name,
    version: info.Version,
    priority: info.Priority,
    phases: info.Phases as Phase[],
    configFields: config.fields,
    server,
  };
}

/** Kong's MetaSubSchema rules for a plugin's config fields; each problem names the field path. */
export function metaschemaProblems(fields: unknown, path: string): string[] {
  if (!Array.isArray(fields)) return [`${path}.fields: expected an array`];
  const problems: string[] = [];
  for (const field of fields) {
    const names = field !== null && typeof field === "object" ? Object.keys(field) : [];
    if (names.length !== 1) {
      problems.push(`${path}: each field must be a table with exactly one key`);
      continue;
    }
    const name = names[0] as string;
    problems.push(...fieldProblems((field as SchemaField)[name] as FieldDef, `${path}.${name}`, true));
  }
  return problems;
}

function fieldProblems(def: FieldDef, path: string, named: boolean): string[] {
  if (def === null || typeof def !== "object") return [`${path}: expected a field definition table`];
  const problems: string[] = [];
  if (!TYPES.has(def.type)) problems.push(`${path}.type: expected one of: ${[...TYPES].join(", ")}`);
  for (const attr of Object.keys(def))
    if (!ATTRIBUTES.has(attr)) problems.push(`${path}.${attr}: unknown field`);
  for (const [validator, types] of Object.entries(VALIDATOR_TYPES)) {
    if (def[validator] !== undefined && !types.includes(def.type))
      problems.push(`${path}.${validator}: not valid for type ${def.type}`);
  }
  if (named && def.description !== undefined) {
    const len = typeof def.description === "string" ? def.description.length : -1;
    if (len < 10 || len > 500) problems.push(`${path}.description: length must be between 10 and 500`);
  }
  if ((def.type === "array" || def.type === "set") && def.elements === undefined)
    problems.push(`${path}: field of type '${def.type}' must declare 'elements'`);
  if (def.type === "map" && (def.keys === undefined || def.values === undefined))
    problems.push(`${path}: field of type 'map' must declare 'keys' and 'values'`);
  if (def.type === "record" && def.fields === undefined)
    problems.push(`${path}: field of type 'record' must declare 'fields'`);
  if (def.type === "json" && def.json_schema === undefined)
    problems.push(`${path}: field of type 'json' must declare 'json_schema'`);
  if (def.elements !== undefined) problems.push(...fieldProblems(def.elements, `${path}.elements`, false));
  if (def.keys !== undefined) problems.push(...fieldProblems(def.keys, `${path}.keys`, false));
  if (def.values !== undefined) problems.push(...fieldProblems(def.values, `${path}.values`, false));
  if (def.type === "record" && def.fields !== undefined)
    problems.push(...metaschemaProblems(def.fields, path));
  if (def.default !== undefined && !defaultMatches(def))
    problems.push(`${path}.default: does not match the field's type`);
  return problems;
}

function defaultMatches(def: FieldDef): boolean {
  const v = def.default;
  switch (def.type) {
    case "string":
      return typeof v === "string";
    case "integer":
      return Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
    case "array":
    case "set":
      return Array.isArray(v) || (v !== null && typeof v === "object" && Object.keys(v).length === 0);
    default:
      return typeof v === "object";
  }
}
