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
 * Why the client's part of the path must not be sent with a provider's key, or undefined when it may.
 *
 * It goes out as the client wrote it (Kong has only normalised it once), and the provider, or a server in front
 * of it, may decode it again, or read `;` parameters and backslashes as its own framework does: Tomcat and
 * Spring drop `;...` from a segment (`..;` is `..` to them), IIS takes `\` for `/`, a second decoding turns
 * `%252e` into `.`. So the path is judged the way the most lenient server would read it: decoded until no escape
 * is left, then refused when any reading could climb out of the endpoint's path or name another host, as nginx
 * refuses (NUL, `..` above the root) or normalises (dot segments, `//`) what its own locations would see. An
 * OpenAI-compatible API needs none of these.
 */
export function unsafePathProblem(relative: string): string | undefined {
  // Nearly every path: letters, digits, `-`, `_` and `~` between single slashes. Nothing in it decodes, no
  // segment is or folds to a dot, so it is safe as it stands (the checks below would each pass it).
  if (PLAIN_PATH.test(relative)) return undefined;
  const decoded = decodeUntilStable(relative);
  if (typeof decoded !== "string") return decoded.problem;
  // Control characters: nginx refuses raw ones in the request line, encoded ones would reach the provider.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is looked for
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return "a NUL or another control character in the path";
  if (decoded.includes("\\")) return "a backslash in the path";
  if (decoded.includes("@")) return "an @ in the path";
  if (decoded.includes(";")) return "a ; parameter on a path segment (as in ..;)";
  if (decoded.includes("//")) return "an empty path segment (//)";
  for (const segment of decoded.split("/")) {
    // NFKC: a fullwidth or one-dot-leader "dot" is a dot to a server that normalises Unicode.
    const folded = segment.normalize("NFKC");
    if (folded === "." || folded === "..") return "a dot segment (. or ..) in the path";
  }
  return undefined;
}

const PLAIN_PATH = /^(?:\/[A-Za-z0-9_~-]+)*\/?$/;

/** More decodings than any honest client needs: a path still encoded after them is refused, not decoded on. */
const MAX_DECODINGS = 4;

/**
 * The path with percent escapes decoded again and again until none is left, each round as UTF-8 that must be
 * valid (an overlong `%c0%ae` is refused, not read as a dot), or why it cannot be judged. An encoded slash or
 * backslash at any round is refused: once decoded it would be a separator to some servers and not to others.
 */
function decodeUntilStable(path: string): string | { problem: string } {
  let current = path;
  for (let round = 0; round <= MAX_DECODINGS; round++) {
    if (!/%[0-9a-f]{2}/i.test(current)) return current;
    if (/%2f|%5c/i.test(current)) return { problem: "an encoded slash or backslash in the path" };
    if (round === MAX_DECODINGS)
      return { problem: `a path still percent-encoded after ${MAX_DECODINGS} decodings` };
    const bytes = percentDecode(current);
    try {
      current = UTF8.decode(bytes);
    } catch {
      return { problem: "invalid or overlong UTF-8 in the path (as %c0%ae)" };
    }
  }
  return current;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The bytes of `text` with each `%XX` decoded; a `%` without two hex digits stays as it is. */
function percentDecode(text: string): Uint8Array {
  const source = Buffer.from(text, "utf8");
  const out = Buffer.alloc(source.length);
  let length = 0;
  for (let i = 0; i < source.length; i++) {
    const byte = source[i] as number;
    if (byte === 0x25 && isHex(source[i + 1]) && isHex(source[i + 2])) {
      out[length++] = Number.parseInt(
        String.fromCharCode(source[i + 1] as number, source[i + 2] as number),
        16,
      );
      i += 2;
    } else out[length++] = byte;
  }
  return out.subarray(0, length);
}

function isHex(byte: number | undefined): boolean {
  return byte !== undefined && /[0-9a-f]/i.test(String.fromCharCode(byte));
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
