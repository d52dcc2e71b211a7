/**
 * The thin layer between Kong and the pure core: it reads what Kong knows about the request, asks the core
 * what to do, and tells Kong. Every PDK call is a round trip to Kong (~140 µs on the JS side alone), so each
 * phase reads only what its decision needs, and every argument is checked before the call because Kong never
 * answers a call it rejects (the request would hang until Kong's 500).
 */
import { type Balancer, balancerFor } from "./core/balancer";
import { CHOICE_LOG_KEY, choiceLog, modelHeaders, routedFrom } from "./core/choice-log";
import { credentialsIn } from "./core/client-credentials";
import { ConfigError, keylessEntries, normalizeConfig, type RoundRobinConfig } from "./core/config";
import { noteInstance, noteUse } from "./core/instances";
import { countRefusal } from "./core/metrics";
import { errorCode, errorResponse } from "./core/openai-error";
import { applyOutcome, type Observed, outcomeOf } from "./core/outcome";
import {
  admit,
  checkBody,
  decide,
  decideRelayed,
  failure,
  misconfigured,
  needsConsumer,
  type Refusal,
  type RequestHead,
  type Route,
  relays,
} from "./core/routing";
import { firstValues, mayBeUnreachable, needsHeaders, suspensionFromResponse } from "./core/signals";
import type { HeaderMap, Pdk, ServiceEntity } from "./pdk";
import { policyFor } from "./policies";
import { relayAddress, serveThroughRelay, TICKET_HEADER } from "./relay";
import { issueTicket } from "./relay/tickets";
import { startStatusListenerOnce } from "./status";
import type { ListenAddress } from "./status/address";
import { logToStderr } from "./stderr-log";

/** Kong sends the request to the relay, which carries the decision out. */
interface Relayed {
  kind: "relayed";
}

/** Kong's defaults for a service's connect_timeout and read_timeout (ms), when the service is not known. */
const KONG_DEFAULT_TIMEOUT_MS = 60_000;

/**
 * How long a plugin scoped to a service or route trusts what it read of that service (protocol, path, host):
 * Kong does not restart plugin instances when the service entity changes, so the copy is bounded in time.
 */
const SERVICE_TTL_MS = 5000;
/** The most headers kong.request.get_headers returns (Kong's upper bound for its argument). */
const MAX_REQUEST_HEADERS = 1000;
/**
 * Misconfigurations already logged, by plugin id and problem: once per plugin configuration, not per request,
 * and once for all of Kong's workers (each has its own instance of a configuration; this process serves them all).
 */
const loggedProblems = new Set<string>();
/** Per plugin id, the last keyless-entries line logged: once per configuration, again when it differs. */
const loggedKeyless = new Map<string, string>();

export class ModelBasedRoundRobinHandler {
  private readonly config: RoundRobinConfig | undefined;
  private readonly configProblem: string | undefined;
  private readonly balancer: Balancer | undefined;
  private readonly pluginId: string;
  /** Scoped to one service (directly, or through its route): the service is read once per SERVICE_TTL_MS. */
  private readonly scoped: boolean;
  private service: { entity: ServiceEntity | undefined; readAtMs: number } | undefined;
  /** The relay's address, once this instance relayed a request (failover on, the relay listening). */
  private relay: ListenAddress | undefined;
  /** The route's id, for a plugin bound to a route: its name is read once per instance, for /status. */
  private readonly routeId: string | undefined;
  private routeName: string | undefined;
  /** Until this settles, the cluster's state (policy redis) is still being read: requests wait for it. */
  private loading: Promise<void> | undefined;

  /** Kong starts one instance per plugin configuration (and again on every reload); all derivation is done here. */
  constructor(rawConfig: unknown) {
    // Here, not when the module loads: the query command loads it too, and never starts an instance.
    startStatusListenerOnce();
    const id = (rawConfig as { __plugin_id?: unknown } | null | undefined)?.__plugin_id;
    this.pluginId = typeof id === "string" ? id : "";
    const scope = rawConfig as { service_id?: unknown; route_id?: unknown } | null | undefined;
    this.scoped = typeof scope?.service_id === "string" || typeof scope?.route_id === "string";
    this.routeId = typeof scope?.route_id === "string" ? scope.route_id : undefined;
    const serviceId = typeof scope?.service_id === "string" ? scope.service_id : undefined;
    noteInstance(this.pluginId, { serviceId, routeId: this.routeId }, Date.now());
    try {
      this.config = normalizeConfig(rawConfig);
      logKeyless(this.config);
      const policy = policyFor(this.config, logToStderr);
      this.balancer = balancerFor(this.config, policy);
      this.loading = policy.ready();
      if (this.config.failover.attempts > 0) serveThroughRelay(this.config, this.balancer);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      this.configProblem = error.message;
    }
  }

  /** Routes the request, or answers it with the one refusal the core decided on. */
  async access(kong: Pdk): Promise<void> {
    noteUse(this.pluginId, Date.now());
    if (this.loading !== undefined) {
      // Only the first requests of a configuration this process meets for the first time, bounded by
      // redis.timeout: they must not go to an entry another node has suspended.
      await this.loading;
      this.loading = undefined;
    }
    const outcome = await this.route(kong).catch(async (error: unknown) => {
      await kong.log.err(`access failed: ${describe(error)}`);
      return failure("the model-based-round-robin plugin failed on this request");
    });
    // kong-pdk does not await exit and Kong never answers a call after it: it must be the handler's last.
    if (outcome.kind === "refuse") {
      countRefusal(this.config?.pluginId ?? this.pluginId, errorCode(outcome.body));
      const response = errorResponse(outcome.body, outcome.headers);
      kong.response.exit(outcome.status, response.body, response.headers);
    }
  }

  async log(kong: Pdk): Promise<void> {
    if (this.config === undefined || this.balancer === undefined) return;
    // With failover on, Kong sent every request but a WebSocket upgrade through the relay, which saw each
    // answer: nothing is left to observe here, and no PDK call is spent on finding that out.
    if (this.relay !== undefined) return;
    try {
      await this.observe(kong, this.config, this.balancer);
    } catch (error) {
      await kong.log.err(`log failed: ${describe(error)}`);
    }
  }

  /** Reads what each step of the decision needs, and carries out a route. */
  private async route(kong: Pdk): Promise<Route | Refusal | Relayed> {
    const { config, balancer } = this;
    if (config === undefined || balancer === undefined) {
      // Kong accepted what its schema language can say (duplicates, min > max cannot be said); never send
      // traffic to the service's placeholder instead.
      return this.logged(kong, misconfigured(this.configProblem ?? "unknown problem"));
    }
    // Kong's default cap is 100 headers: Content-Length after the 100th would go unseen.
    const headers = (await kong.request.getHeaders(MAX_REQUEST_HEADERS)) ?? {};
    // Kong decides whether to turn buffering off from the Upgrade among the first lua_max_req_headers (default
    // 100) only (ngx.req.get_headers() in its runloop): ask for exactly those, and only when there is an Upgrade.
    const upgrade =
      headers.upgrade === undefined ? undefined : (await kong.request.getHeaders())?.upgrade?.[0];
    const head = requestHead(headers, upgrade, config.clientCredentialHeaders);
    if (relays(config, head)) {
      const relay = this.relay ?? (await this.startRelay());
      if (relay !== undefined) return this.relayVia(kong, config, balancer, head, relay);
    }
    const admission = admit(config, head);
    if (admission?.kind === "refuse") return admission;
    const body = admission ?? checkBody(toBuffer(await kong.request.getRawBody(config.maxBodyBytes)));
    if (body.kind === "refuse") return body;
    const uri = (await kong.nginx.getVar("upstream_uri")) ?? "/";
    const service = await this.serviceOf(kong, uri);
    await this.nameScope(kong, service);
    const upstream = {
      uri,
      serviceProtocol: service?.protocol,
      servicePath: service?.path,
      serviceHost: service?.host,
    };
    const consumer = needsConsumer(config) ? await kong.client.getConsumer() : undefined;
    const decision = decide(config, balancer, { head, body, upstream, consumer });
    if (decision.kind === "refuse") return this.logged(kong, decision);
    await sendTo(kong, decision, config);
    return decision;
  }

  /**
   * Relays the request: access takes the rotation's turn and tells Kong's log data, the relay (this process)
   * gets the decision under a single-use ticket, and Kong's upstream becomes the relay. Three PDK calls after
   * the headers were read (a fourth, set_scheme, only for an https service), none of them carrying the body.
   */
  private async relayVia(
    kong: Pdk,
    config: RoundRobinConfig,
    balancer: Balancer,
    head: RequestHead,
    relay: ListenAddress,
  ): Promise<Relayed | Refusal> {
    const service = await this.serviceOf(kong);
    await this.nameScope(kong, service);
    const consumer = needsConsumer(config) ? await kong.client.getConsumer() : undefined;
    const choice = decideRelayed(config, balancer, { head, consumer });
    if (choice.kind === "refuse") return this.logged(kong, choice);
    const ticket = issueTicket({
      pluginId: config.pluginId,
      env: choice.env,
      entryKey: choice.entry.key,
      servicePath: service?.path,
      connectTimeoutMs: service?.connect_timeout ?? KONG_DEFAULT_TIMEOUT_MS,
      readTimeoutMs: service?.read_timeout ?? KONG_DEFAULT_TIMEOUT_MS,
    });
    const log = choiceLog(config.pluginId, { ...choice, requestedModel: undefined, probe: false });
    await kong.log.setSerializeValue(CHOICE_LOG_KEY, { ...log, relayed: true });
    if (service?.protocol === "https") await kong.service.request.setScheme("http");
    await kong.service.request.setHeader(TICKET_HEADER, ticket);
    // Last, as on the direct path: should the plugin server die before, Kong goes to the service's own URL,
    // which refuses, and never to a provider.
    await kong.service.setTarget(relay.host, relay.port);
    return { kind: "relayed" };
  }

  /**
   * /status names the plugin by its service and route (a global plugin meets many services and names none): the
   * route's name costs one PDK call, once per instance.
   */
  private async nameScope(kong: Pdk, service: ServiceEntity | undefined): Promise<void> {
    if (!this.scoped) return;
    if (this.routeId !== undefined && this.routeName === undefined)
      this.routeName = (await kong.router.getRoute())?.name ?? this.routeId;
    noteUse(this.pluginId, Date.now(), { service: service?.name ?? service?.id, route: this.routeName });
  }

  /** The relay's address, once it listens (started by the first relayed request of this process). */
  private async startRelay(): Promise<ListenAddress | undefined> {
    const address = await relayAddress(process.env, logToStderr);
    this.relay = address;
    return address;
  }

  /**
   * The route's service. A plugin bound to one service keeps what it read for SERVICE_TTL_MS, and reads again
   * sooner when $upstream_uri no longer starts with the service path it knows; a global or consumer-scoped one
   * meets many services and asks every time.
   */
  private async serviceOf(kong: Pdk, uri?: string): Promise<ServiceEntity | undefined> {
    const now = Date.now();
    const known = this.service;
    if (
      this.scoped &&
      known !== undefined &&
      now - known.readAtMs < SERVICE_TTL_MS &&
      (uri === undefined || uri.startsWith(known.entity?.path ?? "/"))
    ) {
      return known.entity;
    }
    const entity = (await kong.router.getService()) ?? undefined;
    if (this.scoped) this.service = { entity, readAtMs: now };
    return entity;
  }

  /** Logs a refusal's misconfiguration once per plugin configuration (and problem) in this process. */
  private async logged(kong: Pdk, refusal: Refusal): Promise<Refusal> {
    const key = `${this.pluginId}\n${refusal.problem}`;
    if (refusal.problem !== undefined && !loggedProblems.has(key)) {
      if (loggedProblems.size >= 10_000) loggedProblems.clear();
      loggedProblems.add(key);
      await kong.log.err(`invalid configuration: ${refusal.problem} (answered on every request until fixed)`);
    }
    return refusal;
  }

  /**
   * What a request Kong proxied itself did to its entry (core/outcome.ts decides), reading as little as it
   * can: the status first (most answers end the phase there), headers only for a status that may suspend, the
   * choice and the source only when something may happen, the body only for a billing probe.
   */
  private async observe(kong: Pdk, config: RoundRobinConfig, balancer: Balancer): Promise<void> {
    const status = await kong.response.getStatus();
    if (status === undefined) return;
    const unreachable = mayBeUnreachable(status, config);
    // While an entry has failed in a row, an answer from it is news worth two calls: it ends the streak.
    const recovering = balancer.hasStreaks();
    let headers: Record<string, string | undefined> = {};
    let suspends = false;
    if (needsHeaders(status, config)) {
      headers = firstValues((await kong.response.getHeaders()) ?? {});
      suspends = suspensionFromResponse(status, headers, config, Date.now()) !== undefined;
    }
    if (!suspends && !unreachable && !recovering) return;
    const routed = routedFrom(parseJson(await kong.log.serialize()));
    if (routed === undefined) return; // this plugin did not route the request (it answered itself)
    if (routed.relayed) return; // the relay observed it
    const source = sourceOf(await kong.response.getSource());
    if (source === undefined) return;
    let body: Buffer | undefined;
    // Kong turns buffering off for a WebSocket upgrade, and get_raw_body would then raise and never answer: ask
    // the saved ngx.ctx first (one call, only for a probe that is being suspended).
    if (
      suspends &&
      source === "provider" &&
      config.suspendOnStatuses.has(status) &&
      routed.probe &&
      (await kong.nginx.getCtx("buffered_proxying")) === true
    ) {
      body = toBuffer(await kong.service.response.getRawBody());
    }
    const observed: Observed = { kind: "answer", status, source, headers, body };
    const nowMs = Date.now();
    const outcome = outcomeOf(config, observed, nowMs);
    const why = `Kong could not reach it (HTTP ${status})`;
    const line = applyOutcome(balancer, routed.env, routed.entryKey, outcome, nowMs, why);
    if (line !== undefined) await kong.log.warn(line);
  }
}

/** kong.response.get_source() in the outcome rule's words; undefined for anything else. */
function sourceOf(source: string | undefined): Extract<Observed, { kind: "answer" }>["source"] | undefined {
  if (source === "service") return "provider";
  if (source === "error") return "kong-error";
  if (source === "exit") return "kong-exit";
  return undefined;
}

/**
 * Names the entries left out because their key resolved empty, and the vault reference (never a value): once per
 * configuration, not per instance (each of Kong's workers starts one) or request.
 */
function logKeyless(config: RoundRobinConfig): void {
  const line = keylessEntries(config);
  const previous = loggedKeyless.get(config.pluginId);
  if (line === previous) return;
  if (line === undefined) {
    loggedKeyless.delete(config.pluginId);
    return;
  }
  if (loggedKeyless.size >= 10_000) loggedKeyless.clear();
  loggedKeyless.set(config.pluginId, line);
  logToStderr(`plugin ${config.pluginId}: ${line}`);
}

/**
 * Points the upstream request at the route's entry, and says so to the client and to Kong's log data.
 * set_target goes last: should the plugin server die halfway (Kong then goes on with whatever was already set),
 * a request without the entry's model or key still goes to the service's own URL, which refuses, and never to
 * the provider.
 */
async function sendTo(kong: Pdk, route: Route, config: RoundRobinConfig): Promise<void> {
  const { entry } = route;
  const headers = modelHeaders(config.modelHeaders, route);
  if (headers !== undefined) await kong.response.setHeaders(headers);
  await kong.log.setSerializeValue(CHOICE_LOG_KEY, choiceLog(config.pluginId, route));
  if (route.scheme !== undefined) await kong.service.request.setScheme(route.scheme);
  if (route.path !== undefined) await kong.service.request.setPath(route.path);
  if (route.body !== undefined) await kong.service.request.setRawBody(route.body);
  if (entry.authHeader !== undefined) {
    await kong.service.request.setHeader(entry.authHeader.name, entry.authHeader.value);
  }
  for (const name of route.clearHeaders) await kong.service.request.clearHeader(name);
  if (route.probe) await kong.service.request.enableBuffering();
  // Also makes Kong send exactly this host as Host and TLS SNI (it sets $upstream_host).
  await kong.service.setTarget(entry.host, entry.port);
}

function requestHead(headers: HeaderMap, upgrade: string | undefined, credentials: string[]): RequestHead {
  const first = (name: string) => headers[name]?.[0];
  return {
    contentLength: first("content-length"),
    transferEncoding: first("transfer-encoding"),
    host: first("host"),
    upgrade,
    credentials: credentialsIn(credentials, headers),
  };
}

function toBuffer(raw: Buffer | string | undefined): Buffer {
  if (raw === undefined) return Buffer.alloc(0);
  return typeof raw === "string"
    ? Buffer.from(raw, "utf8")
    : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
