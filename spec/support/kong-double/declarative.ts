/**
 * Kong's declarative configuration (`_format_version: "3.0"`, as in a DB-less kong.yml or `POST /config`):
 * services (url shorthand or protocol/host/port/path), routes nested or top-level, consumers with key-auth
 * credentials, plugins on a service, a route, a consumer or global. Entities get Kong's defaults; ids that the
 * file does not give are generated as Kong 3.x does, as UUID v5 of the entity's name or cache key, so loading
 * the same file again keeps every id (and a plugin's rotation state, which is keyed by its id). Errors come
 * back in the shape of Kong's 400 for `POST /config` (code 14, "invalid declarative configuration").
 */
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import type {
  ConsumerEntity,
  KeyAuthCredentialEntity,
  KongConfig,
  PluginEntity,
  PluginInfo,
  RouteEntity,
  SchemaField,
  ServiceEntity,
} from "./model";
import { KongApiError } from "./model";
import { type FieldErrors, validateRecord } from "./schema";

const ENTITIES_NAMESPACE = "fd02801f-0957-4a15-a55a-c8d9606f30b5";
const PROTOCOLS = ["http", "https"];

type Raw = Record<string, unknown>;
type ErrorTree = { [key: string]: ErrorTree | string } | (ErrorTree | string | null)[];

export function parseDeclarativeConfig(input: string | object, plugins: Map<string, PluginInfo>): KongConfig {
  let doc: unknown = input;
  if (typeof input === "string") {
    try {
      doc = parseYaml(input);
    } catch (error) {
      throw invalid({ "@entity": [`failed parsing declarative configuration: ${(error as Error).message}`] });
    }
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw invalid({ "@entity": ["expected an object"] });
  const raw = doc as Raw;
  if (raw._format_version === undefined) throw invalid({ _format_version: "required field missing" });
  if (raw._format_version !== "3.0") throw invalid({ _format_version: "expected one of: 1.1, 2.1, 3.0" });
  const builder = new Builder(plugins);
  builder.load(raw);
  return builder.finish();
}

function invalid(fields: unknown): KongApiError {
  return new KongApiError(400, {
    code: 14,
    name: "invalid declarative configuration",
    fields,
    message: `declarative config is invalid: ${JSON.stringify(fields)}`,
  });
}

class Builder {
  private readonly config: KongConfig = {
    services: [],
    routes: [],
    consumers: [],
    keyauth_credentials: [],
    plugins: [],
  };
  private readonly errors: Record<string, ErrorTree> = {};
  private readonly pendingPlugins: {
    raw: Raw;
    scope: { service?: string; route?: string; consumer?: string };
    where: (string | number)[];
  }[] = [];

  constructor(private readonly known: Map<string, PluginInfo>) {}

  load(raw: Raw): void {
    const allowed = new Set([
      "_format_version",
      "_transform",
      "_comment",
      "_workspace",
      "services",
      "routes",
      "consumers",
      "plugins",
      "upstreams",
      "certificates",
    ]);
    for (const key of Object.keys(raw)) if (!allowed.has(key)) this.fail([key], "unknown field");
    this.each(raw.services, ["services"], (s, where) => this.service(s, where));
    this.each(raw.routes, ["routes"], (r, where) =>
      this.route(r, where, this.refId("services", r.service, [...where, "service"])),
    );
    this.each(raw.consumers, ["consumers"], (c, where) => this.consumer(c, where));
    this.each(raw.plugins, ["plugins"], (p, where) =>
      this.pendingPlugins.push({
        raw: p,
        scope: {
          ...(p.service !== undefined && {
            service: this.refId("services", p.service, [...where, "service"]),
          }),
          ...(p.route !== undefined && { route: this.refId("routes", p.route, [...where, "route"]) }),
          ...(p.consumer !== undefined && {
            consumer: this.refId("consumers", p.consumer, [...where, "consumer"]),
          }),
        },
        where,
      }),
    );
    for (const p of this.pendingPlugins) this.plugin(p.raw, p.scope, p.where);
  }

  finish(): KongConfig {
    if (Object.keys(this.errors).length > 0) throw invalid(this.errors);
    return this.config;
  }

  private each(
    list: unknown,
    where: (string | number)[],
    fn: (item: Raw, where: (string | number)[]) => void,
  ): void {
    if (list === undefined) return;
    if (!Array.isArray(list)) return this.fail(where, "expected an array");
    list.forEach((item, i) => {
      if (item === null || typeof item !== "object" || Array.isArray(item))
        this.fail([...where, i], "expected a record");
      else fn(item as Raw, [...where, i]);
    });
  }

  private service(raw: Raw, where: (string | number)[]): void {
    const { routes, plugins, url, ...rest } = raw;
    let fromUrl: Raw = {};
    if (url !== undefined) {
      try {
        const u = new URL(String(url));
        const protocol = u.protocol.slice(0, -1);
        fromUrl = {
          protocol,
          host: u.hostname,
          port: u.port === "" ? (protocol === "https" ? 443 : 80) : Number(u.port),
          ...(u.pathname !== "/" || String(url).endsWith("/") ? { path: u.pathname } : {}),
        };
      } catch {
        return this.fail([...where, "url"], "missing host in url");
      }
    }
    const fields = serviceFields();
    const checked = validateRecord(fields, {
      ...fromUrl,
      ...rest,
      id: rest.id ?? this.uuid("services", rest.name),
    });
    if (!checked.ok) return this.failTree(where, checked.errors);
    const service = checked.value as unknown as ServiceEntity;
    if (!PROTOCOLS.includes(service.protocol))
      return this.fail([...where, "protocol"], `expected one of: ${PROTOCOLS.join(", ")}`);
    this.config.services.push(service);
    this.each(routes, [...where, "routes"], (r, w) => this.route(r, w, service.id));
    this.each(plugins, [...where, "plugins"], (p, w) =>
      this.pendingPlugins.push({ raw: p, scope: { service: service.id }, where: w }),
    );
  }

  private route(raw: Raw, where: (string | number)[], serviceId: string | undefined): void {
    const { plugins, service: _service, ...rest } = raw;
    const checked = validateRecord(routeFields(), { ...rest, id: rest.id ?? this.uuid("routes", rest.name) });
    if (!checked.ok) return this.failTree(where, checked.errors);
    const route = checked.value as unknown as RouteEntity;
    if (!route.paths?.length && !route.hosts?.length && !route.methods?.length && !route.headers) {
      return this.fail(
        where,
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'",
      );
    }
    for (const [i, path] of (route.paths ?? []).entries()) {
      if (!path.startsWith("/") && !path.startsWith("~/"))
        this.fail([...where, "paths", i], "should start with: / (fixed path) or ~/ (regex path)");
      if (path.startsWith("~")) {
        try {
          new RegExp(path.slice(1));
        } catch {
          this.fail([...where, "paths", i], `invalid regex: '${path.slice(1)}'`);
        }
      }
    }
    if (serviceId !== undefined) route.service = { id: serviceId };
    this.config.routes.push(route);
    this.each(plugins, [...where, "plugins"], (p, w) =>
      this.pendingPlugins.push({ raw: p, scope: { route: route.id }, where: w }),
    );
  }

  private consumer(raw: Raw, where: (string | number)[]): void {
    const { plugins, keyauth_credentials, ...rest } = raw;
    const checked = validateRecord(consumerFields(), {
      ...rest,
      id: rest.id ?? this.uuid("consumers", rest.username ?? rest.custom_id),
    });
    if (!checked.ok) return this.failTree(where, checked.errors);
    const consumer = checked.value as unknown as ConsumerEntity;
    if (consumer.username === undefined && consumer.custom_id === undefined) {
      return this.fail(where, "at least one of these fields must be non-empty: 'custom_id', 'username'");
    }
    this.config.consumers.push(consumer);
    this.each(keyauth_credentials, [...where, "keyauth_credentials"], (k, w) => {
      if (typeof k.key !== "string" || k.key === "")
        return this.fail([...w, "key"], "required field missing");
      const credential: KeyAuthCredentialEntity = {
        id: typeof k.id === "string" ? k.id : this.uuid("keyauth_credentials", k.key),
        consumer: { id: consumer.id },
        key: k.key,
      };
      this.config.keyauth_credentials.push(credential);
    });
    this.each(plugins, [...where, "plugins"], (p, w) =>
      this.pendingPlugins.push({ raw: p, scope: { consumer: consumer.id }, where: w }),
    );
  }

  private plugin(
    raw: Raw,
    scope: { service?: string; route?: string; consumer?: string },
    where: (string | number)[],
  ): void {
    const name = raw.name;
    if (typeof name !== "string") return this.fail([...where, "name"], "required field missing");
    const info = this.known.get(name);
    if (info === undefined)
      return this.fail(
        [...where, "name"],
        `plugin '${name}' not enabled; add it to the 'plugins' configuration property`,
      );
    const { config, service: _s, route: _r, consumer: _c, ...rest } = raw;
    const checkedConfig = validateRecord(info.configFields, config ?? {});
    const checked = validateRecord(pluginFields(), rest);
    if (!checkedConfig.ok || !checked.ok) {
      const errors: FieldErrors = checked.ok ? {} : checked.errors;
      if (!checkedConfig.ok) errors.config = checkedConfig.errors;
      return this.failTree(where, errors);
    }
    const cacheKey = `plugins:${name}:${scope.route ?? ""}:${scope.service ?? ""}:${scope.consumer ?? ""}`;
    const plugin: PluginEntity = {
      ...(checked.value as unknown as Omit<PluginEntity, "config">),
      id: typeof rest.id === "string" ? rest.id : this.uuid("plugins", cacheKey),
      name,
      config: checkedConfig.value,
      created_at: Math.floor(Date.now() / 1000),
      ...(scope.service !== undefined && { service: { id: scope.service } }),
      ...(scope.route !== undefined && { route: { id: scope.route } }),
      ...(scope.consumer !== undefined && { consumer: { id: scope.consumer } }),
    };
    if (
      this.config.plugins.some(
        (p) =>
          `plugins:${p.name}:${p.route?.id ?? ""}:${p.service?.id ?? ""}:${p.consumer?.id ?? ""}` ===
          cacheKey,
      )
    ) {
      return this.fail(
        where,
        `uniqueness violation: 'plugins' entity with name '${name}' already declared for this scope`,
      );
    }
    this.config.plugins.push(plugin);
  }

  private refId(
    entity: "services" | "routes" | "consumers",
    ref: unknown,
    where: (string | number)[],
  ): string | undefined {
    if (ref === undefined || ref === null) return undefined;
    const key = typeof ref === "object" ? ((ref as Raw).id ?? (ref as Raw).name) : ref;
    const list = this.config[entity] as { id: string; name?: string; username?: string }[];
    const found = list.find((e) => e.id === key || e.name === key || e.username === key);
    if (found === undefined) this.fail(where, `could not find ${entity.slice(0, -1)} '${String(key)}'`);
    return found?.id;
  }

  private uuid(entity: string, key: unknown): string {
    if (typeof key !== "string") return uuidV5(ENTITIES_NAMESPACE, `${entity}:${Math.random()}`);
    return uuidV5(uuidV5(ENTITIES_NAMESPACE, entity), key);
  }

  /** A message for a field goes on the field; one for a whole entity under "@entity", as Kong reports them. */
  private fail(where: (string | number)[], message: string): void {
    const last = where[where.length - 1];
    if (typeof last === "string") this.failTree(where.slice(0, -1), { [last]: message });
    else this.failTree(where, { "@entity": [message] } as unknown as FieldErrors);
  }

  private failTree(where: (string | number)[], errors: FieldErrors): void {
    let node: Record<string, unknown> = this.errors;
    for (const key of where) {
      node[key] ??= {};
      node = node[key] as Record<string, unknown>;
    }
    Object.assign(node, errors);
  }
}

/** RFC 4122 version 5 UUID (SHA-1 of namespace + name), as resty.jit-uuid's factory_v5 makes. */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  const hash = createHash("sha1").update(ns).update(name).digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Entity schemas: the fields of Kong 3.9.3's services, routes, consumers and plugins the double uses.
const str = (extra: object = {}) => ({ type: "string", description: "entity field", ...extra });
const int = (def: number, between: [number, number]) => ({
  type: "integer",
  default: def,
  between,
  description: "entity field",
});
const bool = (def: boolean) => ({ type: "boolean", default: def, description: "entity field" });
const strings = (extra: object = {}) => ({
  type: "array",
  elements: { type: "string" },
  description: "entity field",
  ...extra,
});
const tags = { tags: { type: "set", elements: { type: "string" }, description: "entity field" } };
const idField = { id: str({ required: true }) };
const timestamps: SchemaField[] = [
  { created_at: { type: "integer", description: "entity field" } },
  { updated_at: { type: "integer", description: "entity field" } },
];

function serviceFields(): SchemaField[] {
  return [
    idField,
    { name: str() },
    { protocol: str({ default: "http" }) },
    { host: str({ required: true }) },
    { port: int(80, [0, 65535]) },
    { path: str({ starts_with: "/" }) },
    { retries: int(5, [0, 32767]) },
    { connect_timeout: int(60000, [1, 2147483646]) },
    { write_timeout: int(60000, [1, 2147483646]) },
    { read_timeout: int(60000, [1, 2147483646]) },
    { enabled: bool(true) },
    tags,
    ...timestamps,
  ];
}

function routeFields(): SchemaField[] {
  return [
    idField,
    { name: str() },
    { protocols: { ...strings(), type: "set", default: ["http", "https"] } },
    { methods: { ...strings(), type: "set" } },
    { hosts: strings() },
    { paths: strings() },
    {
      headers: {
        type: "map",
        keys: { type: "string" },
        values: { type: "array", elements: { type: "string" } },
        description: "entity field",
      },
    },
    { strip_path: bool(true) },
    { preserve_host: bool(false) },
    { regex_priority: int(0, [-2147483648, 2147483647]) },
    { path_handling: str({ default: "v0", one_of: ["v0", "v1"] }) },
    { https_redirect_status_code: { ...int(426, [100, 599]), one_of: [426, 301, 302, 307, 308] } },
    { request_buffering: bool(true) },
    { response_buffering: bool(true) },
    tags,
    ...timestamps,
  ];
}

function consumerFields(): SchemaField[] {
  return [idField, { username: str() }, { custom_id: str() }, tags, ...timestamps];
}

function pluginFields(): SchemaField[] {
  return [
    { id: str() },
    { name: str({ required: true }) },
    { instance_name: str() },
    { enabled: bool(true) },
    { protocols: { ...strings(), type: "set", default: ["grpc", "grpcs", "http", "https"] } },
    tags,
    ...timestamps,
  ];
}
