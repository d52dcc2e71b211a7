/**
 * The configuration schema Kong sees, in Kong's own schema language (the counterpart of a bundled plugin's
 * schema.lua). kong-pdk wraps it as `{ name, fields: [{ config: { type: "record", fields: Schema } }] }` and Kong
 * checks it against its metaschema at start: only Kong's types and validators, and every description 10-500
 * characters, or Kong refuses to start. Kong validates every configuration against it (Admin API, decK, DB-less
 * kong.yml) and answers 400 naming the field; core/config.ts checks what this language cannot say.
 */

export interface FieldDef {
  readonly type: "string" | "number" | "integer" | "boolean" | "array" | "set" | "map" | "record";
  readonly description: string;
  readonly required?: boolean;
  readonly default?: unknown;
  readonly elements?: ElementDef;
  readonly fields?: readonly SchemaField[];
  readonly between?: readonly [number, number];
  readonly one_of?: readonly (string | number)[];
  readonly len_min?: number;
  readonly match?: string;
  readonly match_none?: readonly { readonly pattern: string; readonly err: string }[];
  readonly referenceable?: boolean;
}
/** Array/set elements carry no description of their own in Kong's schemas; the field's describes them. */
export type ElementDef = Omit<FieldDef, "description"> & { readonly description?: string };
export type SchemaField = { readonly [name: string]: FieldDef };

const modelEntry = {
  type: "record",
  fields: [
    {
      model: {
        type: "string",
        required: true,
        description: "Model name written into the request body's `model` field when this entry is chosen.",
      },
    },
    {
      endpoint: {
        type: "string",
        required: true,
        match: "^https?://",
        // Kong checks these (in this order, before `match`) when the configuration is written, so that the plugin
        // never meets an endpoint it cannot parse. A key in the URL would be sent in clear to Kong's logs and error
        // pages; Kong's own message for a failed pattern echoes the value, so each names the problem instead.
        match_none: [
          {
            pattern: "^https?://[^/]*@",
            err: "must not carry credentials (user:password@); use auth_header_name and auth_header_value",
          },
          { pattern: "^https?://$", err: "must name a host: http(s)://host[:port][/path]" },
          { pattern: "^https?://[/?#:]", err: "must name a host: http(s)://host[:port][/path]" },
          { pattern: "[?#]", err: "must not carry a query or fragment" },
        ],
        description:
          "Base URL of the OpenAI-compatible endpoint serving this model (http or https, may carry a path such as /v1); the request path relative to the route is appended to it.",
      },
    },
    {
      weight: {
        type: "integer",
        default: 1,
        between: [1, 65535],
        description:
          "Relative share of requests this entry receives; weights 5:1:1 send 5 of every 7 requests to the first entry, interleaved.",
      },
    },
    {
      auth_header_name: {
        type: "string",
        description:
          "Name of the request header that carries the provider's API key for this entry, for example Authorization or api-key.",
      },
    },
    {
      auth_header_value: {
        type: "string",
        referenceable: true,
        description:
          "Value sent in auth_header_name, as is (for example `Bearer sk-...`); may be a Kong vault reference such as {vault://env/openai-key}, resolved by Kong.",
      },
    },
  ],
} as const satisfies ElementDef;

export const Schema = [
  {
    production_models: {
      type: "array",
      required: true,
      len_min: 1,
      elements: modelEntry,
      description:
        "Models and endpoints that serve production traffic, chosen by smooth weighted round robin; an entry is the pair (endpoint, model).",
    },
  },
  {
    sandbox_models: {
      type: "array",
      len_min: 1,
      elements: modelEntry,
      description:
        "Models and endpoints that serve sandbox traffic, with rotation and suspensions of their own; omit it and sandbox requests are refused.",
    },
  },
  {
    on_quota_exceed_suspend_duration: {
      type: "integer",
      default: 60,
      between: [0, 86400],
      description:
        "Seconds an entry is taken out of rotation after a quota signal (HTTP 429 by default) when the provider gives no hint of its own; 0 turns suspension off.",
    },
  },
  {
    sandbox_hosts: {
      type: "set",
      default: [],
      elements: { type: "string" },
      description:
        "Request hosts that select the sandbox list, compared without port and case; a leading `*.` matches any subdomain.",
    },
  },
  {
    sandbox_consumers: {
      type: "set",
      default: [],
      elements: { type: "string" },
      description:
        "Consumers whose authenticated requests use the sandbox list, named as Kong's Admin API names them: a UUID is a consumer id, anything else a username (custom_id is not matched). Needs an authentication plugin on the route or service.",
    },
  },
  {
    all_suspended_status: {
      type: "integer",
      default: 503,
      one_of: [503, 429],
      description:
        "Status the plugin answers with, in OpenAI's error shape and with Retry-After, when every entry of the environment is suspended.",
    },
  },
  {
    max_retry_after: {
      type: "integer",
      default: 60,
      between: [1, 86400],
      description:
        "Longest wait, in seconds, that the all-suspended answer advertises (Retry-After, retry-after-ms and its message), however long the first entry stays out: OpenAI SDKs sleep for whatever retry-after-ms says before each retry.",
    },
  },
  {
    suspend_on_statuses: {
      type: "set",
      default: [429],
      elements: { type: "integer", between: [400, 599] },
      description:
        "Upstream response statuses that suspend the entry that answered them; add 500, 502, 503 or 529 to bench failing endpoints too.",
    },
  },
  {
    honor_retry_hints: {
      type: "boolean",
      default: true,
      description:
        "Use the provider's own hint (retry-after-ms, retry-after, x-ratelimit-reset-*) for the suspension length instead of on_quota_exceed_suspend_duration.",
    },
  },
  {
    proactive_suspension: {
      type: "boolean",
      default: false,
      description:
        "Also suspend an entry after a successful answer whose x-ratelimit-remaining-* (or anthropic-ratelimit-*-remaining) is 0, until its reset; costs one header read in log per request.",
    },
  },
  {
    insufficient_quota_suspend_duration: {
      type: "integer",
      default: 3600,
      between: [0, 604800],
      description:
        "Seconds an entry is benched when its provider answers `insufficient_quota` (billing exhausted); not clamped by max_suspend_duration. The error is only in the body, so after a suspension the next non-streaming request to the entry is proxied buffered to read it. 0 turns this off, as does on_quota_exceed_suspend_duration 0.",
    },
  },
  {
    min_suspend_duration: {
      type: "number",
      default: 1,
      between: [0, 86400],
      description:
        "Shortest suspension, in seconds, taken from a provider's hint; shorter hints are raised to it.",
    },
  },
  {
    max_suspend_duration: {
      type: "number",
      default: 3600,
      between: [0, 86400],
      description:
        "Longest suspension, in seconds, taken from a provider's hint; longer hints are cut to it.",
    },
  },
  {
    unreachable_suspend_duration: {
      type: "number",
      default: 5,
      between: [0, 3600],
      description:
        "Seconds an entry is benched when Kong could not reach its endpoint or it timed out (Kong's own 502, 503 or 504, not one the provider sent); doubled for each bench in a row up to unreachable_max_suspend_duration, and back to this after any answer from the endpoint. 0 turns it off.",
    },
  },
  {
    unreachable_max_suspend_duration: {
      type: "number",
      default: 300,
      between: [0, 86400],
      description:
        "Longest bench, in seconds, of an endpoint that keeps failing to be reached; at least unreachable_suspend_duration.",
    },
  },
  {
    max_request_body_size: {
      type: "integer",
      default: 8388608,
      between: [1, 1073741824],
      description:
        "Largest request body, in bytes, the plugin reads; larger ones get 413. Kong 3.8+ reads bodies over client_body_buffer_size from its temp file up to this size.",
    },
  },
  {
    model_headers: {
      type: "boolean",
      default: true,
      description:
        "Tell the client which model served its request, in served_model_header, and, when the plugin rewrote the body's model, which one it asked for, in requested_model_header.",
    },
  },
  {
    served_model_header: {
      type: "string",
      default: "X-Kong-LLM-Model",
      match: "^[%w!#$%%&'*+.^_`|~-]+$",
      description:
        "Response header naming the model that served the request (Kong AI Proxy Advanced's name by default), as written into the body's `model`.",
    },
  },
  {
    requested_model_header: {
      type: "string",
      default: "X-Kong-LLM-Requested-Model",
      match: "^[%w!#$%%&'*+.^_`|~-]+$",
      description:
        "Response header naming the model the client asked for, sent only when the plugin rewrote it (absent when the client named the served model or none).",
    },
  },
  {
    clear_client_headers: {
      type: "set",
      default: [],
      elements: { type: "string", match: "^[%w!#$%%&'*+.^_`|~-]+$" },
      description:
        "Request headers removed, besides the built-in list (authorization, api-key, ocp-apim-subscription-key, x-api-key, x-goog-api-key, apikey, proxy-authorization, cookie), when the chosen entry sends its own key: client credentials that must not reach the provider.",
    },
  },
  {
    failover_attempts: {
      type: "integer",
      default: 1,
      between: [0, 10],
      description:
        "Further entries tried within the same request, streams included, while no byte of an answer has gone back (a status in failover_on_statuses, a connection failure or a silence); Kong proxies through the plugin server's relay. 0: Kong proxies to the entry directly, and a 429 reaches the client.",
    },
  },
  {
    failover_on_statuses: {
      type: "set",
      default: [429],
      elements: { type: "integer", between: [400, 599] },
      description:
        "Provider answer statuses that make a failover attempt go to the next entry; connection failures and timeouts always do. Other statuses are the answer.",
    },
  },
  {
    failover_timeout: {
      type: "number",
      default: 50,
      between: [1, 3600],
      description:
        "Seconds the relay may spend on all attempts of a request until the first byte of an answer goes back; keep it below the service's read_timeout (60 s by default), Kong's wait for that first byte.",
    },
  },
  {
    failover_attempt_timeout: {
      type: "number",
      default: 0,
      between: [0, 3600],
      description:
        "Seconds one attempt may stay silent (no answer head, or no first byte of its body) before the relay moves on to the next entry; 0 uses the service's read_timeout. Kong waits for the relay's first byte only the service's read_timeout: set this below it to fail over from silent entries.",
    },
  },
  {
    tls_verify: {
      type: "boolean",
      default: true,
      description:
        "With failover, verify the provider's TLS certificate against Node's trusted CAs when the relay sends a request (Kong's own proxying follows the service's tls_verify).",
    },
  },
  {
    policy: {
      type: "string",
      default: "local",
      one_of: ["local", "redis"],
      description:
        "Where suspensions, billing benches and probe marks are kept: `local` in each plugin server alone, or `redis` shared by every Kong node through the Redis in `redis` (requires redis.host). Rotation always stays per node.",
    },
  },
  {
    // Kong 3.9's shared Redis record (kong/tools/redis/schema.lua): the same names, types and defaults, so a
    // configuration written for rate-limiting's `redis` carries over.
    redis: {
      type: "record",
      required: true,
      description:
        "The Redis that policy `redis` shares the state through; the fields of Kong's own plugins.",
      fields: [
        {
          host: {
            type: "string",
            description: "Host name or IP address of the Redis server; required with policy `redis`.",
          },
        },
        {
          port: {
            type: "integer",
            default: 6379,
            between: [0, 65535],
            description: "Port of the Redis server.",
          },
        },
        {
          timeout: {
            type: "integer",
            default: 2000,
            between: [0, 2147483646],
            description:
              "Milliseconds allowed to connect and for each Redis command; also the longest (at most 10 s) a starting node waits for the cluster's state before it serves.",
          },
        },
        {
          username: {
            type: "string",
            referenceable: true,
            description:
              "Username for Redis ACL authentication (Redis 6+); unset, no ACL user is sent. May be a vault reference.",
          },
        },
        {
          password: {
            type: "string",
            referenceable: true,
            len_min: 0,
            description:
              "Password for Redis authentication; unset, no AUTH is sent. May be a vault reference such as {vault://env/redis-password}.",
          },
        },
        {
          database: {
            type: "integer",
            default: 0,
            description: "Redis database number the state keys are kept in.",
          },
        },
        {
          ssl: {
            type: "boolean",
            default: false,
            description: "Connect to Redis over TLS.",
          },
        },
        {
          ssl_verify: {
            type: "boolean",
            default: false,
            description: "With ssl, verify the Redis server's certificate against the system's trusted CAs.",
          },
        },
        {
          server_name: {
            type: "string",
            description: "With ssl, the server name sent as SNI and verified; defaults to host.",
          },
        },
      ],
    },
  },
] as const satisfies readonly SchemaField[];

/**
 * Checks across fields, placed by the project's plugin server in the schema Kong loads (kong-pdk has no place
 * for them): Kong then answers 400 at configuration time, as it does for rate-limiting's `policy: redis`.
 * config.ts repeats them for the stock kong-js-pluginserver, where they can only refuse requests.
 */
export const EntityChecks = [
  {
    conditional: {
      if_field: "config.policy",
      if_match: { eq: "redis" },
      then_field: "config.redis.host",
      then_match: { required: true },
    },
  },
] as const;
