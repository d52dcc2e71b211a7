/**
 * The path sent to the chosen endpoint: the endpoint's own path followed by the request path relative to the
 * route. Kong has already computed `$upstream_uri` (the service's path joined with what is left of the request
 * path after the route's strip_path, without the query string, which Kong appends after the access phase), so
 * the relative part is `$upstream_uri` with the service's path taken off the front.
 *
 *   endpoint https://api.openai.com/v1, service path /v1, $upstream_uri /v1/chat/completions
 *   → /v1/chat/completions
 *   endpoint http://azure.example/openai/deployments/gpt-4o, service path /, $upstream_uri /chat/completions
 *   → /openai/deployments/gpt-4o/chat/completions
 */
export function upstreamPath(upstreamUri: string, servicePath: string | undefined, basePath: string): string {
  const relative = relativeToService(upstreamUri, servicePath);
  const joined = basePath + relative;
  return joined === "" ? "/" : joined;
}

function relativeToService(upstreamUri: string, servicePath: string | undefined): string {
  const prefix = trimTrailingSlash(servicePath ?? "");
  const uri = upstreamUri.startsWith("/") ? upstreamUri : `/${upstreamUri}`;
  if (prefix === "" || !uri.startsWith(prefix)) return uri === "/" ? "" : uri;
  const rest = uri.slice(prefix.length);
  // "/v1" must not eat the front of "/v10/...": only a whole path segment is the service's.
  if (rest !== "" && !rest.startsWith("/")) return uri;
  return rest === "/" ? "" : rest;
}

function trimTrailingSlash(path: string): string {
  return path.endsWith("/") ? path.slice(0, -1) : path;
}
