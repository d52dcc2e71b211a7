/**
 * The request path as Kong routes on it and as nginx accepts it.
 *
 * Kong's routers never see the raw path: both flavours take `$request_uri`, cut the query off and normalise
 * it with merging of slashes (K3.9.3 kong/router/utils.lua `strip_uri_args` → kong/tools/uri.lua
 * `normalize(uri, true)`; used by kong/router/atc.lua `_M:exec` and kong/router/traditional.lua `exec`). The
 * route is matched on that path and `$upstream_uri` is built from it, then passed through
 * kong/tools/uri.lua `escape` (kong/runloop/handler.lua, access.before: `var.upstream_uri =
 * escape(match_t.upstream_uri)`). So a plugin that reads `$upstream_uri` sees the normalised path, never a
 * dot segment or `//`. kong.request.get_path() is the same normalisation of the raw path (kong/pdk/request.lua
 * `get_path`). The X-Forwarded-Path header keeps the raw path (handler.lua: `forwarded_path = ctx.request_uri`).
 *
 * The normalisation, as kong/tools/uri.lua documents and does it:
 * - `%XX` triplets of a reserved character (`!*'();:@&=+$,/?%#[]`) stay encoded, with the hex in upper case;
 *   every other triplet (unreserved and "other" bytes, `%2e` included) is decoded;
 * - then dot segments are removed as RFC 3986 §5.2.4 describes (so `/%2e%2e/` counts as `/../`), and `//`
 *   becomes `/`; a `..` at the root is dropped, not refused.
 *
 * Before Kong runs at all, nginx parses the request line and refuses (400, through Kong's error handler) a path
 * whose `..` climbs above the root (ngx_http_parse_complex_uri, `sw_dot_dot`: "if (u < r->uri.data) return
 * NGX_HTTP_PARSE_INVALID_REQUEST"). `climbsAboveRoot` models that for literal and `%2e` dots; whether nginx would
 * also treat a decoded `%2F` as a separator there is not modelled.
 */

/** The reserved characters kong/tools/uri.lua keeps percent-encoded. */
const RESERVED = new Set("!*'();:@&=+$,/?%#[]");

/** Decodes every `%XX` whose byte is not reserved; reserved ones are kept, hex upper-cased. Bytes as latin1 chars. */
function decodeUnreserved(path: string): string {
  return path.replace(/%([0-9a-fA-F]{2})/g, (triplet, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return RESERVED.has(char) ? triplet.toUpperCase() : char;
  });
}

/** RFC 3986 §5.2.4 remove_dot_segments, with `//` merged into `/` as Kong does it (merge_slashes). */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  let input = path;
  while (input.length > 0) {
    if (input.startsWith("../")) input = input.slice(3);
    else if (input.startsWith("./")) input = input.slice(2);
    else if (input.startsWith("/./")) input = input.slice(2);
    else if (input === "/.") input = "/";
    else if (input.startsWith("/../")) {
      input = input.slice(3);
      out.pop();
    } else if (input === "/..") {
      input = "/";
      out.pop();
    } else if (input === "." || input === "..") input = "";
    else if (input.startsWith("//")) input = input.slice(1);
    else {
      const next = input.indexOf("/", 1);
      const segment = next === -1 ? input : input.slice(0, next);
      out.push(segment);
      input = input.slice(segment.length);
    }
  }
  return out.join("");
}

/** kong/tools/uri.lua `normalize(path, true)`: the path the router matches and `$upstream_uri` is built from. */
export function normalizePath(path: string): string {
  if (path === "" || path === "/") return path;
  const decoded = path.includes("%") ? decodeUnreserved(path) : path;
  if (!decoded.includes(".") && !decoded.includes("//")) return decoded;
  return removeDotSegments(decoded);
}

/** nginx refuses a request line whose `..` segments climb above the root (400 Bad Request). */
export function climbsAboveRoot(path: string): boolean {
  let depth = 0;
  for (const segment of path.replace(/%2e/gi, ".").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (depth === 0) return true;
      depth--;
    } else depth++;
  }
  return false;
}

/**
 * nginx's own escapes check (ngx_http_parse_complex_uri, which every path holding a `%` goes through): a `%` not
 * followed by two hex digits (`sw_quoted`, `sw_quoted_second`: "return NGX_HTTP_PARSE_INVALID_REQUEST") and an
 * escape that decodes to a NUL byte (`%00`: "else if (ch == '\0') return NGX_HTTP_PARSE_INVALID_REQUEST") make
 * ngx_http_process_request_uri answer 400 ("client sent invalid request") before Kong's runloop runs. Only the
 * path counts: the query string is not decoded there.
 */
export function invalidEscape(path: string): boolean {
  for (let i = path.indexOf("%"); i !== -1; i = path.indexOf("%", i + 1)) {
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex) || hex === "00") return true;
  }
  return false;
}

/**
 * kong/tools/uri.lua `escape`: percent-encodes, byte by byte, what is not safe in a path, and leaves existing
 * escapes alone. `bytes` holds one byte per char (latin1), as the router's normalised path does.
 */
export function escapeBytes(bytes: string): string {
  return bytes.replace(
    /[^!#$&'()*+,/:;=?@[\]A-Za-z0-9\-_.~%]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}
