/**
 * What to do with a request, decided without Kong: refuse it (the plugin answers itself, once), let it pass
 * unchanged, or route it to an entry. The handler gathers what the decision needs in as few PDK calls as
 * possible and carries it out; every refusal a client can meet is made, and can be tested, here.
 *
 * The decision comes in steps because each thing it reads costs a round trip: `admit` looks at the headers
 * alone (no body, or a declared size over the limit, needs no read), `checkBody` at the body, and only a good
 * body is worth asking Kong who sent it and taking a turn in the rotation (`decide`).
 */
import type { Balancer } from "./balancer";
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { environmentOf, type RequestIdentity } from "./environment";
import { unresolvableEntry } from "./misconfiguration";
import {
  allSuspendedError,
  bodyTooLargeError,
  internalError,
  invalidBodyError,
  invalidPathError,
  ipServiceHostError,
  misconfiguredError,
  type OpenAiError,
  retryHeaders,
  sandboxNotConfiguredError,
} from "./openai-error";
import { type PreparedBody, prepareBody } from "./request-body";
import { joinPath, relativeToService, unsafePathProblem } from "./upstream-path";

type Consumer = RequestIdentity["consumer"];

/** An answer the plugin gives itself instead of proxying: one `kong.response.exit`. */
export interface Refusal {
  kind: "refuse";
  status: number;
  body: OpenAiError;
  headers?: Record<string, string>;
  /** A misconfiguration the operator must fix: logged once per plugin configuration, not per request. */
  problem?: string;
}

/** The request has no body: it is routed as it is, without taking a turn in the rotation. */
export interface Bodiless {
  kind: "bodiless";
}

/**
 * The request goes to `entry`. Each write is a round trip to Kong, so what is already right is left out:
 * `scheme`, `path` and `body` are set only when they differ from what Kong would send.
 */
export interface Route {
  kind: "route";
  env: Environment;
  entry: Entry;
  scheme: Entry["scheme"] | undefined;
  path: string | undefined;
  /** The body naming the entry's model, when the client's did not. */
  body: Buffer | undefined;
  /** The model the client named, when the body was rewritten to another (absent when it named none). */
  requestedModel: string | undefined;
  /** The request carries a body, so the entry's model serves it (GET /models and the like carry none). */
  modelled: boolean;
  /** Client credentials that must not reach the provider beside the entry's own key. */
  clearHeaders: string[];
  /** Proxy this request buffered, so that log can read a billing error in its answer. */
  probe: boolean;
}

/** The request headers the decision reads (first value of each). */
export interface RequestHead {
  contentLength?: string | undefined;
  transferEncoding?: string | undefined;
  host?: string | undefined;
  /**
   * The Upgrade header as Kong's runloop reads it to decide on buffering: the first value among the first
   * `lua_max_req_headers` (default 100) header lines, not among all of them.
   */
  upgrade?: string | undefined;
  /** Which of the configuration's client credential headers the request carries (lower case). */
  credentials?: string[];
}

/** Where Kong would send the request: `$upstream_uri` and the service's protocol and path. */
export interface UpstreamRequest {
  uri: string;
  serviceProtocol: string | undefined;
  servicePath: string | undefined;
  /** The service's host: an IP address there keeps Kong from resolving an endpoint's host name. */
  serviceHost?: string | undefined;
}

export function refusal(status: number, body: OpenAiError, headers?: Record<string, string>): Refusal {
  return headers === undefined ? { kind: "refuse", status, body } : { kind: "refuse", status, body, headers };
}

/** Step one, on the headers alone: no body, refuse, or read the body (`undefined`). */
export function admit(config: RoundRobinConfig, head: RequestHead): Bodiless | Refusal | undefined {
  if (head.contentLength === undefined && head.transferEncoding === undefined) {
    return { kind: "bodiless" }; // GET /models and the like
  }
  const declaredSize = head.contentLength === undefined ? undefined : Number(head.contentLength);
  if (declaredSize !== undefined && declaredSize > config.maxBodyBytes) {
    return refusal(413, bodyTooLargeError(declaredSize, config.maxBodyBytes));
  }
  return undefined;
}

/** Step two, on the body: a JSON object ready to take any model, or a 400 naming what is wrong with it. */
export function checkBody(raw: Buffer): ModelReadyBody | Refusal {
  const body = prepareBody(raw);
  return body.ok ? { kind: "body", raw, ...body } : refusal(400, invalidBodyError(body.problem));
}

export type ModelReadyBody = Extract<PreparedBody, { ok: true }> & { kind: "body"; raw: Buffer };

/**
 * Step three: the environment and the entry, or the refusal when none can serve. Every request is routed, a
 * bodiless one (GET /models) too, so that nothing reaches the service's own URL, which refuses by design.
 */
export function decide(
  config: RoundRobinConfig,
  balancer: Balancer,
  request: {
    head: RequestHead;
    body: ModelReadyBody | Bodiless;
    upstream: UpstreamRequest;
    consumer?: Consumer;
  },
): Route | Refusal {
  const { head, body, upstream } = request;
  const relative = relativeToService(upstream.uri, upstream.servicePath);
  const unsafe = unsafePathProblem(relative);
  if (unsafe !== undefined) return refusal(400, invalidPathError(unsafe));
  const env = environmentOf(config, { host: head.host, consumer: request.consumer });
  // Before the rotation's turn: every request of the environment would end in Kong's bare 500.
  const stranded = unresolvableEntry(
    upstream.serviceHost,
    (env === "sandbox" ? config.sandbox : config.production) ?? [],
  );
  if (stranded !== undefined && upstream.serviceHost !== undefined) {
    const answer = refusal(500, ipServiceHostError(upstream.serviceHost, stranded.host));
    return { ...answer, problem: answer.body.error.message };
  }
  // Only requests with a model count in the proportions.
  const selection = body.kind === "body" ? balancer.pick(env) : balancer.peek(env);
  if (selection.kind === "no-list") return refusal(404, sandboxNotConfiguredError());
  if (selection.kind === "all-suspended") return allSuspended(config, env, selection);
  const { entry } = selection;
  if (body.kind === "bodiless")
    return routeTo(env, entry, upstream, relative, head, {
      body: undefined,
      probe: false,
      requestedModel: undefined,
      modelled: false,
    });
  // A suspect entry's answer is read whole, once, to tell a billing error from a rate limit. Never a stream
  // (buffering would hold every token back), never a WebSocket upgrade (Kong turns buffering off for it, and only
  // for `websocket`: K3.9.3 kong/runloop/handler.lua access.before).
  const probe =
    config.billingSeconds > 0 &&
    !body.streaming &&
    head.upgrade?.toLowerCase() !== "websocket" &&
    balancer.takeProbe(env, entry.key);
  return routeWithBody(env, entry, upstream, relative, head, body, probe);
}

/** The route of a request with a body: the body names the entry's model, and the one it replaced is kept. */
function routeWithBody(
  env: Environment,
  entry: Entry,
  upstream: UpstreamRequest,
  relative: string,
  head: RequestHead,
  body: ModelReadyBody,
  probe: boolean,
): Route {
  const rewritten = body.withModel(entry.model);
  const changed = rewritten === body.raw ? undefined : rewritten;
  const requested =
    changed === undefined || body.requestedModel === entry.model ? undefined : body.requestedModel;
  return routeTo(env, entry, upstream, relative, head, {
    body: changed,
    probe,
    requestedModel: requested,
    modelled: true,
  });
}

/** Every entry of the environment is out: the configured status, with when the first returns (capped). */
function allSuspended(
  config: RoundRobinConfig,
  env: Environment,
  { retryAfterMs, unreachable }: { retryAfterMs: number; unreachable: boolean },
): Refusal {
  // A client that asks again later gets a fresh figure; an SDK told "an hour" would sleep an hour per retry.
  const advertisedMs = Math.min(retryAfterMs, config.maxRetryAfterSeconds * 1000);
  const body = allSuspendedError(env, advertisedMs, unreachable);
  return refusal(config.allSuspendedStatus, body, retryHeaders(advertisedMs));
}

/**
 * Whether Kong sends this request through the relay, which can fail over within it: failover is on and the
 * request is no WebSocket upgrade (Kong turns buffering off for one and the relay speaks plain HTTP only).
 * Streams, bodiless requests and plain ones alike: everything else is proxied by Kong to the entry directly.
 */
export function relays(config: RoundRobinConfig, head: RequestHead): boolean {
  return config.failover.attempts > 0 && head.upgrade?.toLowerCase() !== "websocket";
}

/** The relay's first entry: access takes the rotation's turn (a bodiless request only peeks, as on the direct path). */
export interface RelayChoice {
  kind: "relay";
  env: Environment;
  entry: Entry;
  /** The request carries a body: its model is the entry's. */
  modelled: boolean;
}

/**
 * Access's part of a relayed request: the environment and the first entry, or the refusal when none can serve.
 * The body and the path are the relay's to check (it reads them; Kong never hands them over the PDK socket).
 */
export function decideRelayed(
  config: RoundRobinConfig,
  balancer: Balancer,
  request: { head: RequestHead; consumer?: Consumer },
): RelayChoice | Refusal {
  const { head } = request;
  const env = environmentOf(config, { host: head.host, consumer: request.consumer });
  const admission = admit(config, head);
  if (admission?.kind === "refuse") return admission;
  const modelled = admission === undefined;
  const selection = modelled ? balancer.pick(env) : balancer.peek(env);
  if (selection.kind === "no-list") return refusal(404, sandboxNotConfiguredError());
  if (selection.kind === "all-suspended") return allSuspended(config, env, selection);
  return { kind: "relay", env, entry: selection.entry, modelled };
}

/** The route of one of the relay's attempts: the body (if any) names the entry's model. */
export function relayRoute(
  env: Environment,
  entry: Entry,
  upstream: UpstreamRequest,
  head: RequestHead,
  body: ModelReadyBody | Bodiless,
): Route {
  const relative = relativeToService(upstream.uri, upstream.servicePath);
  if (body.kind === "body") return routeWithBody(env, entry, upstream, relative, head, body, false);
  return routeTo(env, entry, upstream, relative, head, {
    body: undefined,
    probe: false,
    requestedModel: undefined,
    modelled: false,
  });
}

/**
 * A failover turn: the route to the next entry of the rotation this request has not tried (`tried` holds entry
 * keys), the all-suspended refusal when every entry is out, or undefined when the untried entries are all
 * suspended (or none is left) while some tried one is not: then the last answer stands.
 */
export function nextAttempt(
  config: RoundRobinConfig,
  balancer: Balancer,
  env: Environment,
  request: { head: RequestHead; body: ModelReadyBody | Bodiless; upstream: UpstreamRequest },
  tried: ReadonlySet<string>,
): Route | Refusal | undefined {
  const selection = balancer.pickExcept(env, tried);
  if (selection.kind === "exhausted" || selection.kind === "no-list") return undefined;
  if (selection.kind === "all-suspended") return allSuspended(config, env, selection);
  return relayRoute(env, selection.entry, request.upstream, request.head, request.body);
}

function routeTo(
  env: Environment,
  entry: Entry,
  upstream: UpstreamRequest,
  relative: string,
  head: RequestHead,
  { body, probe, requestedModel, modelled }: Pick<Route, "body" | "probe" | "requestedModel" | "modelled">,
): Route {
  const path = joinPath(entry.basePath, relative);
  const ownKey = entry.authHeader?.name.toLowerCase();
  return {
    kind: "route",
    env,
    entry,
    scheme: upstream.serviceProtocol === entry.scheme ? undefined : entry.scheme,
    path: path === upstream.uri ? undefined : path,
    body,
    requestedModel,
    modelled,
    clearHeaders: ownKey === undefined ? [] : (head.credentials ?? []).filter((name) => name !== ownKey),
    probe,
  };
}

/** The plugin could not do its work: never send the request to the service's placeholder instead. */
export function failure(message: string): Refusal {
  return refusal(500, internalError(message));
}

/** A configuration Kong accepted and the plugin cannot use: refused, naming the problem, on every request. */
export function misconfigured(problem: string): Refusal {
  return { ...refusal(500, misconfiguredError(problem)), problem };
}

/** Whether `decide` needs the authenticated consumer (a PDK call), or the host alone settles the environment. */
export function needsConsumer(config: RoundRobinConfig): boolean {
  return config.sandboxConsumers.size > 0;
}
