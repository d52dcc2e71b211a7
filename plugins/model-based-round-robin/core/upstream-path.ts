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
  return joinPath(basePath, relativeToService(upstreamUri, servicePath));
}

/** The endpoint's path followed by the relative path ("" or starting with "/"). */
export function joinPath(basePath: string, relative: string): string {
  const joined = basePath + relative;
  return joined === "" ? "/" : joined;
}

/**
 * Why the client's part of the path must not be sent with a provider's key, or undefined when it may. It goes
 * out as the client wrote it: a dot segment (plain or percent-encoded) could climb out of the endpoint's path,
 * `//` and `@` could be read as an authority, an encoded slash or backslash as a separator by some servers.
 */
export function unsafePathProblem(relative: string): string | undefined {
  if (relative.includes("//")) return "an empty path segment (//)";
  if (/@|%40/i.test(relative)) return "an @ in the path";
  if (/\\|%2f|%5c/i.test(relative)) return "an encoded slash or a backslash in the path";
  // nginx refuses raw control characters itself; encoded ones would reach the provider.
  if (/%[01][0-9a-f]|%7f/i.test(relative)) return "an encoded control character in the path";
  for (const segment of relative.split("/")) {
    const decoded = segment.replace(/%2e/gi, ".");
    if (decoded === "." || decoded === "..") return "a dot segment (. or ..) in the path";
  }
  return undefined;
}

/** The request path relative to the service: what Kong left of the client's path after the route. */
export function relativeToService(upstreamUri: string, servicePath: string | undefined): string {
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
