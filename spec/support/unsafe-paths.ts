/**
 * Request paths the plugin must never send to a provider with its key (docs/security.md), each with what the
 * refusal names. Written as `$upstream_uri` under a service path of /v1 (the route /openai/v1 strips its
 * prefix), so the unit tests of the routing decision and the integration test through the double share them.
 */
/**
 * Unsafe paths Kong itself never hands the plugin as written: its router removes dot segments (literal or
 * %2e) and merges `//` before building `$upstream_uri` (kong/tools/uri.lua normalize), so through Kong they arrive
 * resolved. The plugin refuses them all the same should another plugin set such a path.
 */
export const KONG_NORMALISED_PATHS: [path: string, problem: RegExp][] = [
  ["/v1/../admin", /dot segment/],
  ["/v1/%2e%2E/admin", /dot segment/],
  ["/v1/chat/./completions", /dot segment/],
  ["/v1//evil.test/x", /empty path segment/],
];

/**
 * Unsafe paths nginx refuses itself (400 `Bad request`) before any plugin runs: an escape decoding to NUL
 * (ngx_http_parse_complex_uri; KONG-BEHAVIOURS row 41). The plugin refuses them all the same.
 */
export const NGINX_REFUSED_PATHS: [path: string, problem: RegExp][] = [["/v1/a%00b", /NUL/]];

/** Unsafe paths that reach the plugin as written through Kong: the plugin alone keeps them from a provider. */
export const PLUGIN_REFUSED_PATHS: [path: string, problem: RegExp][] = [
  ["/v1/..;/admin", /; parameter/],
  ["/v1/..;jsessionid=1/admin", /; parameter/],
  ["/v1/chat;v=1/completions", /; parameter/],
  ["/v1/..%3b/admin", /; parameter/],
  ["/v1/%252e%252e/admin", /dot segment/],
  ["/v1/%25252e%25252E/admin", /dot segment/],
  ["/v1/%25%32%65%25%32%65/admin", /dot segment/],
  ["/v1/%c0%ae%c0%ae/admin", /overlong UTF-8/],
  ["/v1/%e0%80%ae%e0%80%ae/admin", /overlong UTF-8/],
  ["/v1/%25c0%25ae%25c0%25ae/admin", /overlong UTF-8/],
  ["/v1/%ff/x", /invalid or overlong UTF-8/],
  ["/v1/%ed%a0%80/x", /invalid or overlong UTF-8/],
  ["/v1/%ef%bc%8e%ef%bc%8e/admin", /dot segment/],
  ["/v1/a\\b", /backslash/],
  ["/v1/a%5cb", /encoded slash or backslash/],
  ["/v1/..%255c..%255cadmin", /encoded slash or backslash/],
  ["/v1/a%2fb", /encoded slash/],
  ["/v1/..%252f..%252fadmin", /encoded slash/],
  ["/v1/a%2500b", /NUL/],
  ["/v1/a%0d%0aSet-Cookie:x", /control character/],
  ["/v1/@evil.test", /@/],
  ["/v1/a%40b", /@/],
  ["/v1/a%2540b", /@/],
  ["/v1/%2525252525252e", /still percent-encoded after/],
];

/** Paths an OpenAI-compatible client sends that must pass unchanged. */
export const SAFE_PATHS = [
  "/v1/chat/completions",
  "/v1/models/gpt-4o-mini",
  "/v1/files/caf%C3%A9",
  "/v1/files/100%25",
  "/v1/files/a..b",
  "/v1/files/...",
  "/v1/models/org%2Dmodel",
];

export const UNSAFE_PATHS = [...KONG_NORMALISED_PATHS, ...NGINX_REFUSED_PATHS, ...PLUGIN_REFUSED_PATHS];
