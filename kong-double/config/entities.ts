/**
 * The entity schemas of Kong 3.9.3 the double holds (kong/db/schema/entities/{services,routes,consumers,
 * plugins}.lua, routes_subschemas.lua, kong/plugins/key-auth/daos.lua, kong/db/schema/typedefs.lua), written
 * for ./schema: fields with Kong's defaults and validators, entity checks, the service `url` shorthand, the
 * http route subschema ("must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"),
 * and the plugins entity specialised by each plugin's schema (an unknown name gets Kong's
 * "plugin '%s' not enabled; add it to the 'plugins' configuration property").
 *
 * Simplified: host names are checked for characters and ports, not resolved through Kong's normalize_ip in
 * every corner; regex paths are checked with JavaScript's RegExp rather than PCRE; the traditional_compatible
 * router's expression check is not run; tls-only service fields are kept but certificates do not exist here.
 */
import { createHash } from "node:crypto";
import type { FieldDef, PluginInfo, SchemaField } from "./model";
import {
  type CustomValidator,
  type EntityCheck,
  type FieldErrors,
  makeRecordsRequired,
  processAutoFields,
  type RecordSchema,
  ShorthandError,
  validate,
} from "./schema";

export type EntityName = "services" | "routes" | "consumers" | "keyauth_credentials" | "plugins";

/** constants.PROTOCOLS, sorted as Kong sorts them. */
export const PROTOCOLS = ["grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"];
const HTTP_PROTOCOLS = ["grpc", "grpcs", "http", "https"];

// --- typedefs -------------------------------------------------------------------------------------------

export const validateHost: CustomValidator = (value) => checkHost(value, false);
const validateHostWithOptionalPort: CustomValidator = (value) => checkHost(value, true);

function checkHost(value: unknown, portAllowed: boolean): true | string {
  const host = String(value);
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::(\d+))?$/.exec(host);
  if (v4 !== null) {
    if (v4.slice(1, 5).some((o) => Number(o) > 255)) return `invalid value: ${host}`;
    return v4[5] === undefined || portAllowed ? true : "must not have a port";
  }
  if (host.startsWith("[") || host.split(":").length > 2) {
    const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(host) ?? /^([0-9a-fA-F:.]+)$/.exec(host);
    if (m === null) return `invalid value: ${host}`;
    return m[2] === undefined || portAllowed ? true : "must not have a port";
  }
  const name = /^([^:]+)(?::(\d*))?$/.exec(host);
  if (name === null || !/^[A-Za-z0-9._-]+$/.test(name[1] as string)) return `invalid value: ${host}`;
  return name[2] === undefined || portAllowed ? true : "must not have a port";
}

export const validatePath: CustomValidator = (value) => {
  const path = String(value);
  if (!/^\/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*$/.test(path)) {
    return `invalid path: '${path}' (characters outside of the reserved list of RFC 3986 found)`;
  }
  const stray = /%(?![0-9a-fA-F]{2})(.{0,2})/.exec(path);
  if (stray !== null) return `invalid url-encoded value: '%${stray[1]}'`;
  return true;
};

const validateUtf8Name: CustomValidator = (value) =>
  /^[A-Za-z0-9.\-_~\u0080-\u{10FFFF}]+$/u.test(String(value))
    ? true
    : `invalid value '${String(value)}': the only accepted ascii characters are alphanumerics or ., -, _, and ~`;

const validateTag: CustomValidator = (value) =>
  /^[ !-+\-.0-~\u0080-\u{10FFFF}]+$/u.test(String(value))
    ? true
    : `invalid tag '${String(value)}': expected printable ascii (except \`,\` and \`/\`) or valid utf-8 sequences`;

const validateRouterPath: CustomValidator = (value) => {
  const path = String(value);
  if (!path.startsWith("~")) {
    const base = validatePath(path);
    if (base !== true) return base;
    const normalized = path.replace(/\/\.(?=\/|$)/g, "").replace(/[^/]+\/\.\.(?=\/|$)/g, "");
    return normalized === path ? true : `non-normalized path, consider use '${normalized}' instead`;
  }
  try {
    new RegExp(path.slice(1));
    return true;
  } catch (e) {
    return `invalid regex: '${path.slice(1)}' (PCRE returned: ${(e as Error).message})`;
  }
};

const validateHeaderName: CustomValidator = (name) =>
  typeof name === "string" && /^[a-zA-Z0-9-_]+$/.test(name)
    ? true
    : `bad header name '${String(name)}', allowed characters are A-Z, a-z, 0-9, '_', and '-'`;

const uuid: FieldDef = { type: "string", uuid: true, auto: true };
const timestamp: FieldDef = { type: "integer", timestamp: true, auto: true };
const utf8Name: FieldDef = { type: "string", unique: true, custom_validator: validateUtf8Name };
const tags: FieldDef = {
  type: "set",
  elements: { type: "string", required: true, custom_validator: validateTag },
};
const protocol: FieldDef = { type: "string", one_of: PROTOCOLS };
const port: FieldDef = { type: "integer", between: [0, 65535] };
const timeout: FieldDef = { type: "integer", between: [1, 2 ** 31 - 2], default: 60000 };
const foreign = (reference: string, extra: Partial<FieldDef> = {}): FieldDef => ({
  type: "foreign",
  reference,
  ...extra,
});
const sourcesOrDestinations: FieldDef = {
  type: "set",
  elements: {
    type: "record",
    fields: [{ ip: { type: "string" } }, { port }],
    entity_checks: [{ at_least_one_of: ["ip", "port"] }],
  },
};

// --- services -------------------------------------------------------------------------------------------

/** services.lua's `url` shorthand: protocol, host, port and path from one URL. */
function expandServiceUrl(value: unknown): Record<string, unknown> | undefined {
  const raw = String(value);
  const m = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?\/\/([^/:?#]*|\[[^\]]*\])(?::(\d*))?([^?#]*)/.exec(raw);
  if (m === null) return { protocol: "http", host: null, port: 80, path: null };
  const explicitPort = m[3] ? Number(m[3]) : undefined;
  const byPort = explicitPort === 80 ? "http" : explicitPort === 443 ? "https" : undefined;
  const proto = m[1] ?? byPort ?? "http";
  return {
    protocol: proto,
    host: m[2] === "" ? null : (m[2] as string),
    port: explicitPort ?? (proto === "http" ? 80 : proto === "https" ? 443 : 80),
    path: m[4] === "" ? null : (m[4] as string),
  };
}

const NOT_TLS = ["https", "tls"];
export const SERVICE_SCHEMA: RecordSchema = {
  fields: [
    { id: uuid },
    { created_at: timestamp },
    { updated_at: timestamp },
    { name: utf8Name },
    { retries: { type: "integer", default: 5, between: [0, 32767] } },
    { protocol: { ...protocol, required: true, default: "http" } },
    { host: { type: "string", required: true, custom_validator: validateHost } },
    { port: { ...port, required: true, default: 80 } },
    {
      path: {
        type: "string",
        starts_with: "/",
        match_none: [{ pattern: "//", err: "must not have empty segments" }],
        custom_validator: validatePath,
      },
    },
    { connect_timeout: timeout },
    { write_timeout: timeout },
    { read_timeout: timeout },
    { tags },
    { client_certificate: foreign("certificates") },
    { tls_verify: { type: "boolean" } },
    { tls_verify_depth: { type: "integer", default: null, between: [0, 64] } },
    { ca_certificates: { type: "array", elements: { type: "string", uuid: true } } },
    { enabled: { type: "boolean", required: true, default: true } },
  ],
  entity_checks: [
    conditional("protocol", { one_of: ["tcp", "tls", "udp", "grpc", "grpcs"] }, "path"),
    conditional("protocol", { not_one_of: NOT_TLS }, "client_certificate"),
    conditional("protocol", { not_one_of: NOT_TLS }, "tls_verify"),
    conditional("protocol", { not_one_of: NOT_TLS }, "tls_verify_depth"),
    conditional("protocol", { not_one_of: NOT_TLS }, "ca_certificates"),
  ],
  shorthand_fields: [{ url: { type: "string", func: expandServiceUrl } }],
};

function conditional(ifField: string, ifMatch: Partial<FieldDef>, thenField: string): EntityCheck {
  return {
    conditional: { if_field: ifField, if_match: ifMatch, then_field: thenField, then_match: { eq: null } },
  };
}

// --- routes ---------------------------------------------------------------------------------------------

const routerPaths: FieldDef = {
  type: "array",
  elements: {
    type: "string",
    match_any: { patterns: ["^/", "^~/"], err: "should start with: / (fixed path) or ~/ (regex path)" },
    match_none: [{ pattern: "//", err: "must not have empty segments" }],
    custom_validator: validateRouterPath,
  },
};
const hosts: FieldDef = {
  type: "array",
  elements: {
    type: "string",
    match_all: [{ pattern: "^[^*]*%*?[^*]*$", err: "invalid wildcard: must have at most one wildcard" }],
    match_any: {
      patterns: ["^%*%.", "%.%*$", "^[^*]*$"],
      err: "invalid wildcard: must be placed at leftmost or rightmost label",
    },
    custom_validator: (h: unknown) => validateHostWithOptionalPort(String(h).replace(/\*/g, "abc")),
  },
};

const ROUTE_FIELDS: SchemaField[] = [
  { id: uuid },
  { created_at: timestamp },
  { updated_at: timestamp },
  { name: utf8Name },
  {
    protocols: {
      type: "set",
      len_min: 1,
      required: true,
      elements: protocol,
      mutually_exclusive_subsets: [
        ["http", "https"],
        ["tcp", "tls", "udp"],
        ["tls_passthrough"],
        ["grpc", "grpcs"],
      ],
      default: ["http", "https"],
    },
  },
  {
    https_redirect_status_code: {
      type: "integer",
      one_of: [426, 301, 302, 307, 308],
      default: 426,
      required: true,
    },
  },
  { strip_path: { type: "boolean", required: true, default: true } },
  { preserve_host: { type: "boolean", required: true, default: false } },
  { request_buffering: { type: "boolean", required: true, default: true } },
  { response_buffering: { type: "boolean", required: true, default: true } },
  { tags },
  { service: foreign("services") },
  { snis: { type: "set", elements: { type: "string" } } },
  { sources: sourcesOrDestinations },
  { destinations: sourcesOrDestinations },
  { methods: { type: "set", elements: { type: "string", match: "^%u+$" } } },
  { hosts },
  { paths: routerPaths },
  {
    headers: {
      type: "map",
      keys: {
        type: "string",
        custom_validator: validateHeaderName,
        match_none: [
          {
            pattern: "^[Hh][Oo][Ss][Tt]$",
            err: "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
          },
        ],
      },
      values: { type: "array", elements: { type: "string" } },
    },
  },
  { regex_priority: { type: "integer", default: 0 } },
  { path_handling: { type: "string", default: "v0", one_of: ["v0", "v1"] } },
];

const ROUTE_CHECKS: EntityCheck[] = [
  {
    conditional: {
      if_field: "protocols",
      if_match: { elements: { type: "string", not_one_of: ["grpcs", "https", "tls", "tls_passthrough"] } },
      then_field: "snis",
      then_match: { len_eq: 0 },
      then_err: "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
    },
  },
];

/** routes_subschemas.lua, chosen like Kong by the first protocol that names a subschema. */
function routeSubschema(protocols: unknown): { fields: SchemaField[]; checks: EntityCheck[] } {
  const list = Array.isArray(protocols) ? protocols : ["http", "https"];
  const first = list.find((p) => typeof p === "string" && PROTOCOLS.includes(p));
  if (first === "http" || first === "https") {
    return {
      fields: [
        {
          sources: {
            ...sourcesOrDestinations,
            eq: null,
            err: "cannot set 'sources' when 'protocols' is 'http' or 'https'",
          },
        },
        {
          destinations: {
            ...sourcesOrDestinations,
            eq: null,
            err: "cannot set 'destinations' when 'protocols' is 'http' or 'https'",
          },
        },
      ],
      checks: [
        {
          conditional_at_least_one_of: {
            if_field: "protocols",
            if_match: { contains: "https" },
            then_at_least_one_of: ["methods", "hosts", "headers", "paths", "snis"],
            then_err: "must set one of %s when 'protocols' is 'https'",
            else_match: { contains: "http" },
            else_then_at_least_one_of: ["methods", "hosts", "headers", "paths"],
            else_then_err: "must set one of %s when 'protocols' is 'http'",
          },
        },
      ],
    };
  }
  if (first === "tcp" || first === "tls" || first === "udp" || first === "tls_passthrough") {
    return {
      fields: [],
      checks: [
        {
          conditional_at_least_one_of: {
            if_field: "protocols",
            if_match: { elements: { type: "string", one_of: ["tcp", "tls", "udp"] } },
            then_at_least_one_of: ["sources", "destinations", "snis"],
            then_err: "must set one of %s when 'protocols' is 'tcp', 'tls' or 'udp'",
          },
        },
      ],
    };
  }
  return { fields: [], checks: [] };
}

export function routeSchema(input: Record<string, unknown>): RecordSchema {
  const sub = routeSubschema(input.protocols);
  return { fields: override(ROUTE_FIELDS, sub.fields), entity_checks: [...ROUTE_CHECKS, ...sub.checks] };
}

// --- consumers, key-auth credentials ---------------------------------------------------------------------

export const CONSUMER_SCHEMA: RecordSchema = {
  fields: [
    { id: uuid },
    { created_at: timestamp },
    { updated_at: timestamp },
    { username: { type: "string", unique: true } },
    { custom_id: { type: "string", unique: true } },
    { tags },
  ],
  entity_checks: [{ at_least_one_of: ["custom_id", "username"] }],
};

export const KEYAUTH_CREDENTIAL_SCHEMA: RecordSchema = {
  fields: [
    { id: uuid },
    { created_at: timestamp },
    { consumer: foreign("consumers", { required: true }) },
    { key: { type: "string", required: false, unique: true, auto: true } },
    { tags },
  ],
};

// --- plugins --------------------------------------------------------------------------------------------

const PLUGIN_FIELDS: SchemaField[] = [
  { id: uuid },
  { name: { type: "string", required: true } },
  { instance_name: utf8Name },
  { created_at: timestamp },
  { updated_at: timestamp },
  { route: foreign("routes", { default: null }) },
  { service: foreign("services", { default: null }) },
  { consumer: foreign("consumers", { default: null }) },
  { config: { type: "record", abstract: true } },
  { protocols: { type: "set", required: true, default: HTTP_PROTOCOLS, elements: protocol } },
  { enabled: { type: "boolean", required: true, default: true } },
  { tags },
];

export const notEnabled = (name: string): string =>
  `plugin '${name}' not enabled; add it to the 'plugins' configuration property`;

/** The plugins entity specialised by one plugin's schema (Kong's subschema keyed by `name`). */
export function pluginSchema(plugin: PluginInfo): RecordSchema {
  const config: FieldDef = {
    type: "record",
    required: true,
    fields: makeRecordsRequired(plugin.configFields),
    ...(plugin.configEntityChecks && { entity_checks: plugin.configEntityChecks }),
    ...(plugin.configValidator && { custom_validator: plugin.configValidator }),
  };
  return {
    fields: override(PLUGIN_FIELDS, [{ config }, ...(plugin.entityFields ?? [])]),
    ...(plugin.entityChecks && { entity_checks: plugin.entityChecks }),
  };
}

function override(base: SchemaField[], replacements: SchemaField[]): SchemaField[] {
  const byName = new Map(replacements.flatMap((f) => Object.entries(f)));
  return base.map((f) => {
    const [name] = Object.keys(f) as [string];
    const replacement = byName.get(name);
    return replacement === undefined ? f : { [name]: replacement };
  });
}

// --- insert / validate ----------------------------------------------------------------------------------

export type Checked = { ok: true; entity: Record<string, unknown> } | { ok: false; errors: FieldErrors };

export interface InsertOptions {
  uuid?: () => string;
  now?: () => number;
}

/**
 * What Kong does with an entity on insert: process_auto_fields("insert") (defaults, shorthands, id,
 * timestamps), then validate. The entity comes back as the data plane reads it (select: no nulls).
 */
export function checkEntity(
  schema: RecordSchema,
  input: Record<string, unknown>,
  opts: InsertOptions = {},
): Checked {
  let inserted: Record<string, unknown>;
  try {
    inserted = processAutoFields(schema, input, "insert", opts);
  } catch (e) {
    if (e instanceof ShorthandError) return { ok: false, errors: e.errors };
    throw e;
  }
  const errors = validate(schema, inserted);
  if (errors !== undefined) return { ok: false, errors };
  return { ok: true, entity: processAutoFields(schema, inserted, "select") };
}

/** Whether schemaFor found a schema (rather than Kong's error for an unknown plugin name). */
export const isSchema = (s: RecordSchema | FieldErrors): s is RecordSchema =>
  "fields" in s && Array.isArray(s.fields);

/** The schema of one entity for one input (routes and plugins depend on their input). */
export function schemaFor(
  entity: EntityName,
  input: Record<string, unknown>,
  plugins: ReadonlyMap<string, PluginInfo>,
): RecordSchema | FieldErrors {
  switch (entity) {
    case "services":
      return SERVICE_SCHEMA;
    case "routes":
      return routeSchema(input);
    case "consumers":
      return CONSUMER_SCHEMA;
    case "keyauth_credentials":
      return KEYAUTH_CREDENTIAL_SCHEMA;
    case "plugins": {
      const name = input.name;
      if (name === undefined || name === null) return { name: "required field missing" };
      const plugin = typeof name === "string" ? plugins.get(name) : undefined;
      if (plugin === undefined)
        return { name: notEnabled(typeof name === "string" ? name : String((name as unknown[])[0])) };
      return pluginSchema(plugin);
    }
  }
}

// --- ids ------------------------------------------------------------------------------------------------

/** RFC 4122 version 5 (SHA-1) UUID, as resty.jit-uuid's factory_v5 builds them. */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  const hash = createHash("sha1").update(ns).update(name).digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const ENTITIES_NAMESPACE = "fd02801f-0957-4a15-a55a-c8d9606f30b5";

/** declarative_config.lua generate_uuid: v5 of the key in a namespace that is itself v5 of the entity name. */
export function declarativeId(entity: EntityName, key: string): string {
  return uuidV5(uuidV5(ENTITIES_NAMESPACE, entity), key);
}
