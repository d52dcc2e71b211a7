/**
 * What the plugin chose for a request, told to the client (response headers) and to Kong's log data.
 *
 * The log data takes the shape Kong 3.9's own AI plugins write (kong/llm/drivers/shared.lua: a
 * `kong.log.set_serialize_value("ai.<plugin name>.meta", {...})` table with `plugin_id`, `provider_name`,
 * `request_model`): Kong's bundled Prometheus plugin, with `ai_metrics` on, reads `kong.log.serialize().ai` and
 * counts `ai_llm_requests_total{ai_provider=<provider_name>, ai_model=<request_model>}` for every entry of it
 * (kong/plugins/prometheus/handler.lua and exporter.lua). http-log, file-log and the other logging plugins write
 * the same table. It is also how the choice reaches this plugin's own log phase: Kong hands plugin servers the
 * log data it saved before its log timer, so one value serves both, and no kong.ctx.shared write is needed.
 */
import type { Environment } from "./config";
import type { Route } from "./routing";

/** Where the choice sits in Kong's log data. */
export const CHOICE_LOG_KEY = "ai.model-based-round-robin.meta";
/** Longest requested model echoed back; a client's string is otherwise unbounded. */
const MAX_ECHOED_MODEL = 256;

export interface ChoiceLog {
  plugin_id: string;
  /** Prometheus's ai_provider label: the endpoint's host (the plugin knows endpoints, not provider names). */
  provider_name: string;
  /** Prometheus's ai_model label: the model written into the request the provider got. */
  request_model: string;
  /** The model the client named, when the plugin replaced it. */
  requested_model?: string;
  /** The entry's endpoint as the plugin keys it: scheme://host:port/path (never credentials). */
  endpoint: string;
  environment: Environment;
  /** The answer was read whole to tell a billing error from a rate limit. */
  probe: boolean;
  /**
   * Kong sent the request through the relay, which may have failed over to other entries: the entry named here
   * is the first one tried; the one that served is in the answer's served-model header (X-Kong-LLM-Model), and
   * how many were tried in X-Kong-LLM-Attempts. The relay observed every answer, so the log phase leaves it alone.
   */
  relayed?: true;
}

export function choiceLog(
  pluginId: string,
  route: Pick<Route, "entry" | "env" | "requestedModel" | "probe">,
): ChoiceLog {
  const { entry } = route;
  return {
    plugin_id: pluginId,
    provider_name: entry.host,
    request_model: entry.model,
    ...(route.requestedModel !== undefined && {
      requested_model: route.requestedModel.slice(0, MAX_ECHOED_MODEL),
    }),
    endpoint: entry.key.slice(0, entry.key.length - entry.model.length - 1),
    environment: route.env,
    probe: route.probe,
  };
}

/** What the log phase needs of the choice, read back from the log data Kong saved. */
export interface Routed {
  env: Environment;
  entryKey: string;
  probe: boolean;
  /** Kong sent it through the relay, which observed its answers. */
  relayed: boolean;
}

export function routedFrom(serialized: unknown): Routed | undefined {
  const meta = (serialized as { ai?: Record<string, { meta?: Partial<ChoiceLog> }> } | null)?.ai?.[
    "model-based-round-robin"
  ]?.meta;
  if (meta === undefined || meta === null || typeof meta !== "object") return undefined;
  const { environment, endpoint, request_model: model, probe, relayed } = meta;
  if (environment !== "production" && environment !== "sandbox") return undefined;
  if (typeof endpoint !== "string" || typeof model !== "string") return undefined;
  return {
    env: environment,
    entryKey: `${endpoint}#${model}`,
    probe: probe === true,
    relayed: relayed === true,
  };
}

/**
 * The response headers naming the served model and, when the plugin rewrote it, the requested one. A value
 * that could not travel in a header as it is (control or non-ASCII characters, too long) is left out.
 */
export function modelHeaders(
  names: { served: string; requested: string } | undefined,
  route: Route,
): Record<string, string> | undefined {
  if (names === undefined || !route.modelled) return undefined;
  const headers: Record<string, string> = {};
  if (headerSafe(route.entry.model)) headers[names.served] = route.entry.model;
  if (route.requestedModel !== undefined && headerSafe(route.requestedModel)) {
    headers[names.requested] = route.requestedModel;
  }
  return Object.keys(headers).length === 0 ? undefined : headers;
}

function headerSafe(value: string): boolean {
  return (
    value.length > 0 &&
    value.length <= MAX_ECHOED_MODEL &&
    /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(value)
  );
}
