/**
 * The PDK surface the double implements, in one place: for each method Kong's name, the phases in which Kong
 * allows it (its check_phase), the Step method Kong answers with, and what it does. Argument checks follow
 * kong/pdk/*.lua at 3.9.3: a check that fails there raises a Lua error, which the event loop turns into "never
 * answered" as Kong does. Methods not listed are answered with nil after logging "could not find pdk method",
 * like Kong's exposed_api lookup. Arguments arrive as Kong's Lua sees them (lua-value.ts: nil keys gone, holes,
 * bin as a string); a value Kong keeps and hands back (ctx.shared, ngx.ctx) goes back as lua-MessagePack packs it.
 */
import { randomUUID } from "node:crypto";
import { pdkErrorPage } from "./error-page";
import { LuaError } from "./lua-error";
import {
  cjsonEncode,
  fromLua,
  LuaTable,
  type LuaValue,
  luaBytes,
  luaText,
  luaToString,
  luaType,
  toLua,
} from "./lua-value";
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
  fn(ctx: PdkContext, args: LuaValue[]): unknown;
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

function str(v: LuaValue, what: string): string {
  if (luaType(v) !== "string") throw new LuaError(`${what} must be a string`);
  return luaText(v as string | Buffer);
}

function binaryOrString(v: LuaValue, what: string): Buffer {
  if (luaType(v) !== "string") throw new LuaError(`${what} must be a string`);
  return luaBytes(v as string | Buffer);
}

/** A set_headers argument checked as Kong's validate_headers does: each name and its values. */
function headerTable(headers: LuaValue): [string, string[]][] {
  if (luaType(headers) !== "table") throw new LuaError("headers must be a table");
  return [...(headers as LuaTable).entries].map(([name, value]) => {
    if (typeof name !== "string")
      throw new LuaError(`invalid header name "${name}": got number, expected string`);
    return [name, headerValue(name, value)];
  });
}

/**
 * K3.9.3 kong/pdk/private/checks.lua validate_header then normalize_multi_header: a string ("" sent as " "), a
 * number or boolean (Lua's tostring), or a table whose ipairs values are all strings.
 */
function headerValue(name: LuaValue, value: LuaValue): string[] {
  if (luaType(name) !== "string")
    throw new LuaError(`invalid header name "${luaToString(name)}": got ${luaType(name)}, expected string`);
  const header = luaText(name as string | Buffer);
  const text = (v: LuaValue) => {
    const s = luaText(v as string | Buffer);
    return s === "" ? " " : s;
  };
  switch (luaType(value)) {
    case "string":
      return [text(value)];
    case "number":
    case "boolean":
      return [luaToString(value)];
    case "table": {
      const values = (value as LuaTable).ipairs();
      for (const v of values) {
        if (luaType(v) !== "string")
          throw new LuaError(`invalid header value in array "${header}": got ${luaType(v)}, expected string`);
      }
      return values.map(text);
    }
    default:
      throw new LuaError(
        `invalid header value for "${header}": got ${luaType(value)}, expected array of string, string, number or boolean`,
      );
  }
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
function maxHeaders(max: LuaValue): number {
  if (max === undefined) return LUA_MAX_REQ_HEADERS;
  if (typeof max !== "number") throw new LuaError("max_headers must be a number");
  if (max < 1) throw new LuaError("max_headers must be >= 1");
  if (max > 1000) throw new LuaError("max_headers must be <= 1000");
  return max;
}

function getHeader(headers: HeaderValues, name: LuaValue): string | undefined {
  const key = str(name, "header name").toLowerCase().replace(/_/g, "-");
  return headers[key]?.[0];
}

/** ngx.req.get_uri_args: one value as a string, repeated ones as a list, a bare flag as true. */
export function parseQuery(query: string | undefined): Record<string, string | string[] | true> {
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

/**
 * K3.9.3 kong/pdk/response.lua `_RESPONSE.exit` (argument checks, validate_headers) and `send` (headers set
 * through normalize_multi_header; a table body cjson-encoded with Content-Type application/json; charset=utf-8
 * unless one was given; Content-Length unless one was given). send runs when Kong flushes the delayed response,
 * outside the plugin: a body cjson cannot encode raises there, which nginx answers with its 500 error page.
 */
function exitResponse(
  ctx: PdkContext,
  status: LuaValue,
  body: LuaValue,
  headers: LuaValue,
  source: "exit" | "error",
): ExitResponse {
  if (typeof status !== "number") throw new LuaError("code must be a number");
  if (status < 100 || status > 599) throw new LuaError("code must be a number between 100 and 599");
  if (body !== undefined && luaType(body) !== "string" && luaType(body) !== "table")
    throw new LuaError("body must be a nil, string or table");
  if (headers !== undefined && luaType(headers) !== "table")
    throw new LuaError("headers must be a nil or table");
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of (headers as LuaTable | undefined)?.entries ?? []) {
    if (typeof name !== "string")
      throw new LuaError(`invalid header name "${name}": got number, expected string`);
    const values = headerValue(name, value);
    if (name.toLowerCase() === "transfer-encoding" || name.toLowerCase() === "transfer_encoding") {
      ctx.log("warn", "manually setting Transfer-Encoding. Ignored.");
      continue;
    }
    out[name] = values;
  }
  const given = (header: string) =>
    Object.keys(out).some((k) => [header, header.replace("-", "_")].includes(k.toLowerCase()));
  let bytes: Buffer;
  let encodingError: string | undefined;
  if (body === undefined) bytes = Buffer.alloc(0);
  else if (luaType(body) === "string") bytes = luaBytes(body as string | Buffer);
  else {
    const encoded = cjsonEncode(body);
    if ("error" in encoded) {
      encodingError = `body encoding failed while flushing response: ${encoded.error}`;
      bytes = Buffer.alloc(0);
    } else {
      bytes = encoded.json;
      if (!given("content-type")) out["Content-Type"] = "application/json; charset=utf-8";
    }
  }
  return { status, body: bytes, headers: out, source, ...(encodingError !== undefined && { encodingError }) };
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
    fn(ctx, [rawHost, port]) {
      const host = str(rawHost, "host");
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
      const text = luaType(scheme) === "string" ? luaText(scheme as string | Buffer) : luaToString(scheme);
      if (text !== "http" && text !== "https") throw new LuaError(`invalid scheme: ${text}`);
      ctx.state.upstream.scheme = text;
      return undefined;
    },
  },
  "kong.service.request.set_path": {
    phases: BEFORE_PROXY,
    fn(ctx, [path]) {
      const text = str(path, "path");
      if (!text.startsWith("/")) throw new LuaError("path must start with /");
      ctx.state.upstream.uri = escapeUri(text);
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
      const text = str(method, "method");
      if (!METHODS.includes(text)) throw new LuaError(`invalid method: ${text}`);
      ctx.state.upstream.method = text;
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
      const key = str(name, "header name").toLowerCase();
      ctx.state.upstream.headers[key] = values;
      if (key === "host") ctx.state.upstream.hostVar = values[0];
      return undefined;
    },
  },
  "kong.service.request.add_header": {
    phases: BEFORE_PROXY,
    fn(ctx, [name, value]) {
      const values = headerValue(name, value);
      const key = str(name, "header name").toLowerCase();
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
      for (const [name, values] of headerTable(headers)) {
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
      if (typeof status !== "number") throw new LuaError("code must be a number");
      if (status < 400 || status > 599) throw new LuaError("code must be a number between 400 and 599");
      let text = "An unexpected error occurred";
      if (luaType(message) === "table") {
        const encoded = cjsonEncode(message);
        if ("error" in encoded)
          throw new LuaError(`could not JSON encode the error message: ${encoded.error}`);
        text = encoded.json.toString("utf8");
      } else if (message !== undefined) text = str(message, "message");
      if (headers !== undefined && luaType(headers) !== "table")
        throw new LuaError("headers must be a nil or table");
      // K3.9.3 kong/pdk/response.lua _RESPONSE.error: the type from Accept, KONG_EXITED (get_source "exit").
      const page = pdkErrorPage(ctx.state.client.headers, status, text, ctx.state.id);
      const all = new LuaTable(new Map((headers as LuaTable | undefined)?.entries));
      for (const [k, v] of Object.entries(page.headers)) if (!all.entries.has(k)) all.entries.set(k, v);
      ctx.exit = exitResponse(ctx, status, page.body, all, "exit");
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
      const values = headerValue(name, value);
      ctx.state.response.extraHeaders[str(name, "header name").toLowerCase()] = values;
      return undefined;
    },
  },
  // K3.9.3 kong/pdk/response.lua set_headers: a table of name → value, each checked as set_header checks it;
  // Transfer-Encoding is ignored with a warning.
  "kong.response.set_headers": {
    phases: BEFORE_PROXY,
    fn(ctx, [headers]) {
      for (const [name, values] of headerTable(headers)) {
        const lower = name.toLowerCase();
        if (lower === "transfer-encoding" || lower === "transfer_encoding") {
          ctx.log("warn", "manually setting Transfer-Encoding. Ignored.");
          continue;
        }
        ctx.state.response.extraHeaders[lower] = values;
      }
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
    // Kong keeps the Lua value and packs it back: an empty table as [], a table with a hole as a map.
    fn: (ctx, [key]) => fromLua(ctx.state.shared.get(str(key, "key")) as LuaValue),
  },
  "kong.ctx.shared.set": {
    phases: ALL,
    fn(ctx, [key, value]) {
      if (value === undefined) ctx.state.shared.delete(str(key, "key"));
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
  "kong.nginx.get_ctx": {
    phases: ALL,
    fn: (ctx, [key]) => fromLua(ctx.state.ngxCtx.get(str(key, "key")) as LuaValue),
  },
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
  // K3.9.3 kong/pdk/log.lua set_serialize_value: recorded in ngx.ctx, applied when the log data is serialised
  // (in the log phase, Kong hands plugin servers the table it saved before the timer, edits included).
  "kong.log.set_serialize_value": {
    phases: ALL,
    fn(ctx, [key, value, options]) {
      if (luaType(key) !== "string") throw new LuaError("key must be a string");
      const mode = options instanceof LuaTable ? (options.get("mode") ?? "set") : "set";
      if (mode !== "set" && mode !== "add" && mode !== "replace")
        throw new LuaError("mode must be 'set', 'add' or 'replace'");
      ctx.state.serializeValues.push({ key: luaText(key as string | Buffer), value: fromLua(value), mode });
      return undefined;
    },
  },
  "kong.log.serialize": {
    phases: ALL,
    // In log, Kong's override returns the saved table cjson-encoded (a string); elsewhere the table itself.
    fn(ctx) {
      const table = toLua(ctx.serialize());
      if (ctx.phase !== "log") return fromLua(table);
      const encoded = cjsonEncode(table);
      if ("error" in encoded) throw new LuaError(encoded.error);
      return encoded.json.toString("utf8");
    },
  },
  ...Object.fromEntries(
    LOG_LEVELS.map((level) => [
      `kong.log.${level}`,
      {
        phases: ALL,
        fn(ctx: PdkContext, args: LuaValue[]) {
          // kong/pdk/log.lua concatenates each argument's tostring: nil as "nil", a table as its address.
          ctx.log(
            level,
            args
              .map((a) => (a instanceof LuaTable ? `table: 0x${randomUUID().slice(0, 8)}` : luaToString(a)))
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
