/**
 * Kong's declarative configuration (kong/db/declarative/init.lua and kong/db/schema/others/
 * declarative_config.lua, 3.9.3), as loaded by a DB-less Kong from kong.yml or `POST /config`:
 *
 * - text is tried as JSON, then YAML; anything but an object fails ("failed parsing declarative
 *   configuration: expected an object");
 * - `_format_version` is required and one of "1.1", "2.1", "3.0"; `_transform`, `_comment`, `_ignore` are
 *   accepted; any other key is an "unknown field";
 * - services (with nested routes and plugins), routes (nested plugins; top-level ones name their `service`
 *   by name or id), consumers (nested plugins and keyauth_credentials), plugins (top-level ones name their
 *   `service`/`route`/`consumer`); a nested entity must not name its parent ("value must be null");
 * - ids the file does not give are generated as Kong does (UUID v5 of the entity's name, or of the plugin's
 *   cache key), so loading the same file twice gives the same ids;
 * - uniqueness ("uniqueness violation: 'services' entity with name set to 'foo' already declared") and
 *   references ("invalid reference 'service: nope' (no such entry in 'services')");
 * - errors: KongApiError(400) with Kong's body (code 14, "invalid declarative configuration", `fields`
 *   nested like the input, `message`), plus `flattened_errors` as Kong 3.9 builds them when asked
 *   (`POST /config?flatten_errors=1`), in which case the flattened sections are drained from `fields`.
 *
 * Not modelled: the route path migration Kong applies to files older than 3.0, and entities other than
 * services, routes, consumers, plugins and keyauth_credentials (upstreams, certificates, ... are refused).
 */
import { parse as parseYaml } from "yaml";
import { checkEntity, declarativeId, type EntityName, isSchema, PROTOCOLS, schemaFor } from "./entities";
import { declarativeConfigError } from "./kong-errors";
import {
  type ConsumerEntity,
  type KeyAuthCredentialEntity,
  KongApiError,
  type KongConfig,
  type PluginEntity,
  type PluginInfo,
  type RouteEntity,
  type ServiceEntity,
} from "./model";
import { type FieldErrors, isPlainObject, type RecordSchema, validateField } from "./schema";

export interface DeclarativeOptions {
  /** `POST /config?flatten_errors=1`: add Kong 3.9's `flattened_errors` to the error body. */
  flattenErrors?: boolean;
  now?: () => number;
}

type Raw = Record<string, unknown>;
type ErrorTable = Record<string, unknown>;

/** Entity types in the order Kong sorts them (dependencies first), and what each may nest. */
const ENTITIES: EntityName[] = ["services", "routes", "consumers", "plugins", "keyauth_credentials"];
const CHILDREN: Record<EntityName, EntityName[]> = {
  services: ["routes", "plugins"],
  routes: ["plugins"],
  consumers: ["plugins", "keyauth_credentials"],
  plugins: [],
  keyauth_credentials: [],
};
/** Foreign fields: entity → field → referenced entity. */
const FOREIGN: Record<EntityName, Record<string, EntityName>> = {
  services: {},
  routes: { service: "services" },
  consumers: {},
  plugins: { route: "routes", service: "services", consumer: "consumers" },
  keyauth_credentials: { consumer: "consumers" },
};
/** The field a child uses to point at its parent (foreign_children). */
const PARENT_FIELD: Record<string, string> = { services: "service", routes: "route", consumers: "consumer" };
const ENDPOINT_KEY: Partial<Record<EntityName, string>> = {
  services: "name",
  routes: "name",
  consumers: "username",
  keyauth_credentials: "key",
  plugins: "instance_name",
};
const UNIQUE_FIELDS: Record<EntityName, string[]> = {
  services: ["name"],
  routes: ["name"],
  consumers: ["username", "custom_id"],
  keyauth_credentials: ["key"],
  plugins: ["instance_name"],
};
/** Core entities of Kong 3.9 that a file may hold but the double does not model. */
const NOT_MODELLED = [
  "workspaces",
  "certificates",
  "ca_certificates",
  "snis",
  "upstreams",
  "targets",
  "vaults",
  "key_sets",
  "keys",
  "filter_chains",
  "parameters",
];
const META_KEYS = ["_format_version", "_transform", "_comment", "_ignore"];

/** Parses and validates a declarative configuration; throws KongApiError(400) as `POST /config` answers. */
export function parseDeclarativeConfig(
  input: string | object,
  plugins: ReadonlyMap<string, PluginInfo>,
  opts: DeclarativeOptions = {},
): KongConfig {
  const doc = typeof input === "string" ? unserialize(input) : structuredClone(input as Raw);
  const original = structuredClone(doc);
  const topErrors = validateTopLevel(doc);
  generateIds(doc);
  const loader = new Loader(plugins, opts);
  const sectionErrors = loader.validateSections(doc);
  const errT = { ...topErrors, ...sectionErrors };
  if (Object.keys(errT).length > 0) throw invalid(errT, original, opts);
  const refErrors = loader.resolveReferences();
  if (Object.keys(refErrors).length > 0) throw invalid(refErrors, original, opts);
  const uniqueErrors = loader.checkUniqueFields();
  if (Object.keys(uniqueErrors).length > 0) throw invalid(uniqueErrors, original, opts);
  return loader.config();
}

/** The body Kong answers `POST /config` with on success: entities by type, then by id (nulls shown). */
export function loadedConfigSummary(config: KongConfig): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const entity of ENTITIES) {
    const list = config[entity] as unknown as Raw[];
    if (list.length === 0) continue;
    out[entity] = Object.fromEntries(list.map((e) => [e.id as string, e]));
  }
  return out;
}

function unserialize(text: string): Raw {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw parseFailure((e as Error).message);
    }
  }
  if (!isPlainObject(doc)) throw parseFailure("expected an object");
  return doc;
}

function parseFailure(detail: string): KongApiError {
  const error = `failed parsing declarative configuration: ${detail}`;
  return new KongApiError(400, declarativeConfigError({ error }));
}

function validateTopLevel(doc: Raw): ErrorTable {
  const errors: ErrorTable = {};
  const version = doc._format_version;
  if (version === undefined || version === null) errors._format_version = "required field missing";
  else {
    const err = validateField({ type: "string", one_of: ["1.1", "2.1", "3.0"] }, version);
    if (err !== undefined) errors._format_version = err;
  }
  if (doc._transform !== undefined && typeof doc._transform !== "boolean")
    errors._transform = "expected a boolean";
  if (doc._comment !== undefined && typeof doc._comment !== "string") errors._comment = "expected a string";
  for (const key of Object.keys(doc)) {
    if (META_KEYS.includes(key) || ENTITIES.includes(key as EntityName)) continue;
    if (NOT_MODELLED.includes(key)) {
      if (Array.isArray(doc[key]) && (doc[key] as unknown[]).length === 0) continue;
      errors[key] = `the Kong double does not model ${key}`;
    } else errors[key] = "unknown field";
  }
  return errors;
}

// --- ids ------------------------------------------------------------------------------------------------

/** declarative_config.lua generate_ids: ids from names, and plugins' ids from their cache key. */
function generateIds(doc: Raw, parent?: { entity: EntityName; id: unknown }): void {
  for (const entity of ENTITIES) {
    const list = doc[entity];
    if (!Array.isArray(list)) continue;
    if (parent !== undefined && !CHILDREN[parent.entity].includes(entity)) continue;
    for (const item of list) {
      if (!isPlainObject(item)) continue;
      if (item.id === undefined) {
        const key = idKey(entity, item, parent);
        if (key !== undefined) item.id = declarativeId(entity, key);
      }
      generateIds(item, { entity, id: item.id });
    }
  }
}

function idKey(
  entity: EntityName,
  item: Raw,
  parent?: { entity: EntityName; id: unknown },
): string | undefined {
  if (entity === "plugins") {
    // build_cache_key over plugins' cache_key { name, route, service, consumer }, in workspace "*"
    const parts = ["plugins", "*"];
    const childKey = parent ? PARENT_FIELD[parent.entity] : undefined;
    for (const k of ["name", "route", "service", "consumer"]) {
      const v = item[k];
      if (typeof v === "string") parts.push(v);
      else if (v === undefined) {
        if (k === childKey) {
          if (typeof parent?.id !== "string") return undefined;
          parts.push(parent.id);
        } else if (k === "name") return undefined;
        else parts.push("");
      }
    }
    return parts.join(":");
  }
  if (entity === "keyauth_credentials") return undefined; // its cache key is `key`, an auto field
  const endpointKey = ENDPOINT_KEY[entity];
  const value = endpointKey ? item[endpointKey] : undefined;
  return typeof value === "string" ? value : undefined;
}

// --- validation, references, uniqueness --------------------------------------------------------------------

interface Loaded {
  entity: EntityName;
  raw: Raw;
  value: Raw;
  index: number;
  parent?: Loaded;
}

class Loader {
  private readonly loaded: Loaded[] = [];

  constructor(
    private readonly plugins: ReadonlyMap<string, PluginInfo>,
    private readonly opts: DeclarativeOptions,
  ) {}

  validateSections(doc: Raw): ErrorTable {
    const errors: ErrorTable = {};
    for (const entity of ENTITIES) {
      const err = this.validateList(entity, doc[entity]);
      if (err !== undefined) errors[entity] = err;
    }
    return errors;
  }

  private validateList(entity: EntityName, list: unknown, parent?: Loaded): unknown {
    if (list === undefined || list === null) return undefined;
    if (isPlainObject(list) && Object.keys(list).length === 0) return undefined;
    if (!Array.isArray(list)) return "expected an array";
    const errors: unknown[] = [];
    list.forEach((item, i) => {
      const err = this.validateItem(entity, item, i, parent);
      if (err !== undefined) errors[i] = err;
    });
    return errors.length > 0 ? Array.from(errors, (e) => e ?? null) : undefined;
  }

  private validateItem(entity: EntityName, item: unknown, index: number, parent?: Loaded): unknown {
    if (!isPlainObject(item)) return "expected a record";
    const own: Raw = {};
    const children: [EntityName, unknown][] = [];
    for (const [k, v] of Object.entries(item)) {
      if (CHILDREN[entity].includes(k as EntityName)) children.push([k as EntityName, v]);
      else if (k !== "_comment" && k !== "_ignore") own[k] = v;
    }
    const errors: FieldErrors = {};
    const refs: Record<string, string> = {};
    for (const field of Object.keys(FOREIGN[entity])) {
      const value = own[field];
      if (value === undefined || value === null) continue;
      if (parent !== undefined && PARENT_FIELD[parent.entity] === field) errors[field] = "value must be null";
      else if (typeof value !== "string") errors[field] = "expected a string";
      else refs[field] = value;
      delete own[field];
    }
    if (
      entity === "keyauth_credentials" &&
      parent === undefined &&
      refs.consumer === undefined &&
      !errors.consumer
    ) {
      errors.consumer = "required field missing";
    }
    if (parent !== undefined) {
      const parentField = PARENT_FIELD[parent.entity] as string;
      if (typeof parent.value.id === "string") own[parentField] = { id: parent.value.id };
    }
    const schema = schemaFor(entity, own, this.plugins);
    let loaded: Loaded | undefined;
    if (!isSchema(schema)) Object.assign(errors, schema);
    else {
      const checked = checkEntity(withLooseForeignKeys(schema, entity), own, this.opts);
      if (!checked.ok) Object.assign(errors, checked.errors);
      else {
        loaded = { entity, raw: item, value: { ...checked.entity, ...refs }, index, parent };
        this.loaded.push(loaded);
      }
    }
    for (const [childEntity, list] of children) {
      const err = this.validateList(childEntity, list, loaded ?? { entity, raw: item, value: own, index });
      if (err !== undefined) errors[childEntity] = err as FieldErrors;
    }
    return Object.keys(errors).length > 0 ? errors : undefined;
  }

  /** validate_references: endpoint-key and primary-key uniqueness, then every reference by name or id. */
  resolveReferences(): ErrorTable {
    const errs: ErrorTable = {};
    const byKey = new Map<string, Loaded>();
    const byId = new Map<string, Loaded>();
    for (const entity of ENTITIES) {
      for (const item of this.loaded.filter((l) => l.entity === entity)) {
        const endpointKey = ENDPOINT_KEY[entity];
        const key = endpointKey ? item.value[endpointKey] : undefined;
        let failed = false;
        if (typeof key === "string") {
          if (byKey.has(`${entity}:${key}`)) {
            section(errs, entity)[item.index + 1] = uniqueness(entity, endpointKey as string, key);
            failed = true;
          } else byKey.set(`${entity}:${key}`, item);
        }
        const id = item.value.id as string;
        if (!failed && byId.has(`${entity}:${id}`)) {
          const target = item.parent
            ? section(section(section(errs, item.parent.entity), item.parent.index + 1), entity)
            : section(errs, entity);
          target[item.index + 1] = uniqueness(entity, "primary key", id);
        } else byId.set(`${entity}:${id}`, item);
      }
    }
    for (const item of this.loaded) {
      for (const [field, target] of Object.entries(FOREIGN[item.entity])) {
        const ref = item.value[field];
        if (typeof ref !== "string") continue;
        const found = byKey.get(`${target}:${ref}`) ?? byId.get(`${target}:${ref}`);
        if (found !== undefined) {
          item.value[field] = { id: found.value.id };
          continue;
        }
        const endpointKey = ENDPOINT_KEY[item.entity];
        const at = (
          endpointKey && typeof item.value[endpointKey] === "string" ? item.value[endpointKey] : item.value.id
        ) as string;
        const list = (section(errs, item.entity)[at] as string[] | undefined) ?? [];
        list.push(`invalid reference '${field}: ${ref}' (no such entry in '${target}')`);
        section(errs, item.entity)[at] = list;
      }
    }
    return finish(errs);
  }

  /** flatten(): every `unique` field once per entity type. */
  checkUniqueFields(): ErrorTable {
    const errs: ErrorTable = {};
    for (const entity of ENTITIES) {
      const seen = new Map<string, Set<unknown>>();
      for (const item of this.loaded.filter((l) => l.entity === entity)) {
        for (const field of UNIQUE_FIELDS[entity]) {
          const value = item.value[field];
          if (value === undefined || value === null) continue;
          const values = seen.get(field) ?? new Set();
          if (values.has(value)) {
            const endpointKey = ENDPOINT_KEY[entity];
            const at = (endpointKey && item.value[endpointKey]) || item.value.id;
            section(errs, entity)[String(at)] = uniqueness(entity, field, String(value));
          }
          values.add(value);
          seen.set(field, values);
        }
      }
    }
    return finish(errs);
  }

  config(): KongConfig {
    const of = <T>(entity: EntityName): T[] =>
      this.loaded.filter((l) => l.entity === entity).map((l) => l.value as T);
    return {
      services: of<ServiceEntity>("services"),
      routes: of<RouteEntity>("routes"),
      consumers: of<ConsumerEntity>("consumers"),
      keyauth_credentials: of<KeyAuthCredentialEntity>("keyauth_credentials"),
      plugins: of<PluginEntity>("plugins"),
    };
  }
}

/** Foreign keys are resolved after validation here, so they pass validation as plain records. */
function withLooseForeignKeys(schema: RecordSchema, entity: EntityName): RecordSchema {
  const foreign = Object.keys(FOREIGN[entity]);
  return {
    ...schema,
    fields: schema.fields.map((f: Record<string, unknown>) => {
      const [name, def] = Object.entries(f)[0] as [string, { type: string }];
      return foreign.includes(name) ? { [name]: { ...def, required: false } } : f;
    }) as RecordSchema["fields"],
  };
}

function section(errs: ErrorTable, key: string | number): ErrorTable {
  const k = String(key);
  if (!isPlainObject(errs[k])) errs[k] = {};
  return errs[k] as ErrorTable;
}

const uniqueness = (entity: string, key: string, value: string): string =>
  `uniqueness violation: '${entity}' entity with ${key} set to '${value}' already declared`;

/** Lua tables with only integer keys become JSON arrays (with nulls in the holes), as Kong's cjson writes them. */
function finish(t: unknown): ErrorTable {
  return asLuaTable(t) as ErrorTable;
}

function asLuaTable(t: unknown): unknown {
  if (!isPlainObject(t)) return t;
  const keys = Object.keys(t);
  const converted = Object.fromEntries(keys.map((k) => [k, asLuaTable(t[k])]));
  if (keys.length > 0 && keys.every((k) => /^[1-9]\d*$/.test(k))) {
    const max = Math.max(...keys.map(Number));
    return Array.from({ length: max }, (_, i) => converted[String(i + 1)] ?? null);
  }
  return converted;
}

// --- errors ---------------------------------------------------------------------------------------------

function invalid(errT: ErrorTable, input: Raw, opts: DeclarativeOptions): KongApiError {
  if (!opts.flattenErrors) return new KongApiError(400, declarativeConfigError(errT));
  const fields = structuredClone(errT);
  const flattened = flattenErrors(structuredClone(input), fields);
  return new KongApiError(400, { ...declarativeConfigError(fields), flattened_errors: flattened });
}

interface FlatError {
  type: "entity" | "field";
  field?: string;
  message: string;
}

/** kong/db/errors.lua flatten_errors: one entry per entity with errors, nested children hoisted; drains `errT`. */
function flattenErrors(input: Raw, errT: ErrorTable): Raw[] {
  const flattened: Raw[] = [];
  for (const entity of Object.keys(errT).sort()) {
    const sectionErrors = errT[entity];
    const entities = input[entity];
    if (typeof sectionErrors !== "object" || sectionErrors === null || !Array.isArray(entities)) continue;
    delete errT[entity];
    for (const [key, err] of drainEntries(sectionErrors)) {
      const item = entities[Number(key) - 1];
      if (isPlainObject(item) && /^\d+$/.test(key))
        addEntityErrors(entity as EntityName, item, err, flattened);
    }
  }
  return flattened;
}

function drainEntries(t: unknown): [string, unknown][] {
  if (Array.isArray(t))
    return t.flatMap((v, i): [string, unknown][] => (v === null ? [] : [[String(i + 1), v]]));
  if (isPlainObject(t))
    return Object.keys(t)
      .sort()
      .map((k) => [k, t[k]]);
  return [];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function addEntityErrors(entity: EntityName, item: Raw, rawErr: unknown, flattened: Raw[]): void {
  let err: Record<string, unknown>;
  if (typeof rawErr === "string") err = { "@entity": rawErr };
  else if (isPlainObject(rawErr) && Object.keys(rawErr).length > 0) err = { ...rawErr };
  else return;
  const pk = typeof item.id === "string" && UUID.test(item.id) ? { id: item.id } : undefined;
  for (const child of CHILDREN[entity]) {
    const childItems = item[child];
    const childErrs = err[child];
    if (!Array.isArray(childItems)) continue;
    delete item[child];
    delete err[child];
    if (childErrs === undefined) continue;
    childItems.forEach((childItem, i) => {
      if (!isPlainObject(childItem)) return;
      const parentField = PARENT_FIELD[entity] as string;
      if (childItem[parentField] === undefined && pk !== undefined) childItem[parentField] = pk;
      addEntityErrors(child, childItem, (childErrs as unknown[])[i], flattened);
    });
  }
  if (Object.keys(err).length === 0) return;
  const errors = categorize(err);
  if (errors.length === 0) return;
  const name = typeof item.name === "string" && item.name.length > 0 ? item.name : undefined;
  const tags =
    Array.isArray(item.tags) && item.tags.every((t) => typeof t === "string") ? item.tags : undefined;
  flattened.push({
    ...(name !== undefined && { entity_name: name }),
    ...(pk !== undefined && { entity_id: pk.id }),
    ...(tags !== undefined && { entity_tags: tags }),
    entity_type: entity.replace(/s$/, ""),
    entity: item,
    errors,
  });
}

function categorize(errs: unknown, ns?: string, out: FlatError[] = []): FlatError[] {
  for (const [field, err] of drainEntries(errs)) {
    const path = ns ? `${ns}.${field}` : field;
    if (field === "@entity") {
      for (const message of Array.isArray(err) ? err : [err])
        out.push({ type: "entity", message: String(message) });
    } else if (typeof err === "string") out.push({ type: "field", field: path, message: err });
    else if (Array.isArray(err) && err.every((e) => typeof e === "string")) {
      for (const message of err) out.push({ type: "field", field: path, message });
    } else if (typeof err === "object" && err !== null) categorize(err, path, out);
  }
  return out;
}

export { PROTOCOLS };
