/**
 * Turns the configuration Kong sends (already checked against schema.ts, defaults filled) into what the
 * request path needs, computed once per configuration: parsed endpoints, entry keys, lookup sets. It fills the
 * defaults and checks again with ajv, both derived from schema.ts, because a plugin must not trust its input
 * blindly (a config can reach the plugin server from an older schema or a hand-written test), and adds the rules
 * Kong's schema language cannot say: duplicate entries, endpoint URLs that parse, min <= max.
 */
import { createHash } from "node:crypto";
import Ajv, { type ErrorObject } from "ajv";
import { credentialHeaders } from "./client-credentials";
import { Schema } from "./schema";
import { type RecordOf, toJsonSchema, withDefaults } from "./schema-derived";

export type Environment = "production" | "sandbox";

export interface Entry {
  /** Identifies the entry's rotation and suspension state: canonical endpoint + "#" + model. */
  key: string;
  model: string;
  weight: number;
  scheme: "http" | "https";
  host: string;
  port: number;
  /** The endpoint's path without a trailing slash; "" for the root. */
  basePath: string;
  authHeader?: { name: string; value: string };
  /**
   * auth_header_name is set but its value arrived empty or absent (Kong turns a vault reference it cannot resolve
   * into "" and drops empty strings): the entry is never picked, rather than sent without a key. `reference` is
   * the vault reference from Kong's `$refs`, for the log line (never a value).
   */
  noKey?: { reference: string | undefined };
}

export interface RoundRobinConfig {
  pluginId: string;
  production: Entry[];
  sandbox?: Entry[];
  suspendSeconds: number;
  sandboxHosts: { exact: Set<string>; suffixes: string[] };
  /** As Kong's Admin API reads `/consumers/{username or id}`: UUID-shaped names are ids, the others usernames. */
  sandboxConsumers: { ids: Set<string>; usernames: Set<string>; size: number };
  allSuspendedStatus: 503 | 429;
  /** The longest wait the all-suspended answer advertises, whenever the first entry really returns. */
  maxRetryAfterSeconds: number;
  suspendOnStatuses: Set<number>;
  hints: { honor: boolean; minSeconds: number; maxSeconds: number };
  /** Suspend after a success that says the quota is spent (remaining 0), until its reset. */
  proactive: boolean;
  /** Benches of entries Kong could not reach: the first, and the longest it doubles up to; base 0 is off. */
  unreachable: { baseSeconds: number; maxSeconds: number };
  /** How long an `insufficient_quota` answer benches an entry; 0 turns the detection (and its probes) off. */
  billingSeconds: number;
  maxBodyBytes: number;
  /** The client's credential headers (lower case) removed when the chosen entry sends its own key. */
  clientCredentialHeaders: string[];
  /** Response headers naming the served and the requested model; undefined when model_headers is off. */
  modelHeaders: { served: string; requested: string } | undefined;
  /**
   * Failover within the request (non-streaming JSON requests, sent by the plugin itself): `attempts` further
   * entries after the first (0: off), the answer statuses that move on, the time all attempts share, and whether
   * a provider's TLS certificate is verified.
   */
  failover: {
    attempts: number;
    onStatuses: Set<number>;
    budgetMs: number;
    /** How long one attempt may stay silent before the relay moves on; 0: the service's read_timeout. */
    attemptMs: number;
    tlsVerify: boolean;
  };
  /** Where suspensions, benches and probe marks are kept: this process alone, or a Redis every node shares. */
  sharing: { policy: "local" } | { policy: "redis"; redis: RedisSettings };
}

/** Kong's shared Redis record, as the plugin uses it. */
export interface RedisSettings {
  host: string;
  port: number;
  timeoutMs: number;
  username?: string;
  password?: string;
  database: number;
  ssl: boolean;
  sslVerify: boolean;
  serverName?: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The configuration as Kong hands it over (defaults filled), typed from the schema Kong sees. */
export type RawConfig = RecordOf<typeof Schema> & { __plugin_id?: unknown };
type RawEntry = RawConfig["production_models"][number];

const validate = new Ajv({ allErrors: false, strict: true }).compile(toJsonSchema(Schema));

export function normalizeConfig(input: unknown): RoundRobinConfig {
  const raw = withDefaults(Schema, input) as Partial<RawConfig> | undefined;
  // Kong's own message for this would be about a length; say what to do instead.
  if (Array.isArray(raw?.sandbox_models) && raw.sandbox_models.length === 0) {
    throw new ConfigError("sandbox_models: must have at least one entry; omit it to refuse sandbox requests");
  }
  if (!validate(raw)) throw new ConfigError(describeAjvError(validate.errors?.[0]));
  const config = raw as RawConfig;
  const { min_suspend_duration: minSeconds, max_suspend_duration: maxSeconds } = config;
  if (minSeconds > maxSeconds) {
    throw new ConfigError(
      `min_suspend_duration (${minSeconds}) must not exceed max_suspend_duration (${maxSeconds})`,
    );
  }
  const { unreachable_suspend_duration: base, unreachable_max_suspend_duration: longest } = config;
  if (base > longest) {
    throw new ConfigError(
      `unreachable_suspend_duration (${base}) must not exceed unreachable_max_suspend_duration (${longest})`,
    );
  }
  const production = entriesOf(config.production_models, "production_models");
  const sandbox = config.sandbox_models && entriesOf(config.sandbox_models, "sandbox_models");
  return {
    pluginId: typeof config.__plugin_id === "string" ? config.__plugin_id : anonymousId(config),
    production,
    ...(sandbox && { sandbox }),
    suspendSeconds: config.on_quota_exceed_suspend_duration,
    sandboxHosts: hostMatcher(config.sandbox_hosts),
    sandboxConsumers: consumerMatcher(config.sandbox_consumers),
    allSuspendedStatus: config.all_suspended_status as 503 | 429,
    maxRetryAfterSeconds: config.max_retry_after,
    suspendOnStatuses: new Set(config.suspend_on_statuses),
    hints: { honor: config.honor_retry_hints, minSeconds, maxSeconds },
    proactive: config.proactive_suspension,
    unreachable: { baseSeconds: base, maxSeconds: longest },
    billingSeconds: config.insufficient_quota_suspend_duration,
    maxBodyBytes: config.max_request_body_size,
    clientCredentialHeaders: credentialHeaders(
      config.clear_client_headers.map((name) => headerName(name, "clear_client_headers")),
    ),
    modelHeaders: config.model_headers
      ? {
          served: headerName(config.served_model_header, "served_model_header"),
          requested: headerName(config.requested_model_header, "requested_model_header"),
        }
      : undefined,
    failover: {
      attempts: config.failover_attempts,
      onStatuses: new Set(config.failover_on_statuses),
      budgetMs: config.failover_timeout * 1000,
      attemptMs: config.failover_attempt_timeout * 1000,
      tlsVerify: config.tls_verify,
    },
    sharing: sharingOf(config),
  };
}

/** Kong checks the schema's `match`; the stock plugin server may hand over what Kong never checked. */
function headerName(name: string, field: string): string {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new ConfigError(`${field}: ${JSON.stringify(name)} is not an HTTP header name`);
  }
  return name;
}

function sharingOf(config: RawConfig): RoundRobinConfig["sharing"] {
  if (config.policy !== "redis") return { policy: "local" };
  const redis = config.redis;
  // Kong refuses this at configuration time (EntityChecks); the stock kong-js-pluginserver cannot tell it to.
  if (redis.host === undefined || redis.host === null) {
    throw new ConfigError("redis.host: required field missing (policy is redis)");
  }
  return {
    policy: "redis",
    redis: {
      host: redis.host,
      port: redis.port,
      timeoutMs: redis.timeout,
      // Unresolved vault references arrive as "": no credential rather than an empty one.
      ...(redis.username ? { username: redis.username } : {}),
      ...(redis.password ? { password: redis.password } : {}),
      database: redis.database,
      ssl: redis.ssl,
      sslVerify: redis.ssl_verify,
      ...(redis.server_name ? { serverName: redis.server_name } : {}),
    },
  };
}

function entriesOf(raw: RawEntry[], field: string): Entry[] {
  const seen = new Map<string, number>();
  return raw.map((item, index) => {
    const path = `${field}[${index + 1}]`;
    const endpoint = parseEndpoint(item.endpoint, `${path}.endpoint`);
    const key = `${endpoint.scheme}://${endpoint.host}:${endpoint.port}${endpoint.basePath}#${item.model}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new ConfigError(
        `${path}: same endpoint and model as ${field}[${earlier}] (${item.model} at ${item.endpoint})`,
      );
    }
    seen.set(key, index + 1);
    const entry: Entry = { key, model: item.model, weight: item.weight, ...endpoint };
    // An unresolved vault reference reaches the plugin as "" (or absent): the entry is left out of the rotation
    // (balancer.ts) rather than sent to the provider without its key.
    if (item.auth_header_name !== undefined) {
      if (item.auth_header_value) {
        entry.authHeader = { name: item.auth_header_name, value: item.auth_header_value };
      } else {
        entry.noKey = { reference: referenceOf(item) };
      }
    }
    return entry;
  });
}

/** The vault reference Kong resolved auth_header_value from, kept in the record's `$refs` (a name, not a secret). */
function referenceOf(item: RawEntry): string | undefined {
  const refs = (item as { $refs?: unknown }).$refs as { auth_header_value?: unknown } | null | undefined;
  const ref = typeof refs === "object" && refs !== null ? refs.auth_header_value : undefined;
  return typeof ref === "string" ? ref.slice(0, 200) : undefined;
}

/** Entries whose key resolved empty, named for the log: one line per configuration (handler.ts). */
export function keylessEntries(config: RoundRobinConfig): string | undefined {
  const named: string[] = [];
  for (const env of ["production", "sandbox"] as const) {
    for (const entry of config[env] ?? []) {
      if (entry.noKey === undefined) continue;
      const from =
        entry.noKey.reference === undefined ? "no reference given" : `from ${entry.noKey.reference}`;
      named.push(
        `${env} ${entry.model} at ${entry.scheme}://${entry.host}:${entry.port}${entry.basePath} (${from})`,
      );
    }
  }
  if (named.length === 0) return undefined;
  return `no_key: auth_header_value resolved empty, so these entries are not used until it resolves (set the secret, then reload Kong's configuration): ${named.join("; ")}`;
}

function parseEndpoint(text: string, path: string): Pick<Entry, "scheme" | "host" | "port" | "basePath"> {
  // Messages go to Kong's error log: never with a key someone put in the URL.
  const shown = JSON.stringify(withoutCredentials(text));
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${path}: ${shown} is not a URL (expected http(s)://host[:port][/path])`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${path}: ${shown} must use http or https`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new ConfigError(
      `${path}: ${shown} must not carry credentials; use auth_header_name/auth_header_value`,
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw new ConfigError(`${path}: ${shown} must not carry a query or fragment`);
  }
  const scheme = url.protocol === "https:" ? "https" : "http";
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === "" ? (scheme === "https" ? 443 : 80) : Number(url.port);
  const basePath = url.pathname.replace(/\/+$/, "");
  return { scheme, host, port, basePath };
}

/** The URL with anything before an `@` in its authority masked. */
function withoutCredentials(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1***@");
}

function hostMatcher(hosts: string[]): RoundRobinConfig["sandboxHosts"] {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const host of hosts) {
    const lower = host.toLowerCase();
    if (lower.startsWith("*.")) suffixes.push(lower.slice(1));
    else exact.add(lower);
  }
  return { exact, suffixes };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function consumerMatcher(names: string[]): RoundRobinConfig["sandboxConsumers"] {
  const ids = new Set<string>();
  const usernames = new Set<string>();
  for (const name of names) {
    if (UUID.test(name)) ids.add(name.toLowerCase());
    else usernames.add(name);
  }
  return { ids, usernames, size: names.length };
}

/** Without Kong's __plugin_id (tests, tools), a configuration is its own identity. */
function anonymousId(config: RawConfig): string {
  return `anonymous-${createHash("sha256")
    .update(JSON.stringify([config.production_models, config.sandbox_models]))
    .digest("hex")
    .slice(0, 16)}`;
}

function describeAjvError(error: ErrorObject | undefined): string {
  if (error === undefined) return "invalid configuration";
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((part) => (/^\d+$/.test(part) ? `[${Number(part) + 1}]` : `.${part}`))
    .join("")
    .replace(/^\./, "");
  const where = path === "" ? "config" : path;
  if (error.keyword === "required")
    return `${where}: missing required field ${String(error.params.missingProperty)}`;
  return `${where}: ${error.message ?? "is invalid"}`;
}
