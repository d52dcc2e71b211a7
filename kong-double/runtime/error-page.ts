/**
 * Kong's own error bodies, in the format the client asked for.
 *
 * Two paths produce them (K3.9.3):
 * - `kong.response.error(status, message)` (kong/pdk/response.lua `_RESPONSE.error`), used by plugins and by the
 *   runloop (no route, DNS failure in access.after): the type comes from the request's Accept header only, JSON
 *   when there is none. It marks the request KONG_EXITED, so kong.response.get_source() says "exit".
 * - nginx's `error_page 400 404 ... 500 502 503 504 /kong_error_handler` (kong/templates/nginx_kong.lua) for
 *   what nginx itself fails (upstream refused, reset, timed out; a request line nginx refuses): kong/init.lua
 *   `Kong.handle_error` sets KONG_UNEXPECTED (get_source() says "error") and kong/error_handlers.lua picks the
 *   message for the status and the type from Accept, else Content-Type, else `error_default_type`
 *   (text/plain by default, kong/templates/kong_defaults.lua).
 * The type and templates are those of kong/tools/http.lua (`get_response_type`, `get_mime_type`,
 * `get_error_template`): the Accept entry with the highest q wins; `application/*` and `*\/*` give JSON,
 * `text/*` plain text; a type without a template gives JSON.
 */
import type { HeaderValues } from "./request-state";

type Mime = "json" | "html" | "xml" | "plain";

const CONTENT_TYPES: Record<Mime, string> = {
  json: "application/json; charset=utf-8",
  html: "text/html; charset=utf-8",
  xml: "application/xml; charset=utf-8",
  plain: "text/plain; charset=utf-8",
};

/** kong/error_handlers.lua BODIES, and its "The upstream server responded with %d" for the rest. */
const HANDLER_MESSAGES: Record<number, string> = {
  400: "Bad request",
  404: "Not found",
  405: "Method not allowed",
  408: "Request timeout",
  411: "Length required",
  412: "Precondition failed",
  413: "Payload too large",
  414: "URI too long",
  417: "Expectation failed",
  494: "Request header or cookie too large",
  500: "An unexpected error occurred",
  502: "An invalid response was received from the upstream server",
  503: "The upstream server is currently unavailable",
  504: "The upstream server is timing out",
};

/** kong/tools/http.lua get_mime_type with its default: a type Kong has no template for gives JSON. */
function mimeOf(mediaType: string): Mime {
  const [type, subtype] = mediaType.toLowerCase().split("/");
  if (subtype === "*") return type === "text" ? "plain" : "json";
  const full = `${type}/${subtype}`;
  if (full === "text/html") return "html";
  if (full === "application/xml") return "xml";
  if (full === "text/plain") return "plain";
  return "json";
}

/** kong/tools/http.lua get_response_type: the highest-q media type Kong has a template for, else JSON. */
export function responseType(accept: string | undefined): Mime {
  let chosen: Mime = "json";
  if (accept === undefined) return chosen;
  let best = 0;
  for (const entry of accept.split(",")) {
    const [mediaType, ...params] = entry.trim().split(";");
    if (
      !/^([a-z0-9][a-z0-9\-!#$&^_+.]+|\*)\/([a-z0-9][a-z0-9\-!#$&^_+.]+|\*)$/i.test(mediaType?.trim() ?? "")
    )
      continue;
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
    const quality = q === undefined ? 1 : Number(q);
    if (quality > best) {
      best = quality;
      chosen = mimeOf((mediaType as string).trim());
    }
  }
  return chosen;
}

function render(mime: Mime, message: string, requestId: string): string {
  switch (mime) {
    case "json":
      return `{\n  "message":"${message}",\n  "request_id":"${requestId}"\n}`;
    case "plain":
      return `${message}\nrequest_id: ${requestId}\n`;
    case "html":
      return `<!doctype html>\n<html>\n  <head>\n    <meta charset="utf-8">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>${message}.</p>\n    <p>request_id: ${requestId}</p>\n  </body>\n</html>\n`;
    case "xml":
      return `<?xml version="1.0" encoding="UTF-8"?>\n<error>\n  <message>${message}</message>\n  <requestid>${requestId}</requestid>\n</error>\n`;
  }
}

export interface ErrorPage {
  status: number;
  body: Buffer;
  headers: Record<string, string>;
}

/** What `kong.response.error(status, message)` sends. */
export function pdkErrorPage(
  requestHeaders: HeaderValues,
  status: number,
  message: string,
  requestId: string,
): ErrorPage {
  const mime = responseType(requestHeaders.accept?.join(","));
  return {
    status,
    body: Buffer.from(render(mime, message, requestId)),
    headers: { "Content-Type": CONTENT_TYPES[mime] },
  };
}

/** What Kong's error handler sends for a status nginx produced itself (kong/error_handlers.lua). */
export function handlerErrorPage(requestHeaders: HeaderValues, status: number, requestId: string): ErrorPage {
  // kong.request.get_header: the first value of each.
  const asked = requestHeaders.accept?.[0] ?? requestHeaders["content-type"]?.[0] ?? "text/plain";
  const mime = responseType(asked);
  const message = HANDLER_MESSAGES[status] ?? `The upstream server responded with ${status}`;
  return {
    // nginx's 494 (header too large) reaches the client as 400.
    status: status === 494 ? 400 : status,
    body: Buffer.from(render(mime, message, requestId)),
    headers: { "Content-Type": CONTENT_TYPES[mime] },
  };
}
