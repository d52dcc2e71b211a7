/**
 * The proxy port: a real HTTP listener that routes like Kong, runs the plugins' access phase, applies the PDK
 * state to the upstream request, proxies over real HTTP and streams the answer back as it arrives (no
 * buffering, so an SSE stream reaches the client chunk by chunk), then runs the log phase after the response
 * has been sent, from a snapshot, as Kong's log timer does.
 */
import { randomUUID } from "node:crypto";
import { lookup } from "node:dns/promises";
import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { buildInstanceConfig, DEFAULT_WS_ID } from "../config/instance-config";
import { KONG_VERSION } from "../config/kong-version";
import type { KongConfig, PluginEntity, PluginInfo } from "../config/model";
import { type ListenAt, listen } from "../listen";
import { emulatedAccess, emulatedLog } from "./bundled-plugins";
import { type ErrorPage, handlerErrorPage, pdkErrorPage } from "./error-page";
import { LuaError } from "./lua-error";
import { withArrayMt } from "./lua-value";
import type { PdkContext, Phase } from "./pdk";
import type { Generation, LogFn, PdkCallCounter, PhaseOutcome, PluginServer } from "./plugin-server";
import type { ExitResponse, HeaderValues, RequestState, Try } from "./request-state";
import type { Router } from "./router";
import { climbsAboveRoot, invalidEscape } from "./uri";

export { KONG_VERSION };

const SERVER_HEADER = `kong/${KONG_VERSION}`;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

export interface Runtime {
  config: KongConfig;
  router: Router;
  seq: number;
  /**
   * rate-limiting's counters (Kong's `kong_rate_limiting_counters` shared dict): they outlive a configuration
   * change, as the shared dict does.
   */
  counters: Map<string, number>;
}

export interface ProxyDeps {
  runtime(): Runtime;
  plugins: Map<string, PluginInfo>;
  servers: Map<string, PluginServer>;
  counter: PdkCallCounter;
  log: LogFn;
  env: Record<string, string | undefined>;
  clientBodyBufferSize: number;
  nodeId: string;
  track(promise: Promise<unknown>): void;
  listen?: ListenAt;
}

export async function startProxy(
  deps: ProxyDeps,
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  // Kong keeps upstream connections alive (upstream_keepalive_pool_size 512) and does not verify upstream
  // certificates unless tls_verify is set.
  const agents: Agents = {
    http: new HttpAgent({ keepAlive: true }),
    https: new HttpsAgent({ keepAlive: true, rejectUnauthorized: false }),
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      handle(deps, req, res, Buffer.concat(chunks), agents).catch((error: unknown) => {
        deps.log("err", `double internal error: ${(error as Error).stack ?? String(error)}`, "kong");
        if (!res.headersSent) sendJson(res, 500, { message: "An unexpected error occurred" });
        else res.destroy();
      });
    });
  });
  // nginx limits the size of request headers (large_client_header_buffers), not their number; Node would drop
  // every header past its default count (Host included, then answer 400).
  server.maxHeadersCount = 0;
  server.keepAliveTimeout = 60_000;
  const url = await listen(server, deps.listen, "proxy");
  return {
    server,
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** Kong's lua_max_req_headers default: how many header lines ngx.req.get_headers() parses. */
const LUA_MAX_REQ_HEADERS = 100;

/**
 * Whether Kong's runloop sets `$upstream_upgrade` to websocket: it reads Upgrade through
 * kong.tools.http.get_header(name, ctx), i.e. ngx.req.get_headers() with Kong's lua_max_req_headers (K3.9.3
 * kong/globalpatches.lua), so an Upgrade after the 100th header line goes unseen; the first value counts.
 */
function kongSeesWebSocketUpgrade(rawHeaders: string[]): boolean {
  const lines = Math.min(rawHeaders.length / 2, LUA_MAX_REQ_HEADERS);
  for (let i = 0; i < lines; i++) {
    if ((rawHeaders[2 * i] as string).toLowerCase() === "upgrade")
      return (rawHeaders[2 * i + 1] as string).toLowerCase() === "websocket";
  }
  return false;
}

function headerValues(req: IncomingMessage): HeaderValues {
  const out: HeaderValues = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] as string).toLowerCase();
    out[name] = [...(out[name] ?? []), req.rawHeaders[i + 1] as string];
  }
  return out;
}

async function handle(
  deps: ProxyDeps,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  agents: Agents,
): Promise<void> {
  const startedAt = Date.now();
  const runtime = deps.runtime();
  const [rawPath, ...q] = (req.url ?? "/").split("?");
  const query = q.length > 0 ? q.join("?") : undefined;
  const headers = headerValues(req);
  const host = headers.host?.[0] ?? "";
  const id = randomUUID().replace(/-/g, "");
  // nginx refuses a request line whose `..` climbs above the root, or whose path has `%00` or a broken escape,
  // before Kong runs (see uri.ts); its 400 goes through Kong's error handler (text/plain without Accept).
  if (climbsAboveRoot(rawPath ?? "/") || invalidEscape(rawPath ?? "/")) {
    sendPage(res, handlerErrorPage(headers, 400, id), { id, startedAt });
    return;
  }
  const match = runtime.router.match(req.method ?? "GET", host, rawPath ?? "/");
  if (match === undefined) {
    // K3.9.3 kong/runloop/handler.lua access.before: kong.response.error(404, "no Route matched with those values").
    sendPage(res, pdkErrorPage(headers, 404, "no Route matched with those values", id), { id, startedAt });
    return;
  }
  const service = match.service;
  const state: RequestState = {
    id,
    startedAt,
    client: {
      method: req.method ?? "GET",
      path: rawPath ?? "/",
      query,
      headers,
      body,
      ip: req.socket.remoteAddress ?? "127.0.0.1",
      port: req.socket.localPort ?? 0,
      scheme: "http",
      host: host.replace(/:\d+$/, "").toLowerCase(),
    },
    route: match.route,
    uriCaptures: match.captures,
    service,
    upstream: {
      scheme: service?.protocol ?? "http",
      host: service?.host ?? "",
      hostType: hostnameType(service?.host ?? ""),
      port: service?.port ?? 80,
      uri: match.upstreamUri,
      query,
      method: req.method ?? "GET",
      hostVar: match.route.preserve_host ? host : undefined,
      headers: structuredClone(headers),
      body,
      buffered: false,
    },
    response: { headers: {}, extraHeaders: {} },
    shared: new Map(),
    ngxCtx: new Map(),
    serializeValues: [],
    tries: withArrayMt([]),
    timing: {},
  };

  const plugins = pluginsFor(runtime.config, match.route.id, service?.id);
  const ordered = plugins
    .map((entity) => ({ entity, info: deps.plugins.get(entity.name) }))
    .filter((p): p is { entity: PluginEntity; info: PluginInfo } => p.info !== undefined)
    .sort((a, b) => b.info.priority - a.info.priority);

  let exit: ExitResponse | undefined;
  for (const { entity, info } of ordered) {
    if (info.server === undefined) {
      exit = emulatedAccess(entity, state, runtime.config, runtime.counters);
    } else if (info.phases.includes("access")) {
      const outcome = await runExternal(deps, runtime, entity, info, state, "access");
      if (outcome.kind === "lua-error") exit = unexpectedError(state);
      else if (outcome.exit !== undefined) exit = outcome.exit;
    }
    if (exit !== undefined) break;
  }
  // A WebSocket upgrade turns buffered proxying off whoever asked for it (K3.9.3 kong/init.lua, Kong.access),
  // as the runloop saw it before access (kong/runloop/handler.lua access.before: get_header("upgrade", ctx)).
  const upgrade = kongSeesWebSocketUpgrade(req.rawHeaders);
  const buffered =
    !upgrade && (state.upstream.buffered || ordered.some((p) => p.info.phases.includes("response")));
  if (buffered && exit === undefined) state.ngxCtx.set("buffered_proxying", true);
  else state.ngxCtx.delete("buffered_proxying");

  // access.after resolves the target (the service's host, or the one set_target chose) before proxying.
  let address: string | undefined;
  if (exit === undefined) {
    const resolved = await resolveTarget(deps, state);
    if ("page" in resolved) {
      exit = { ...resolved.page, source: resolved.source };
      state.ngxCtx.delete("buffered_proxying");
    } else address = resolved.address;
  }

  if (exit?.encodingError !== undefined) {
    // K3.9.3 kong/pdk/response.lua send raises while Kong.access flushes the exit: nginx's 500 error page.
    deps.log("err", exit.encodingError, "kong");
    exit = { ...handlerErrorPage(state.client.headers, 500, state.id), source: "error" };
  }
  if (exit !== undefined) {
    // Kong.access: KONG_RESPONSE_LATENCY = the end of the access phase (every plugin's work) - the start.
    state.timing.kong = Date.now() - startedAt;
    state.response = {
      ...state.response,
      status: exit.status,
      source: exit.source,
      headers: lowerValues(exit.headers),
    };
    writeHead(res, exit.status, {
      // K3.9.3 response.lua send: the exit's headers are set on ngx.header after those set in access, so a
      // name both set takes the exit's value; the others set in access stay (row 48).
      ...state.response.extraHeaders,
      ...lowerValues(exit.headers),
      "content-length": [String(exit.body.length)],
      ...kongHeaders(state, lowerValues(exit.headers)),
    });
    res.end(exit.body);
  } else {
    await proxyUpstream(deps, state, res, agents, address as string, match.prefix, buffered);
  }
  scheduleLog(deps, runtime, ordered, state);
}

async function runExternal(
  deps: ProxyDeps,
  runtime: Runtime,
  entity: PluginEntity,
  info: PluginInfo,
  state: RequestState,
  phase: Phase,
): Promise<PhaseOutcome & { exit?: ExitResponse }> {
  const server = deps.servers.get(info.server as string);
  if (server === undefined) throw new Error(`no plugin server ${info.server}`);
  const ctx: PdkContext = {
    state,
    phase,
    pluginId: entity.id,
    nodeId: deps.nodeId,
    clientBodyBufferSize: deps.clientBodyBufferSize,
    log: (level, message) => deps.log(level, `[${entity.name}] ${message}`, "pdk", entity.name),
    serialize: () => serialize(state),
  };
  const instance = (generation: Generation) =>
    server.instanceFor(
      entity.name,
      entity.id,
      runtime.seq,
      () =>
        buildInstanceConfig(entity, info.configFields, runtime.seq, deps.env, (m) =>
          deps.log("warn", m, "kong"),
        ),
      generation,
    );
  const outcome = await server.runPhase(instance, ctx, deps.counter);
  return { ...outcome, ...(ctx.exit && { exit: ctx.exit }) };
}

/**
 * A Lua error in a plugin's access: K3.9.3 kong/init.lua execute_collecting_plugins_iterator sets KONG_UNEXPECTED
 * and a delayed response {500, {message = "An unexpected error occurred"}} without a callback, which
 * flush_delayed_response sends with kong.response.error(500, message): Kong's error template in the type Accept
 * asks for, with the request id. get_source() says "error" (KONG_UNEXPECTED wins over KONG_EXITED).
 */
function unexpectedError(state: RequestState): ExitResponse {
  const page = pdkErrorPage(state.client.headers, 500, "An unexpected error occurred", state.id);
  return { ...page, source: "error" };
}

/**
 * What K3.9.3 kong/runloop/handler.lua header_filter.after adds to every response Kong sends, with the default
 * `headers = server_tokens, latency_tokens, x-kong-request-id` (kong/templates/kong_defaults.lua): for a
 * proxied response X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, Via and Server (only when the upstream sent
 * none); for any other (a plugin's exit, kong.response.error, nginx's error pages) X-Kong-Response-Latency and
 * Server (unless a Via equal to the Server token is set); for every one X-Kong-Request-Id, the id Kong's
 * error bodies carry as request_id.
 */
function kongHeaders(
  state: { id: string; startedAt: number },
  headers: HeaderValues,
  proxied?: { upstreamLatency: number; proxyLatency: number },
): HeaderValues {
  const out: HeaderValues = {};
  if (proxied !== undefined) {
    out["x-kong-upstream-latency"] = [String(proxied.upstreamLatency)];
    out["x-kong-proxy-latency"] = [String(proxied.proxyLatency)];
    const via = headers.via?.[0];
    out.via = [via === undefined ? `1.1 ${SERVER_HEADER}` : `${via}, 1.1 ${SERVER_HEADER}`];
    if (headers.server === undefined) out.server = [SERVER_HEADER];
  } else {
    out["x-kong-response-latency"] = [String(Date.now() - state.startedAt)];
    if (headers.via?.[0] !== SERVER_HEADER) out.server = [SERVER_HEADER];
  }
  out["x-kong-request-id"] = [state.id];
  return out;
}

/** Kong's plugin precedence, for what the double scopes: route+service > route > service > global. */
function pluginsFor(config: KongConfig, routeId: string, serviceId: string | undefined): PluginEntity[] {
  const chosen = new Map<string, { plugin: PluginEntity; rank: number }>();
  for (const plugin of config.plugins) {
    if (!plugin.enabled || plugin.consumer !== undefined) continue;
    const onRoute = plugin.route?.id === routeId;
    const onService = plugin.service !== undefined && plugin.service.id === serviceId;
    if ((plugin.route && !onRoute) || (plugin.service && !onService)) continue;
    const rank = (onRoute ? 2 : 0) + (onService ? 1 : 0);
    const existing = chosen.get(plugin.name);
    if (existing === undefined || rank > existing.rank) chosen.set(plugin.name, { plugin, rank });
  }
  return [...chosen.values()].map((c) => c.plugin);
}

interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
}

/**
 * Kong's resolver caches a name that does not exist for dns_not_found_ttl (30 s) and any other failure for
 * dns_error_ttl (1 s) (K3.9.3 kong/templates/kong_defaults.lua); the double keeps failures as long, so a
 * stream of requests to the refusing service URL does not ask the system resolver each time.
 */
const DNS_NOT_FOUND_TTL_MS = 30_000;
const DNS_ERROR_TTL_MS = 1_000;
const dnsFailures = new Map<string, { code: string; until: number }>();
/**
 * Concurrent lookups of one name wait for the first, as in Kong's DNS client (dns_no_sync off): a burst of
 * requests to the refusing service URL asks the system resolver once.
 */
const dnsInFlight = new Map<string, Promise<{ address: string }>>();

function lookupOnce(host: string): Promise<{ address: string }> {
  // The root zone has no `invalid` (RFC 6761 §6.4), so every resolver answers NXDOMAIN for it, as Kong's client
  // then reports; the double says so without asking this machine's resolver, which may be slow or absent.
  if (/\.invalid\.?$/i.test(host)) {
    return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" }));
  }
  const pending = dnsInFlight.get(host);
  if (pending !== undefined) return pending;
  const query = lookup(host).finally(() => dnsInFlight.delete(host));
  dnsInFlight.set(host, query);
  return query;
}

/**
 * The first DNS resolution, done in access.after (K3.9.3 kong/runloop/handler.lua `balancer_execute` →
 * kong/runloop/balancer/init.lua `execute`): a name that does not exist ("3 name error", "101 empty record
 * received") is answered with kong.response.error(503, "name resolution failed"); any other resolver failure
 * with kong.response.error(500, "failed the initial dns/balancer resolve for '<host>' with: <resolver error>")
 * (the resolver's own text is not modelled: the double names Node's error code). kong.response.error marks
 * the request KONG_EXITED, so the log phase sees get_source() "exit", not "error". Nothing is sent upstream.
 * The double resolves with the system resolver (getaddrinfo); Kong uses its own client over /etc/hosts and
 * resolv.conf. Upstream entities (a host naming one) are not modelled.
 */
async function resolveTarget(
  deps: ProxyDeps,
  state: RequestState,
): Promise<{ address: string } | { page: ErrorPage; source: "exit" | "error" }> {
  const host = state.upstream.host;
  if (state.upstream.hostType !== "name") return peerOf(deps, state);
  if (isIP(host) !== 0) return { address: host };
  const cached = dnsFailures.get(host);
  let code = cached !== undefined && cached.until > Date.now() ? cached.code : undefined;
  if (code === undefined) {
    try {
      return { address: (await lookupOnce(host)).address };
    } catch (error) {
      code = (error as { code?: string }).code ?? String(error);
      const notFound = code === "ENOTFOUND" || code === "ENODATA";
      dnsFailures.set(host, {
        code,
        until: Date.now() + (notFound ? DNS_NOT_FOUND_TTL_MS : DNS_ERROR_TTL_MS),
      });
    }
  }
  if (code === "ENOTFOUND" || code === "ENODATA")
    return {
      page: pdkErrorPage(state.client.headers, 503, "name resolution failed", state.id),
      source: "exit",
    };
  const message = `failed the initial dns/balancer resolve for '${host}' with: ${code}`;
  return { page: pdkErrorPage(state.client.headers, 500, message, state.id), source: "exit" };
}

/** K3.9.3 kong/tools/ip.lua `hostname_type`: more than one colon is IPv6, digits and dots IPv4, else a name. */
function hostnameType(host: string): "ipv4" | "ipv6" | "name" {
  const colons = host.split(":").length - 1;
  if (colons > 1) return "ipv6";
  return /^[\d.]+$/.test(host.replaceAll(":", "")) ? "ipv4" : "name";
}

/**
 * A service whose host is an IP address (K3.9.3 kong/router/utils.lua `get_service_info` → `balancer_prepare`:
 * balancer_data.type): kong/runloop/balancer/init.lua `execute` takes balancer_data.host as the IP without
 * resolving it, whatever set_target put there. In the balancer phase kong/init.lua `Kong.balancer` hands it to
 * ngx.balancer.set_current_peer, which refuses a name (lua-nginx-module ngx_http_lua_balancer.c: "no host
 * allowed"); Kong logs "failed to set the current peer (address: <host> port: <port>): no host allowed" and
 * calls ngx.exit(500): nginx's error_page sends the client Kong's error handler's 500 (get_source() "error").
 * Nothing is sent upstream. (Seen on Kong 3.9.1: a 500 on every such request, both routers, http and https.)
 */
function peerOf(
  deps: ProxyDeps,
  state: RequestState,
): { address: string } | { page: ErrorPage; source: "error" } {
  const { host, port } = state.upstream;
  // ngx_parse_url with no_resolve: an IPv6 peer may be given bare or in brackets.
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return { address: bare };
  deps.log("err", `failed to set the current peer (address: ${host} port: ${port}): no host allowed`, "kong");
  return { page: handlerErrorPage(state.client.headers, 500, state.id), source: "error" };
}

type TryOutcome =
  | { kind: "response"; upstream: IncomingMessage }
  | { kind: "failure"; status: 502 | 504; sent: boolean; reused: boolean; reason: string };

/** nginx retries a failed try only when the request was not yet sent or its method is idempotent. */
const NON_IDEMPOTENT = new Set(["POST", "LOCK", "PATCH"]);

/**
 * One try of nginx's proxy module against one peer, with the service's timeouts as Kong's balancer sets them
 * (K3.9.3 kong/init.lua `Kong.balancer`: set_timeouts(connect_timeout, send_timeout (= write_timeout),
 * read_timeout), defaults 60000 ms from kong/runloop/handler.lua `balancer_prepare`): a connection refused
 * or reset, or an upstream that closes without an answer, is nginx's "error" (502); a timeout is 504. The read
 * timeout runs from the end of the request to the response head (nginx: between two reads).
 */
function tryOnce(
  state: RequestState,
  agents: Agents,
  address: string,
  outgoing: Record<string, string | string[]>,
  hasBody: boolean,
): Promise<TryOutcome> {
  const up = state.upstream;
  const service = state.service;
  const connectTimeout = service?.connect_timeout ?? 60_000;
  const writeTimeout = service?.write_timeout ?? 60_000;
  const readTimeout = service?.read_timeout ?? 60_000;
  const https = up.scheme === "https";
  return new Promise((resolveTry) => {
    let settled = false;
    let connected = false;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const req = (https ? httpsRequest : httpRequest)({
      host: address,
      port: up.port,
      method: up.method,
      path: `${up.uri}${up.query !== undefined ? `?${up.query}` : ""}`,
      headers: outgoing,
      setHost: false,
      agent: https ? agents.https : agents.http,
      // With $upstream_host set, nginx sends it as SNI (proxy_ssl_name $upstream_host).
      ...(https && { servername: up.hostVar ?? up.host }),
    });
    const fail = (status: 502 | 504, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolveTry({ kind: "failure", status, sent: connected, reused: req.reusedSocket, reason });
    };
    const arm = (ms: number, what: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(504, `upstream timed out while ${what}`), ms);
    };
    const onConnected = () => {
      connected = true;
      if (finished) arm(readTimeout, "reading response header from upstream");
      else arm(writeTimeout, "sending request to upstream");
    };
    arm(connectTimeout, "connecting to upstream");
    req.on("socket", (socket) => {
      if (!socket.connecting) onConnected();
      else socket.once(https ? "secureConnect" : "connect", onConnected);
    });
    req.on("finish", () => {
      finished = true;
      if (connected) arm(readTimeout, "reading response header from upstream");
    });
    req.on("response", (upstream) => {
      if (settled) {
        upstream.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolveTry({ kind: "response", upstream });
    });
    req.on("error", (error) => fail(502, error.message));
    req.end(hasBody ? up.body : undefined);
  });
}

async function proxyUpstream(
  deps: ProxyDeps,
  state: RequestState,
  res: ServerResponse,
  agents: Agents,
  address: string,
  prefix: string,
  buffered: boolean,
): Promise<void> {
  const up = state.upstream;
  const defaultPort = up.scheme === "https" ? 443 : 80;
  // With $upstream_host set (set_target, a Host header, preserve_host) Kong sends exactly it as Host and SNI.
  const hostHeader = up.hostVar ?? (up.port === defaultPort ? up.host : `${up.host}:${up.port}`);
  // nginx writes the proxy_set_header headers first (Host, Connection, X-Forwarded-*, ...; see
  // kong/templates/nginx_kong.lua), then the client's own: a Host past an upstream's header-count limit would
  // be lost otherwise.
  const outgoing: Record<string, string | string[]> = {
    host: hostHeader,
    connection: "keep-alive",
    via: `1.1 ${SERVER_HEADER}`,
    "x-forwarded-for": state.client.headers["x-forwarded-for"]
      ? `${state.client.headers["x-forwarded-for"][0]}, ${state.client.ip}`
      : state.client.ip,
    "x-forwarded-proto": state.client.scheme,
    "x-forwarded-host": state.client.host,
    "x-forwarded-port": String(state.client.port),
    "x-forwarded-path": state.client.path,
    "x-real-ip": state.client.ip,
    // headers_upstream = x-kong-request-id by default (kong/templates/nginx_kong.lua proxy_set_header).
    "x-kong-request-id": state.id,
  };
  for (const [name, values] of Object.entries(up.headers))
    if (!HOP_BY_HOP.has(name) && !(name in outgoing)) outgoing[name] = values;
  if (prefix !== "/") outgoing["x-forwarded-prefix"] = prefix;
  const hasBody =
    up.body.length > 0 ||
    state.client.headers["content-length"] !== undefined ||
    state.client.headers["transfer-encoding"] !== undefined;
  if (hasBody) outgoing["content-length"] = String(up.body.length);
  const target = `${up.scheme}://${up.host}:${up.port}${up.uri}`;

  // Kong.balancer gives nginx `retries` more tries of the same target (set_more_tries; K3.9.3 kong/init.lua);
  // nginx's default `proxy_next_upstream error timeout` takes one after an error or a timeout, except for a
  // POST, LOCK or PATCH already sent (ngx_http_upstream_next: NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT is not in the
  // default mask). So a refused connection is tried 1 + retries times, a hung POST once, a hung GET 1 + retries
  // times (each a full read_timeout).
  const tries = 1 + (state.service?.retries ?? 5);
  const statuses: number[] = [];
  const sentAt = Date.now();
  let upstream: IncomingMessage | undefined;
  let staleRetries = 0;
  let lastTryAt = sentAt;
  while (upstream === undefined) {
    const previous = state.tries.at(-1);
    if (previous !== undefined) previous.state = "failed";
    lastTryAt = Date.now();
    const attempt: Try = {
      balancer_start: lastTryAt,
      balancer_start_ns: lastTryAt * 1e6,
      ip: address,
      port: up.port,
      balancer_latency: 0,
      balancer_latency_ns: 0,
    };
    state.tries.push(attempt);
    // Kong.balancer sets KONG_PROXY_LATENCY again on every try.
    state.timing.kong = lastTryAt - state.startedAt;
    const outcome = await tryOnce(state, agents, address, outgoing, hasBody);
    if (outcome.kind === "failure") attempt.code = outcome.status;
    if (outcome.kind === "response") {
      upstream = outcome.upstream;
      break;
    }
    // nginx does not count a failed try on a kept-alive connection (ngx_http_upstream_next: "if
    // (u->peer.cached && ft_type == NGX_HTTP_UPSTREAM_FT_ERROR) u->peer.tries++"). The double also retries such a
    // POST, which nginx would answer 502: a keepalive race is not what the tests are about.
    if (outcome.reused && outcome.status === 502 && staleRetries++ < 3) continue;
    deps.log("err", `${outcome.reason}, upstream: "${target}"`, "kong");
    statuses.push(outcome.status);
    const retriable = !(outcome.sent && NON_IDEMPOTENT.has(up.method));
    if (statuses.length >= tries || !retriable) {
      // The last try gets no failure record (only the next balancer call would write it).
      delete attempt.code;
      state.timing.waiting = Date.now() - lastTryAt;
      state.timing.receive = 0;
      // nginx's error_page sends the status to Kong.handle_error (KONG_UNEXPECTED: get_source() is "error").
      const page = handlerErrorPage(state.client.headers, outcome.status, state.id);
      state.response = {
        ...state.response,
        status: page.status,
        headers: lowerValues(page.headers),
        source: "error",
        upstreamStatus: statuses.join(", "),
      };
      // Kong.access had set KONG_PROXIED before the balancer ran: the proxied set of headers. The headers plugins
      // set in access (ngx.header, i.e. nginx's headers_out) survive error_page's internal redirect, and
      // kong/error_handlers.lua exits with only its Content-Type: the client gets them on Kong's page too.
      sendPage(
        res,
        page,
        state,
        { upstreamLatency: Date.now() - sentAt, proxyLatency: sentAt - state.startedAt },
        state.response.extraHeaders,
      );
      return;
    }
  }
  const responseHeaders: HeaderValues = {};
  for (let i = 0; i < upstream.rawHeaders.length; i += 2) {
    const name = (upstream.rawHeaders[i] as string).toLowerCase();
    if (name === "connection" || name === "keep-alive" || name === "transfer-encoding") continue;
    responseHeaders[name] = [...(responseHeaders[name] ?? []), upstream.rawHeaders[i + 1] as string];
  }
  const status = upstream.statusCode ?? 502;
  const headAt = Date.now();
  state.timing.waiting = headAt - lastTryAt;
  state.response = {
    ...state.response,
    status,
    headers: responseHeaders,
    source: "service",
    upstreamStatus: [...statuses, status].join(", "),
  };
  const latency = Date.now() - sentAt;
  const headersOut = {
    ...responseHeaders,
    ...state.response.extraHeaders,
    ...kongHeaders(state, responseHeaders, {
      upstreamLatency: latency,
      proxyLatency: sentAt - state.startedAt,
    }),
  };
  // nginx's read timeout also bounds each wait between two reads of the body; a failure after the head has
  // been sent can only cut the client's response short.
  const bodyTimeout = state.service?.read_timeout ?? 60_000;
  const reading = upstream;
  let idle: NodeJS.Timeout | undefined;
  const rearm = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () => reading.destroy(new Error("upstream timed out while reading upstream")),
      bodyTimeout,
    );
  };
  rearm();
  reading.on("data", rearm);
  try {
    if (buffered) {
      const parts: Buffer[] = [];
      for await (const chunk of upstream) parts.push(chunk as Buffer);
      const all = Buffer.concat(parts);
      state.response.bufferedBody = all;
      // Kong.response() keeps them in ngx.ctx; a Lua string reaches JS through get_ctx as a msgpack str.
      state.ngxCtx.set("buffered_status", status);
      state.ngxCtx.set("buffered_body", all.toString("utf8"));
      writeHead(res, status, { ...headersOut, "content-length": [String(all.length)] });
      res.end(all);
      return;
    }
    writeHead(res, status, headersOut);
    res.flushHeaders();
    for await (const chunk of upstream) {
      if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  } catch (error) {
    deps.log("err", `upstream ${target}: ${(error as Error).message} while reading the response`, "kong");
    if (res.headersSent) res.destroy();
    else
      sendPage(
        res,
        handlerErrorPage(state.client.headers, 502, state.id),
        state,
        { upstreamLatency: Date.now() - sentAt, proxyLatency: sentAt - state.startedAt },
        state.response.extraHeaders,
      );
  } finally {
    clearTimeout(idle);
    state.timing.receive = Date.now() - headAt;
  }
}

function scheduleLog(
  deps: ProxyDeps,
  runtime: Runtime,
  ordered: { entity: PluginEntity; info: PluginInfo }[],
  state: RequestState,
): void {
  const loggers = ordered.filter((p) => p.info.phases.includes("log"));
  if (loggers.length === 0) return;
  state.timing.endedAt = Date.now();
  // Kong's log handler runs in ngx.timer.at(0) after the response, from saved data.
  const done = new Promise<void>((resolveDone) => {
    setImmediate(async () => {
      try {
        for (const { entity, info } of loggers) {
          if (info.server === undefined) {
            emulatedLog(entity, () => serialize(state));
            continue;
          }
          const outcome = await runExternal(deps, runtime, entity, info, state, "log");
          if (outcome.kind === "lua-error")
            deps.log("err", `log phase of ${entity.name} aborted: ${outcome.message}`, "kong");
        }
      } catch (error) {
        deps.log("err", `log phase failed: ${(error as Error).message}`, "kong");
      } finally {
        resolveDone();
      }
    });
  });
  deps.track(done);
}

/** The table kong.log.serialize builds (the fields the double fills), with set_serialize_value's edits. */
function serialize(state: RequestState): Record<string, unknown> {
  return applySerializeValues(baseSerialize(state), state.serializeValues);
}

/**
 * K3.9.3 kong/pdk/log.lua edit_result: each key is split on dots, missing tables are created for `set` and `add`
 * (a `replace` whose chain is missing does nothing), a non-table link raises, and the last key is set when the
 * mode allows it (`add` only where absent, `replace` only where present).
 */
export function applySerializeValues(
  root: Record<string, unknown>,
  edits: RequestState["serializeValues"],
): Record<string, unknown> {
  for (const { key, value, mode } of edits) {
    const parts = key.split(".");
    const last = parts.pop() as string;
    let node: Record<string, unknown> | undefined = root;
    for (const part of parts) {
      const next: unknown = node[part];
      if (next === undefined) {
        if (mode === "replace") {
          node = undefined;
          break;
        }
        node[part] = {};
      } else if (next === null || typeof next !== "object") {
        throw new LuaError(
          `The key '${key}' could not be used as a serialize value. Subkey '${part}' is not a table. It's ${String(next)}`,
        );
      }
      node = node[part] as Record<string, unknown>;
    }
    if (node === undefined) continue;
    const existing = node[last];
    if (
      mode === "set" ||
      (mode === "add" && existing === undefined) ||
      (mode === "replace" && existing !== undefined)
    ) {
      if (value === undefined) delete node[last];
      else node[last] = value;
    }
  }
  return root;
}

/**
 * K3.9.3 kong/constants.lua RESPONSE_SOURCE.NAMES: the log data's `source` names who answered, "upstream" or
 * "kong", where kong.response.get_source() says "service", "exit" or "error" (kong/pdk/log.lua serialize:
 * `TYPE_NAMES[get_source(ctx)]`).
 */
const SOURCE_NAMES = { service: "upstream", exit: "kong", error: "kong" } as const;

/** The default workspace, which every entity of an open-source Kong belongs to (kong/workspaces get_workspace_name). */
const DEFAULT_WORKSPACE = "default";

/**
 * The fields of K3.9.3 kong/pdk/log.lua `serialize` the double fills: `upstream_status` is "" when nothing was
 * proxied (no $upstream_status), `latencies` from Kong's ctx timestamps (`proxy` -1 and `receive` 0 for an
 * exit), `tries` = balancer_data.tries (`[]` for an exit), `workspace` the route's ws_id (the default workspace's). Left out: request.id,
 * querystring and tls, response.size, authenticated_entity.
 */
function baseSerialize(state: RequestState): Record<string, unknown> {
  const flat = (h: HeaderValues) =>
    Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
  const endedAt = state.timing.endedAt ?? Date.now();
  const proxied = state.response.source === "service" || state.tries.length > 0;
  return {
    request: {
      method: state.client.method,
      uri: state.client.path + (state.client.query ? `?${state.client.query}` : ""),
      url: `http://${state.client.host}:${state.client.port}${state.client.path}`,
      headers: flat(state.client.headers),
      size: state.client.body.length,
    },
    response: {
      status: state.response.status,
      headers: flat({ ...state.response.headers, ...state.response.extraHeaders }),
    },
    upstream_status: state.response.upstreamStatus ?? "",
    upstream_uri: state.upstream.uri,
    latencies: {
      kong: state.timing.kong ?? 0,
      proxy: proxied ? (state.timing.waiting ?? -1) : -1,
      request: endedAt - state.startedAt,
      receive: proxied ? (state.timing.receive ?? 0) : 0,
    },
    tries: state.tries,
    route: state.route,
    service: state.service,
    ...(state.consumer && { consumer: state.consumer }),
    client_ip: state.client.ip,
    started_at: state.startedAt,
    source: SOURCE_NAMES[state.response.source ?? "error"],
    // ctx.workspace = the route's ws_id (kong/runloop/handler.lua access.before): the default workspace.
    workspace: DEFAULT_WS_ID,
    workspace_name: DEFAULT_WORKSPACE,
  };
}

function lowerValues(headers: Record<string, string | string[]>): HeaderValues {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v : [v]]),
  );
}

function writeHead(res: ServerResponse, status: number, headers: HeaderValues): void {
  res.writeHead(
    status,
    Object.entries(headers)
      .flatMap(([k, vs]) => vs.map((v) => [k, v]))
      .flat() as unknown as string[],
  );
}

function sendJson(res: ServerResponse, status: number, body: string | object): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    server: SERVER_HEADER,
  });
  res.end(text);
}

function sendPage(
  res: ServerResponse,
  page: ErrorPage,
  state: { id: string; startedAt: number },
  proxied?: { upstreamLatency: number; proxyLatency: number },
  /** Headers plugins set in access (kong.response.set_header(s)), which Kong's own pages keep. */
  extra: HeaderValues = {},
): void {
  const headers = lowerValues(page.headers);
  writeHead(res, page.status, {
    ...extra,
    ...headers,
    "content-length": [String(page.body.length)],
    ...kongHeaders(state, headers, proxied),
  });
  res.end(page.body);
}
