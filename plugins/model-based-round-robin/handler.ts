/**
 * The thin layer between Kong and the pure core: it reads what Kong knows about the request, asks the core
 * what to do, and tells Kong. Every PDK call is a round trip to Kong (~140 µs on the JS side alone), so each
 * phase reads only what its decision needs, and every argument is checked before the call because Kong never
 * answers a call it rejects (the request would hang until Kong's 500).
 */
import { type Balancer, balancerFor } from "./core/balancer";
import { billingSuspension, isInsufficientQuota } from "./core/billing";
import { CHOICE_LOG_KEY, choiceLog, modelHeaders, routedFrom } from "./core/choice-log";
import { ConfigError, keylessEntries, normalizeConfig, type RoundRobinConfig } from "./core/config";
import { failover } from "./core/failover";
import { countRefusal } from "./core/metrics";
import { errorCode, errorResponse, type OpenAiError } from "./core/openai-error";
import {
  admit,
  CLIENT_CREDENTIAL_HEADERS,
  checkBody,
  decide,
  failure,
  misconfigured,
  needsConsumer,
  type Refusal,
  type RequestHead,
  type Route,
  selfProxies,
} from "./core/routing";
import {
  firstValues,
  isUnreachable,
  mayBeUnreachable,
  needsHeaders,
  type Suspension,
  suspensionFromResponse,
} from "./core/signals";
import type { HeaderMap, Pdk, ServiceEntity } from "./pdk";
import { policyFor } from "./policies";
import { startStatusListenerOnce } from "./status";
import { logToStderr } from "./stderr-log";
import { sendAttempt } from "./upstream";

/** A failover request's answer, sent with kong.response.exit: the provider's (or the plugin's own). */
interface Answer {
  kind: "answer";
  status: number;
  body: Buffer | string;
  headers: Record<string, string | string[]>;
  /** The answer is one of the plugin's own refusals (all suspended, no provider reachable): counted as one. */
  refusal?: OpenAiError | undefined;
}

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
    try {
      this.config = normalizeConfig(rawConfig);
      logKeyless(this.config);
      const policy = policyFor(this.config, logToStderr);
      this.balancer = balancerFor(this.config, policy);
      this.loading = policy.ready();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      this.configProblem = error.message;
    }
  }

  /** Routes the request, or answers it with the one refusal the core decided on. */
  async access(kong: Pdk): Promise<void> {
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
    if (outcome.kind === "answer") {
      if (outcome.refusal !== undefined)
        countRefusal(this.config?.pluginId ?? this.pluginId, errorCode(outcome.refusal));
      kong.response.exit(outcome.status, outcome.body, outcome.headers);
    } else if (outcome.kind === "refuse") {
      countRefusal(this.config?.pluginId ?? this.pluginId, errorCode(outcome.body));
      const response = errorResponse(outcome.body, outcome.headers);
      kong.response.exit(outcome.status, response.body, response.headers);
    }
  }

  async log(kong: Pdk): Promise<void> {
    if (this.config === undefined || this.balancer === undefined) return;
    try {
      await this.observe(kong, this.config, this.balancer);
    } catch (error) {
      await kong.log.err(`log failed: ${describe(error)}`);
    }
  }

  /** Reads what each step of the decision needs, and carries out a route. */
  private async route(kong: Pdk): Promise<Route | Refusal | Answer> {
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
    const head = requestHead(headers, upgrade);
    const admission = admit(config, head);
    if (admission?.kind === "refuse") return admission;
    const body = admission ?? checkBody(toBuffer(await kong.request.getRawBody(config.maxBodyBytes)));
    if (body.kind === "refuse") return body;
    const uri = (await kong.nginx.getVar("upstream_uri")) ?? "/";
    const service = await this.serviceOf(kong, uri);
    const upstream = {
      uri,
      serviceProtocol: service?.protocol,
      servicePath: service?.path,
      serviceHost: service?.host,
    };
    const consumer = needsConsumer(config) ? await kong.client.getConsumer() : undefined;
    const decision = decide(config, balancer, { head, body, upstream, consumer });
    if (decision.kind === "refuse") return this.logged(kong, decision);
    if (selfProxies(config, head, body)) {
      // Failover: the plugin sends the request itself, to as many entries as it takes, and answers with exit.
      const method = (await kong.request.getMethod()) ?? "POST";
      const query = (await kong.request.getRawQuery()) ?? "";
      const timeouts = { connectMs: service?.connect_timeout, readMs: service?.read_timeout };
      const request = { head, body, upstream, headers, method, query, timeouts };
      const outcome = await failover(config, balancer, decision, request, sendAttempt);
      for (const warning of outcome.warnings) await kong.log.warn(warning);
      await kong.log.setSerializeValue(CHOICE_LOG_KEY, outcome.log);
      return { kind: "answer", ...outcome.answer, refusal: outcome.refusal?.body };
    }

    await sendTo(kong, decision, config);
    return decision;
  }

  /**
   * The route's service. A plugin bound to one service keeps what it read for SERVICE_TTL_MS, and reads again
   * sooner when $upstream_uri no longer starts with the service path it knows; a global or consumer-scoped one
   * meets many services and asks every time.
   */
  private async serviceOf(kong: Pdk, uri: string): Promise<ServiceEntity | undefined> {
    const now = Date.now();
    const known = this.service;
    if (
      this.scoped &&
      known !== undefined &&
      now - known.readAtMs < SERVICE_TTL_MS &&
      uri.startsWith(known.entity?.path ?? "/")
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

  private async observe(kong: Pdk, config: RoundRobinConfig, balancer: Balancer): Promise<void> {
    // Cheapest first: most answers end the phase after one call.
    const status = await kong.response.getStatus();
    if (status === undefined) return;
    const unreachable = mayBeUnreachable(status, config);
    // While an entry has failed in a row, an answer from it is news worth two calls: it ends the streak.
    const recovering = balancer.hasStreaks();
    let headers: Record<string, string | undefined> = {};
    let suspension: Suspension | undefined;
    if (needsHeaders(status, config)) {
      headers = firstValues((await kong.response.getHeaders()) ?? {});
      suspension = suspensionFromResponse(status, headers, config, Date.now());
    }
    if (suspension === undefined && !unreachable && !recovering) return;
    const routed = routedFrom(parseJson(await kong.log.serialize()));
    if (routed === undefined) return; // this plugin did not route the request (it answered itself)
    // The plugin sent it itself (failover) and observed every answer then: nothing is counted twice.
    if (routed.selfProxied) return;
    const source = await kong.response.getSource();
    if (unreachable && isUnreachable(status, source)) {
      const benchMs = balancer.benchUnreachable(routed.env, routed.entryKey);
      if (benchMs > 0) {
        await kong.log.warn(
          `benched ${routed.entryKey} (${routed.env}) for ${benchMs} ms: Kong could not reach it (HTTP ${status})`,
        );
      }
      return;
    }
    // A 429 made by Kong itself (rate-limiting, another plugin's exit) says nothing about the model's quota.
    if (source !== "service") return;
    if (recovering) balancer.reached(routed.env, routed.entryKey);
    if (suspension === undefined) return;
    const byStatus = config.suspendOnStatuses.has(status);
    // Kong turns buffering off for a WebSocket upgrade, and get_raw_body would then raise and never answer: ask
    // the saved ngx.ctx first (one call, only for a probe that is being suspended).
    if (byStatus && routed.probe && (await kong.nginx.getCtx("buffered_proxying")) === true) {
      const body = toBuffer(await kong.service.response.getRawBody());
      if (isInsufficientQuota(body, headers["content-encoding"])) {
        suspension = billingSuspension(status, config.billingSeconds);
      }
    }
    balancer.suspend(routed.env, routed.entryKey, suspension.durationMs, Date.now(), suspension.reason);
    // Whatever suspended it, the entry's next readable answer says whether the cause was billing.
    if (byStatus && config.billingSeconds > 0) balancer.markSuspect(routed.env, routed.entryKey);
    await kong.log.warn(
      `suspended ${routed.entryKey} (${routed.env}) for ${suspension.durationMs} ms: ${suspension.reason}`,
    );
  }
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

function requestHead(headers: HeaderMap, upgrade: string | undefined): RequestHead {
  const first = (name: string) => headers[name]?.[0];
  return {
    contentLength: first("content-length"),
    transferEncoding: first("transfer-encoding"),
    host: first("host"),
    upgrade,
    credentials: CLIENT_CREDENTIAL_HEADERS.filter((name) => headers[name] !== undefined),
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
