/**
 * Failover within the request (opt-in, `failover_attempts` > 0): Kong's JS PDK has no balancer phase and no
 * retry hook, so a request that may need a second entry (with another `model` in its body) is sent by the
 * plugin itself, and the client gets the answer through one `kong.response.exit`. This module decides
 * everything about it without I/O: which entry each attempt goes to, what it sends, what an answer or a failure
 * does to the entry (exactly what the log phase would have done: same signals, same durations), when to move
 * on, and what the client gets. The sending itself is handed in (`Send`; ../upstream.ts over node:http).
 *
 * Time: every attempt shares one budget (`failover_timeout`), which bounds the request whatever the providers
 * do; each attempt also keeps the service's connect and read timeouts, as Kong's proxying would.
 */
import type { Balancer } from "./balancer";
import { billingSuspension, isInsufficientQuota } from "./billing";
import { type ChoiceLog, choiceLog, modelHeaders } from "./choice-log";
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { countSelfProxied } from "./metrics";
import { errorResponse, type OpenAiError } from "./openai-error";
import {
  type ModelReadyBody,
  nextAttempt,
  type Refusal,
  type RequestHead,
  type Route,
  type UpstreamRequest,
} from "./routing";
import { firstValues, type Suspension, suspensionFromResponse } from "./signals";
import { joinPath, relativeToService } from "./upstream-path";

/** The response header telling the client how many entries its request was sent to. */
export const ATTEMPTS_HEADER = "X-Kong-LLM-Attempts";

/** Kong's defaults for a service's connect_timeout and read_timeout (ms), when the service is not known. */
const KONG_DEFAULT_TIMEOUT_MS = 60_000;

/** A header map as Kong hands request headers over: lower-case names, every value a list. */
export type Headers = Record<string, string[] | undefined>;

/** One attempt as the sender carries it out. */
export interface Attempt {
  scheme: "http" | "https";
  host: string;
  port: number;
  method: string;
  /** Path and query, as sent. */
  target: string;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** Give up connecting after this long. */
  connectTimeoutMs: number;
  /** Give up when the provider stays silent this long (waiting for the head, or between two reads). */
  readTimeoutMs: number;
  /** Absolute (epoch ms): the attempt ends here whatever happens, the budget being spent. */
  deadlineMs: number;
  tlsVerify: boolean;
}

export type AttemptResult =
  | { kind: "answer"; status: number; headers: Record<string, string | string[]>; body: Buffer }
  /**
   * connect: no connection, a broken one, or an answer no HTTP peer sends (a status outside 100-599); timeout:
   * the service's connect or read timeout; budget: failover_timeout ran out; refused: the request could not be
   * sent as it is, or the answer was over MAX_ANSWER_BYTES, which says nothing of the endpoint's health.
   */
  | {
      kind: "failed";
      why: "connect" | "timeout" | "budget" | "refused";
      message: string;
      /** For a timeout: which of the attempt's two timeouts ran out. */
      during?: "connect" | "read";
    };

export type Send = (attempt: Attempt) => Promise<AttemptResult>;

/** What the request needs besides the first route: everything is read before the first attempt. */
export interface FailoverRequest {
  head: RequestHead;
  body: ModelReadyBody;
  upstream: UpstreamRequest;
  /** The client's request headers as Kong reads them (credentials still in). */
  headers: Headers;
  method: string;
  /** The raw query string, without `?` ("" for none). */
  query: string;
  /** The service's timeouts (ms), when known. */
  timeouts: { connectMs?: number | undefined; readMs?: number | undefined };
}

/** The client's answer, the log value and what to tell Kong's error log, in that order of use. */
export interface FailoverOutcome {
  answer: { status: number; body: Buffer | string; headers: Record<string, string | string[]> };
  /** The refusal the answer is, when it is one of the plugin's own (counted with the other refusals). */
  refusal?: Refusal;
  log: ChoiceLog;
  warnings: string[];
  attempts: number;
}

/**
 * Request headers never forwarded as the client sent them: hop-by-hop ones (RFC 9110 §7.6.1), those nginx's
 * proxy module replaces (Host, Content-Length, Expect), and Upgrade (never a WebSocket here).
 */
const NOT_FORWARDED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "expect",
]);

/** Provider answer headers the client gets (besides the model and attempts headers): what clients act on. */
const PASSED_HEADERS = new Set([
  "content-type",
  "content-encoding",
  "retry-after",
  "retry-after-ms",
  "x-ms-retry-after-ms",
  "x-request-id",
  "request-id",
  "apim-request-id",
  "cache-control",
]);
const PASSED_PREFIXES = ["x-ratelimit-", "openai-", "anthropic-", "x-ms-"];

export function passedHeaders(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (PASSED_HEADERS.has(lower) || PASSED_PREFIXES.some((prefix) => lower.startsWith(prefix)))
      out[lower] = value;
  }
  return out;
}

/**
 * The headers an attempt sends: the client's, minus hop-by-hop ones and the client's own credentials when the
 * entry sends its key (as routing clears them for Kong), with the entry's key and Host = the entry's host
 * (as Kong's set_target makes it: no port).
 */
export function attemptHeaders(
  route: Route,
  clientHeaders: Headers,
  bodyLength: number,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = new Set(
    (clientHeaders.connection ?? []).flatMap((v) => v.split(",").map((t) => t.trim().toLowerCase())),
  );
  const cleared = new Set(route.clearHeaders);
  const own = route.entry.authHeader;
  for (const [name, values] of Object.entries(clientHeaders)) {
    if (values === undefined || NOT_FORWARDED.has(name) || named.has(name) || cleared.has(name)) continue;
    if (own !== undefined && name === own.name.toLowerCase()) continue;
    out[name] = values.length === 1 ? asBytes(values[0] as string) : values.map(asBytes);
  }
  const host = route.entry.host;
  out.host = host.includes(":") ? `[${host}]` : host;
  if (own !== undefined) out[own.name] = asBytes(own.value);
  out["content-length"] = String(bodyLength);
  return out;
}

/**
 * A header value as the bytes it arrived in: Kong hands it over decoded as UTF-8, and Node's HTTP client sends
 * each character as one byte (latin1), refusing any above U+00FF. Kong's own proxying passes the bytes on.
 */
function asBytes(value: string): string {
  // Plain ASCII (the common case) is the same either way.
  return Buffer.byteLength(value, "utf8") === value.length
    ? value
    : Buffer.from(value, "utf8").toString("latin1");
}

/**
 * Sends the request to `first`, then to further entries while the answer fails over (a status in
 * failover_on_statuses, a connection failure, a timeout), attempts and budget allowing. Never throws for a
 * provider's doing; `send` must not either.
 */
export async function failover(
  config: RoundRobinConfig,
  balancer: Balancer,
  first: Route,
  request: FailoverRequest,
  send: Send,
  now: () => number = Date.now,
): Promise<FailoverOutcome> {
  const { failover: settings } = config;
  const deadlineMs = now() + settings.budgetMs;
  const env = first.env;
  const relative = relativeToService(request.upstream.uri, request.upstream.servicePath);
  const tried = new Set<string>();
  const warnings: string[] = [];
  let route = first;
  let attempts = 0;
  let lastAnswer: Extract<AttemptResult, { kind: "answer" }> | undefined;
  let lastAnswerRoute = first;
  let lastFailure: Extract<AttemptResult, { kind: "failed" }> | undefined;
  let final: AttemptResult | undefined;
  let refusal: Refusal | undefined;

  for (;;) {
    tried.add(route.entry.key);
    attempts++;
    const body = route.body ?? request.body.raw;
    const startedMs = now();
    const connectMs = request.timeouts.connectMs ?? KONG_DEFAULT_TIMEOUT_MS;
    const readMs = request.timeouts.readMs ?? KONG_DEFAULT_TIMEOUT_MS;
    // A timeout the budget shortened says the budget ran out, not that the endpoint is down.
    const cut = { connect: deadlineMs - startedMs < connectMs, read: deadlineMs - startedMs < readMs };
    const result = await send({
      scheme: route.entry.scheme,
      host: route.entry.host,
      port: route.entry.port,
      method: request.method,
      target: joinPath(route.entry.basePath, relative) + (request.query === "" ? "" : `?${request.query}`),
      headers: attemptHeaders(route, request.headers, body.length),
      body,
      connectTimeoutMs: Math.min(connectMs, deadlineMs - startedMs),
      readTimeoutMs: Math.min(readMs, deadlineMs - startedMs),
      deadlineMs,
      tlsVerify: settings.tlsVerify,
    });
    const cutByBudget = result.kind === "failed" && result.why === "timeout" && cut[result.during ?? "read"];
    const warning = observe(config, balancer, env, route.entry, result, now(), cutByBudget);
    if (warning !== undefined) warnings.push(warning);
    if (result.kind === "answer") {
      if (!settings.onStatuses.has(result.status)) {
        final = result;
        break;
      }
      lastAnswer = result;
      lastAnswerRoute = route;
    } else {
      lastFailure = result;
    }
    if (attempts > settings.attempts || now() >= deadlineMs) break;
    const next = nextAttempt(config, balancer, env, request, tried);
    if (next === undefined) break;
    if (next.kind === "refuse") {
      refusal = next;
      break;
    }
    route = next;
  }
  countSelfProxied(config.pluginId, env, attempts);

  const attemptsHeader: Record<string, string> =
    config.modelHeaders === undefined ? {} : { [ATTEMPTS_HEADER]: String(attempts) };
  const logOf = (served: Route): ChoiceLog => ({ ...choiceLog(config.pluginId, served), attempts });
  if (final?.kind === "answer" || (refusal === undefined && lastAnswer !== undefined)) {
    const answer = final?.kind === "answer" ? final : (lastAnswer as NonNullable<typeof lastAnswer>);
    const served = final?.kind === "answer" ? route : lastAnswerRoute;
    return {
      answer: {
        status: answer.status,
        body: answer.body,
        headers: {
          ...passedHeaders(answer.headers),
          ...modelHeaders(config.modelHeaders, served),
          ...attemptsHeader,
        },
      },
      log: logOf(served),
      warnings,
      attempts,
    };
  }
  const own = refusal ?? unreachableRefusal(lastFailure, settings.budgetMs);
  const response = errorResponse(own.body, { ...own.headers, ...attemptsHeader });
  return {
    answer: { status: own.status, body: response.body, headers: response.headers },
    refusal: own,
    log: logOf(route),
    warnings,
    attempts,
  };
}

/**
 * What an attempt's outcome does to its entry, as the log phase would have done it for a request Kong proxied:
 * a suspending status (or, with proactive_suspension, a success that says the quota is spent) suspends it for
 * the provider's hint or the configured time; a billing error (`insufficient_quota`, read straight from the
 * body the plugin holds) benches it for insufficient_quota_suspend_duration; a connection failure or a timeout
 * benches it as unreachable; any answer ends its run of failures. Returns the line for Kong's error log.
 */
function observe(
  config: RoundRobinConfig,
  balancer: Balancer,
  env: Environment,
  entry: Entry,
  result: AttemptResult,
  nowMs: number,
  cutByBudget: boolean,
): string | undefined {
  if (result.kind === "failed") {
    // Only the endpoint's own failure benches it: not the budget's end (a provider slower than what was left of
    // the budget is not down), not a request that could not be sent or an answer too large to hold.
    if (result.why === "budget" || result.why === "refused" || cutByBudget) {
      return undefined;
    }
    const benchMs = balancer.benchUnreachable(env, entry.key, nowMs);
    if (benchMs <= 0) return undefined;
    return `benched ${entry.key} (${env}) for ${benchMs} ms: the plugin could not reach it (${result.message})`;
  }
  if (balancer.hasStreaks()) balancer.reached(env, entry.key);
  const headers = firstValues(result.headers);
  let suspension: Suspension | undefined = suspensionFromResponse(result.status, headers, config, nowMs);
  if (suspension === undefined) return undefined;
  const byStatus = config.suspendOnStatuses.has(result.status);
  if (
    byStatus &&
    config.billingSeconds > 0 &&
    isInsufficientQuota(result.body, headers["content-encoding"])
  ) {
    suspension = billingSuspension(result.status, config.billingSeconds);
  }
  balancer.suspend(env, entry.key, suspension.durationMs, nowMs, suspension.reason);
  return `suspended ${entry.key} (${env}) for ${suspension.durationMs} ms: ${suspension.reason}`;
}

/** No provider answered at all: 504 when the last attempt timed out (or the budget ran out), else 502. */
function unreachableRefusal(
  failure: Extract<AttemptResult, { kind: "failed" }> | undefined,
  budgetMs: number,
): Refusal {
  const timedOut = failure?.why === "timeout" || failure?.why === "budget";
  const message =
    failure?.why === "budget"
      ? `no provider answered within the failover budget of ${budgetMs / 1000} s (failover_timeout)`
      : timedOut
        ? "the provider did not answer in time"
        : `the provider could not be reached: ${failure?.message ?? "no attempt made"}`;
  const body: OpenAiError = {
    error: {
      message,
      type: "server_error",
      param: null,
      code: timedOut ? "upstream_timeout" : "upstream_unreachable",
    },
  };
  return { kind: "refuse", status: timedOut ? 504 : 502, body };
}
