/**
 * The bundled Kong plugins the double emulates, as Kong 3.9.3 declares them (kong/plugins/key-auth/schema.lua
 * and handler.lua, kong/plugins/request-transformer/schema.lua and handler.lua, kong/plugins/request-termination/
 * schema.lua and handler.lua, kong/plugins/rate-limiting/schema.lua, kong/plugins/jwt/schema.lua): priority, phases and config
 * fields with Kong's defaults and validators. Their behaviour lives with the runtime (../runtime/bundled-plugins.ts).
 * What cannot be expressed here: request-transformer's check that a template value compiles.
 */

import { validateHost, validatePath } from "./entities";
import { KONG_VERSION } from "./kong-version";
import type { FieldDef, PluginInfo, SchemaField } from "./model";
import type { CustomValidator } from "./schema";

/** kong.tools.http.validate_header_name */
const validateHeaderName: CustomValidator = (name) =>
  typeof name === "string" && /^[a-zA-Z0-9-_]+$/.test(name)
    ? true
    : `bad header name '${String(name)}', allowed characters are A-Z, a-z, 0-9, '_', and '-'`;

const headerName: FieldDef = { type: "string", custom_validator: validateHeaderName };
/** typedefs.http_method */
const httpMethod: FieldDef = { type: "string", match: "^%u+$" };
/** typedefs.protocols_http: Kong's http-subsystem protocols, sorted. */
export const HTTP_PROTOCOLS = ["grpc", "grpcs", "http", "https"];
/** The plugin entity's `protocols` field of a plugin limited to them (typedefs.protocols_http). */
const PROTOCOLS_HTTP: SchemaField = {
  protocols: {
    type: "set",
    required: true,
    default: HTTP_PROTOCOLS,
    elements: { type: "string", one_of: HTTP_PROTOCOLS },
  },
};
/** typedefs.no_consumer: a plugin that cannot be scoped to a consumer (the authentication plugins). */
const NO_CONSUMER: SchemaField = { consumer: { type: "foreign", reference: "consumers", eq: null } };

export const KEY_AUTH: PluginInfo = {
  name: "key-auth",
  version: KONG_VERSION,
  priority: 1250,
  phases: ["access"],
  entityFields: [NO_CONSUMER, PROTOCOLS_HTTP],
  configFields: [
    { key_names: { type: "array", required: true, elements: headerName, default: ["apikey"] } },
    { hide_credentials: { type: "boolean", required: true, default: false } },
    { anonymous: { type: "string" } },
    { key_in_header: { type: "boolean", required: true, default: true } },
    { key_in_query: { type: "boolean", required: true, default: true } },
    { key_in_body: { type: "boolean", required: true, default: false } },
    { run_on_preflight: { type: "boolean", required: true, default: true } },
    { realm: { type: "string", required: false } },
  ],
};

/** request-transformer's "name:value" entries: a name and a non-empty value after the colon. */
const checkForValue: CustomValidator = (entry) => {
  const m = /^([^:]+):*(.*)$/s.exec(String(entry));
  if (m === null || m[2] === "") return `key '${m?.[1] ?? String(entry)}' has no value`;
  return true;
};

const validateHeaders =
  (checkValue: boolean): CustomValidator =>
  (pair) => {
    const m = /^([^:]+):*(.*)$/s.exec(String(pair));
    const name = m?.[1];
    if (name === undefined || validateHeaderName(name) !== true)
      return `'${String(name ?? "nil")}' is not a valid header`;
    if (checkValue && validateHeaderName(m?.[2]) !== true) return `'${String(m?.[2])}' is not a valid header`;
    return true;
  };

const array = (elements: FieldDef): FieldDef => ({ type: "array", default: [], required: true, elements });
const stringsArray = array({ type: "string" });
const colonStringsArray = array({ type: "string", custom_validator: checkForValue });
const record = (fields: SchemaField[]): FieldDef => ({ type: "record", fields });

export const REQUEST_TRANSFORMER: PluginInfo = {
  name: "request-transformer",
  version: KONG_VERSION,
  priority: 801,
  phases: ["access"],
  configFields: [
    { http_method: httpMethod },
    {
      remove: record([
        { body: stringsArray },
        { headers: array({ type: "string", custom_validator: validateHeaders(false) }) },
        { querystring: stringsArray },
      ]),
    },
    {
      rename: record([
        { body: colonStringsArray },
        { headers: array({ type: "string", match: "^[^:]+:.*$", custom_validator: validateHeaders(true) }) },
        { querystring: colonStringsArray },
      ]),
    },
    ...(["replace", "add", "append"] as const).map(
      (name): SchemaField => ({
        [name]: record([
          { body: colonStringsArray },
          {
            headers: array({ type: "string", match: "^[^:]+:.*$", custom_validator: validateHeaders(false) }),
          },
          { querystring: colonStringsArray },
          ...(name === "replace" ? [{ uri: { type: "string" } }] : []),
        ]),
      }),
    ),
  ],
};

/** request-termination's is_present: a non-empty string. */
const isPresent = (v: unknown) => typeof v === "string" && v.length > 0;

/**
 * K3.9.3 kong/plugins/request-termination/schema.lua and handler.lua (PRIORITY 2: after every other bundled
 * plugin and after this project's, so it answers after they ran their access).
 */
export const REQUEST_TERMINATION: PluginInfo = {
  name: "request-termination",
  version: KONG_VERSION,
  priority: 2,
  phases: ["access"],
  configFields: [
    { status_code: { type: "integer", required: true, default: 503, between: [100, 599] } },
    { message: { type: "string" } },
    { content_type: { type: "string" } },
    { body: { type: "string" } },
    { echo: { type: "boolean", required: true, default: false } },
    { trigger: headerName },
  ],
  configValidator: (value) => {
    const conf = value as Record<string, unknown>;
    if (isPresent(conf.message) && (isPresent(conf.content_type) || isPresent(conf.body)))
      return "message cannot be used with content_type or body";
    if (isPresent(conf.content_type) && !isPresent(conf.body)) return "content_type requires a body";
    if (conf.echo === true && (isPresent(conf.content_type) || isPresent(conf.body)))
      return "echo cannot be used with content_type and body";
    return true;
  },
};

/**
 * file-log (kong/plugins/file-log, priority 9, log phase only): appends each request's kong.log.serialize() as
 * one JSON line to `path`. custom_fields_by_lua (Lua code) is not emulated: the double refuses it.
 */
export const FILE_LOG: PluginInfo = {
  name: "file-log",
  version: KONG_VERSION,
  priority: 9,
  phases: ["log"],
  entityFields: [
    {
      protocols: {
        type: "set",
        required: true,
        default: [...HTTP_PROTOCOLS, "tcp", "tls", "tls_passthrough", "udp"].sort(),
        elements: { type: "string" },
      },
    },
  ],
  configFields: [
    { path: { type: "string", required: true, match: "^[^*&%%\\`]+$", err: "not a valid filename" } },
    { reopen: { type: "boolean", required: true, default: false } },
  ],
};

/** K3.9.3 kong/tools/redis/schema.lua config_schema: the `redis` record of rate-limiting (and other plugins). */
const REDIS: FieldDef = record([
  { host: { type: "string", custom_validator: validateHost } },
  { port: { type: "integer", between: [0, 65535], default: 6379 } },
  { timeout: { type: "integer", between: [0, 2 ** 31 - 2], default: 2000 } },
  { username: { type: "string", referenceable: true } },
  { password: { type: "string", encrypted: true, referenceable: true, len_min: 0 } },
  { database: { type: "integer", default: 0 } },
  { ssl: { type: "boolean", required: false, default: false } },
  { ssl_verify: { type: "boolean", required: false, default: false } },
  // typedefs.sni: validate_sni (a host name, not an IP); checked here as a host name.
  { server_name: { type: "string", required: false, custom_validator: validateHost } },
]);

/** The periods of rate-limiting, shortest first (schema.lua ORDERED_PERIODS). */
export const RATE_LIMIT_PERIODS = ["second", "minute", "hour", "day", "month", "year"] as const;

/**
 * K3.9.3 kong/plugins/rate-limiting/schema.lua and handler.lua (PRIORITY 910). `policy` as a DB-less Kong
 * declares it (`local`, `redis`; `cluster` only with a database, which the double does not tell apart here).
 * Not modelled: the deprecated `redis_*` shorthand fields (Kong 4.0 removes them; write `redis.host` etc.).
 */
export const RATE_LIMITING: PluginInfo = {
  name: "rate-limiting",
  version: KONG_VERSION,
  priority: 910,
  phases: ["access"],
  entityFields: [PROTOCOLS_HTTP],
  configFields: [
    ...RATE_LIMIT_PERIODS.map((period): SchemaField => ({ [period]: { type: "number", gt: 0 } })),
    {
      limit_by: {
        type: "string",
        default: "consumer",
        one_of: ["consumer", "credential", "ip", "service", "header", "path"],
      },
    },
    { header_name: headerName },
    { path: { type: "string", starts_with: "/", custom_validator: validatePath } },
    { policy: { type: "string", default: "local", len_min: 0, one_of: ["local", "redis"] } },
    { fault_tolerant: { type: "boolean", required: true, default: true } },
    { redis: REDIS },
    { hide_client_headers: { type: "boolean", required: true, default: false } },
    { error_code: { type: "number", default: 429, gt: 0 } },
    { error_message: { type: "string", default: "API rate limit exceeded" } },
    { sync_rate: { type: "number", required: true, default: -1 } },
  ],
  // schema.lua validate_periods_order, the config record's custom_validator.
  configValidator: (value) => {
    const conf = value as Record<string, unknown>;
    for (const [i, lower] of RATE_LIMIT_PERIODS.entries()) {
      const v1 = conf[lower];
      if (typeof v1 !== "number") continue;
      for (const upper of RATE_LIMIT_PERIODS.slice(i + 1)) {
        const v2 = conf[upper];
        if (typeof v2 === "number" && v2 < v1)
          return `The limit for ${upper}(${v2.toFixed(1)}) cannot be lower than the limit for ${lower}(${v1.toFixed(1)})`;
      }
    }
    if (conf.policy !== "redis" && conf.sync_rate !== -1)
      return "sync_rate can only be used with the redis policy";
    if (conf.policy === "redis" && conf.sync_rate !== -1 && (conf.sync_rate as number) < 0.02)
      return "sync_rate must be greater than 0.02, or -1 to disable";
    return true;
  },
  entityChecks: [
    { at_least_one_of: RATE_LIMIT_PERIODS.map((p) => `config.${p}`) },
    ...["host", "port", "timeout"].map((field) => ({
      conditional: {
        if_field: "config.policy",
        if_match: { eq: "redis" },
        then_field: `config.redis.${field}`,
        then_match: { required: true },
      },
    })),
    {
      conditional: {
        if_field: "config.limit_by",
        if_match: { eq: "header" },
        then_field: "config.header_name",
        then_match: { required: true },
      },
    },
    {
      conditional: {
        if_field: "config.limit_by",
        if_match: { eq: "path" },
        then_field: "config.path",
        then_match: { required: true },
      },
    },
  ],
};

/**
 * K3.9.3 kong/plugins/jwt/schema.lua (PRIORITY 1450 in handler.lua): its configuration only, so that a
 * declarative file with jwt loads as on Kong. The double does not verify tokens: a route with jwt answers 500
 * (see ../runtime/bundled-plugins.ts), never lets a request through unauthenticated.
 */
export const JWT: PluginInfo = {
  name: "jwt",
  version: KONG_VERSION,
  priority: 1450,
  phases: ["access"],
  entityFields: [NO_CONSUMER, PROTOCOLS_HTTP],
  configFields: [
    { uri_param_names: { type: "set", elements: { type: "string" }, default: ["jwt"] } },
    { cookie_names: { type: "set", elements: { type: "string" }, default: [] } },
    { key_claim_name: { type: "string", default: "iss" } },
    { secret_is_base64: { type: "boolean", required: true, default: false } },
    { claims_to_verify: { type: "set", elements: { type: "string", one_of: ["exp", "nbf"] } } },
    { anonymous: { type: "string" } },
    { run_on_preflight: { type: "boolean", required: true, default: true } },
    { maximum_expiration: { type: "number", default: 0, between: [0, 31536000] } },
    { header_names: { type: "set", elements: { type: "string" }, default: ["authorization"] } },
    { realm: { type: "string", required: false } },
  ],
  entityChecks: [
    {
      conditional: {
        if_field: "config.maximum_expiration",
        if_match: { gt: 0 },
        then_field: "config.claims_to_verify",
        then_match: { contains: "exp" },
      },
    },
  ],
};

/** The bundled plugins the double emulates, by name. */
export const BUNDLED_PLUGINS: ReadonlyMap<string, PluginInfo> = new Map([
  [KEY_AUTH.name, KEY_AUTH],
  [REQUEST_TRANSFORMER.name, REQUEST_TRANSFORMER],
  [REQUEST_TERMINATION.name, REQUEST_TERMINATION],
  [FILE_LOG.name, FILE_LOG],
  [RATE_LIMITING.name, RATE_LIMITING],
  [JWT.name, JWT],
]);

/** kong/constants.lua BUNDLED_PLUGINS (3.9.3) that the double knows by name but does not emulate. */
export const KNOWN_NOT_EMULATED: readonly string[] = [
  "acl",
  "correlation-id",
  "cors",
  "oauth2",
  "tcp-log",
  "udp-log",
  "http-log",
  "hmac-auth",
  "basic-auth",
  "ip-restriction",
  "response-transformer",
  "request-size-limiting",
  "response-ratelimiting",
  "syslog",
  "loggly",
  "datadog",
  "ldap-auth",
  "statsd",
  "bot-detection",
  "aws-lambda",
  "prometheus",
  "proxy-cache",
  "session",
  "acme",
  "grpc-gateway",
  "grpc-web",
  "pre-function",
  "post-function",
  "azure-functions",
  "zipkin",
  "opentelemetry",
  "ai-proxy",
  "ai-prompt-decorator",
  "ai-prompt-template",
  "ai-prompt-guard",
  "ai-request-transformer",
  "ai-response-transformer",
  "standard-webhooks",
  "redirect",
];
