/**
 * The proxy port: a real HTTP listener that routes like Kong, runs the plugins' access phase, applies the PDK
 * state to the upstream request, proxies over real HTTP and streams the answer back as it arrives (no
 * buffering, so an SSE stream reaches the client chunk by chunk), then runs the log phase after the response
 * has been sent, from a snapshot, as Kong's log timer does.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request as upstreamRequest } from "undici";
import { buildInstanceConfig } from "../config/instance-config";
import type { KongConfig, PluginEntity, PluginInfo } from "../config/model";
import { emulatedAccess } from "./bundled-plugins";
import type { PdkContext, Phase } from "./pdk";
import type { LogFn, PdkCallCounter, PhaseOutcome, PluginServer } from "./plugin-server";
import type { ExitResponse, HeaderValues, RequestState } from "./request-state";
import type { Router } from "./router";

export const KONG_VERSION = "3.9.3";
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
}

export async function startProxy(
  deps: ProxyDeps,
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const agents = new Map<string, Agent>();
  const agentFor = (servername: string) => {
    let agent = agents.get(servername);
    if (agent === undefined) {
      // Kong does not verify upstream certificates unless tls_verify is set.
      agent = new Agent({ connect: { servername, rejectUnauthorized: false } });
      agents.set(servername, agent);
    }
    return agent;
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      handle(deps, req, res, Buffer.concat(chunks), agentFor).catch((error: unknown) => {
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
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await Promise.all([...agents.values()].map((a) => a.close()));
    },
  };
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
  agentFor: (servername: string) => Agent,
): Promise<void> {
  const startedAt = Date.now();
  const runtime = deps.runtime();
  const [rawPath, ...q] = (req.url ?? "/").split("?");
  const query = q.length > 0 ? q.join("?") : undefined;
  const headers = headerValues(req);
  const host = headers.host?.[0] ?? "";
  const id = randomUUID().replace(/-/g, "");
  const match = runtime.router.match(req.method ?? "GET", host, rawPath ?? "/");
  if (match === undefined) {
    sendJson(res, 404, `{\n  "message":"no Route matched with those values",\n  "request_id":"${id}"\n}`);
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
  };

  const plugins = pluginsFor(runtime.config, match.route.id, service?.id);
  const ordered = plugins
    .map((entity) => ({ entity, info: deps.plugins.get(entity.name) }))
    .filter((p): p is { entity: PluginEntity; info: PluginInfo } => p.info !== undefined)
    .sort((a, b) => b.info.priority - a.info.priority);

  let exit: ExitResponse | undefined;
  for (const { entity, info } of ordered) {
    if (info.server === undefined) {
      exit = emulatedAccess(entity, state, runtime.config);
    } else if (info.phases.includes("access")) {
      const outcome = await runExternal(deps, runtime, entity, info, state, "access");
      if (outcome.kind === "lua-error") exit = unexpectedError();
      else if (outcome.exit !== undefined) exit = outcome.exit;
    }
    if (exit !== undefined) break;
  }
  // A WebSocket upgrade turns buffered proxying off whoever asked for it (K3.9.3 kong/init.lua, Kong.access).
  const upgrade = state.client.headers.upgrade?.[0]?.toLowerCase() === "websocket";
  const buffered =
    !upgrade && (state.upstream.buffered || ordered.some((p) => p.info.phases.includes("response")));
  if (buffered && exit === undefined) state.ngxCtx.set("buffered_proxying", true);
  else state.ngxCtx.delete("buffered_proxying");

  if (exit !== undefined) {
    state.response = {
      ...state.response,
      status: exit.status,
      source: exit.source,
      headers: lowerValues(exit.headers),
    };
    writeHead(res, exit.status, {
      ...lowerValues(exit.headers),
      ...state.response.extraHeaders,
      "content-length": [String(exit.body.length)],
      server: [SERVER_HEADER],
    });
    res.end(exit.body);
  } else {
    await proxyUpstream(deps, state, res, agentFor, match.prefix, buffered);
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
  const instance = () =>
    server.instanceFor(entity.name, entity.id, runtime.seq, () =>
      buildInstanceConfig(entity, info.configFields, runtime.seq, deps.env, (m) =>
        deps.log("warn", m, "kong"),
      ),
    );
  const outcome = await server.runPhase(instance, ctx, deps.counter);
  return { ...outcome, ...(ctx.exit && { exit: ctx.exit }) };
}

function unexpectedError(): ExitResponse {
  const body = Buffer.from(JSON.stringify({ message: "An unexpected error occurred" }));
  return {
    status: 500,
    body,
    headers: { "Content-Type": "application/json; charset=utf-8" },
    source: "error",
  };
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

async function proxyUpstream(
  deps: ProxyDeps,
  state: RequestState,
  res: ServerResponse,
  agentFor: (servername: string) => Agent,
  prefix: string,
  buffered: boolean,
): Promise<void> {
  const up = state.upstream;
  const defaultPort = up.scheme === "https" ? 443 : 80;
  // With $upstream_host set (set_target, a Host header, preserve_host) Kong sends exactly it as Host and SNI.
  const hostHeader = up.hostVar ?? (up.port === defaultPort ? up.host : `${up.host}:${up.port}`);
  const outgoing: Record<string, string | string[]> = {};
  for (const [name, values] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(name)) outgoing[name] = values;
  Object.assign(outgoing, {
    host: hostHeader,
    "x-forwarded-for": state.client.headers["x-forwarded-for"]
      ? `${state.client.headers["x-forwarded-for"][0]}, ${state.client.ip}`
      : state.client.ip,
    "x-forwarded-proto": state.client.scheme,
    "x-forwarded-host": state.client.host,
    "x-forwarded-port": String(state.client.port),
    "x-forwarded-path": state.client.path,
    "x-real-ip": state.client.ip,
    via: `1.1 ${SERVER_HEADER}`,
  });
  if (prefix !== "/") outgoing["x-forwarded-prefix"] = prefix;
  const hasBody =
    up.body.length > 0 ||
    state.client.headers["content-length"] !== undefined ||
    state.client.headers["transfer-encoding"] !== undefined;
  if (hasBody) outgoing["content-length"] = String(up.body.length);
  const target = `${up.scheme}://${up.host.includes(":") ? `[${up.host}]` : up.host}:${up.port}${up.uri}${up.query !== undefined ? `?${up.query}` : ""}`;
  const sentAt = Date.now();
  let upstream: Awaited<ReturnType<typeof upstreamRequest>>;
  try {
    upstream = await upstreamRequest(target, {
      method: up.method as "GET",
      headers: outgoing,
      body: hasBody ? up.body : null,
      dispatcher: agentFor(up.hostVar ?? up.host),
      headersTimeout: state.service?.read_timeout ?? 60_000,
      bodyTimeout: state.service?.read_timeout ?? 60_000,
    });
  } catch (error) {
    const code = (error as { code?: string }).code ?? "";
    deps.log("err", `upstream ${target}: ${(error as Error).message}`, "kong");
    const [status, message] =
      code === "ENOTFOUND" || code === "EAI_AGAIN"
        ? [503, "name resolution failed"]
        : code.includes("TIMEOUT")
          ? [504, "The upstream server is timing out"]
          : [502, "An invalid response was received from the upstream server"];
    state.response = { ...state.response, status, source: "error" };
    sendJson(res, status, `{\n  "message":"${message}",\n  "request_id":"${state.id}"\n}`);
    return;
  }
  const responseHeaders: HeaderValues = {};
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value === undefined || name === "connection" || name === "keep-alive" || name === "transfer-encoding")
      continue;
    responseHeaders[name] = Array.isArray(value) ? value : [value];
  }
  state.response = {
    ...state.response,
    status: upstream.statusCode,
    headers: responseHeaders,
    source: "service",
    upstreamStatus: String(upstream.statusCode),
  };
  const latency = Date.now() - sentAt;
  const headersOut = {
    ...responseHeaders,
    ...state.response.extraHeaders,
    via: [`1.1 ${SERVER_HEADER}`],
    "x-kong-upstream-latency": [String(latency)],
    "x-kong-proxy-latency": [String(sentAt - state.startedAt)],
    "x-kong-request-id": [state.id],
  };
  if (buffered) {
    const all = Buffer.from(await upstream.body.arrayBuffer());
    state.response.bufferedBody = all;
    // Kong.response() keeps them in ngx.ctx; a Lua string reaches JS through get_ctx as a msgpack str.
    state.ngxCtx.set("buffered_status", upstream.statusCode);
    state.ngxCtx.set("buffered_body", all.toString("utf8"));
    writeHead(res, upstream.statusCode, { ...headersOut, "content-length": [String(all.length)] });
    res.end(all);
    return;
  }
  writeHead(res, upstream.statusCode, headersOut);
  res.flushHeaders();
  for await (const chunk of upstream.body) {
    if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
  }
  res.end();
}

function scheduleLog(
  deps: ProxyDeps,
  runtime: Runtime,
  ordered: { entity: PluginEntity; info: PluginInfo }[],
  state: RequestState,
): void {
  const loggers = ordered.filter((p) => p.info.server !== undefined && p.info.phases.includes("log"));
  if (loggers.length === 0) return;
  // Kong's log handler runs in ngx.timer.at(0) after the response, from saved data.
  const done = new Promise<void>((resolveDone) => {
    setImmediate(async () => {
      try {
        for (const { entity, info } of loggers) {
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

/** The table kong.log.serialize builds (the fields the double fills). */
function serialize(state: RequestState): Record<string, unknown> {
  const flat = (h: HeaderValues) =>
    Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
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
    upstream_status: state.response.upstreamStatus,
    upstream_uri: state.upstream.uri,
    route: state.route,
    service: state.service,
    ...(state.consumer && { consumer: state.consumer }),
    client_ip: state.client.ip,
    started_at: state.startedAt,
    source: state.response.source,
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
