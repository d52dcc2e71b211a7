/**
 * Kong's Admin API (3.9.3: kong/api/routes/{kong,health,config,plugins}.lua, kong/api/endpoints.lua,
 * kong/api/api_helpers.lua, kong/db/strategies/off) as a pure request handler over a ConfigStore; the runtime
 * mounts it on an HTTP listener. JSON bodies, and form bodies (urlencoded, multipart) decoded as Kong decodes
 * them (admin-form.ts); no pagination (`next` is always null); no tags filtering.
 *
 *   const api = createAdminApi(store, { database: "off", plugins, version: KONG_VERSION });
 *   const { status, body } = await api({ method: "POST", path: "/config", query: new URLSearchParams(), body: yamlText });
 *
 * - `GET /` (500 while a plugin server is managed, as on Kong 3.9.1-3.9.3), `GET /status`;
 * - `POST /config` (DB-less only; 400 "this endpoint is only available when Kong is configured to not use a
 *   database" otherwise): a declarative config as the JSON body itself, as `{config: "<yaml or json>"}` or
 *   as raw text, or as a form whose `config` field holds it (`curl -F config=@kong.yml`); `?flatten_errors=1`, `?check_hash=1` (304 when identical); 201 with the loaded entities;
 *   `GET /config` gives them back as YAML;
 * - entities: `/services`, `/routes`, `/consumers`, `/plugins`, with `/{id or name}`, and
 *   `/services/{x}/routes`, `/services/{x}/plugins`, `/routes/{x}/plugins`, `/consumers/{x}/plugins`,
 *   `/consumers/{x}/key-auth`: GET everywhere; POST/PUT/PATCH/DELETE in database mode, 405 with Kong's
 *   "cannot create 'services' entities when not using a database" when DB-less (but a missing entity is
 *   404 on GET and PATCH and 204 on DELETE there too); 400 schema violation, 404 "Not found", 409 unique
 *   violation, 400 foreign key violation as Kong answers them;
 * - `GET /plugins/enabled`, `GET /schemas/plugins/{name}`, `POST /schemas/plugins/validate`.
 */
import { createHash, randomUUID } from "node:crypto";
import { stringify as toYaml } from "yaml";
import { decodeEntityForm, decodeParamsForm, type FormBody, type InferSchema } from "./admin-form";
import type { ConfigStore } from "./config-store";
import { loadedConfigSummary, parseDeclarativeConfig } from "./declarative";
import { checkEntity, type EntityName, isSchema, schemaFor } from "./entities";
import { foreignKeyViolation, schemaViolation, uniqueViolation } from "./kong-errors";
import { KongApiError, type KongConfig, type PluginInfo } from "./model";
import { isPlainObject, processAutoFields } from "./schema";

export interface AdminRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body, or the raw text when it was not JSON, or undefined. */
  body: unknown;
  /** A form body (urlencoded or multipart), decoded by the route that takes it as Kong does. */
  form?: FormBody;
}
export interface AdminResponse {
  status: number;
  body: unknown;
}
export type AdminApi = (req: AdminRequest) => Promise<AdminResponse>;

export interface AdminApiOptions {
  database: "off" | "postgres";
  /** Every plugin this node loaded: external ones and the bundled ones the double emulates. */
  plugins: ReadonlyMap<string, PluginInfo>;
  version: string;
  /**
   * Kong (worker 0; the double has one worker) started a plugin server from a `start_cmd`: then `GET /` fails as
   * on Kong 3.9.1-3.9.3. False when every plugin server runs outside Kong.
   */
  managesPluginServers?: boolean;
  nodeId?: string;
  hostname?: string;
}

type Raw = Record<string, unknown>;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENDPOINT_KEY: Record<EntityName, string> = {
  services: "name",
  routes: "name",
  consumers: "username",
  plugins: "instance_name",
  keyauth_credentials: "key",
};
const UNIQUE: Record<EntityName, string[]> = {
  services: ["name"],
  routes: ["name"],
  consumers: ["username", "custom_id"],
  plugins: ["instance_name"],
  keyauth_credentials: ["key"],
};
/** Who points at whom: child entity, its foreign field, the parent, and what deleting the parent does. */
const RELATIONS: {
  child: EntityName;
  field: string;
  parent: EntityName;
  onDelete: "cascade" | "restrict";
}[] = [
  { child: "routes", field: "service", parent: "services", onDelete: "restrict" },
  { child: "plugins", field: "service", parent: "services", onDelete: "cascade" },
  { child: "plugins", field: "route", parent: "routes", onDelete: "cascade" },
  { child: "plugins", field: "consumer", parent: "consumers", onDelete: "cascade" },
  { child: "keyauth_credentials", field: "consumer", parent: "consumers", onDelete: "cascade" },
];
const COLLECTIONS: Record<string, EntityName> = {
  services: "services",
  routes: "routes",
  consumers: "consumers",
  plugins: "plugins",
  "key-auth": "keyauth_credentials",
};
const OPERATION: Record<string, string> = {
  POST: "create",
  PUT: "create or update",
  PATCH: "update",
  DELETE: "remove",
};

const reply = (status: number, body: unknown): AdminResponse => ({ status, body });
const notFound = (): AdminResponse => reply(404, { message: "Not found" });
const methodNotAllowed = (): AdminResponse => reply(405, { message: "Method not allowed" });

/** What every handler works on: the store, the node's options, and the select view of an entity. */
interface Admin {
  store: ConfigStore;
  opts: AdminApiOptions;
  nodeId: string;
  dbless: boolean;
}
type Params = Record<string, string>;
/** A route's answer; undefined lets the next route of the same path answer (Kong's `before` filters). */
type Handler = (admin: Admin, req: AdminRequest, params: Params) => AdminResponse | undefined;
interface Route {
  /** An HTTP method, or "*" for every method. */
  method: string;
  /** Literal segments and `:name` parameters: `/services/:service/routes`. */
  path: string;
  handler: Handler;
}
type Relation = (typeof RELATIONS)[number];
type Scope = { field: string; id: string };

/**
 * The routes, as Kong's route modules declare them. The first path that matches the request's path decides:
 * its routes answer in order, and a method none of them takes gets 405; a path no route has gets 404.
 */
const ROUTES: Route[] = [
  {
    method: "GET",
    path: "/",
    // Kong 3.9.1-3.9.3 keeps the ngx.pipe handle of each plugin server it manages in
    // kong.configuration.pluginservers (kong/runloop/plugin_servers/process.lua pluginserver_timer: server_def.proc),
    // and GET / encodes remove_sensitive()'s deep copy of kong.configuration (kong/api/routes/kong.lua): cjson
    // fails on the cdata, kong.response.exit raises "body encoding failed while flushing response", and
    // api_helpers.handle_error answers 500. Fixed on master (#14111), the 3.9.x backport reverted (#14886).
    handler: (admin) =>
      admin.opts.managesPluginServers
        ? reply(500, { message: "An unexpected error occurred" })
        : reply(200, root(admin)),
  },
  { method: "GET", path: "/status", handler: (admin) => reply(200, status(admin)) },
  { method: "*", path: "/config", handler: dblessOnly },
  {
    method: "GET",
    path: "/config",
    handler: (admin) => reply(200, { config: toYaml(exportConfig(admin.store.config)) }),
  },
  { method: "POST", path: "/config", handler: postConfig },
  {
    method: "POST",
    path: "/schemas/plugins/validate",
    handler: (admin, req) => validatePlugin(admin, paramsBody(req)),
  },
  // Kong 3.9.3 kong/api/routes/plugins.lua ["/plugins/enabled"]: the names in kong.configuration.loaded_plugins
  // (declared before /plugins/:plugins, so it wins over an instance named "enabled").
  {
    method: "GET",
    path: "/plugins/enabled",
    handler: (admin) => reply(200, { enabled_plugins: [...admin.opts.plugins.keys()] }),
  },
  {
    method: "GET",
    path: "/schemas/plugins/:name",
    handler: (admin, _req, p) => pluginSchema(admin, p.name as string),
  },
  ...entityRoutes(),
];

/** `/services`, `/services/{id or name}` and so on, then the nested ones the relations allow. */
function entityRoutes(): Route[] {
  const routes: Route[] = [];
  const add = (path: string, handlers: Record<string, Handler>) => {
    for (const [method, handler] of Object.entries(handlers)) routes.push({ method, path, handler });
  };
  const pathOf = (entity: EntityName) =>
    Object.keys(COLLECTIONS).find((k) => COLLECTIONS[k] === entity) as string;
  for (const entity of ["services", "routes", "consumers", "plugins"] as const) {
    add(`/${pathOf(entity)}`, { GET: listEntities(entity), POST: createEntity(entity) });
    add(`/${pathOf(entity)}/:id`, singleEntityHandlers(entity));
  }
  for (const relation of RELATIONS) {
    const base = `/${pathOf(relation.parent)}/:parent/${pathOf(relation.child)}`;
    add(base, {
      "*": nestedCollectionExists(relation),
      GET: listEntities(relation.child, relation),
      POST: createEntity(relation.child, relation),
    });
    add(`${base}/:id`, {
      "*": nestedEntityFits(relation),
      ...singleEntityHandlers(relation.child, relation),
    });
  }
  return routes;
}

function singleEntityHandlers(entity: EntityName, relation?: Relation): Record<string, Handler> {
  return {
    GET: getEntity(entity),
    PUT: putEntity(entity, relation),
    PATCH: patchEntity(entity, relation),
    DELETE: deleteEntity(entity),
  };
}

export function createAdminApi(store: ConfigStore, opts: AdminApiOptions): AdminApi {
  const admin: Admin = { store, opts, nodeId: opts.nodeId ?? randomUUID(), dbless: opts.database === "off" };
  return async (req) => {
    const method = req.method.toUpperCase();
    const segments = req.path
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
    try {
      return dispatch(admin, { ...req, method }, segments);
    } catch (e) {
      if (e instanceof KongApiError) return reply(e.status, e.body);
      throw e;
    }
  };
}

function dispatch(admin: Admin, req: AdminRequest, segments: string[]): AdminResponse {
  const first = ROUTES.find((r) => matchPath(r.path, segments) !== undefined);
  if (first === undefined) return notFound();
  const params = matchPath(first.path, segments) as Params;
  for (const route of ROUTES.filter((r) => r.path === first.path)) {
    if (route.method !== "*" && route.method !== req.method) continue;
    const response = route.handler(admin, req, params);
    if (response !== undefined) return response;
  }
  return methodNotAllowed();
}

function matchPath(path: string, segments: string[]): Params | undefined {
  const parts = path.split("/").filter((s) => s !== "");
  if (parts.length !== segments.length) return undefined;
  const params: Params = {};
  for (const [i, part] of parts.entries()) {
    const segment = segments[i] as string;
    if (part.startsWith(":")) params[part.slice(1)] = segment;
    else if (part !== segment) return undefined;
  }
  return params;
}

// --- the node: /, /status, /config, /schemas ----------------------------------------------------------------

function root({ opts, store, nodeId }: Admin): Raw {
  const available = Object.fromEntries(
    [...opts.plugins.values()].map((p) => [p.name, { version: p.version, priority: p.priority }]),
  );
  return {
    tagline: "Welcome to kong",
    version: opts.version,
    edition: "community",
    hostname: opts.hostname ?? "kong-double",
    node_id: nodeId,
    lua_version: "LuaJIT 2.1.0-20231117",
    timers: { running: 0, pending: 0 },
    plugins: {
      available_on_server: available,
      enabled_in_cluster: [...new Set(store.config.plugins.map((p) => p.name))],
    },
    configuration: {
      database: opts.database,
      plugins: [
        "bundled",
        ...[...opts.plugins.values()].filter((p) => p.server !== undefined).map((p) => p.name),
      ],
      loaded_plugins: Object.fromEntries([...opts.plugins.keys()].map((n) => [n, true])),
      router_flavor: "traditional_compatible",
      role: "traditional",
    },
    pids: { master: process.pid, workers: [process.pid] },
  };
}

function status({ dbless, store }: Admin): Raw {
  const memory = {
    workers_lua_vms: [{ pid: process.pid, http_allocated_gc: "0.00 MiB" }],
    lua_shared_dicts: {},
  };
  const server = {
    connections_accepted: 0,
    connections_active: 0,
    connections_handled: 0,
    connections_reading: 0,
    connections_waiting: 0,
    connections_writing: 0,
    total_requests: 0,
  };
  return dbless
    ? { memory, server, configuration_hash: store.configurationHash }
    : { memory, server, database: { reachable: true } };
}

/** /config, whatever the method, answers 400 unless Kong runs DB-less. */
function dblessOnly({ dbless }: Admin): AdminResponse | undefined {
  if (dbless) return undefined;
  return reply(400, {
    message: "this endpoint is only available when Kong is configured to not use a database",
  });
}

/**
 * The body as `self.params` of a route Kong attaches with attach_routes (kong/api/api_helpers.lua parse_params):
 * a form decoded Lapis's way, without a schema (admin-form.ts decodeParamsForm).
 */
function paramsBody(req: AdminRequest): unknown {
  return req.form === undefined ? req.body : decodeParamsForm(req.form);
}

/**
 * The body of an entity endpoint (kong/api/arguments.lua load, with the entity's schema): a form is decoded and
 * typed by that schema; a plugin's by its plugin's (Schema:each_field picks the subschema by name; on PATCH,
 * kong/api/routes/plugins.lua patch_plugin decodes again with the stored plugin's name).
 */
function entityBody(admin: Admin, entity: EntityName, req: AdminRequest, existing?: Raw): unknown {
  if (req.form === undefined) return req.body;
  return decodeEntityForm(req.form, req.method, (args) => {
    const named = entity === "plugins" && args.name === undefined ? { ...args, name: existing?.name } : args;
    const schema = schemaFor(entity, named, admin.opts.plugins);
    return isSchema(schema) ? (schema as unknown as InferSchema) : undefined;
  });
}

function postConfig(admin: Admin, req: AdminRequest): AdminResponse {
  const { store, opts } = admin;
  let input: string | object;
  let hashSource: string;
  const body = paramsBody(req);
  req = { ...req, body };
  if (isPlainObject(req.body) && req.body._format_version !== undefined) {
    input = req.body;
    hashSource = JSON.stringify(req.body);
  } else if (isPlainObject(req.body) && typeof req.body.config === "string") {
    input = req.body.config;
    hashSource = req.body.config;
  } else if (typeof req.body === "string" && req.body.length > 0) {
    input = req.body;
    hashSource = req.body;
  } else if (isPlainObject(req.body) && Object.keys(req.body).length > 0) {
    // Kong (hydrate_config_from_request) falls back to the raw body, so a JSON object without
    // _format_version is parsed, and refused for that field.
    input = req.body;
    hashSource = JSON.stringify(req.body);
  } else return reply(400, { message: "expected a declarative configuration" });
  const hash = createHash("md5").update(hashSource).digest("hex");
  if (req.query.get("check_hash") === "1" && hash === store.configurationHash) return reply(304, undefined);
  const flattenErrors = ["true", "1", "on", "yes"].includes(
    (req.query.get("flatten_errors") ?? "").toLowerCase(),
  );
  const loaded = parseDeclarativeConfig(input, opts.plugins, { flattenErrors });
  store.replace(loaded, hash);
  const summary = loadedConfigSummary(loaded);
  for (const [entity, byId] of Object.entries(summary)) {
    for (const [id, value] of Object.entries(byId))
      byId[id] = view(admin, entity as EntityName, value as Raw);
  }
  return reply(201, summary);
}

function pluginSchema({ opts }: Admin, name: string): AdminResponse {
  const plugin = opts.plugins.get(name);
  if (plugin === undefined) return reply(404, { message: `No plugin named '${name}'` });
  const fields = [
    ...(plugin.entityFields ?? []),
    { config: { type: "record", required: true, fields: plugin.configFields } },
  ];
  return reply(200, JSON.parse(JSON.stringify({ fields })));
}

function validatePlugin({ opts }: Admin, body: unknown): AdminResponse {
  const input = isPlainObject(body) ? body : {};
  const schema = schemaFor("plugins", input, opts.plugins);
  if (!isSchema(schema)) return reply(400, schemaViolation(schema));
  const checked = checkEntity(schema, input);
  if (!checked.ok) return reply(400, schemaViolation(checked.errors));
  return reply(200, { message: "schema validation successful" });
}

// --- entities -------------------------------------------------------------------------------------------------

/** An entity as the Admin API shows it: select-processed, unset fields as null. */
function view({ opts }: Admin, entity: EntityName, value: Raw): Raw {
  const schema = schemaFor(entity, value, opts.plugins);
  return isSchema(schema) ? processAutoFields(schema, value, "select", { nulls: true }) : value;
}

/** `/{parent}/{x}/{children}`: 404 for every method when the parent does not exist. */
function nestedCollectionExists(relation: Relation): Handler {
  return ({ store }, _req, params) =>
    find(store.config, relation.parent, params.parent as string) === undefined ? notFound() : undefined;
}

/** `/{parent}/{x}/{children}/{y}`: also 404 when the child exists but belongs to another parent. */
function nestedEntityFits(relation: Relation): Handler {
  return (admin, req, params) => {
    const missing = nestedCollectionExists(relation)(admin, req, params);
    if (missing !== undefined) return missing;
    const scope = scopeOf(admin, relation, params) as Scope;
    const child = find(admin.store.config, relation.child, params.id as string);
    if (child !== undefined && (child[scope.field] as { id?: string } | undefined)?.id !== scope.id)
      return notFound();
    return undefined;
  };
}

/** The parent a nested route names, as the foreign key its children carry. */
function scopeOf({ store }: Admin, relation: Relation | undefined, params: Params): Scope | undefined {
  if (relation === undefined) return undefined;
  const parent = find(store.config, relation.parent, params.parent as string) as Raw;
  return { field: relation.field, id: parent.id as string };
}

function scopedInput(body: unknown, scope: Scope | undefined): Raw {
  return { ...(isPlainObject(body) ? body : {}), ...(scope && { [scope.field]: { id: scope.id } }) };
}

function listEntities(entity: EntityName, relation?: Relation): Handler {
  return (admin, _req, params) => {
    const scope = scopeOf(admin, relation, params);
    const list = (admin.store.config[entity] as unknown as Raw[]).filter(
      (e) => scope === undefined || (e[scope.field] as { id?: string } | undefined)?.id === scope.id,
    );
    return reply(200, { data: list.map((e) => view(admin, entity, e)), next: null });
  };
}

function createEntity(entity: EntityName, relation?: Relation): Handler {
  return (admin, req, params) => {
    if (admin.dbless) return unsupported(req.method, entity);
    const input = scopedInput(entityBody(admin, entity, req), scopeOf(admin, relation, params));
    return reply(201, view(admin, entity, save(admin, entity, input, undefined)));
  };
}

function getEntity(entity: EntityName): Handler {
  return (admin, _req, params) => {
    const existing = find(admin.store.config, entity, params.id as string);
    return existing === undefined ? notFound() : reply(200, view(admin, entity, existing));
  };
}

/** PUT: creates or replaces the entity the path names (by id, or by its endpoint key). */
function putEntity(entity: EntityName, relation?: Relation): Handler {
  return (admin, req, params) => {
    if (admin.dbless) return unsupported(req.method, entity);
    const idOrKey = params.id as string;
    const existing = find(admin.store.config, entity, idOrKey);
    const input = scopedInput(entityBody(admin, entity, req), scopeOf(admin, relation, params));
    const key = UUID.test(idOrKey) ? { id: idOrKey } : { [ENDPOINT_KEY[entity]]: idOrKey };
    const replacement = {
      ...input,
      ...key,
      ...(existing && { id: existing.id, created_at: existing.created_at }),
    };
    return reply(200, view(admin, entity, save(admin, entity, replacement, existing)));
  };
}

function patchEntity(entity: EntityName, relation?: Relation): Handler {
  return (admin, req, params) => {
    // Kong 3.9.3 kong/db/dao/init.lua check_update reads before it writes: a missing entity is NOT_FOUND
    // (404 "Not found", endpoints.lua handle_error) before the off strategy's update refuses (405).
    const existing = find(admin.store.config, entity, params.id as string);
    if (existing === undefined) return notFound();
    if (admin.dbless) return unsupported(req.method, entity);
    const input = scopedInput(entityBody(admin, entity, req, existing), scopeOf(admin, relation, params));
    return reply(200, view(admin, entity, save(admin, entity, merge(existing, input), existing)));
  };
}

function deleteEntity(entity: EntityName): Handler {
  return (admin, req, params) => {
    // Kong 3.9.3 kong/db/dao/init.lua DAO:delete and delete_by_{field} select first and return true when
    // nothing is there (endpoints.lua delete_entity_endpoint → 204); only an existing entity reaches the off
    // strategy's delete, which refuses (405).
    const existing = find(admin.store.config, entity, params.id as string);
    if (existing === undefined) return reply(204, undefined);
    if (admin.dbless) return unsupported(req.method, entity);
    remove(admin, entity, existing);
    return reply(204, undefined);
  };
}

function unsupported(method: string, entity: EntityName): AdminResponse {
  return reply(405, {
    code: 12,
    name: "operation unsupported",
    message: `cannot ${OPERATION[method]} '${entity}' entities when not using a database`,
  });
}

/**
 * Kong's Admin API takes a foreign key by its endpoint key too (`"service": {"name": "llm"}`) and looks the
 * id up; one that names nothing is a foreign key violation.
 */
function withForeignIds({ store }: Admin, entity: EntityName, input: Raw): Raw {
  const out = { ...input };
  for (const relation of RELATIONS.filter((r) => r.child === entity)) {
    const ref = out[relation.field];
    if (!isPlainObject(ref) || ref.id !== undefined) continue;
    const keyName = ENDPOINT_KEY[relation.parent];
    if (ref[keyName] === undefined) continue;
    const parent = (store.config[relation.parent] as unknown as Raw[]).find(
      (p) => p[keyName] === ref[keyName],
    );
    if (parent === undefined) {
      throw new KongApiError(
        400,
        foreignKeyViolation({ [keyName]: ref[keyName] }, relation.field, relation.parent),
      );
    }
    out[relation.field] = { id: parent.id };
  }
  return out;
}

function save(admin: Admin, entity: EntityName, given: Raw, existing: Raw | undefined): Raw {
  const { store, opts } = admin;
  const input = withForeignIds(admin, entity, given);
  const schema = schemaFor(entity, input, opts.plugins);
  if (!isSchema(schema)) throw new KongApiError(400, schemaViolation(schema));
  const checked = checkEntity(schema, input);
  if (!checked.ok) throw new KongApiError(400, schemaViolation(checked.errors));
  const saved = checked.entity;
  const others = (store.config[entity] as unknown as Raw[]).filter((e) => e.id !== existing?.id);
  if (existing === undefined && others.some((e) => e.id === saved.id)) {
    throw new KongApiError(409, uniqueViolation({ id: saved.id }));
  }
  for (const field of UNIQUE[entity]) {
    const value = saved[field];
    if (value !== undefined && others.some((e) => e[field] === value)) {
      throw new KongApiError(409, uniqueViolation({ [field]: value }));
    }
  }
  if (entity === "plugins") {
    const scopeOf = (p: Raw) =>
      ["route", "service", "consumer"].map((f) => (p[f] as { id?: string } | undefined)?.id ?? "").join(":");
    const clash = others.find((p) => p.name === saved.name && scopeOf(p) === scopeOf(saved));
    if (clash !== undefined) {
      const key: Raw = { name: saved.name };
      for (const f of ["route", "service", "consumer"]) key[f] = saved[f] ?? null;
      throw new KongApiError(409, uniqueViolation(key));
    }
  }
  for (const relation of RELATIONS.filter((r) => r.child === entity)) {
    const ref = saved[relation.field] as { id?: string } | undefined;
    if (ref?.id === undefined) continue;
    if (!(store.config[relation.parent] as unknown as Raw[]).some((p) => p.id === ref.id)) {
      throw new KongApiError(400, foreignKeyViolation({ id: ref.id }, relation.field, relation.parent));
    }
  }
  store.update((draft) => {
    const list = draft[entity] as unknown as Raw[];
    const index = list.findIndex((e) => e.id === existing?.id);
    if (existing !== undefined && index >= 0) list[index] = saved;
    else list.push(saved);
  });
  return saved;
}

function remove({ store }: Admin, entity: EntityName, existing: Raw): void {
  for (const relation of RELATIONS.filter((r) => r.parent === entity && r.onDelete === "restrict")) {
    const referencing = (store.config[relation.child] as unknown as Raw[]).some(
      (c) => (c[relation.field] as { id?: string } | undefined)?.id === existing.id,
    );
    if (referencing) {
      throw new KongApiError(400, {
        code: 4,
        name: "foreign key violation",
        message: `an existing '${relation.child}' entity references this '${entity}' entity`,
        fields: { "@referenced_by": relation.child },
      });
    }
  }
  store.update((draft) => deleteCascading(draft, entity, existing.id as string));
}

/** Finds an entity by id, or by its endpoint key (name, username, instance name, key). */
function find(config: KongConfig, entity: EntityName, idOrKey: string): Raw | undefined {
  const list = config[entity] as unknown as Raw[];
  return UUID.test(idOrKey)
    ? list.find((e) => e.id === idOrKey)
    : list.find((e) => e[ENDPOINT_KEY[entity]] === idOrKey);
}

function deleteCascading(draft: KongConfig, entity: EntityName, id: string): void {
  const list = draft[entity] as unknown as Raw[];
  const index = list.findIndex((e) => e.id === id);
  if (index >= 0) list.splice(index, 1);
  for (const relation of RELATIONS.filter((r) => r.parent === entity && r.onDelete === "cascade")) {
    const children = (draft[relation.child] as unknown as Raw[]).filter(
      (c) => (c[relation.field] as { id?: string } | undefined)?.id === id,
    );
    for (const child of children) deleteCascading(draft, relation.child, child.id as string);
  }
}

/** Kong's merge_values for PATCH: records merged field by field, everything else replaced. */
function merge(existing: Raw, patch: Raw): Raw {
  const out: Raw = { ...existing };
  for (const [k, v] of Object.entries(patch)) {
    out[k] =
      isPlainObject(v) && isPlainObject(existing[k]) && k !== "service" && k !== "route" && k !== "consumer"
        ? merge(existing[k] as Raw, v)
        : v;
  }
  return out;
}

/**
 * The declarative form of a configuration (`GET /config`): flat lists, and every reference to another entity
 * as its bare id (K3.9.3 kong/db/declarative/export.lua export_from_db_impl: `row[foreign_name] = id` unless
 * foreigns are expanded, which GET /config does not ask for), so that the export loads back as it is.
 */
function exportConfig(config: KongConfig): Raw {
  const out: Raw = { _format_version: "3.0", _transform: false };
  for (const [entity, list] of Object.entries(config)) {
    if ((list as unknown[]).length === 0) continue;
    out[entity] = (list as Raw[]).map((row) =>
      Object.fromEntries(
        Object.entries(row).map(([field, value]) => [field, isForeignKey(value) ? value.id : value]),
      ),
    );
  }
  return out;
}

/** `{ id: "..." }` and nothing else: how the double keeps a reference to another entity. */
function isForeignKey(value: unknown): value is { id: string } {
  return isPlainObject(value) && Object.keys(value).length === 1 && typeof (value as Raw).id === "string";
}
