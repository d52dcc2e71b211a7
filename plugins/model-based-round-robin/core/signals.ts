/**
 * How long a provider's answer takes an entry out of rotation. Providers say when capacity returns; a fixed
 * suspension is only the fallback. First hint found wins:
 *   retry-after-ms (OpenAI), x-ms-retry-after-ms (Azure OpenAI), retry-after (delta seconds or HTTP date),
 *   x-ratelimit-reset-requests / -tokens (OpenAI durations such as 6m0s, 1s, 12ms) when the matching
 *   x-ratelimit-remaining-* is 0, anthropic-ratelimit-*-reset (RFC 3339) when the matching remaining is 0.
 * Malformed values are skipped, never thrown.
 */
import type { RoundRobinConfig } from "./config";

export type ResponseHeaders = Record<string, string | string[] | undefined>;
/** A header map as its first value of each header, names in lower case: what the signals read. */
export function firstValues(
  headers: Record<string, string | readonly string[] | undefined>,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name in headers) {
    const value = headers[name];
    out[name.toLowerCase()] = typeof value === "string" ? value : value?.[0];
  }
  return out;
}

export interface Suspension {
  durationMs: number;
  reason: string;
}

/** The reason's tail when on_quota_exceed_suspend_duration set the length. */
const NO_HINT = "no provider hint";

type SignalConfig = Pick<RoundRobinConfig, "suspendSeconds" | "suspendOnStatuses" | "hints" | "proactive">;

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

/**
 * Statuses Kong answers with itself when it could not reach the upstream: 502 (connection refused or reset,
 * no answer), 504 (timeout), 503 (no healthy target). A provider may send them too: get_source() tells the two
 * apart ("error" for Kong's error pages, "service" for the provider's answer).
 */
const KONG_UPSTREAM_FAILURES = new Set([502, 503, 504]);

/** Whether the status may mean that Kong could not reach the entry: worth reading the source in log. */
export function mayBeUnreachable(status: number, config: Pick<RoundRobinConfig, "unreachable">): boolean {
  return config.unreachable.baseSeconds > 0 && KONG_UPSTREAM_FAILURES.has(status);
}

/**
 * Whether Kong could not reach the entry it was sent to. A host that does not resolve is answered in
 * access.after with kong.response.error(503, "name resolution failed") (K3.9.3 kong/runloop/handler.lua
 * balancer_execute), which get_source() calls "exit", not "error"; the log phase cannot read that body, so a
 * 503 exit of a plugin running after this one looks the same and costs its entry one short bench.
 */
export function isUnreachable(status: number, source: string | undefined): boolean {
  if (source === "error") return KONG_UPSTREAM_FAILURES.has(status);
  return source === "exit" && status === 503;
}

/** True when the response's status makes its headers worth a PDK round trip. */
export function needsHeaders(status: number, config: SignalConfig): boolean {
  if (config.suspendSeconds <= 0) return false;
  return config.suspendOnStatuses.has(status) || (config.proactive && isSuccess(status));
}

export function suspensionFromResponse(
  status: number,
  headers: ResponseHeaders,
  config: SignalConfig,
  nowMs: number,
): Suspension | undefined {
  if (config.suspendSeconds <= 0) return undefined;
  const clamp = (hint: Suspension, prefix: string): Suspension => {
    const min = config.hints.minSeconds * 1000;
    const max = config.hints.maxSeconds * 1000;
    return { durationMs: Math.min(max, Math.max(min, hint.durationMs)), reason: `${prefix}, ${hint.reason}` };
  };
  if (config.suspendOnStatuses.has(status)) {
    const hint = config.hints.honor ? providerHint(headers, nowMs) : undefined;
    if (hint !== undefined) return clamp(hint, `HTTP ${status}`);
    return { durationMs: config.suspendSeconds * 1000, reason: `HTTP ${status}, ${NO_HINT}` };
  }
  // Proactive: the answer succeeded but says the quota is spent; the next request would get a 429.
  if (config.proactive && isSuccess(status)) {
    const spent = exhaustionHint(headers, nowMs);
    if (spent !== undefined && spent.durationMs > 0) return clamp(spent, `HTTP ${status} with quota spent`);
  }
  return undefined;
}

/** The provider's own statement of when capacity returns, or undefined. */
export function providerHint(headers: ResponseHeaders, nowMs: number): Suspension | undefined {
  return explicitHint(headers, nowMs) ?? exhaustionHint(headers, nowMs);
}

/** retry-after-ms (OpenAI), x-ms-retry-after-ms (Azure OpenAI), retry-after (seconds or HTTP date). */
function explicitHint(headers: ResponseHeaders, nowMs: number): Suspension | undefined {
  for (const name of ["retry-after-ms", "x-ms-retry-after-ms"]) {
    const ms = nonNegativeNumber(header(headers, name));
    if (ms !== undefined) return { durationMs: ms, reason: `${name}: ${ms}` };
  }
  const retryAfter = header(headers, "retry-after");
  const fromRetryAfter = retryAfter === undefined ? undefined : parseRetryAfter(retryAfter, nowMs);
  if (fromRetryAfter !== undefined)
    return { durationMs: fromRetryAfter, reason: `retry-after: ${retryAfter}` };
  return undefined;
}

/** A remaining count of 0 with its reset: OpenAI's durations, Anthropic's RFC 3339 instants. */
function exhaustionHint(headers: ResponseHeaders, nowMs: number): Suspension | undefined {
  for (const kind of ["requests", "tokens"]) {
    if (nonNegativeNumber(header(headers, `x-ratelimit-remaining-${kind}`)) !== 0) continue;
    const reset = header(headers, `x-ratelimit-reset-${kind}`);
    const ms = reset === undefined ? undefined : parseGoDuration(reset);
    if (ms !== undefined) return { durationMs: ms, reason: `x-ratelimit-reset-${kind}: ${reset}` };
  }
  for (const kind of ["requests", "tokens", "input-tokens", "output-tokens"]) {
    if (nonNegativeNumber(header(headers, `anthropic-ratelimit-${kind}-remaining`)) !== 0) continue;
    const reset = header(headers, `anthropic-ratelimit-${kind}-reset`);
    const at = reset === undefined ? Number.NaN : Date.parse(reset);
    if (reset !== undefined && Number.isFinite(at) && /^\d{4}-\d\d-\d\dT/.test(reset)) {
      return { durationMs: Math.max(0, at - nowMs), reason: `anthropic-ratelimit-${kind}-reset: ${reset}` };
    }
  }
  return undefined;
}

function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function nonNegativeNumber(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*\d+(\.\d+)?\s*$/.test(text)) return undefined;
  return Number(text);
}

/** RFC 9110 Retry-After: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string, nowMs: number): number | undefined {
  const seconds = nonNegativeNumber(value);
  if (seconds !== undefined) return seconds * 1000;
  if (!/[a-z]{3},? /i.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

const DURATION_UNITS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 1e-6,
};

/** Go-style durations as OpenAI sends them: "6m0s", "1s", "12ms", "1h2m3.5s". */
export function parseGoDuration(value: string): number | undefined {
  const text = value.trim();
  if (!/^(\d+(\.\d+)?(h|ms|m|s|us|µs|ns))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) {
    total += Number(amount) * (DURATION_UNITS[unit as string] ?? Number.NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** What made an entry's suspension, and which signal set its length, as /status and /metrics show them. */
export interface ReasonParts {
  /** `http_429` (a status in suspend_on_statuses), `quota_spent` (proactive), `insufficient_quota`, `unreachable`. */
  cause: string;
  /**
   * The provider header that set the length (`retry-after-ms`, `retry-after`, `x-ratelimit-reset-requests`, ...),
   * or the setting that did: `default` (on_quota_exceed_suspend_duration), `insufficient_quota`
   * (insufficient_quota_suspend_duration), `unreachable` (unreachable_suspend_duration, doubled in a row).
   */
  signal: string;
}

const HINT_REASON = /^([a-z-]+): /;

/**
 * Reads a suspension's reason back into its parts. The reason is the one string kept (and shared between nodes)
 * with a suspension; its forms are made here (suspensionFromResponse), in the handler (billing) and in the
 * balancer (unreachable). Anything else (a snapshot from an older version) is `unknown`.
 */
export function explainReason(reason: string): ReasonParts {
  if (reason.startsWith("unreachable")) return { cause: "unreachable", signal: "unreachable" };
  // An operator's drain (status/actions.ts): the sentence travels through Redis as any reason does.
  if (reason.startsWith("drained")) return { cause: "drained", signal: "operator" };
  const http = /^HTTP (\d{3})(?: (insufficient_quota)| (with quota spent))?(?:, (.*))?/.exec(reason);
  if (http === null) return { cause: "unknown", signal: "unknown" };
  const [, status, billing, spent, rest = ""] = http;
  if (billing !== undefined) return { cause: "insufficient_quota", signal: "insufficient_quota" };
  const cause = spent === undefined ? `http_${status}` : "quota_spent";
  if (rest === NO_HINT) return { cause, signal: "default" };
  return { cause, signal: HINT_REASON.exec(rest)?.[1] ?? "unknown" };
}
