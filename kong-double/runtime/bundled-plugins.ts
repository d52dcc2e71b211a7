/**
 * What the bundled Lua plugins the double emulates do in access (their schemas are in ../config/bundled-schemas.ts):
 * jwt (priority 1450: only the refusal of a request without a token), key-auth (priority 1250: authenticates a
 * consumer by key, so plugins after it see kong.client.get_consumer()), rate-limiting (priority 910: counts
 * requests per period and refuses over the limit), request-transformer (priority 801: header
 * add/remove/replace/rename/append and replace.uri, the target of converted APK header policies and operation
 * paths), and request-termination (priority 2: answers by itself
 * through kong.response.exit after every other plugin's access, so get_source() is "exit" in their log phase).
 */
import { appendFileSync } from "node:fs";
import type { KongConfig, PluginEntity } from "../config/model";
import { handlerErrorPage, pdkErrorPage } from "./error-page";
import { cjsonEncode, toLua } from "./lua-value";
import { escapeUri, parseQuery } from "./pdk";
import type { ExitResponse, RequestState } from "./request-state";
import { normalizePath } from "./uri";

/** key-auth answers through kong.response.error: the client's Accept picks the format, get_source() is "exit". */
function json(
  status: number,
  message: string,
  state: RequestState,
  headers: Record<string, string> = {},
): ExitResponse {
  const page = pdkErrorPage(state.client.headers, status, message, state.id);
  return { status, body: page.body, headers: { ...page.headers, ...headers }, source: "exit" };
}

/** Runs a bundled plugin's access phase; returns the response when it ends the request. */
export function emulatedAccess(
  plugin: PluginEntity,
  state: RequestState,
  config: KongConfig,
  counters: Map<string, number>,
): ExitResponse | undefined {
  if (plugin.name === "jwt") return jwt(plugin.config, state);
  if (plugin.name === "key-auth") return keyAuth(plugin.config, state, config);
  if (plugin.name === "rate-limiting") return rateLimiting(plugin, state, counters);
  if (plugin.name === "request-transformer") return requestTransformer(plugin.config, state);
  if (plugin.name === "request-termination") return requestTermination(plugin.config, state);
  return undefined;
}

/**
 * What the emulated bundled plugins do in the log phase: file-log appends the serialised log data (edits of
 * kong.log.set_serialize_value included) as one JSON line.
 */
export function emulatedLog(plugin: PluginEntity, serialized: () => Record<string, unknown>): void {
  if (plugin.name !== "file-log") return;
  const encoded = cjsonEncode(toLua(serialized()));
  if ("error" in encoded) throw new Error(encoded.error);
  appendFileSync(String(plugin.config.path), Buffer.concat([encoded.json, Buffer.from("\n")]));
}

function keyAuth(
  conf: Record<string, unknown>,
  state: RequestState,
  config: KongConfig,
): ExitResponse | undefined {
  const names = conf.key_names as string[];
  const query = new URLSearchParams(state.client.query ?? "");
  let key: string | undefined;
  for (const name of names) {
    key =
      (conf.key_in_header ? state.client.headers[name.toLowerCase()]?.[0] : undefined) ??
      (conf.key_in_query ? (query.get(name) ?? undefined) : undefined);
    if (key !== undefined) {
      if (conf.hide_credentials) delete state.upstream.headers[name.toLowerCase()];
      break;
    }
  }
  const challenge = { "WWW-Authenticate": `Key${conf.realm ? ` realm="${conf.realm}"` : ""}` };
  if (key === undefined) return json(401, "No API key found in request", state, challenge);
  const credential = config.keyauth_credentials.find((c) => c.key === key);
  const consumer = credential && config.consumers.find((c) => c.id === credential.consumer.id);
  if (credential === undefined || consumer === undefined) return json(401, "Unauthorized", state, challenge);
  state.consumer = consumer;
  state.credential = credential;
  state.upstream.headers["x-consumer-id"] = [consumer.id];
  if (consumer.username) state.upstream.headers["x-consumer-username"] = [consumer.username];
  if (consumer.custom_id) state.upstream.headers["x-consumer-custom-id"] = [consumer.custom_id];
  state.upstream.headers["x-credential-identifier"] = [credential.id];
  return undefined;
}

/**
 * K3.9.3 kong/plugins/jwt/handler.lua, without an anonymous consumer: a request without a token (in the
 * `header_names` headers, the `uri_param_names` query arguments or the `cookie_names` cookies) gets
 * `kong.response.exit(401, {message = "Unauthorized"})` with `WWW-Authenticate: Bearer`. Verifying a token is not
 * emulated (the double holds no jwt_secrets): a request with one gets a 500 and never reaches the service.
 */
function jwt(conf: Record<string, unknown>, state: RequestState): ExitResponse | undefined {
  if (conf.run_on_preflight === false && state.client.method === "OPTIONS") return undefined;
  const query = new URLSearchParams(state.client.query ?? "");
  const cookies = (state.client.headers.cookie ?? []).flatMap((c) =>
    c.split(";").map((p) => p.trim().split("=")[0] as string),
  );
  const present =
    (conf.uri_param_names as string[]).some((n) => (query.get(n) ?? "") !== "") ||
    (conf.cookie_names as string[]).some((n) => cookies.includes(n)) ||
    (conf.header_names as string[]).some((n) => state.client.headers[n.toLowerCase()] !== undefined);
  if (present) return json(500, "the Kong double does not verify JWTs", state);
  const challenge = conf.realm ? `Bearer realm="${conf.realm}"` : "Bearer";
  return exit(401, { message: "Unauthorized" }, { "WWW-Authenticate": challenge });
}

/** K3.9.3 kong/plugins/rate-limiting/expiration.lua: each period's window in seconds (a month is 30 days). */
const EXPIRATION: Record<string, number> = {
  second: 1,
  minute: 60,
  hour: 3600,
  day: 86400,
  month: 2592000,
  year: 31536000,
};

/** kong/tools/timestamp.lua get_timestamps: the start of the current period in UTC, in ms. */
function periodStart(period: string, now: number): number {
  const d = new Date(now);
  switch (period) {
    case "second":
      return Math.floor(now / 1000) * 1000;
    case "minute":
      return Math.floor(now / 60000) * 60000;
    case "hour":
      return Math.floor(now / 3600000) * 3600000;
    case "day":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case "month":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    default:
      return Date.UTC(d.getUTCFullYear(), 0, 1);
  }
}

/**
 * K3.9.3 kong/plugins/rate-limiting/handler.lua access with policies/init.lua: usage per period of the
 * identifier (limit_by; the client's IP when there is none), the X-RateLimit-Limit-<Period>,
 * X-RateLimit-Remaining-<Period>, RateLimit-Limit/-Remaining/-Reset headers (unless hide_client_headers), and
 * over a limit `kong.response.error(error_code, error_message)` with Retry-After. Kong increments in a timer right
 * after access; here at once. policy `redis` counts in the double's memory too (one node: the same counts as a
 * Redis shared by no other node; Redis being unreachable is not modelled).
 */
function rateLimiting(
  plugin: PluginEntity,
  state: RequestState,
  counters: Map<string, number>,
): ExitResponse | undefined {
  const conf = plugin.config;
  const now = Date.now();
  const limitBy = conf.limit_by as string;
  let identifier: string | undefined;
  if (limitBy === "service") identifier = state.service?.id;
  else if (limitBy === "consumer") identifier = state.consumer?.id ?? state.credential?.id;
  else if (limitBy === "credential") identifier = state.credential?.id;
  else if (limitBy === "header")
    identifier = state.client.headers[String(conf.header_name).toLowerCase()]?.[0];
  else if (limitBy === "path" && normalizePath(state.client.path) === conf.path) identifier = conf.path;
  identifier ??= state.client.ip;
  // policies/init.lua get_service_and_route_ids: the plugin's scope, the null UUID where it has none.
  const none = "00000000-0000-0000-0000-000000000000";
  const scope = `${plugin.route?.id ?? none}:${plugin.service?.id ?? none}`;
  const keyOf = (period: string) => `ratelimit:${scope}:${identifier}:${periodStart(period, now)}:${period}`;
  const periods = Object.keys(EXPIRATION).filter((p) => typeof conf[p] === "number");
  let stop: string | undefined;
  const usage = periods.map((period) => {
    const limit = conf[period] as number;
    const remaining = limit - (counters.get(keyOf(period)) ?? 0);
    if (remaining <= 0) stop = period;
    return { period, limit, remaining };
  });
  const headers: Record<string, string> = {};
  if (conf.hide_client_headers !== true) {
    let best: { limit: number; window: number; remaining: number; reset: number } | undefined;
    for (const u of usage) {
      const window = EXPIRATION[u.period] as number;
      const remaining = Math.max(0, stop === undefined || stop === u.period ? u.remaining - 1 : u.remaining);
      if (
        best === undefined ||
        remaining < best.remaining ||
        (remaining === best.remaining && window > best.window)
      ) {
        const reset = Math.max(1, window - Math.floor((now - periodStart(u.period, now)) / 1000));
        best = { limit: u.limit, window, remaining, reset };
      }
      const name = u.period[0]?.toUpperCase() + u.period.slice(1);
      headers[`X-RateLimit-Limit-${name}`] = String(u.limit);
      headers[`X-RateLimit-Remaining-${name}`] = String(remaining);
    }
    if (best !== undefined) {
      headers["RateLimit-Limit"] = String(best.limit);
      headers["RateLimit-Remaining"] = String(best.remaining);
      headers["RateLimit-Reset"] = String(best.reset);
      if (stop !== undefined) headers["Retry-After"] = String(best.reset);
    }
  }
  if (stop !== undefined)
    return json(conf.error_code as number, conf.error_message as string, state, headers);
  for (const [name, value] of Object.entries(headers))
    state.response.extraHeaders[name.toLowerCase()] = [value];
  for (const period of periods) counters.set(keyOf(period), (counters.get(keyOf(period)) ?? 0) + 1);
  return undefined;
}

function requestTransformer(conf: Record<string, unknown>, state: RequestState): ExitResponse | undefined {
  const headers = state.upstream.headers;
  const list = (section: string) =>
    ((conf[section] as Record<string, string[]> | undefined)?.headers ?? []) as string[];
  const pair = (s: string) => {
    const i = s.indexOf(":");
    return [s.slice(0, i).trim().toLowerCase(), s.slice(i + 1).trim()] as const;
  };
  for (const name of list("remove")) delete headers[name.toLowerCase()];
  for (const [from, to] of list("rename").map(pair)) {
    if (headers[from] !== undefined) {
      headers[to] = headers[from];
      delete headers[from];
    }
  }
  for (const [name, value] of list("replace").map(pair))
    if (headers[name] !== undefined) headers[name] = [value];
  for (const [name, value] of list("add").map(pair)) headers[name] ??= [value];
  for (const [name, value] of list("append").map(pair)) headers[name] = [...(headers[name] ?? []), value];
  // replace.uri: a template with $(uri_captures.name) / $(uri_captures["name"]); set as set_path would.
  const uri = (conf.replace as { uri?: string } | undefined)?.uri;
  if (uri !== undefined) {
    const filled = uri.replace(
      /\$\(uri_captures(?:\.(\w+)|\[["'](\w+)["']\])\)/g,
      (_m, a?: string, b?: string) => state.uriCaptures[(a ?? b) as string] ?? "",
    );
    // K3.9.3 kong/pdk/service/request.lua set_path raises "path must start with /": the access phase fails, and
    // Kong answers its 500. (An empty template, `replace.uri: ""`, renders nil and sets nothing.)
    if (uri === "") return undefined;
    if (!filled.startsWith("/")) {
      return { ...handlerErrorPage(state.client.headers, 500, state.id), source: "error" };
    }
    state.upstream.uri = escapeUri(filled);
  }
  return undefined;
}

/** K3.9.3 kong/plugins/request-termination/handler.lua DEFAULT_RESPONSE: the message when config.message is unset. */
const DEFAULT_RESPONSE: Record<number, string> = {
  401: "Unauthorized",
  404: "Not found",
  405: "Method not allowed",
  500: "An unexpected error occurred",
  502: "Bad Gateway",
  503: "Service unavailable",
};

/** kong.response.exit(status, body, headers) as send flushes it: a table body cjson-encoded as JSON. */
function exit(status: number, body: unknown, headers: Record<string, string> = {}): ExitResponse {
  if (body === undefined) return { status, body: Buffer.alloc(0), headers, source: "exit" };
  if (typeof body === "string") return { status, body: Buffer.from(body), headers, source: "exit" };
  const encoded = cjsonEncode(toLua(body));
  if ("error" in encoded) throw new Error(encoded.error);
  return {
    status,
    body: encoded.json,
    headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
    source: "exit",
  };
}

/**
 * K3.9.3 kong/plugins/request-termination/handler.lua RequestTerminationHandler:access. With a trigger, it only
 * answers when a request header or query argument of that name is present. Then: echo (a copy of the request;
 * here its method, scheme, host, port, path, headers, query and raw body, the matched route and service, not
 * the `kong` node block), a raw body with the configured Content-Type, or `{"message": ...}` from message or
 * DEFAULT_RESPONSE, or no body at all (a status without a default message, as 429).
 */
function requestTermination(conf: Record<string, unknown>, state: RequestState): ExitResponse | undefined {
  const status = conf.status_code as number;
  const trigger = conf.trigger as string | null | undefined;
  const query = parseQuery(state.client.query);
  if (
    typeof trigger === "string" &&
    state.client.headers[trigger.toLowerCase().replace(/_/g, "-")] === undefined &&
    query[trigger] === undefined
  )
    return undefined;
  const message = (conf.message as string | null | undefined) ?? DEFAULT_RESPONSE[status];
  if (conf.echo === true) {
    const headers = Object.fromEntries(
      Object.entries(state.client.headers).map(([k, v]) => [k, v.length === 1 ? v[0] : v]),
    );
    return exit(status, {
      message,
      request: {
        scheme: state.client.scheme,
        host: state.client.host,
        port: state.client.port,
        headers,
        query,
        raw_body: state.client.body.toString("latin1"),
        method: state.client.method,
        path: normalizePath(state.client.path),
      },
      matched_route: state.route,
      matched_service: state.service,
    });
  }
  const body = conf.body as string | null | undefined;
  if (typeof body === "string") {
    const type = conf.content_type as string | null | undefined;
    return exit(status, body, typeof type === "string" ? { "Content-Type": type } : {});
  }
  return exit(status, message === undefined ? undefined : { message });
}
