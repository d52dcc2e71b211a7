/**
 * What the two bundled Lua plugins the double emulates do in access (their schemas are in ../config/bundled-schemas.ts):
 * key-auth (priority 1250: authenticates a consumer by key, so plugins after it see kong.client.get_consumer())
 * and request-transformer (priority 801: header add/remove/replace/rename/append and replace.uri, the target of
 * converted APK header policies and operation paths).
 */
import type { KongConfig, PluginEntity } from "../config/model";
import { pdkErrorPage } from "./error-page";
import { escapeUri } from "./pdk";
import type { ExitResponse, RequestState } from "./request-state";

/** key-auth answers through kong.response.error: the client's Accept picks the format, get_source() is "exit". */
function json(
  status: number,
  message: string,
  state: RequestState,
  headers: Record<string, string> = {},
): ExitResponse {
  const page = pdkErrorPage(state.client.headers, status, message, state.id);
  return { status, body: page.body, headers: { ...page.headers, ...headers }, source: "exit" };
}

/** Runs a bundled plugin's access phase; returns the response when it ends the request. */
export function emulatedAccess(
  plugin: PluginEntity,
  state: RequestState,
  config: KongConfig,
): ExitResponse | undefined {
  if (plugin.name === "key-auth") return keyAuth(plugin.config, state, config);
  if (plugin.name === "request-transformer") requestTransformer(plugin.config, state);
  return undefined;
}

function keyAuth(
  conf: Record<string, unknown>,
  state: RequestState,
  config: KongConfig,
): ExitResponse | undefined {
  const names = conf.key_names as string[];
  const query = new URLSearchParams(state.client.query ?? "");
  let key: string | undefined;
  for (const name of names) {
    key =
      (conf.key_in_header ? state.client.headers[name.toLowerCase()]?.[0] : undefined) ??
      (conf.key_in_query ? (query.get(name) ?? undefined) : undefined);
    if (key !== undefined) {
      if (conf.hide_credentials) delete state.upstream.headers[name.toLowerCase()];
      break;
    }
  }
  const challenge = { "WWW-Authenticate": `Key${conf.realm ? ` realm="${conf.realm}"` : ""}` };
  if (key === undefined) return json(401, "No API key found in request", state, challenge);
  const credential = config.keyauth_credentials.find((c) => c.key === key);
  const consumer = credential && config.consumers.find((c) => c.id === credential.consumer.id);
  if (credential === undefined || consumer === undefined) return json(401, "Unauthorized", state, challenge);
  state.consumer = consumer;
  state.credential = credential;
  state.upstream.headers["x-consumer-id"] = [consumer.id];
  if (consumer.username) state.upstream.headers["x-consumer-username"] = [consumer.username];
  if (consumer.custom_id) state.upstream.headers["x-consumer-custom-id"] = [consumer.custom_id];
  state.upstream.headers["x-credential-identifier"] = [credential.id];
  return undefined;
}

function requestTransformer(conf: Record<string, unknown>, state: RequestState): void {
  const headers = state.upstream.headers;
  const list = (section: string) =>
    ((conf[section] as Record<string, string[]> | undefined)?.headers ?? []) as string[];
  const pair = (s: string) => {
    const i = s.indexOf(":");
    return [s.slice(0, i).trim().toLowerCase(), s.slice(i + 1).trim()] as const;
  };
  for (const name of list("remove")) delete headers[name.toLowerCase()];
  for (const [from, to] of list("rename").map(pair)) {
    if (headers[from] !== undefined) {
      headers[to] = headers[from];
      delete headers[from];
    }
  }
  for (const [name, value] of list("replace").map(pair))
    if (headers[name] !== undefined) headers[name] = [value];
  for (const [name, value] of list("add").map(pair)) headers[name] ??= [value];
  for (const [name, value] of list("append").map(pair)) headers[name] = [...(headers[name] ?? []), value];
  // replace.uri: a template with $(uri_captures.name) / $(uri_captures["name"]); set as set_path would.
  const uri = (conf.replace as { uri?: string } | undefined)?.uri;
  if (uri !== undefined) {
    const filled = uri.replace(
      /\$\(uri_captures(?:\.(\w+)|\[["'](\w+)["']\])\)/g,
      (_m, a?: string, b?: string) => state.uriCaptures[(a ?? b) as string] ?? "",
    );
    state.upstream.uri = escapeUri(filled);
  }
}
