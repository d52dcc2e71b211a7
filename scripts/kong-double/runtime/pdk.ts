/**
 * The PDK surface the double implements, in one place: for each method Kong's name, the phases in which Kong
 * allows it (its check_phase), the Step method Kong answers with, and what it does. Argument checks follow
 * kong/pdk/*.lua at 3.9.3: a check that fails there raises a Lua error, which the event loop turns into "never
 * answered" as Kong does. Methods not listed are answered with nil after logging "could not find pdk method",
 * like Kong's exposed_api lookup.
 */
import { randomUUID } from "node:crypto";
import { pdkErrorPage } from "./error-page";
import { LuaError } from "./lua-error";
import type { ExitResponse, HeaderValues, RequestState } from "./request-state";
import { normalizePath } from "./uri";

export type Phase = "rewrite" | "access" | "log";
export type StepMethod =
  | "plugin.Step"
  | "plugin.StepMultiMap"
  | "plugin.StepConsumer"
  | "plugin.StepCredential"
  | "plugin.StepRoute"
  | "plugin.StepService"
  | "plugin.StepMemoryStats";

export interface PdkContext {
  state: RequestState;
  phase: Phase;
  pluginId: string;
  nodeId: string;
  log(level: string, message: string): void;
  /** Set by kong.response.exit/error: the event is never stepped again. */
  exit?: ExitResponse;
  /** The saved data Kong's log phase works from (kong.log.serialize's table). */
  serialize(): Record<string, unknown>;
  clientBodyBufferSize: number;
}

interface MethodDef {
  phases: readonly Phase[];
  step?: StepMethod;
  /** The call: its answer, or a thrown LuaError where Kong's argument checks raise. */
  fn(ctx: PdkContext, args: unknown[]): unknown;
}

const BEFORE_PROXY: readonly Phase[] = ["rewrite", "access"];
/** Kong's lua_max_req_headers default: how many request headers get_headers returns without an argument. */
const LUA_MAX_REQ_HEADERS = 100;
const ALL: readonly Phase[] = ["rewrite", "access", "log"];
const LOG_LEVELS = ["alert", "crit", "err", "warn", "notice", "info", "debug"];
const METHODS = [
  "GET",
  "HEAD",
  "PUT",
  "POST",
  "DELETE",
  "OPTIONS",
  "MKCOL",
  "COPY",
  "MOVE",
  "PROPFIND",
  "PROPPATCH",
  "LOCK",
  "UNLOCK",
  "PATCH",
  "TRACE",
];

function str(v: unknown, what: string): string {
  if (typeof v !== "string") throw new LuaError(`${what} must be a string`);
  return v;
}

function binaryOrString(v: unknown, what: string): Buffer {
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new LuaError(`${what} must be a string`);
}

/** kong/pdk/private/checks.lua validate_header: string, number, boolean or an array of those. */
function headerValue(name: unknown, value: unknown): string[] {
  if (typeof name !== "string")
    throw new LuaError(`invalid header name "${String(name)}": got ${typeof name}, expected string`);
  const one = (v: unknown): string => {
    if (typeof v === "string") return v === "" ? " " : v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    throw new LuaError(
      `invalid header value for "${name}": got ${v === undefined || v === null ? "nil" : typeof v}, expected array of string, string, number or boolean`,
    );
  };
  if (Array.isArray(value)) return value.map(one);
  return [one(value)];
}

/** kong.tools.uri.escape: percent-escape what is not safe in a path, leave existing escapes alone. */
export function escapeUri(path: string): string {
  return path.replace(/[^!#$&'()*+,/:;=?@[\]A-Za-z0-9\-_.~%]/gu, (c) =>
    [...Buffer.from(c, "utf8")].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}

/** A header table as ngx.req.get_headers returns it: one value as a string, repeated ones as a list. */
/** ngx.req.get_headers(max): one value as a string, repeated ones as a list, the first `max` header lines. */
function luaHeaders(headers: HeaderValues, max = LUA_MAX_REQ_HEADERS): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let left = max;
  for (const [name, values] of Object.entries(headers)) {
    if (left <= 0) break;
    const kept = values.slice(0, left);
    left -= kept.length;
    out[name] = kept.length === 1 ? (kept[0] as string) : kept;
  }
  return out;
}

/** kong.request.get_headers' argument check (K3.9.3 kong/pdk/request.lua): 1..1000, default lua_max_req_headers. */
function maxHeaders(max: unknown): number {
  if (max === undefined || max === null) return LUA_MAX_REQ_HEADERS;
  if (typeof max !== "number") throw new LuaError("max_headers must be a number");
  if (max < 1) throw new LuaError("max_headers must be >= 1");
  if (max > 1000) throw new LuaError("max_headers must be <= 1000");
  return max;
}

function getHeader(headers: HeaderValues, name: unknown): string | undefined {
  const key = str(name, "header name").toLowerCase().replace(/_/g, "-");
  return headers[key]?.[0];
}

/** ngx.req.get_uri_args: one value as a string, repeated ones as a list, a bare flag as true. */
function parseQuery(query: string | undefined): Record<string, string | string[] | true> {
  const out: Record<string, string | string[] | true> = {};
  if (!query) return out;
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
    if (eq === -1) {
      if (!(key in out)) out[key] = true;
      continue;
    }
    const value = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
    const existing = out[key];
    out[key] =
      existing === undefined || existing === true
        ? value
        : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return out;
}

function exitResponse(
  ctx: PdkContext,
  status: unknown,
  body: unknown,
  headers: unknown,
  source: "exit" | "error",
): ExitResponse {
  if (typeof status !== "number" || !Number.isInteger(status)) throw new LuaError("code must be a number");
  if (status < 100 || status > 599) throw new LuaError("code must be a number between 100 and 599");
  if (headers !== undefined && headers !== null && (typeof headers !== "object" || Array.isArray(headers))) {
    throw new LuaError("headers must be a nil or table");
  }
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries((headers as Record<string, unknown>) ?? {})) {
    if (name.toLowerCase() === "transfer-encoding") {
      ctx.log("warn", "manually setting Transfer-Encoding. Ignored.");
      continue;
    }
    out[name] = headerValue(name, value);
  }
  let bytes: Buffer;
  if (body === undefined || body === null) bytes = Buffer.alloc(0);
  else if (typeof body === "string" || body instanceof Uint8Array) bytes = binaryOrString(body, "body");
  else if (typeof body === "object") {
    bytes = Buffer.from(JSON.stringify(Array.isArray(body) && body.length === 0 ? {} : body), "utf8");
    if (!Object.keys(out).some((k) => k.toLowerCase() === "content-type"))
      out["Content-Type"] = "application/json; charset=utf-8";
  } else throw new LuaError("body must be a nil, string or table");
  return { status, body: bytes, headers: out, source };
}

export const PDK_SURFACE: Record<string, MethodDef> = {
  // kong.request
  "kong.request.get_raw_body": {
    phases: BEFORE_PROXY,
    fn(ctx, [max]) {
      const body = ctx.state.client.body;
      if (body.length <= ctx.clientBodyBufferSize) return body;
      // nginx wrote the body to a temp file. Without max_allowed_file_size (3.8+) Kong returns nil, err; over
      // RPC the nil cannot be packed as binary (fix_raw), which raises: the call is never answered.
      if (typeof max !== "number" || max < 0) {
        throw new LuaError(
          "request body did not fit into client body buffer; fix_raw(nil): attempt to get length of a nil value",
        );
      }
      if (max > 0 && body.length > max) {
        throw new LuaError(
          `request body file too big: ${body.length} > ${max}; fix_raw(nil): attempt to get length of a nil value`,
        );
      }
      return body;
    },
  },
  "kong.request.get_header": { phases: ALL, fn: (ctx, [name]) => getHeader(ctx.state.client.headers, name) },
  "kong.request.get_headers": {
    phases: ALL,
    step: "plugin.StepMultiMap",
    // In log, Kong's override returns the headers saved for the timer (ngx.req.get_headers() with the default cap).
    fn: (ctx, [max]) =>
      luaHeaders(ctx.state.client.headers, ctx.phase === "log" ? undefined : maxHeaders(max)),
  },
  "kong.request.get_host": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.host },
  "kong.request.get_port": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.port },
  "kong.request.get_scheme": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.scheme },
  "kong.request.get_method": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.method },
  // K3.9.3 kong/pdk/request.lua get_path: normalize(get_raw_path(), true), as the router sees it (uri.ts).
  "kong.request.get_path": { phases: BEFORE_PROXY, fn: (ctx) => normalizePath(ctx.state.client.path) },
  "kong.request.get_raw_path": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.path },
  "kong.request.get_path_with_query": {
    phases: BEFORE_PROXY,
    fn: (ctx) =>
      ctx.state.client.path + (ctx.state.client.query === undefined ? "" : `?${ctx.state.client.query}`),
  },
  "kong.request.get_raw_query": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.query ?? "" },
  "kong.request.get_query": {
    phases: BEFORE_PROXY,
    step: "plugin.StepMultiMap",
    fn: (ctx) => parseQuery(ctx.state.client.query),
  },
  "kong.request.get_query_arg": {
    phases: BEFORE_PROXY,
    fn(ctx, [name]) {
      const v = parseQuery(ctx.state.client.query)[str(name, "query argument name")];
      return Array.isArray(v) ? v[0] : v;
    },
  },
  "kong.request.get_forwarded_host": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.host },
  "kong.request.get_forwarded_port": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.port },
  "kong.request.get_forwarded_scheme": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.scheme },

  // kong.service
  "kong.service.set_target": {
    phases: BEFORE_PROXY,
    fn(ctx, [host, port]) {
      if (typeof host !== "string") throw new LuaError("host must be a string");
      if (typeof port !== "number" || !Number.isInteger(port)) throw new LuaError("port must be an integer");
      if (port < 0 || port > 65535)
        throw new LuaError(`port must be an integer between 0 and 65535: given ${port}`);
      ctx.state.upstream.host = host;
      ctx.state.upstream.port = port;
      ctx.state.upstream.hostVar = host;
      return undefined;
    },
  },
  "kong.service.set_upstream": {
    phases: ["access"],
    fn(_ctx, [name]) {
      str(name, "host");
      return undefined; // the double has no Upstream entities: (nil, "could not find an Upstream named ...")
    },
  },
  "kong.service.request.set_scheme": {
    phases: BEFORE_PROXY,
    fn(ctx, [scheme]) {
      if (scheme !== "http" && scheme !== "https") throw new LuaError(`invalid scheme: ${String(scheme)}`);
      ctx.state.upstream.scheme = scheme;
      return undefined;
    },
  },
  "kong.service.request.set_path": {
    phases: BEFORE_PROXY,
    fn(ctx, [path]) {
      if (typeof path !== "string") throw new LuaError("path must be a string");
      if (!path.startsWith("/")) throw new LuaError("path must start with /");
      ctx.state.upstream.uri = escapeUri(path);
      return undefined;
    },
  },
  "kong.service.request.set_raw_query": {
    phases: BEFORE_PROXY,
    fn(ctx, [query]) {
      ctx.state.upstream.query = str(query, "query");
      return undefined;
    },
  },
  "kong.service.request.set_method": {
    phases: BEFORE_PROXY,
    fn(ctx, [method]) {
      if (typeof method !== "string") throw new LuaError("method must be a string");
      if (!METHODS.includes(method)) throw new LuaError(`invalid method: ${method}`);
      ctx.state.upstream.method = method;
      return undefined;
    },
  },
  "kong.service.request.set_raw_body": {
    phases: BEFORE_PROXY,
    fn(ctx, [body]) {
      ctx.state.upstream.body = binaryOrString(body, "body");
      return undefined;
    },
  },
  "kong.service.request.set_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name, value]) {
      const values = headerValue(name, value);
      const key = (name as string).toLowerCase();
      ctx.state.upstream.headers[key] = values;
      if (key === "host") ctx.state.upstream.hostVar = values[0];
      return undefined;
    },
  },
  "kong.service.request.add_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name, value]) {
      const values = headerValue(name, value);
      const key = (name as string).toLowerCase();
      ctx.state.upstream.headers[key] = [...(ctx.state.upstream.headers[key] ?? []), ...values];
      return undefined;
    },
  },
  "kong.service.request.clear_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name]) {
      delete ctx.state.upstream.headers[str(name, "header name").toLowerCase()];
      return undefined;
    },
  },
  "kong.service.request.set_headers": {
    phases: BEFORE_PROXY,
    fn(ctx, [headers]) {
      if (headers === null || typeof headers !== "object" || Array.isArray(headers))
        throw new LuaError("headers must be a table");
      for (const [name, value] of Object.entries(headers)) {
        const values = headerValue(name, value);
        ctx.state.upstream.headers[name.toLowerCase()] = values;
        if (name.toLowerCase() === "host") ctx.state.upstream.hostVar = values[0];
      }
      return undefined;
    },
  },
  "kong.service.request.enable_buffering": {
    phases: BEFORE_PROXY,
    fn(ctx) {
      ctx.state.upstream.buffered = true;
      ctx.state.ngxCtx.set("buffered_proxying", true);
      return undefined;
    },
  },

  // kong.response
  "kong.response.exit": {
    phases: BEFORE_PROXY,
    fn(ctx, [status, body, headers]) {
      ctx.exit = exitResponse(ctx, status, body, headers, "exit");
      return undefined;
    },
  },
  "kong.response.error": {
    phases: BEFORE_PROXY,
    fn(ctx, [status, message, headers]) {
      if (typeof status !== "number" || status < 400 || status > 599)
        throw new LuaError("code must be a number between 400 and 599");
      const text =
        message === undefined || message === null
          ? "An unexpected error occurred"
          : typeof message === "string"
            ? message
            : JSON.stringify(message);
      // K3.9.3 kong/pdk/response.lua _RESPONSE.error: the type from Accept, KONG_EXITED (get_source "exit").
      const page = pdkErrorPage(ctx.state.client.headers, status, text, ctx.state.id);
      ctx.exit = exitResponse(ctx, status, page.body, { ...page.headers, ...(headers as object) }, "exit");
      return undefined;
    },
  },
  "kong.response.get_status": { phases: ALL, fn: (ctx) => ctx.state.response.status ?? 200 },
  "kong.response.get_header": {
    phases: ALL,
    fn: (ctx, [name]) =>
      getHeader({ ...ctx.state.response.headers, ...ctx.state.response.extraHeaders }, name),
  },
  "kong.response.get_headers": {
    phases: ALL,
    step: "plugin.StepMultiMap",
    fn: (ctx) => luaHeaders({ ...ctx.state.response.headers, ...ctx.state.response.extraHeaders }),
  },
  "kong.response.get_source": {
    phases: ALL,
    fn: (ctx) =>
      ctx.phase === "log" ? (ctx.state.response.source ?? "service") : ctx.exit ? "exit" : "service",
  },
  "kong.response.set_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name, value]) {
      ctx.state.response.extraHeaders[(name as string).toLowerCase()] = headerValue(name, value);
      return undefined;
    },
  },
  "kong.response.add_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name, value]) {
      const key = str(name, "header name").toLowerCase();
      ctx.state.response.extraHeaders[key] = [
        ...(ctx.state.response.extraHeaders[key] ?? []),
        ...headerValue(name, value),
      ];
      return undefined;
    },
  },

  // kong.service.response: for header_filter/body_filter/response, and in the log timer only for a request
  // proxied buffered (the saved ngx.ctx holds buffered_status and buffered_body); otherwise get_status reads
  // ngx.var.upstream_status in the timer and get_raw_body refuses, both raising.
  "kong.service.response.get_status": {
    phases: ["log"],
    fn(ctx) {
      if (ctx.state.ngxCtx.get("buffered_proxying") !== true)
        throw new LuaError("API disabled in the context of ngx.timer (ngx.var.upstream_status)");
      return ctx.state.response.status;
    },
  },
  "kong.service.response.get_raw_body": {
    phases: ["log"],
    fn(ctx) {
      if (ctx.state.ngxCtx.get("buffered_proxying") !== true) {
        throw new LuaError(
          "service body is only available with buffered proxying (see: kong.service.request.enable_buffering function)",
        );
      }
      return ctx.state.response.bufferedBody ?? Buffer.alloc(0);
    },
  },

  // kong.ctx.shared
  "kong.ctx.shared.get": {
    phases: ALL,
    fn(ctx, [key]) {
      const value = ctx.state.shared.get(str(key, "key"));
      // A Lua table that is empty is packed as an empty array.
      if (value !== null && typeof value === "object" && Object.keys(value).length === 0) return [];
      return value;
    },
  },
  "kong.ctx.shared.set": {
    phases: ALL,
    fn(ctx, [key, value]) {
      if (value === null || value === undefined) ctx.state.shared.delete(str(key, "key"));
      else ctx.state.shared.set(str(key, "key"), value);
      return undefined;
    },
  },

  // kong.client, kong.router, kong.nginx, kong.node, kong.plugin
  "kong.client.get_consumer": { phases: ALL, step: "plugin.StepConsumer", fn: (ctx) => ctx.state.consumer },
  "kong.client.get_credential": {
    phases: ALL,
    step: "plugin.StepCredential",
    fn: (ctx) => ctx.state.credential,
  },
  "kong.client.get_ip": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.ip },
  "kong.client.get_forwarded_ip": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.ip },
  "kong.client.get_port": { phases: BEFORE_PROXY, fn: (ctx) => ctx.state.client.port },
  "kong.router.get_route": { phases: ALL, step: "plugin.StepRoute", fn: (ctx) => ctx.state.route },
  "kong.router.get_service": { phases: ALL, step: "plugin.StepService", fn: (ctx) => ctx.state.service },
  "kong.nginx.get_var": {
    phases: BEFORE_PROXY,
    fn: (ctx, [name]) => ngxVar(ctx.state, str(name, "variable name")),
  },
  "kong.nginx.get_ctx": { phases: ALL, fn: (ctx, [key]) => ctx.state.ngxCtx.get(str(key, "key")) },
  "kong.nginx.set_ctx": {
    phases: ALL,
    fn(ctx, [key, value]) {
      ctx.state.ngxCtx.set(str(key, "key"), value);
      return undefined;
    },
  },
  "kong.nginx.req_start_time": { phases: ALL, fn: (ctx) => ctx.state.startedAt / 1000 },
  "kong.node.get_id": { phases: ALL, fn: (ctx) => ctx.nodeId },
  "kong.plugin.get_id": { phases: ALL, fn: (ctx) => ctx.pluginId },
  "kong.log.serialize": {
    phases: ALL,
    // In log, Kong's override returns the saved table JSON-encoded (a string); elsewhere the table itself.
    fn: (ctx) => (ctx.phase === "log" ? JSON.stringify(ctx.serialize()) : ctx.serialize()),
  },
  ...Object.fromEntries(
    LOG_LEVELS.map((level) => [
      `kong.log.${level}`,
      {
        phases: ALL,
        fn(ctx: PdkContext, args: unknown[]) {
          ctx.log(
            level,
            args
              .map((a) =>
                a !== null && typeof a === "object" ? `table: 0x${randomUUID().slice(0, 8)}` : String(a),
              )
              .join(""),
          );
          return undefined;
        },
      } satisfies MethodDef,
    ]),
  ),
};

function ngxVar(state: RequestState, name: string): string | undefined {
  switch (name) {
    case "upstream_uri":
      return state.upstream.uri;
    case "upstream_host":
      return state.upstream.hostVar ?? "";
    case "upstream_scheme":
      return state.upstream.scheme;
    case "host":
      return state.client.host;
    case "request_uri":
      return state.client.path + (state.client.query === undefined ? "" : `?${state.client.query}`);
    case "uri":
      // nginx's $uri: percent-decoded, dot segments resolved, slashes merged.
      return fullyDecoded(normalizePath(state.client.path));
    case "args":
      return state.client.query;
    case "is_args":
      return state.client.query === undefined ? "" : "?";
    case "request_method":
      return state.client.method;
    case "remote_addr":
      return state.client.ip;
    case "scheme":
      return state.client.scheme;
    case "request_id":
      return state.id;
    default:
      if (name.startsWith("http_")) return state.client.headers[name.slice(5).replace(/_/g, "-")]?.[0];
      return undefined;
  }
}

function fullyDecoded(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
