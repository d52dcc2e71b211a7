/**
 * The bodies and headers of the answers the plugin gives itself, in OpenAI's error shape so that OpenAI
 * clients surface the message: `{"error":{"message","type","param","code"}}`.
 */
import type { Environment } from "./config";
import { UNROUTED_HOST } from "./misconfiguration";

export interface OpenAiError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function openAiError(
  message: string,
  type: string,
  code: string | null,
  param: string | null = null,
): OpenAiError {
  return { error: { message, type, param, code } };
}

export function invalidBodyError(problem: string): OpenAiError {
  return openAiError(problem, "invalid_request_error", "invalid_body");
}

export function invalidPathError(problem: string): OpenAiError {
  return openAiError(
    `request path refused: ${problem}; it would reach the provider as written`,
    "invalid_request_error",
    "invalid_path",
  );
}

export function bodyTooLargeError(size: number, limit: number): OpenAiError {
  return openAiError(
    `request body of ${size} bytes is larger than the ${limit} bytes this route accepts (max_request_body_size)`,
    "invalid_request_error",
    "request_too_large",
  );
}

export function sandboxNotConfiguredError(): OpenAiError {
  return openAiError(
    "this API has no sandbox models configured; sandbox requests are not sent to production",
    "invalid_request_error",
    "sandbox_not_configured",
  );
}

/** Every entry is out; `unreachable`: benched because no endpoint could be reached, not for a quota. */
export function allSuspendedError(env: Environment, retryAfterMs: number, unreachable = false): OpenAiError {
  const what = unreachable
    ? `no ${env} endpoint could be reached: every model is benched`
    : `every ${env} model is suspended after exceeding its quota`;
  return openAiError(
    `${what}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    "rate_limit_error",
    "all_models_suspended",
  );
}

export function ipServiceHostError(serviceHost: string, endpointHost: string): OpenAiError {
  return openAiError(
    `the service's host ${serviceHost} is an IP address, so Kong will not resolve the endpoint's host name ` +
      `${endpointHost}; give the service a host name such as ${UNROUTED_HOST}`,
    "server_error",
    "gateway_misconfigured",
  );
}

/** The answer while the plugin's configuration is one Kong accepted but the plugin cannot use. */
export function misconfiguredError(problem: string): OpenAiError {
  return openAiError(
    `the model-based-round-robin plugin is misconfigured: ${problem}`,
    "server_error",
    "gateway_misconfigured",
  );
}

export function internalError(message: string): OpenAiError {
  return openAiError(message, "server_error", "gateway_plugin_error");
}

/**
 * A refusal as Kong sends it: the body as a ready JSON string, because a table body loses its `param: null` on
 * the way (MessagePack nil is no key in Kong's Lua table, so cjson never writes it) and comes out in Lua's hash
 * order; with the body a string, Kong sends it as it is, with the Content-Type given here.
 */
export function errorResponse(
  body: OpenAiError,
  headers: Record<string, string> = {},
): { body: string; headers: Record<string, string> } {
  return { body: JSON.stringify(body), headers: { ...headers, "Content-Type": "application/json" } };
}

/** Retry-After in whole seconds (rounded up, at least 1) and OpenAI's retry-after-ms, for the same instant. */
export function retryHeaders(retryAfterMs: number): Record<string, string> {
  const ms = Math.max(1, Math.ceil(retryAfterMs));
  return { "Retry-After": String(Math.max(1, Math.ceil(ms / 1000))), "retry-after-ms": String(ms) };
}

/** What an error is counted as (/metrics refusals_total): its code, or its type when it has none. */
export function errorCode(body: OpenAiError): string {
  return body.error.code ?? body.error.type;
}
