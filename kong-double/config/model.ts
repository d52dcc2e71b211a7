/**
 * Kong's entities as the double holds them after validation (defaults filled), and plugin info as Kong keeps it
 * after its load checks. Shared by the configuration side (declarative loading, Admin API, schema validation)
 * and the runtime side (router, instances, PDK, proxy).
 */

export type Phase = "certificate" | "rewrite" | "access" | "response" | "preread" | "log";

/** A schema field as Kong's metaschema sees it: a one-key map `{ name: { type, ... } }`. */
export type SchemaField = Record<string, FieldDef>;
export interface FieldDef {
  type: string;
  required?: boolean;
  default?: unknown;
  description?: string;
  elements?: FieldDef;
  keys?: FieldDef;
  values?: FieldDef;
  fields?: SchemaField[];
  [attribute: string]: unknown;
}

/** A plugin Kong has accepted: external (from a plugin server's query command) or bundled (emulated). */
export interface PluginInfo {
  name: string;
  version: string;
  priority: number;
  phases: Phase[];
  /** The fields of `config` (the `Schema` array the plugin exports). */
  configFields: SchemaField[];
  /**
   * Entity checks of the plugin info's Schema itself (top level), run on the plugins entity with field names such
   * as `config.a`, and of its `config` record, run on the config (K3.9.3 kong/db/schema/init.lua
   * run_entity_checks: a subschema's checks; validate_field: a record's). A Schema written for kong-pdk cannot
   * place them (kong-pdk puts its whole export inside config.fields); a query command that prints its own dump can.
   */
  entityChecks?: Record<string, unknown>[];
  configEntityChecks?: Record<string, unknown>[];
  /**
   * The `config` record's own custom_validator, as a bundled Lua plugin may declare it (request-termination):
   * Kong's validate_field runs it on the whole config after its fields, the error keyed `config`.
   */
  configValidator?: (config: unknown) => true | string;
  /** Name of the plugin server that serves it; absent for bundled plugins emulated by the double. */
  server?: string;
  /**
   * The plugin schema's own versions of the plugins entity's fields (`consumer`, `route`, `service`,
   * `protocols`), as a bundled Lua plugin may declare them (key-auth: `consumer` must be null, `protocols`
   * default). External plugins only declare `config`.
   */
  entityFields?: SchemaField[];
}

export interface Ref {
  id: string;
}

export interface ServiceEntity {
  id: string;
  name?: string;
  protocol: "http" | "https";
  host: string;
  port: number;
  path?: string;
  retries: number;
  connect_timeout: number;
  write_timeout: number;
  read_timeout: number;
  enabled: boolean;
  tags?: string[];
}

export interface RouteEntity {
  id: string;
  name?: string;
  service?: Ref;
  protocols: string[];
  methods?: string[];
  hosts?: string[];
  paths?: string[];
  headers?: Record<string, string[]>;
  strip_path: boolean;
  preserve_host: boolean;
  regex_priority: number;
  path_handling: "v0" | "v1";
  https_redirect_status_code: number;
  request_buffering: boolean;
  response_buffering: boolean;
  tags?: string[];
}

export interface ConsumerEntity {
  id: string;
  username?: string;
  custom_id?: string;
  tags?: string[];
}

export interface KeyAuthCredentialEntity {
  id: string;
  consumer: Ref;
  key: string;
}

export interface PluginEntity {
  id: string;
  name: string;
  instance_name?: string;
  /** Validated config: schema defaults filled, unset optionals absent. */
  config: Record<string, unknown>;
  enabled: boolean;
  protocols: string[];
  service?: Ref;
  route?: Ref;
  consumer?: Ref;
  created_at: number;
  tags?: string[];
}

export interface KongConfig {
  services: ServiceEntity[];
  routes: RouteEntity[];
  consumers: ConsumerEntity[];
  keyauth_credentials: KeyAuthCredentialEntity[];
  plugins: PluginEntity[];
}

/** An Admin API error: the HTTP status and the JSON body Kong sends. */
export class KongApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.message === "string" ? body.message : `Kong Admin API error ${status}`);
    this.name = "KongApiError";
  }
}
